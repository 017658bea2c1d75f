"""From one event to its effects on the read model: the entry it makes and who may see it, the
counters it moves and the state it leaves for the aggregate's next event.

The same code serves the live consumer and the rebuild, whichever store is behind. It reads only
state of the event's own aggregate (a review event reads its cat's publisher: the same "cat"
aggregate), which arrives in order, so replaying the history gives what the live consumer built.

Who sees what: the global and a cat's feed show *public* entries — a cat published, a new version,
a cat delisted, a review, and "someone installed it" without saying who. A user's own feed shows
what happened to them: their installations, their reviews, their account, and their cats (with the
reviews of those). Moderation reasons and installation details are for those users only.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from cathouse.activity.readmodel import (
    CatState,
    Effects,
    InstallationState,
    NewEntry,
    Outcome,
    ReviewState,
    State,
)
from cathouse.contracts.events import DomainEvent, UnknownEvent, model_of, parse
from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.contracts.events import installation as installs
from cathouse.contracts.events import proxy as verdicts
from cathouse.platform.outbox.relay import Event

ACTIVE = "active"


class Malformed(ValueError):
    """A payload its model refuses: skipped and counted, never applied halfway."""


def skip_reason(event: Event) -> str | None:
    """Why an event is not for this consumer (None: apply it): a type, or a version of one, that
    ``cathouse.contracts.events`` has no model for is skipped, as it documents."""
    try:
        model_of(event.event_type, event.schema_version)
    except UnknownEvent as exc:
        return exc.reason
    return None


def triage(events: Sequence[Event]) -> tuple[dict[int, Outcome], dict[str, int]]:
    """A batch sorted before any store is asked: the outcomes known already (not for this
    consumer, or an id repeated within the batch), and each other event id with its place."""
    outcomes: dict[int, Outcome] = {}
    candidates: dict[str, int] = {}  # event id: its first place in the batch
    for i, event in enumerate(events):
        reason = skip_reason(event)
        if reason is not None:
            outcomes[i] = Outcome(event, "skipped", reason=reason)
        elif event.id in candidates:
            outcomes[i] = Outcome(event, "duplicate")
        else:
            candidates[event.id] = i
    return outcomes, candidates


def payload_ids(events: Iterable[Event], key: str) -> set[uuid.UUID]:
    """The UUIDs the events' payloads name under ``key``, for reading their state in one query."""
    found = set()
    for event in events:
        try:
            found.add(uuid.UUID(str(event.payload[key])))
        except (KeyError, TypeError, ValueError):
            continue  # the projection reports what is missing
    return found


async def project(event: Event, state: State) -> Effects:
    """The event's effects; raises :class:`Malformed` when its model refuses its payload."""
    try:
        parsed = parse(event.event_type, event.schema_version, event.payload)
    except (UnknownEvent, ValidationError) as exc:
        raise Malformed(f"{event.event_type} {event.id}: {type(exc).__name__}: {exc}") from None
    effects = await _PROJECTIONS[type(parsed)](event, parsed, state)
    effects.count_platform("events_applied")
    # An edit of a review's stars moves one count down and one up: leave out what nets to nothing.
    effects.cat_counters = {k: v for k, v in effects.cat_counters.items() if v}
    effects.platform_counters = {k: v for k, v in effects.platform_counters.items() if v}
    return effects


def _pick(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: payload[k] for k in keys if k in payload}


def _people(*ids: uuid.UUID | None) -> frozenset[uuid.UUID]:
    return frozenset(i for i in ids if i is not None)


