# The first sync after an upgrade, for tests/test_upgrade.py: run by `odoo-bin shell` (`env` is
# given) with the current code. Jobs queued before the upgrade run first, as the job runner
# would run them; then every connected customer is synced through the public API, as an
# administrator. Prints the results, as JSON.
import json

admin = env(user=env.ref("base.user_admin").id)  # noqa: F821 (odoo-bin shell's environment)
jobs = []
if "queue.job" in admin:
    from odoo.addons.queue_job.job import Job

    for record in admin["queue.job"].search([("state", "=", "pending")], order="id"):
        job = Job.load(admin, record.uuid)
        job.set_started()
        job.set_done(result=job.perform())
        job.store()
        jobs.append(record.uuid)
    env.cr.commit()  # noqa: F821
integrations = admin["azure.ad.integration"].search([("state", "=", "connected"), ("excluded", "=", False)])
results = integrations.sync_contacts()
env.cr.commit()  # noqa: F821
print(json.dumps({"jobs": jobs, "syncs": results}))
