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

from cathouse.activity import catalogue as c
from cathouse.activity.readmodel import (
    CatState,
    Effects,
    InstallationState,
    NewEntry,
    Outcome,
    ReviewState,
    State,
)
from cathouse.platform.outbox.relay import Event

ACTIVE = "active"


class Malformed(ValueError):
    """A payload without a field its type promises: skipped and counted, never applied halfway."""


def skip_reason(event: Event) -> str | None:
    """Why an event is not for this consumer (None: apply it)."""
    spec = c.spec(event.event_type)
    if spec is None:
        return "unknown_type"
    if event.schema_version != spec.schema_version:
        return "unknown_version"
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
    """The event's effects; raises :class:`Malformed` when its payload lacks what its type promises."""
    try:
        effects = await _PROJECTIONS[event.event_type](event, state)
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed(f"{event.event_type} {event.id}: {type(exc).__name__}: {exc}") from None
    effects.count_platform("events_applied")
    # An edit of a review's stars moves one count down and one up: leave out what nets to nothing.
    effects.cat_counters = {k: v for k, v in effects.cat_counters.items() if v}
    effects.platform_counters = {k: v for k, v in effects.platform_counters.items() if v}
    return effects


def _uuid(payload: dict[str, Any], key: str) -> uuid.UUID:
    return uuid.UUID(str(payload[key]))


def _maybe_uuid(payload: dict[str, Any], key: str) -> uuid.UUID | None:
    value = payload.get(key)
    return None if value is None else uuid.UUID(str(value))


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
    c.CAT_SUBMITTED: "pending_review",
    c.CAT_PUBLISHED: "published",
    c.CAT_REJECTED: "rejected",
    c.CAT_SUSPENDED: "suspended",
    c.CAT_REINSTATED: "published",
    c.CAT_DELISTED: "delisted",
}
# type: (public, fields everyone sees, fields only the publisher sees)
_CAT_VIEW: dict[str, tuple[bool, tuple[str, ...], tuple[str, ...]]] = {
    c.CAT_SUBMITTED: (False, (), ()),
    c.CAT_PUBLISHED: (True, ("version", "category"), ()),
    c.CAT_REJECTED: (False, (), ("reason",)),
    c.CAT_UPDATED: (False, (), ("fields",)),
    c.CAT_VERSION_PUBLISHED: (True, ("version", "current"), ()),
    c.CAT_SUSPENDED: (False, (), ("reason",)),
    c.CAT_REINSTATED: (False, (), ()),
    c.CAT_DELISTED: (True, (), ("reason",)),
    c.CAT_SYNC_FAILED: (False, (), ("problems",)),
}


async def _cat(event: Event, state: State) -> Effects:
    p = event.payload
    cat_id = _uuid(p, "cat_id")
    known = await state.cat(cat_id)
    publisher = _maybe_uuid(p, "publisher_id") if "publisher_id" in p else (known.publisher_id if known else None)
    before = known.status if known else None
    # Edits and new versions happen only to published cats: a history that starts with one (the
    # outbox pruned) still counts the cat.
    assumed = "unknown" if event.event_type == c.CAT_SYNC_FAILED else "published"
    after = _CAT_STATUS.get(event.event_type, before or assumed)
    effects = Effects(cat_id=cat_id, cat=CatState(cat_id=cat_id, publisher_id=publisher, status=after))
    effects.count_platform("cats_published", int(after == "published") - int(before == "published"))
    public, shown, private = _CAT_VIEW[event.event_type]
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=publisher,
        audience=_people(publisher),
        public=public,
        data={"slug": p["slug"], **_pick(p, *shown)},
        details=_pick(p, *private),
    )
    return effects


# --- reviews -----------------------------------------------------------------------------------


def _rate(effects: Effects, rating: int, sign: int) -> None:
    effects.count("rating_count", sign)
    effects.count("rating_sum", sign * rating)
    effects.count(f"rating_{rating}", sign)
    effects.count_platform("reviews", sign)


def _stars(value: Any) -> int:
    rating = int(value)
    if not 1 <= rating <= 5:
        raise ValueError(f"rating {rating} is not 1 to 5")
    return rating


