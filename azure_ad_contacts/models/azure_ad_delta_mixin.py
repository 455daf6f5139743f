"""Incremental sync: an integration's delta state, the local copy of its tenant's users that a
changes-only round is merged into, when a round must list every user, and the full round that
fetches the next page while the current one is stored."""

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import queue
import threading
from collections import Counter
from datetime import timedelta

from odoo import fields, models

from ..utils import graph_client, incremental, reconcile

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
    # The users a round of changes reported (merged over a full round's listing, too), and
    # the email keys they had before.
    changed_ids: set = dataclasses.field(default_factory=set)
    changed_keys: set = dataclasses.field(default_factory=set)
    # Users of a full round that are not stored (no usable id, or listed twice), by skip reason.
    skipped: Counter = dataclasses.field(default_factory=Counter)
    # Of a changes-only round under the last run's rules: the contacts changed in Odoo since
    # that run (see _contacts_changed), compared while Microsoft answered.
    contacts_changed: dict | None = None


@dataclasses.dataclass
class PlannedRun:
    """What settling a run needs besides its plan: which users were planned (None: all of
    them), why each skipped one was, and the contacts as they were planned against."""

    planned_ids: set | None
    skips: dict
    # The contacts planned against (all of them when every user was planned) and, of a
    # changes-only run, the ids of those changed, created or deleted in Odoo since the last run.
    contacts: list
    changed_ids: set
    rules_digest: str
    early_ids: set = dataclasses.field(default_factory=set)


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
    # The rules the last run applied: other rules, every user is planned again (the contacts
    # as the run left them are in azure.ad.contact.state).
    delta_rules = fields.Char(
        string="Rules of the last sync", groups="base.group_system", copy=False, readonly=True, prefetch=False
    )

    def action_full_sync(self):
        """ "Full sync": lists every user of the tenant instead of only the changes. Without
        the link, the next run is full even when it is handed to the scheduled job."""
        self.ensure_one()
        self._check_syncable()
        self.sudo().delta_link = False
        return self.action_sync_now()

    def _forget_delta_state(self):
        """A new start: the next sync lists every user (after Disconnect, for instance)."""
        self.sudo().write({"delta_link": False, "delta_scope": False, "delta_rules": False})
        self.env["azure.ad.directory.user"]._forget(self.ids)
        self.env["azure.ad.contact.state"]._forget(self.ids)

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

    def _needs_full_round(self, scope, rules=None):
        integration = self.sudo()
        if self.env.context.get("azure_ad_full_sync") or not integration.delta_link:
            return True
        if integration.delta_scope != scope or not self.full_sync_interval_days:
            return True
        if rules is not None and self.env["azure.ad.directory.user"]._admits_filtered(self.id, rules):
            _logger.info("Azure AD rules of %s let in users filtered out so far: listing all", self.name)
            return True
        now = fields.Datetime.now()
        return now >= (self.last_full_sync_date or now) + timedelta(days=self.full_sync_interval_days)

    def _read_tenant(self, client, select, on_page=None, rules=None):
        """Brings the stored users up to date with Microsoft (all of them, or only the
        changes since the last round, unless `rules` let in users whose data is not kept)
        and returns the round; plan with `_plan_stored()`. Writes only inside the caller's
        transaction."""
        self.ensure_one()
        scope = self._delta_scope(select)
        integration = self.sudo()
        chain = integration.delta_link if integration.delta_scope == scope else None
        if not self._needs_full_round(scope, rules):
            try:
                return self._read_changes(client, chain, scope, select, rules)
            except graph_client.DeltaExpiredError:
                # 410 resyncRequired or 400 syncStateNotFound: the link is of no more use.
                _logger.info("Azure AD delta state of %s expired: listing every user", self.name)
                chain = None
        return self._read_all(client, select, scope, on_page, chain)

    def _read_changes(self, client, delta_link, scope, select, rules=None):
        """A round of the changes since `delta_link`, merged into the stored users. Under the
        last run's `rules`, the contacts are compared with their state meanwhile (the plan
        needs that either way): PostgreSQL's part and Microsoft's overlap."""
        users = self.env["azure.ad.directory.user"]
        delta = client.user_delta(delta_link, changed_properties_only=True)  # merged into what is stored
        tenant_round = TenantRound(full=False, scope=scope)
        unknown = set()  # users the store lacked: what was sent of them may not be all
        client.acquire_token()  # in this thread, before the worker's requests (see _read_all)
        with _prefetching(delta) as pages:
            if rules is not None and self.sudo().delta_rules == _rules_digest(rules):
                tenant_round.contacts_changed = self._contacts_changed(rules)
            for page in pages:
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
                changed = {object_id: item for object_id, item in latest.items() if item is not None}
                removed = [object_id for object_id, item in latest.items() if item is None]
                before, new = users._merge(self.id, changed, removed)
                tenant_round.changed_keys |= before
                tenant_round.changed_ids |= latest.keys()
                unknown = (unknown - set(removed)) | new
        tenant_round.delta_link = delta.delta_link
        # A restored user may come back as its id only, with only some properties, or not at
        # all until the next full round (with $select or Prefer: return=minimal): each user
        # the store lacked is read whole, by id, and so is a filtered-out one (of which only
        # what filtered it out is kept) when what decided it changed.
        for object_id in sorted(unknown):
            record = client.get_user(object_id, select)
            if record is None:
                users._remove(self.id, [object_id])
            else:
                users._replace(self.id, {object_id: record})
        return tenant_round

    def _read_all(self, client, select, scope, on_page=None, chain=None):
        """A full round: the documented listing of every user (999 a page), and the link
        for the changes from then on. The next page is fetched (in a worker thread, HTTP
        only) while the current one is stored (the ORM and the cursor stay in this thread).

        Microsoft documents neither the listing nor `$deltatoken=latest` as consistent with
        the other: the listing may lag behind a change the new link is already past. So with
        `chain` (the link the last round left, when it still fits) the changes since it are
        read after the listing and merged over it (current values: merged twice, the same),
        and the round goes on from there; without, the link is asked for together with the
        listing's first page, and every later page only once the link is in hand (a change
        made meanwhile comes again in the next round; see below for the first page)."""
        users = self.env["azure.ad.directory.user"]
        users._forget(self.ids)
        # Here, before any other thread sends a request: the token cache is kept on the
        # integration only from this thread.
        client.acquire_token()
        if tuple(select) == graph_client.USER_SELECT:
            pages = client.iter_user_pages()  # the documented request, as it is
        else:
            pages = client.iter_user_pages(select=select)
        from_now = None
        if not chain:
            # Not one round trip for the link and then one for the first page: both at once.
            # Graph orders neither two requests in flight nor, documentedly, the listing
            # against the link, so the first page may be read just before the link is taken,
            # and a change to one of its users made in between (while both requests were in
            # flight: about one round trip) would be in neither the listing nor the next
            # round. That is the gap a first round has anyway (the listing may lag behind the
            # link, and there is no earlier link to replay), widened by at most that round
            # trip; the next full round lists those users again. The later pages are asked
            # for only once the link is in hand (beside_first_page): read after it, as before.
            from_now = client.user_delta(select=select, from_now=True)
            pages = graph_client.beside_first_page(pages, from_now)
        tenant_round = TenantRound(full=True, scope=scope)
        seen = set()
        with _prefetching(pages) as prefetched:
            for page in prefetched:
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
        if from_now is not None:
            tenant_round.delta_link = from_now.delta_link  # read before the listing's end
            return tenant_round
        try:
            replayed = self._read_changes(client, chain, scope, select)
        except graph_client.DeltaExpiredError:
            # No link from before the listing: the next round lists every user again.
            _logger.info("Azure AD delta state of %s expired: the next sync is full too", self.name)
        else:
            tenant_round.delta_link = replayed.delta_link
            tenant_round.changed_ids = replayed.changed_ids
        return tenant_round

    def _contacts_changed(self, rules):
        """The customer's contacts changed, created or deleted in Odoo since the last run
        (see azure.ad.contact.state._changed)."""
        contacts_now = self.env["res.partner"]._azure_ad_contact_query(self, rules)
        return self.env["azure.ad.contact.state"]._changed(self.id, contacts_now)

    def _early_creator(self, rules):
        """For a full round: creates, page by page while the next one is fetched, the contacts
        of users no contact can match (see reconcile.early_creates); None when the run must
        write exactly a plan shown before (a preview's "Apply") or contacts follow emails.
        The contacts are read at the first page: a changes-only round needs not all of them."""
        if self.env.context.get("azure_ad_preview_digest") or rules.follow_email:
            return None
        partners = self.env["res.partner"]

        def create(page):
            if create.taken is None:
                contacts = self._existing_contacts()
                create.had_contacts = bool(contacts)
                create.taken = {contact.email for contact in contacts if contact.email}
                create.seen = {contact.object_id for contact in contacts if contact.object_id}
            creates = reconcile.early_creates(page, rules, create.taken, create.seen)
            if creates:
                create.ids.update(partners._azure_ad_apply_plan(self, reconcile.Plan(creates=creates)))

        create.ids = set()
        create.taken = create.seen = None
        create.had_contacts = True
        return create

    # ------------------------------------------------ planning from the stored users

    def _plan_stored(self, tenant_round, rules, early):
        """Plans from the stored users against the contacts as they are now: all of them after
        a full round or when the rules changed, else only those the changes concern, in
        Microsoft or in Odoo (see utils/incremental.py), the others counted as the last plan
        left them. The plan of a full listing either way. Returns (plan, PlannedRun)."""
        run = PlannedRun(
            planned_ids=None,
            skips={},
            contacts=[],
            changed_ids=set(),
            rules_digest=_rules_digest(rules),
            early_ids=early.ids if early else set(),
        )

        def on_skip(object_id, _label, reason):
            if object_id is not None:
                run.skips[object_id] = reason

        directory = self.env["azure.ad.directory.user"]
        if (
            tenant_round.full
            and run.early_ids
            and not early.had_contacts
            and not tenant_round.changed_ids  # nothing merged over the listing after the creates
            and len(run.early_ids) == directory._count(self.id)
        ):
            # A first sync that created a contact for every user as it listed them: the
            # plan, made now, would find every one of them unchanged.
            plan = reconcile.Plan(precreated=len(run.early_ids), linked=len(run.early_ids))
            plan.skipped.update(tenant_round.skipped)
            return plan, run
        if tenant_round.full or self.sudo().delta_rules != run.rules_digest:
            run.contacts = reconcile.mark_new(self._existing_contacts(), run.early_ids)
            plan = reconcile.build_plan(directory._pages(self.id), run.contacts, rules=rules, on_skip=on_skip)
            plan.skipped.update(tenant_round.skipped)
            if run.early_ids:  # their contacts exist now: planned against them
                plan.count_precreated(run.early_ids)
            return plan, run
        return self._plan_changes(tenant_round, rules, run, on_skip)

    def _plan_changes(self, tenant_round, rules, run, on_skip):
        """The plan of a changes-only round: the users tied to what changed in Microsoft or in
        Odoo since the last run, against the contacts tied to them; the others as the last run
        left them. Reads only those users and contacts."""
        directory = self.env["azure.ad.directory.user"]
        states = self.env["azure.ad.contact.state"]
        partners = self.env["res.partner"]
        changed = tenant_round.contacts_changed  # compared while the round was read
        run.changed_ids = set(changed)
        known = {contact.id: contact for contact in self._existing_contacts(contact_ids=run.changed_ids)}
        # The contacts changed since show as they were and as they are.
        keys = set(tenant_round.changed_keys) | {key for key, _object_id in changed.values()}
        keys |= {contact.email for contact in known.values()}
        object_ids = set(tenant_round.changed_ids) | {object_id for _key, object_id in changed.values()}
        object_ids |= {contact.object_id for contact in known.values()}
        object_ids.discard(None)

        def load_contacts(keys, object_ids):
            missing = states._tied(self.id, keys, object_ids, excluding=run.changed_ids) - known.keys()
            known.update((contact.id, contact) for contact in self._existing_contacts(contact_ids=missing))
            return [c for c in known.values() if c.email in keys or c.object_id in object_ids]

        users, tied = {}, []
        keys.discard(None)
        if keys or object_ids:
            users, tied = incremental.concerned_users(
                keys, object_ids, load_contacts, lambda ids, keys: directory._users(self.id, ids, keys)
            )
        # Only the contacts tied to these users matter to their plan; the count of linked ones
        # (for the archive threshold) is of all.
        plan = reconcile.build_plan(
            [list(users.values())], tied, rules=rules, on_skip=on_skip, leavers_among=object_ids
        )
        plan.linked = partners._azure_ad_count_linked(self)
        # Contacts that stay as someone made them (see STANDING_EDITS), not concerned by any
        # change: as the last run left them.
        tied_ids = {c.id for c in tied}
        for contact_id, reason in states._standing_edits(self.id, self.partner_id.id).items():
            if contact_id not in tied_ids:
                plan.other_edits[contact_id] = reason
        run.contacts = list(known.values())
        run.planned_ids = set(users)
        kept, skipped = directory._outcomes(self.id, excluding=run.planned_ids)
        plan.unchanged += kept
        plan.skipped.update(skipped)
        return plan, run

    def _settle(self, tenant_round, plan, run, created_ids):
        """What the integration keeps of a successful run: the round's link, what the plan
        made of each user, and the contacts as the run left them: all of them when every user
        was planned, else those planned against, changed since the last run, or written."""
        self.env["azure.ad.directory.user"]._record_outcomes(self.id, run.skips, run.planned_ids)
        self.env["res.partner"].flush_model()  # all fields at once: one UPDATE per contact
        standing = {
            contact_id: reason
            for contact_id, reason in plan.other_edits.items()
            if reason in reconcile.STANDING_EDITS
        }
        states = self.env["azure.ad.contact.state"]
        if run.planned_ids is None:
            # Every contact, read again in batches: never all of them twice in memory.
            run.contacts = []
            batches = self.env["res.partner"]._azure_ad_contact_batches(self)
            states._write_states(self.id, itertools.chain.from_iterable(batches), standing)
            states._drop_gone(self.id, self.partner_id.id)
        else:
            touched = plan.updates.keys() | set(plan.unlink_ids) | plan.archives.keys() | set(created_ids)
            contacts = {contact.id: contact for contact in run.contacts}
            contacts.update((contact.id, contact) for contact in self._existing_contacts(contact_ids=touched))
            states._write_states(self.id, contacts.values(), standing, gone=run.changed_ids - contacts.keys())
        values = {"delta_link": tenant_round.delta_link, "delta_scope": tenant_round.scope}
        if tenant_round.full:
            values["last_full_sync_date"] = fields.Datetime.now()
        if self.sudo().delta_rules != run.rules_digest:
            values["delta_rules"] = run.rules_digest
        self.sudo().write(values)


def _rules_digest(rules):
    """A digest of the rules (the group members sorted): equal digests, equal rules."""
    members = sorted(rules.group_member_ids) if rules.group_member_ids is not None else None
    return hashlib.sha256(
        repr((dataclasses.replace(rules, group_member_ids=None), members)).encode()
    ).hexdigest()


_DONE = object()


@contextlib.contextmanager
def _prefetching(pages, ahead=PREFETCH_PAGES):
    """Iterates `pages` in a worker thread from now on, `ahead` pages in advance, and gives
    the iterator of them: what the worker raises is raised there. Leaving the block stops
    the worker."""
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

    def received():
        while True:
            page, error = buffer.get()
            if error is not None:
                raise error
            if page is _DONE:
                return
            yield page

    worker = threading.Thread(target=fetch, name="azure-ad-prefetch", daemon=True)
    worker.start()
    try:
        yield received()
    finally:
        stop.set()
