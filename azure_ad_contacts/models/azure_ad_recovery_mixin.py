"""Self-healing: no failure is the end. A failed sync is tried again by the scheduled job with a
growing delay, whether or not the customer syncs on a schedule; after two failures in a row an
administrator gets an activity saying what failed and what to do (one per customer; when
Microsoft refuses the app's own secret or certificate, which fails every customer, one for all
of them); new app credentials retry at once every customer that failed for them. Only
Disconnect and Exclude stop syncs."""

from datetime import timedelta

from markupsafe import Markup

from odoo import SUPERUSER_ID, api, fields, models
from odoo.tools.misc import format_datetime

RETRY_FIRST_DELAY = timedelta(hours=1)
RETRY_MAX_DELAY = timedelta(days=1)
FAILURES_BEFORE_ACTIVITY = 2
SYNC_FAILING_ACTIVITY = "azure_ad_contacts.mail_activity_type_sync_failing"
CREDENTIAL_FAILING_ACTIVITY = "azure_ad_contacts.mail_activity_type_credential_failing"
CUSTOMERS_NAMED = 5  # in the credential activity, the failing customers named before "…"


class AzureAdRecoveryMixin(models.AbstractModel):
    _name = "azure.ad.recovery.mixin"
    _description = "Azure AD: failed syncs tried again"

    retry_date = fields.Datetime(
        string="Next try",
        readonly=True,
        copy=False,
        index=True,
        help="The last sync failed: the scheduled job tries again at this time, whether or not "
        "this customer syncs on a schedule. Disconnect or Exclude stop it.",
    )
    failed_runs = fields.Integer(string="Failed runs in a row", readonly=True, copy=False)

    def _retry_delay(self, failed_runs, retry_after=None):
        """How long after its `failed_runs`-th failure in a row a sync is tried again: an hour,
        twice as long after each further failure, at most a day, never sooner than Microsoft
        asked (`retry_after`, seconds)."""
        delay = min(RETRY_FIRST_DELAY * 2 ** max(failed_runs - 1, 0), RETRY_MAX_DELAY)
        return max(delay, timedelta(seconds=retry_after or 0))

    def _schedule_retry(self, message, retry_after=None, credential=False):
        """After a failed run: when it is tried again, and from the second failure in a row on,
        the administrator's activity that says what failed (`message`) and what to do; for a
        failure of the app's credential (`credential`), the one activity about it."""
        self.ensure_one()
        failed_runs = self.failed_runs + 1
        retry_date = fields.Datetime.now() + self._retry_delay(failed_runs, retry_after)
        self.sudo().write({"failed_runs": failed_runs, "retry_date": retry_date})  # owned by this code
        if failed_runs < FAILURES_BEFORE_ACTIVITY:
            return
        if credential:
            self._notify_credential_failing(message)
        else:
            self._notify_failing(message)

    def _notify_failing(self, message):
        """One open activity per failing integration, for its responsible administrator; a
        further failure brings its note up to date instead of adding another."""
        note = Markup("<p>%s</p><p>%s</p>") % (
            message,
            self.env._(
                "The sync of %(customer)s failed %(count)s times in a row. It is tried again "
                "automatically on %(date)s; this activity is marked done when a sync succeeds.",
                customer=self.name,
                count=self.failed_runs,
                date=format_datetime(self.env, self.retry_date),
            ),
        )
        summary = self.env._("Azure AD sync of %(customer)s keeps failing", customer=self.name)
        activities = self.activity_search([SYNC_FAILING_ACTIVITY])
        if activities:
            activities.write({"note": note, "summary": summary})
            return
        self.activity_schedule(
            SYNC_FAILING_ACTIVITY, summary=summary, note=note, user_id=self._responsible_administrator().id
        )

    def _notify_credential_failing(self, message):
        """Microsoft refuses the app's secret or certificate: every customer fails alike, and
        one remedy (a new credential in Settings) heals them all. Each administrator gets one
        activity for it, on the MSP's own company where the expiry warnings are, whichever
        customer and try it is; its note counts the customers waiting. The customer's own
        activity, if any, is dropped: this one says what to do."""
        self.activity_unlink([SYNC_FAILING_ACTIVITY])
        failing = self.sudo().search(
            [("last_error_kind", "=", "secret"), ("excluded", "=", False), ("retry_date", "!=", False)],
            order="id",
        )
        names = ", ".join(failing[:CUSTOMERS_NAMED].mapped("name"))
        if len(failing) > CUSTOMERS_NAMED:
            names += ", …"
        note = Markup("<p>%s</p><p>%s</p>") % (
            message,
            self.env._(
                "%(count)s customers cannot sync until then (%(names)s). Saving the new credential in "
                "Settings › Azure AD Contacts tries every one of them again at once; this activity is "
                "marked done when a sync succeeds.",
                count=len(failing),
                names=names,
            ),
        )
        anchor = self._credential_activity_anchor()
        open_activities = anchor.activity_search([CREDENTIAL_FAILING_ACTIVITY])
        for user in self._administrators():
            mine = open_activities.filtered(lambda activity, user=user: activity.user_id == user)
            if mine:
                mine.write({"note": note})
            else:
                anchor.activity_schedule(CREDENTIAL_FAILING_ACTIVITY, note=note, user_id=user.id)

    def _recovered(self):
        """After a successful run: no retry pending, and the failure activity is done (the
        credential's too: Microsoft accepts the app's credential again)."""
        if not (self.failed_runs or self.retry_date):
            return  # the common case costs nothing
        had_activity = self.failed_runs >= FAILURES_BEFORE_ACTIVITY
        self.sudo().write({"failed_runs": 0, "retry_date": False})
        if had_activity:
            self.activity_feedback([SYNC_FAILING_ACTIVITY], feedback=self.env._("Synced again successfully."))
            self._credential_activity_anchor().activity_feedback(
                [CREDENTIAL_FAILING_ACTIVITY],
                feedback=self.env._(
                    "Microsoft accepts the app's credential again: %(customer)s synced.", customer=self.name
                ),
            )

    def _stop_retries(self):
        """Disconnect: nothing is tried again, nobody needs to act."""
        self.sudo().write({"failed_runs": 0, "retry_date": False})
        self.activity_unlink([SYNC_FAILING_ACTIVITY])

    @api.model
    def _retry_credential_failures(self):
        """New app credentials: every integration whose last sync failed for the credentials
        is tried again at once (by the scheduled job), whether or not it syncs on a schedule.
        Returns them."""
        failed = self.sudo().search(
            [
                ("last_error_kind", "=", "secret"),
                ("excluded", "=", False),
                ("state", "in", ("connected", "error")),
                ("tenant_id", "!=", False),
            ]
        )
        if failed:
            failed.write({"retry_date": fields.Datetime.now()})
            self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync").sudo()._trigger()
        return failed

    @api.model
    def _administrators(self):
        """The active internal users with Settings rights (OdooBot excluded)."""
        users = self.env["res.users"].sudo().search([("share", "=", False), ("id", "!=", SUPERUSER_ID)])
        return users.filtered(lambda user: user._is_system())

    def _responsible_administrator(self):
        """Who gets this integration's activities: whoever created it, while still an
        administrator; else the first administrator."""
        administrators = self._administrators()
        creator = self.create_uid & administrators
        return creator or administrators[:1] or self.env.user