def _entry(
    event: Event,
    *,
    cat_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    audience: Iterable[uuid.UUID],
    public: bool = False,
    anonymous: bool = False,
    data: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> NewEntry:
    return NewEntry(
        event_id=event.id,
        seq=event.seq,
        type=event.event_type,
        occurred_at=event.occurred_at,
        cat_id=cat_id,
        user_id=user_id,
        audience=frozenset(audience),
        public=public,
        anonymous=anonymous,
        data=data or {},
        details=details or {},
    )


# --- cats --------------------------------------------------------------------------------------

# The status a cat event leaves the cat in; events not listed keep it.
_CAT_STATUS = {
    cats.CatSubmitted.type: "pending_review",
    cats.CatPublished.type: "published",
    cats.CatRejected.type: "rejected",
    cats.CatSuspended.type: "suspended",
    cats.CatReinstated.type: "published",
    cats.CatDelisted.type: "delisted",
}
# type: (public, fields everyone sees, fields only the publisher sees)
_CAT_VIEW: dict[str, tuple[bool, tuple[str, ...], tuple[str, ...]]] = {
    cats.CatSubmitted.type: (False, (), ()),
    cats.CatPublished.type: (True, ("version", "category"), ()),
    cats.CatRejected.type: (False, (), ("reason",)),
    cats.CatUpdated.type: (False, (), ("fields",)),
    cats.CatVersionPublished.type: (True, ("version", "current"), ()),
    cats.CatSuspended.type: (False, (), ("reason",)),
    cats.CatReinstated.type: (False, (), ()),
    cats.CatDelisted.type: (True, (), ("reason",)),
    cats.CatSyncFailed.type: (False, (), ("problems",)),
}


async def _cat(event: Event, parsed: DomainEvent, state: State) -> Effects:
    assert isinstance(parsed, cats.CatEvent)
    p = parsed.payload()
    cat_id = parsed.cat_id
    known = await state.cat(cat_id)
    if isinstance(parsed, cats.CatSubmitted | cats.CatPublished):
        publisher = parsed.publisher_id
    else:
        publisher = known.publisher_id if known else None
    before = known.status if known else None
    # Edits and new versions happen only to published cats: a history that starts with one (the
    # outbox pruned) still counts the cat.
    assumed = "unknown" if isinstance(parsed, cats.CatSyncFailed) else "published"
    after = _CAT_STATUS.get(parsed.type, before or assumed)
    effects = Effects(cat_id=cat_id, cat=CatState(cat_id=cat_id, publisher_id=publisher, status=after))
    effects.count_platform("cats_published", int(after == "published") - int(before == "published"))
    public, shown, private = _CAT_VIEW[parsed.type]
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=publisher,
        audience=_people(publisher),
        public=public,
        data={"slug": parsed.slug, **_pick(p, *shown)},
        details=_pick(p, *private),
    )
    return effects


# --- reviews -----------------------------------------------------------------------------------


def _rate(effects: Effects, rating: int, sign: int) -> None:
    effects.count("rating_count", sign)
    effects.count("rating_sum", sign * rating)
    effects.count(f"rating_{rating}", sign)
    effects.count_platform("reviews", sign)


async def _review(event: Event, parsed: DomainEvent, state: State) -> Effects:
    assert isinstance(parsed, cats.ReviewEvent)
    p = parsed.payload()
    cat_id, review_id = parsed.cat_id, parsed.review_id
    cat = await state.cat(cat_id)
    publisher = cat.publisher_id if cat else None
    known = await state.review(review_id)
    if isinstance(parsed, cats.ReviewCreated | cats.ReviewUpdated | cats.ReviewDeleted):
        author: uuid.UUID | None = parsed.user_id
    else:
        author = known.user_id if known else None
    effects = Effects(cat_id=cat_id)
    if isinstance(parsed, cats.ReviewCreated | cats.ReviewUpdated) and known is None:
        _rate(effects, parsed.rating, 1)
        effects.review = ReviewState(review_id, cat_id, parsed.user_id, parsed.rating, visible=True)
    elif isinstance(parsed, cats.ReviewUpdated) and known is not None:
        if known.visible:  # edited while hidden: the new rating counts once it is restored
            _rate(effects, known.rating, -1)
            _rate(effects, parsed.rating, 1)
        effects.review = replace(known, rating=parsed.rating)
    elif isinstance(parsed, cats.ReviewDeleted) and known is not None:
        if known.visible:
            _rate(effects, known.rating, -1)
        effects.review_removed = review_id
    elif isinstance(parsed, cats.ReviewHidden) and known is not None and known.visible:
        _rate(effects, known.rating, -1)
        effects.review = replace(known, visible=False)
    elif isinstance(parsed, cats.ReviewRestored) and known is not None and not known.visible:
        _rate(effects, known.rating, 1)
        effects.review = replace(known, visible=True)
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=author,
        audience=_people(author, publisher),
        public=isinstance(parsed, cats.ReviewCreated),
        data={"slug": parsed.slug, "review_id": str(review_id), **_pick(p, "rating", "verified", "previous_rating")},
        details=_pick(p, "reason"),
    )
    return effects


