"""Incremental sync: an integration's delta state, the local copy of its tenant's users that a
changes-only round is merged into, when a round must list every user, and the full round that
fetches the next page while the current one is stored."""

import dataclasses
import hashlib
import json
import logging
import queue
import threading
from collections import Counter
from datetime import timedelta

from odoo import api, fields, models

from ..utils import graph_client, reconcile

_logger = logging.getLogger(__name__)

# Pages fetched ahead of the one being stored: enough to hide Microsoft's latency, few
# enough to keep memory flat (a page is at most a few hundred users).
PREFETCH_PAGES = 2


@dataclasses.dataclass
class TenantRound:
    """What a sync read from Microsoft: a full round or only the changes, and the link that
    starts the next round."""

    full: bool
    scope: str
    delta_link: str | None = None
    changes: int = 0  # users a changes-only round reported
    fingerprint: str | None = None  # of the planner's inputs besides the users (see _rested_plan)
    rules: reconcile.Rules | None = None
    # Users of a full round that are not stored (no usable id, or listed twice), by skip reason.
    skipped: Counter = dataclasses.field(default_factory=Counter)


class AzureAdDeltaMixin(models.AbstractModel):
    _name = "azure.ad.delta.mixin"
    _description = "Azure AD: incremental sync"

    # The link that starts the next changes-only round, and what it was taken for.
    delta_link = fields.Char(groups="base.group_system", copy=False, readonly=True, prefetch=False)
    delta_scope = fields.Char(groups="base.group_system", copy=False, readonly=True, prefetch=False)
    full_sync_interval_days = fields.Integer(
        string="Full sync every (days)",
        default=7,
        help="Between full syncs, a sync asks Microsoft only for the users changed since the "
        "last one. A full sync lists every user again as a safety net. 0: every sync is full.",
    )
    last_full_sync_date = fields.Datetime(string="Last full sync", readonly=True, copy=False)
    # After a run: the fingerprint of the contacts and rules it left, and the counts a plan
    # finds then (nothing to write), for a changes-only round that reports no change.
    delta_rest = fields.Json(groups="base.group_system", copy=False, readonly=True, prefetch=False)

    def action_full_sync(self):
        """"Full sync": lists every user of the tenant instead of only the changes. Without
        the link, the next run is full even when it is handed to the scheduled job."""
        self.ensure_one()
        self._check_syncable()
        self.sudo().delta_link = False
        return self.action_sync_now()

    def _forget_delta_state(self):
        """A new start: the next sync lists every user (after Disconnect, for instance)."""
        self.sudo().write({"delta_link": False, "delta_scope": False, "delta_rest": False})
        self.env["azure.ad.directory.user"]._forget(self.ids)

    def _delta_scope(self, select):
        """A fingerprint of who is in scope and what is read: when it changes, the stored
        users may lack a property or the state may not fit, so the next round is full."""
        self.ensure_one()
        options = [
            sorted(select),
            self.include_guests,
            self.include_disabled,
            self.licensed_only,
            self.exclude_patterns or "",
            self.group_ids or "",
        ]
        return hashlib.sha256(json.dumps(options).encode()).hexdigest()

    def _needs_full_round(self, scope):
        integration = self.sudo()
        if self.env.context.get("azure_ad_full_sync") or not integration.delta_link:
            return True
        if integration.delta_scope != scope or not self.full_sync_interval_days:
            return True
        now = fields.Datetime.now()
        return now >= (self.last_full_sync_date or now) + timedelta(days=self.full_sync_interval_days)

    def _read_tenant(self, client, select, on_page=None):
        """Brings the stored users up to date with Microsoft (all of them, or only the
        changes since the last round) and returns the round; plan from
        `_stored_user_pages()`. Writes only inside the caller's transaction."""
        self.ensure_one()
        scope = self._delta_scope(select)
        if not self._needs_full_round(scope):
            try:
                return self._read_changes(client, self.sudo().delta_link, scope)
            except graph_client.DeltaExpiredError:
                _logger.info("Azure AD delta state of %s expired: listing every user", self.name)
        return self._read_all(client, select, scope, on_page)

    def _read_changes(self, client, delta_link, scope):
        users = self.env["azure.ad.directory.user"]
        delta = client.user_delta(delta_link, changed_properties_only=True)  # merged into what is stored
        changes = 0
        for page in delta:
            latest = {}  # object id -> its properties sent, None once removed (the last item counts)
            for item in page:
                object_id = reconcile._object_id(item)
                if object_id is None:
                    continue
                if graph_client.removal_reason(item):
                    # Deleted ("changed": restorable for 30 days, then back as a change) or for good.
                    latest[object_id] = None
                else:
                    latest[object_id] = {**(latest.get(object_id) or {}), **item}
            users._remove(self.id, [object_id for object_id, item in latest.items() if item is None])
            users._store(self.id, [item for item in latest.values() if item is not None], merge=True)
            changes += len(page)
        return TenantRound(full=False, scope=scope, delta_link=delta.delta_link, changes=changes)

    def _read_all(self, client, select, scope, on_page=None):
        """A full round: the link for the changes from now on, then the documented listing
        of every user (999 a page). The next page is fetched (in a worker thread, HTTP only)
        while the current one is stored (the ORM and the cursor stay in this thread).
        A change made while the listing runs comes again in the next round: merged twice, the
        same."""
        users = self.env["azure.ad.directory.user"]
        users._forget(self.ids)
        from_now = client.user_delta(select=select, from_now=True)
        for _page in from_now:
            pass
        if tuple(select) == graph_client.USER_SELECT:
            pages = client.iter_user_pages()  # the documented request, as it is
        else:
            pages = client.iter_user_pages(select=select)
        tenant_round = TenantRound(full=True, scope=scope)
        seen = set()
        for page in _prefetched(pages):
            users._store(self.id, page)
            if on_page is not None:
                on_page(page)
            # Stored once, by a usable id: counted here as the planner counts a listing.
            for object_id in map(reconcile._object_id, page):
                if object_id is None:
                    tenant_round.skipped["invalid"] += 1
                elif object_id in seen:
                    tenant_round.skipped["duplicate_user"] += 1
                seen.add(object_id)
        tenant_round.delta_link = from_now.delta_link
        return tenant_round

    def _early_creator(self, contacts, rules):
        """For a full round: creates, page by page while the next one is fetched, the contacts
        of users no contact can match (see reconcile.early_creates); None when the run must
        write exactly a plan shown before (a preview's "Apply") or contacts follow emails."""
        if self.env.context.get("azure_ad_preview_digest") or rules.follow_email:
            return None
        taken = {contact.email for contact in contacts if contact.email}
        seen = {contact.object_id for contact in contacts if contact.object_id}
        partners = self.env["res.partner"]

        def create(page):
            creates = reconcile.early_creates(page, rules, taken, seen)
            if creates:
                create.ids.update(partners._azure_ad_apply_plan(self, reconcile.Plan(creates=creates)))

        create.ids = set()
        return create

    def _stored_user_pages(self):
        return self.env["azure.ad.directory.user"]._pages(self.id)

    def _delta_state_values(self, tenant_round, plan):
        """What the integration keeps of a successful run: the round's link, and what the
        next plan finds if neither Microsoft nor Odoo changes anything (see _rested_plan)."""
        values = {"delta_link": tenant_round.delta_link, "delta_scope": tenant_round.scope}
        if tenant_round.full:
            values["last_full_sync_date"] = fields.Datetime.now()
        fingerprint = tenant_round.fingerprint
        if plan.created or plan.updated or plan.archived:  # the contacts are not what was planned from
            fingerprint = self._plan_inputs_fingerprint(tenant_round.rules, self._existing_contacts())
        values["delta_rest"] = {
            "fingerprint": fingerprint,
            # Every user that has its contact now is unchanged then; the same users skipped.
            "unchanged": plan.created + plan.unchanged + len(plan.updates),
            "skipped": dict(plan.skipped - tenant_round.skipped),
        }
        return values

    @api.model
    def _plan_inputs_fingerprint(self, rules, contacts):
        """A digest of the contacts as the planner sees them and of the rules (group members
        included): equal digests and unchanged users give equal plans."""
        digest = hashlib.sha256()
        members = sorted(rules.group_member_ids) if rules.group_member_ids is not None else None
        digest.update(repr((dataclasses.replace(rules, group_member_ids=None), members)).encode())
        for contact in sorted(contacts, key=lambda contact: contact.id):
            digest.update(
                repr(
                    (contact.id, contact.email, contact.object_id, contact.linked, contact.name,
                     contact.function, contact.mobile, contact.flags, contact.synced_email, contact.extra)
                ).encode()
            )
        return digest.hexdigest()

    def _rested_plan(self, tenant_round):
        """The plan, without planning, when Microsoft reported no change and the contacts and
        rules are exactly as the last run left them: nothing to write (a sync run twice in a
        row writes nothing), the last run's users unchanged and skipped. None otherwise."""
        rest = self.sudo().delta_rest
        if tenant_round.full or tenant_round.changes or not rest:
            return None
        if rest.get("fingerprint") != tenant_round.fingerprint:
            return None
        return reconcile.Plan(unchanged=rest["unchanged"], skipped=Counter(rest["skipped"]))


_DONE = object()


def _prefetched(pages, ahead=PREFETCH_PAGES):
    """Iterates `pages` in a worker thread, `ahead` pages in advance. What the worker raises
    is raised here; leaving the loop early stops the worker."""
    buffer = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch():
        try:
            for page in pages:
                if not put((page, None)):
                    return
            put((_DONE, None))
        except Exception as error:  # noqa: BLE001 - handed to the consuming thread as is
            put((None, error))

    worker = threading.Thread(target=fetch, name="azure-ad-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            page, error = buffer.get()
            if error is not None:
                raise error
            if page is _DONE:
                return
            yield page
    finally:
        stop.set()
        worker.join(timeout=1)  # a request in flight ends on its own; its page is dropped
