"""Integrations that an earlier release left failed (state error, or an error after their last
run) are tried again by the next scheduled job: before 1.1.0 only Sync now healed them."""


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        """
        UPDATE azure_ad_integration
           SET retry_date = now() AT TIME ZONE 'UTC', failed_runs = 1
         WHERE state IN ('connected', 'error')
           AND tenant_id IS NOT NULL
           AND excluded IS NOT TRUE
           AND (state = 'error' OR last_error IS NOT NULL)
        """
    )
