"""The run log of a sync, and how a run's outcome is told: the sentence with its counts, the
notification, the message to the user who asked for a background sync."""

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..utils.notification import display_notification


class AzureAdSyncLog(models.Model):
    _name = "azure.ad.sync.log"
    _description = "Azure AD Sync Run"
    _order = "date_start desc, id desc"
    _rec_name = "date_start"

    integration_id = fields.Many2one(
        "azure.ad.integration", required=True, ondelete="cascade", index=True, readonly=True
    )
    partner_id = fields.Many2one(related="integration_id.partner_id", string="Customer")
    trigger = fields.Selection(
        [("connect", "Connect"), ("manual", "Manual"), ("api", "API"), ("cron", "Scheduled")],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [("running", "Running"), ("done", "Done"), ("failed", "Failed"), ("confirm", "Needs confirmation")],
        default="running",
        required=True,
        readonly=True,
    )
    date_start = fields.Datetime(string="Started", default=fields.Datetime.now, required=True, readonly=True)
    date_end = fields.Datetime(string="Ended", readonly=True)
    user_id = fields.Many2one("res.users", default=lambda self: self.env.user, readonly=True)
    created = fields.Integer(readonly=True)
    updated = fields.Integer(readonly=True)
    unchanged = fields.Integer(readonly=True)
    skipped = fields.Integer(readonly=True)
    archived = fields.Integer(readonly=True)
    # A run stopped by the archive safety threshold: how many it would have archived.
    archive_pending = fields.Integer(string="Would archive", readonly=True)
    # Change history: the contacts this run changed (their chatter has the details).
    changed_partner_ids = fields.Many2many(
        "res.partner",
        "azure_ad_sync_log_changed_partner_rel",
        "log_id",
        "partner_id",
        string="Changed contacts",
        readonly=True,
        context={"active_test": False},  # archived leavers are changed contacts too
    )
    changed_count = fields.Integer(compute="_compute_changed_count", string="Contacts changed")
    skip_reasons = fields.Json(readonly=True)
    skip_summary = fields.Char(compute="_compute_skip_summary", string="Skipped because")
    # Contacts whose usual sync someone's edit in Odoo changed (a login, an archive, a move):
    # {reason: count}.
    other_edits = fields.Json(string="Edits in Odoo", readonly=True)
    other_edits_summary = fields.Char(
        compute="_compute_other_edits_summary",
        string="Because of edits in Odoo",
        help="Contacts the sync treated differently because of what someone did in Odoo: a "
        "contact with a login keeps its email and is not archived, a contact archived in Odoo "
        "stays archived, a contact moved out of the customer is no longer synced.",
    )
    counts_summary = fields.Char(compute="_compute_counts_summary", string="Contacts")
    sync_mode = fields.Selection(
        [("full", "All users"), ("delta", "Changes only")],
        string="Read from Azure AD",
        readonly=True,
        help="Whether the run listed every user of the tenant or only Microsoft's changes "
        "since the last run.",
    )
    graph_requests = fields.Integer(string="Graph requests", readonly=True)
    users_total = fields.Integer(
        compute="_compute_users_total", string="Users read", help="Users Microsoft Graph returned."
    )
    error = fields.Text(readonly=True)

    @api.depends("created", "updated", "unchanged", "skipped")
    def _compute_users_total(self):
        for log in self:
            log.users_total = log.created + log.updated + log.unchanged + log.skipped

    @api.depends("created", "updated", "unchanged", "skipped", "archived")
    def _compute_counts_summary(self):
        for log in self:
            log.counts_summary = log._counts_sentence(log._result())

    @api.depends("changed_partner_ids")
    def _compute_changed_count(self):
        for log in self:
            log.changed_count = len(log.changed_partner_ids)

    @api.depends("skip_reasons")
    def _compute_skip_summary(self):
        labels = self._skip_reason_labels()
        for log in self:
            log.skip_summary = _reasons_summary(log.skip_reasons, labels)

    @api.depends("other_edits")
    def _compute_other_edits_summary(self):
        labels = self._other_edit_labels()
        for log in self:
            log.other_edits_summary = _reasons_summary(log.other_edits, labels)

    def _other_edit_labels(self):
        return {
            "archived": self.env._("archived in Odoo, kept archived"),
            "has_login": self.env._("has a login, not archived"),
            "login_email": self.env._("has a login, email kept (new contact for the user)"),
            "moved": self.env._("moved out of the customer, no longer synced"),
        }

    def _skip_reason_labels(self):
        return {
            "no_email": self.env._("no email address"),
            "invalid_email": self.env._("invalid email address"),
            "guest": self.env._("guest account"),
            "disabled": self.env._("disabled account"),
            "duplicate_email": self.env._("duplicate email"),
            "duplicate_user": self.env._("user listed twice"),
            "invalid": self.env._("malformed user record"),
            "unlicensed": self.env._("no licence"),
            "not_in_group": self.env._("not in the groups"),
            "excluded": self.env._("excluded mailbox"),
            "other_tenant": self.env._("synced from another tenant of the customer"),
            # Why a contact was archived (leavers), besides the filters above.
            "deleted": self.env._("deleted from Azure AD"),
        }

    def action_view_changed_contacts(self):
        self.ensure_one()
        # The domain before the translated name: Odoo 19.0's term extractor takes a tuple that
        # follows a translated string in the same expression for another term.
        domain = [("id", "in", self.changed_partner_ids.ids)]
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Contacts changed by this run"),
            "res_model": "res.partner",
            "view_mode": "list,form",
            "domain": domain,
            "context": {"active_test": False},
        }

    def action_confirm_archive(self):
        """The "Archive them" button of a run stopped by the safety threshold."""
        self.ensure_one()
        if self != self.integration_id._latest_log():
            raise UserError(self.env._("A newer sync ran since: confirm that one instead."))
        return self.integration_id.action_confirm_archive()

    def action_preview(self):
        self.ensure_one()
        return self.integration_id.action_preview()

    # ------------------------------------------------------------ outcome

    def _result(self):
        """What the public API (sync_contacts) returns for this run."""
        self.ensure_one()
        result = {
            "integration_id": self.integration_id.id,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "archived": self.archived,
        }
        if self.state == "failed":
            result["error"] = self.error
        elif self.state == "confirm":
            result["needs_confirmation"] = self.error
        return result

    @api.model
    def _counts_sentence(self, counts):
        """The counts of a run, e.g. "3 created, 1 updated, 40 unchanged, 2 skipped"."""
        if counts.get("archived"):
            return self.env._(
                "%(created)s created, %(updated)s updated, %(unchanged)s unchanged, %(skipped)s skipped, "
                "%(archived)s archived",
                **counts,
            )
        return self.env._(
            "%(created)s created, %(updated)s updated, %(unchanged)s unchanged, %(skipped)s skipped",
            **counts,
        )

    @api.model
    def _result_message(self, result):
        """The sentence that tells a run's outcome: its error, its question, or its counts."""
        if result.get("error"):
            return self.env._("Azure AD sync failed: %(error)s", error=result["error"])
        if result.get("needs_confirmation"):
            return result["needs_confirmation"]
        return self.env._("Azure AD sync: %(counts)s.", counts=self._counts_sentence(result))

    def _outcome_message(self):
        self.ensure_one()
        return self._result_message(self._result())

    def _notification_action(self):
        """The notification after runs a user started: their failures, the confirmation they
        wait for, or the counts of all of them."""
        failed = self.filtered(lambda log: log.state == "failed")
        stopped = self.filtered(lambda log: log.state == "confirm")
        if failed:
            return display_notification(
                "danger", self.env._("Azure AD sync failed"), "\n".join(failed.mapped("error")), sticky=True
            )
        if stopped:
            return display_notification(
                "warning",
                self.env._("Azure AD sync needs your confirmation"),
                "\n".join(stopped.mapped("error")),
                sticky=True,
            )
        totals = {
            key: sum(self.mapped(key)) for key in ("created", "updated", "unchanged", "skipped", "archived")
        }
        return display_notification("success", self.env._("Azure AD sync done"), self._result_message(totals))

    def _notify_user(self, user):
        """Tells `user`, who asked for this run in the background, how it ended."""
        self.ensure_one()
        kind = {"failed": "danger", "confirm": "warning"}.get(self.state, "success")
        user._bus_send(
            "simple_notification",
            {
                "type": kind,
                "title": self.integration_id.name,
                "message": self._outcome_message(),
                "sticky": kind != "success",
            },
        )


def _reasons_summary(counts, labels):
    """{reason: count} as "label: count, …", by reason."""
    return ", ".join(
        f"{labels.get(reason, reason)}: {count}" for reason, count in sorted((counts or {}).items())
    )
