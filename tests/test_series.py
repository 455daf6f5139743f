"""What azure_ad_contacts/series.py bridges between Odoo 18.0 and 19.0, checked where it lands:
the SQL constraints in PostgreSQL, the mobile number in the contact's form, the server action
for administrators only."""

from lxml import etree

from odoo.tests import TransactionCase

from odoo.addons.azure_ad_contacts import series

from .common import AddonTest

# Every SQL constraint the addon declares: (model, PostgreSQL name, what pg_get_constraintdef shows).
CONSTRAINTS = [
    ("azure.ad.integration", "azure_ad_integration_partner_uniq", "EXCLUDE USING btree (partner_id WITH =)"),
    ("azure.ad.integration", "azure_ad_integration_interval_positive", "CHECK ((sync_interval_hours > 0))"),
    (
        "azure.ad.directory.user",
        "azure_ad_directory_user_integration_object_uniq",
        "UNIQUE (integration_id, object_id)",
    ),
    ("azure.ad.partner.tenant", "azure_ad_partner_tenant_tenant_uniq", "UNIQUE (tenant_id)"),
    (
        "azure.ad.partner.customer",
        "azure_ad_partner_customer_tenant_uniq",
        "UNIQUE (partner_tenant_id, tenant_id)",
    ),
    (
        "azure.ad.partner.relationship",
        "azure_ad_partner_relationship_relationship_uniq",
        "UNIQUE (customer_id, relationship_id)",
    ),
    (
        "res.partner",
        "res_partner_azure_ad_object_uniq",
        "UNIQUE (azure_ad_integration_id, azure_ad_object_id)",
    ),
]


class TestSeries(AddonTest, TransactionCase):
    def test_sql_constraints_exist_in_postgresql(self):
        for model, name, definition in CONSTRAINTS:
            with self.subTest(name):
                self.env.cr.execute(
                    """SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                       JOIN pg_class t ON t.oid = c.conrelid
                       WHERE t.relname = %s AND c.conname = %s""",
                    (self.env[model]._table, name),
                )
                rows = self.env.cr.fetchall()
                self.assertEqual(len(rows), 1, f"{name} missing on {model}")
                self.assertTrue(rows[0][0].startswith(definition), rows[0][0])
        # and the list above is all the addon declares (Odoo's own on res.partner aside).
        declared = {
            f"{self.env[model]._table}_{name}"
            for model in {model for model, _name, _definition in CONSTRAINTS}
            for name in self.declared_constraints(self.env[model])
        }
        self.assertEqual(
            {name for name in declared if name.startswith(("azure_ad", "res_partner_azure_ad"))},
            {name for _model, name, _definition in CONSTRAINTS},
        )

    def declared_constraints(self, model):
        """Names of the constraints the addon's code declares on `model` (18.0: _sql_constraints,
        19.0: models.Constraint attributes), the way the running Odoo reads them."""
        objects = getattr(type(model), "_table_objects", None)
        if objects is not None:
            return [name.removeprefix(f"{model._table}_") for name in objects]
        return [name for name, _definition, _message in type(model)._sql_constraints]

    def test_the_contact_form_shows_the_mobile_number(self):
        arch = self.env["res.partner"].get_view(self.env.ref("base.view_partner_form").id, "form")["arch"]
        form = etree.fromstring(arch)
        # Outside the form's sub-views (the child contacts' kanban and form).
        own = [
            node
            for node in form.iter("field")
            if node.get("name") == "mobile" and not node.xpath("ancestor::field")
        ]
        self.assertEqual(len(own), 1, "one mobile field in the contact's form")
        self.assertIn("mobile", self.env["res.partner"]._fields)

    def test_the_server_action_is_for_administrators(self):
        action = self.env.ref("azure_ad_contacts.res_partner_action_sync_azure_ad")
        self.assertEqual(action[series.GROUPS_FIELD], self.env.ref("base.group_system"))
