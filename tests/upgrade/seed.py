# Data an earlier release makes, for tests/test_upgrade.py: run by `odoo-bin shell` (`env` is
# given) with that release's code, against the test's fake Microsoft (FAKE_ENTRA_URL). What every
# release has is always used; later features (options, pins, delta sync, the helpdesk and queue
# bridges) where the release has them. It ends converged, as a database in use is between syncs:
# customers connected and synced, local edits synced over, run logs of each kind (a failed one
# too), helpdesk tickets, one sync job still queued. Prints what it made, as JSON.
import json
import os
from datetime import timedelta
from email.message import EmailMessage

import requests

from odoo import fields

admin = env(user=env.ref("base.user_admin").id)  # noqa: F821 (odoo-bin shell's environment)
Integration, Partner = admin["azure.ad.integration"], admin["res.partner"]
FAKE = os.environ["FAKE_ENTRA_URL"]
CONTOSO, FABRIKAM = os.environ["CONTOSO_TENANT"], os.environ["FABRIKAM_TENANT"]


def has(name, model=Integration):
    return name in model._fields


def only_known(values, model=Integration):
    return {name: value for name, value in values.items() if has(name, model)}


def fake(path, payload):
    """The fake Microsoft's control API (faults, consent)."""
    requests.post(f"{FAKE}/_fake/{path}", json=payload, timeout=10).raise_for_status()


def contact(customer, email):
    return Partner.with_context(active_test=False).search(
        [("parent_id", "=", customer.id), ("email", "=ilike", email)], order="id", limit=1
    )


params = admin["ir.config_parameter"].sudo()
params.set_param("azure_ad_contacts.client_id", os.environ["AZURE_CLIENT_ID"])
params.set_param("azure_ad_contacts.client_secret", os.environ["AZURE_CLIENT_SECRET"])
params.set_param("azure_ad_contacts.login_endpoint", FAKE)
params.set_param("azure_ad_contacts.graph_endpoint", FAKE)

# Customers of the MSP's company (Fabrikam of none, as Odoo creates partners by default).
company = admin.company.id
contoso = Partner.create({"name": "Contoso Ltd", "is_company": True, "company_id": company})
fabrikam = Partner.create({"name": "Fabrikam Inc", "is_company": True})
litware = Partner.create({"name": "Litware Inc", "is_company": True, "company_id": company})
# Before the connection: a contact Entra matches by its email (its phone is Odoo's own), and one
# only Odoo knows.
Partner.create({"name": "Adele V.", "email": " Adele.Vance@Contoso.example", "phone": "+1 555 0100",
                "parent_id": contoso.id})
Partner.create({"name": "Front desk", "email": "frontdesk@contoso.example", "parent_id": contoso.id})

contoso_integration = Integration.create({
    "partner_id": contoso.id, "auto_sync": True, "sync_interval_hours": 12,
    **only_known({"map_department": True, "map_office": True, "log_changes": True,
                  "follow_email_changes": True, "full_sync_interval_days": 3}),
})
fabrikam_integration = Integration.create({
    "partner_id": fabrikam.id, "include_guests": True, "include_disabled": True,
    **only_known({"exclude_patterns": "zrinka*", "map_business_phone": True}),
})
Integration.create({"partner_id": litware.id, "excluded": True})  # never connected
contoso_integration._complete_consent(CONTOSO)
fabrikam_integration._complete_consent(FABRIKAM)
env.cr.commit()  # noqa: F821

# Edits in Odoo that the next syncs settle: a synced field edited (synced over), an email
# changed (the person gets a new contact, the edited one keeps its data without the link), a
# pinned contact (left as it is).
contact(contoso, "adele.vance@contoso.example").function = "Edited in Odoo"
contact(contoso, "megan.bowen@contoso.example").email = "megan@private.example"
if has("azure_ad_never_overwrite", Partner):
    contact(contoso, "alex.wilber@contoso.example").write(
        {"azure_ad_never_overwrite": True, "function": "Pinned in Odoo"})
contoso_integration.sync_contacts()
contoso_integration.action_sync_now()

# A run that failed (the customer revoked the consent), then the consent restored.
fake("faults", {"kind": "revoke", "target": "any", "tenant": FABRIKAM})
fabrikam_integration.sync_contacts()
fake(f"tenants/{FABRIKAM}/consent", {"granted": True})
fabrikam_integration.sync_contacts()
env.cr.commit()  # noqa: F821

# The scheduled job, on a customer that is due (with the queue bridge: a job, run here as the
# job runner would).
due = fields.Datetime.now() - timedelta(hours=13)
contoso_integration.sudo().write({"next_sync_date" if has("next_sync_date") else "last_sync_date": due})
Integration._cron_sync_due()
if "queue.job" in admin:
    from odoo.addons.queue_job.job import Job

    for record in admin["queue.job"].search([("state", "=", "pending")]):
        job = Job.load(admin, record.uuid)
        job.set_started()
        job.set_done(result=job.perform())
        job.store()
env.cr.commit()  # noqa: F821

# Helpdesk tickets: by mail from a synced person, typed in by an agent, and from a new employee
# of a connected customer who is not synced yet (waiting for a sync).
if "helpdesk.ticket" in admin:
    for sender, subject in (("Adele Vance <adele.vance@contoso.example>", "My laptop does not start"),
                            ("New Hire <new.hire@contoso.example>", "Where do I get a badge?")):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, "helpdesk@msp.example", subject
        message["Message-Id"] = f"<{subject.replace(' ', '.')}@upgrade.example>"
        message.set_content("Please help.")
        admin["mail.thread"].message_process("helpdesk.ticket", message.as_bytes())
    admin["helpdesk.ticket"].create({"name": "VPN", "description": "VPN drops",
                                     "partner_email": "debra.berger@fabrikam.example"})

# One sync still queued when the upgrade comes (the job runner had not got to it).
if hasattr(Integration, "sync_contacts_async"):
    fabrikam_integration.sync_contacts_async()
# Converged: the next sync writes nothing.
(contoso_integration | fabrikam_integration).sync_contacts()
env.cr.commit()  # noqa: F821

logs = admin["azure.ad.sync.log"].search([])
print(json.dumps({
    "contacts": Partner.with_context(active_test=False).search_count(
        [("parent_id", "in", (contoso | fabrikam).ids)]),
    "linked": Partner.with_context(active_test=False).search_count([("azure_ad_object_id", "!=", False)]),
    "triggers": sorted(set(logs.mapped("trigger"))),
    "states": sorted(set(logs.mapped("state"))),
    "delta": bool(has("delta_link") and contoso_integration.sudo().delta_link),
    "tickets": admin["helpdesk.ticket"].search_count([]) if "helpdesk.ticket" in admin else 0,
    "queued": admin["queue.job"].search_count([("state", "=", "pending")]) if "queue.job" in admin else 0,
}))