# --- installations -----------------------------------------------------------------------------

# type: (fields everyone who sees it sees, fields only the owner sees)
_INSTALLATION_VIEW: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    installs.InstallationCreated.type: (("version",), ("name", "permissions")),
    installs.InstallationStatusChanged.type: (("from", "to"), ("reason", "by_admin")),
    installs.InstallationPermissionsChanged.type: ((), ("granted", "revoked")),
    installs.InstallationUpgraded.type: (("version", "from_version"), ()),
    installs.InstallationUpdated.type: ((), ("fields",)),
    installs.InstallationSecretsReplaced.type: ((), ("fields",)),
    verdicts.CredentialsRejected.type: ((), ("upstream_status",)),
    verdicts.CredentialsAccepted.type: ((), ()),
}


async def _installation(event: Event, parsed: DomainEvent, state: State) -> Effects:
    # The proxy's verdicts name the installation and its cat, not its owner: that comes from state.
    assert isinstance(parsed, installs.InstallationEvent | verdicts.CredentialsVerdict)
    p = parsed.payload()
    installation_id, cat_id = parsed.installation_id, parsed.cat_id
    known = await state.installation(installation_id)
    owner = parsed.user_id if isinstance(parsed, installs.InstallationEvent) else (known.user_id if known else None)
    effects = Effects(cat_id=cat_id)
    if isinstance(parsed, installs.InstallationCreated) and known is None:
        effects.installation = InstallationState(installation_id, cat_id, parsed.user_id, "pending", activated=False)
    elif isinstance(parsed, installs.InstallationStatusChanged):
        after = parsed.to
        before = known.status if known else parsed.from_
        activated = known.activated if known else False
        if after == ACTIVE and not activated:
            # Counted as an install once it is first provisioned, as the catalog counts them.
            activated = True
            effects.count("installs_total")
            effects.count_platform("installations_total")
        moved = int(after == ACTIVE) - int(before == ACTIVE)
        effects.count("installs_active", moved)
        effects.count_platform("installations_active", moved)
        effects.installation = InstallationState(installation_id, cat_id, parsed.user_id, after, activated)
    shown, private = _INSTALLATION_VIEW[parsed.type]
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=owner,
        audience=_people(owner),
        public=isinstance(parsed, installs.InstallationCreated),
        anonymous=True,
        data=_pick(p, *shown),
        details={"installation_id": str(installation_id), **_pick(p, *private)},
    )
    return effects


# --- users -------------------------------------------------------------------------------------


async def _user(event: Event, parsed: DomainEvent, state: State) -> Effects:
    assert isinstance(parsed, users.UserEvent)
    p = parsed.payload()
    user_id = parsed.user_id
    effects = Effects()
    if isinstance(parsed, users.UserRegistered):
        effects.count_platform("users_registered")
    effects.entry = _entry(
        event, cat_id=None, user_id=user_id, audience=_people(user_id), details=_pick(p, "fields", "roles")
    )
    return effects


_Projection = Callable[[Event, DomainEvent, State], Awaitable[Effects]]
_PROJECTIONS: dict[type[DomainEvent], _Projection] = {
    **{e: _cat for e in cats.EVENTS if not issubclass(e, cats.ReviewEvent)},
    **{e: _review for e in cats.EVENTS if issubclass(e, cats.ReviewEvent)},
    **{e: _installation for e in (*installs.EVENTS, *verdicts.EVENTS)},
    **{e: _user for e in users.EVENTS},
}
