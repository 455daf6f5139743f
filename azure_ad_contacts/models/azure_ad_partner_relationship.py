"""One GDAP relationship of the partner with a customer, as Microsoft Graph last listed it."""

from odoo import fields, models

from ..series import Constraint
from ..utils import gdap


class AzureAdPartnerRelationship(models.Model):
    _name = "azure.ad.partner.relationship"
    _description = "GDAP relationship of the partner with a customer"
    _order = "end_date desc, id"

    customer_id = fields.Many2one("azure.ad.partner.customer", required=True, ondelete="cascade", index=True)
    relationship_id = fields.Char(string="Relationship ID", required=True)
    name = fields.Char()
    status = fields.Selection(
        [
            ("created", "Created"),
            ("approvalPending", "Approval pending"),
            ("approved", "Approved"),
            ("activating", "Activating"),
            ("active", "Active"),
            ("expiring", "Expiring"),
            ("expired", "Expired"),
            ("terminationRequested", "Termination requested"),
            ("terminating", "Terminating"),
            ("terminated", "Terminated"),
            ("unknownFutureValue", "Unknown"),
        ],
        required=True,
        help="As Microsoft Graph reports it (delegatedAdminRelationship.status).",
    )
    end_date = fields.Datetime(string="Ends")
    auto_extend = fields.Boolean(string="Auto-extend", help="Extended by six months at its end date.")
    # Role template ids, comma-separated; their names for people.
    roles = fields.Char(string="Role template IDs")
    role_names = fields.Char(string="Roles")
    reads_users = fields.Boolean(
        string="Reads users",
        help="Active, with a role that reads the customer's users (Directory Readers, …).",
    )

    _relationship_uniq = Constraint(
        "unique(customer_id, relationship_id)", "This relationship is already listed."
    )

    def _as_relationship(self):
        self.ensure_one()
        return gdap.Relationship(
            relationship_id=self.relationship_id,
            name=self.name or "",
            customer_tenant_id=self.customer_id.tenant_id,
            customer_name=self.customer_id.name or "",
            status=self.status,
            end=self.end_date or None,
            auto_extend=self.auto_extend,
            roles=frozenset(filter(None, (self.roles or "").split(","))),
        )

    def _replace_with(self, customer, relationships):
        """Makes `customer`'s relationships (self) those of `relationships` (gdap.Relationship):
        changed ones written, new ones created, vanished ones removed. Mirrors of Microsoft's
        data, written by the listing only (administrators read them)."""
        records = self.sudo()
        by_id = {relationship.relationship_id: relationship for relationship in relationships}
        records.filtered(lambda r: r.relationship_id not in by_id).unlink()
        existing = {record.relationship_id: record for record in records if record.relationship_id in by_id}
        for relationship_id, relationship in by_id.items():
            values = {
                "name": relationship.name,
                "status": relationship.status,
                "end_date": relationship.end and relationship.end.replace(microsecond=0),
                "auto_extend": relationship.auto_extend,
                "roles": ",".join(sorted(relationship.roles)),
                "role_names": ", ".join(relationship.role_names),
                "reads_users": relationship.reads_users,
            }
            record = existing.get(relationship_id)
            if record is None:
                records.create({**values, "customer_id": customer.id, "relationship_id": relationship_id})
            elif any(record[name] != value for name, value in values.items()):
                record.write(values)