async def _review(event: Event, state: State) -> Effects:
    p = event.payload
    cat_id, review_id = _uuid(p, "cat_id"), _uuid(p, "review_id")
    cat = await state.cat(cat_id)
    publisher = cat.publisher_id if cat else None
    known = await state.review(review_id)
    author = _maybe_uuid(p, "user_id") or (known.user_id if known else None)
    effects = Effects(cat_id=cat_id)
    kind = event.event_type
    if kind in (c.REVIEW_CREATED, c.REVIEW_UPDATED) and known is None:
        if author is None:
            raise KeyError("user_id")
        rating = _stars(p["rating"])
        _rate(effects, rating, 1)
        effects.review = ReviewState(review_id, cat_id, author, rating, visible=True)
    elif kind == c.REVIEW_UPDATED and known is not None:
        rating = _stars(p["rating"])
        if known.visible:  # edited while hidden: the new rating counts once it is restored
            _rate(effects, known.rating, -1)
            _rate(effects, rating, 1)
        effects.review = replace(known, rating=rating)
    elif kind == c.REVIEW_DELETED and known is not None:
        if known.visible:
            _rate(effects, known.rating, -1)
        effects.review_removed = review_id
    elif kind == c.REVIEW_HIDDEN and known is not None and known.visible:
        _rate(effects, known.rating, -1)
        effects.review = replace(known, visible=False)
    elif kind == c.REVIEW_RESTORED and known is not None and not known.visible:
        _rate(effects, known.rating, 1)
        effects.review = replace(known, visible=True)
    public = kind == c.REVIEW_CREATED
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=author,
        audience=_people(author, publisher),
        public=public,
        data={"slug": p["slug"], "review_id": str(review_id), **_pick(p, "rating", "verified", "previous_rating")},
        details=_pick(p, "reason"),
    )
    return effects


# --- installations -----------------------------------------------------------------------------

# type: (fields everyone who sees it sees, fields only the owner sees)
_INSTALLATION_VIEW: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    c.INSTALLATION_CREATED: (("version",), ("name", "permissions")),
    c.INSTALLATION_STATUS_CHANGED: (("from", "to"), ("reason", "by_admin")),
    c.INSTALLATION_PERMISSIONS_CHANGED: ((), ("granted", "revoked")),
    c.INSTALLATION_UPGRADED: (("version", "from_version"), ()),
    c.INSTALLATION_UPDATED: ((), ("fields",)),
    c.INSTALLATION_SECRETS_REPLACED: ((), ("fields",)),
    c.CREDENTIALS_REJECTED: ((), ("upstream_status",)),
    c.CREDENTIALS_ACCEPTED: ((), ()),
}


async def _installation(event: Event, state: State) -> Effects:
    p = event.payload
    installation_id, cat_id = _uuid(p, "installation_id"), _uuid(p, "cat_id")
    known = await state.installation(installation_id)
    owner = _maybe_uuid(p, "user_id") or (known.user_id if known else None)
    effects = Effects(cat_id=cat_id)
    if event.event_type == c.INSTALLATION_CREATED and known is None:
        if owner is None:
            raise KeyError("user_id")
        effects.installation = InstallationState(installation_id, cat_id, owner, "pending", activated=False)
    elif event.event_type == c.INSTALLATION_STATUS_CHANGED:
        if owner is None:
            raise KeyError("user_id")
        after = str(p["to"])
        before = known.status if known else str(p.get("from"))
        activated = known.activated if known else False
        if after == ACTIVE and not activated:
            # Counted as an install once it is first provisioned, as the catalog counts them.
            activated = True
            effects.count("installs_total")
            effects.count_platform("installations_total")
        moved = int(after == ACTIVE) - int(before == ACTIVE)
        effects.count("installs_active", moved)
        effects.count_platform("installations_active", moved)
        effects.installation = InstallationState(installation_id, cat_id, owner, after, activated)
    shown, private = _INSTALLATION_VIEW[event.event_type]
    effects.entry = _entry(
        event,
        cat_id=cat_id,
        user_id=owner,
        audience=_people(owner),
        public=event.event_type == c.INSTALLATION_CREATED,
        anonymous=True,
        data=_pick(p, *shown),
        details={"installation_id": str(installation_id), **_pick(p, *private)},
    )
    return effects


# --- users -------------------------------------------------------------------------------------


async def _user(event: Event, state: State) -> Effects:
    p = event.payload
    user_id = _uuid(p, "user_id")
    effects = Effects()
    if event.event_type == c.USER_REGISTERED:
        effects.count_platform("users_registered")
    effects.entry = _entry(
        event, cat_id=None, user_id=user_id, audience=_people(user_id), details=_pick(p, "fields", "roles")
    )
    return effects


_Projection = Callable[[Event, State], Awaitable[Effects]]
_PROJECTIONS: dict[str, _Projection] = {
    **{t: _cat for t in _CAT_VIEW},
    **{
        t: _review
        for t in (
            c.REVIEW_CREATED,
            c.REVIEW_UPDATED,
            c.REVIEW_DELETED,
            c.REVIEW_HIDDEN,
            c.REVIEW_RESTORED,
            c.REVIEW_REPLIED,
        )
    },
    **{t: _installation for t in _INSTALLATION_VIEW},
    **{
        t: _user
        for t in (
            c.USER_REGISTERED,
            c.USER_UPDATED,
            c.USER_ROLES_CHANGED,
            c.USER_DISABLED,
            c.USER_ENABLED,
            c.USER_DELETED,
            c.REFRESH_TOKEN_REUSED,
        )
    },
}
