"""Customers connected through the partner tenant with the queue_job bridge: confirming them
queues one job each, and each job reads its tenant with the partner's delegated access and keeps
its own refreshed sign-in, so that jobs running side by side never write one shared row."""

from odoo.tests import TransactionCase

from odoo.addons.queue_job.job import Job

from ..common import FakeTenantMixin
from ..partner_common import FABRIKAM_ID, TAILSPIN_ID, query_of, sign_in_at_microsoft


class TestPartnerJobs(FakeTenantMixin, TransactionCase):
    create_integration = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.fabrikam = Partner.create(
            {"name": "Fabrikam", "is_company": True, "email": "info@fabrikam.example"}
        )
        cls.tailspin = Partner.create({"name": "Tailspin Toys", "is_company": True})

    def test_confirmed_customers_sync_as_jobs_each_with_its_own_sign_in(self):
        partner = self.env["azure.ad.partner.tenant"]._get_partner_tenant()
        partner._complete_sign_in(query_of(sign_in_at_microsoft(partner.action_sign_in()["url"])))
        customers = partner.customer_ids.filtered(lambda c: c.tenant_id in (FABRIKAM_ID, TAILSPIN_ID))
        customers.action_confirm()
        integrations = customers.integration_id
        self.assertEqual(len(integrations), 2)
        jobs = (
            self.env["queue.job"]
            .search([("model_name", "=", "azure.ad.integration"), ("method_name", "=", "_sync_job")])
            .filtered(lambda job: job.records & integrations)
        )
        self.assertEqual(len(jobs), 2)
        partner_cache = partner.sudo().token_cache
        for job_record in jobs:
            job = Job.load(self.env, job_record.uuid)
            job.set_started()
            job.perform()
        logs = integrations.sync_log_ids
        self.assertEqual(logs.mapped("state"), ["done", "done"], logs.mapped("error"))
        self.assertEqual(sorted(logs.mapped("created")), [3, 7])
        # Each kept the refresh token its own refresh returned; the partner's stayed as it was.
        caches = integrations.sudo().mapped("token_cache")
        self.assertEqual(len(set(caches)), 2)
        self.assertNotIn(partner_cache, caches)
        self.assertEqual(partner.sudo().token_cache, partner_cache)
