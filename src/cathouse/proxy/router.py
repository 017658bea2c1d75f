"""Read the audit log: owners their installations' records, admins everyone's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.platform.db import session_dependency
from cathouse.platform.errors import BadRequest, Unprocessable
from cathouse.platform.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from cathouse.platform.security import CurrentUser
from cathouse.proxy.audit import Decision
from cathouse.proxy.repository import AuditFilter, AuditRepository
from cathouse.proxy.schemas import AuditEntry, AuditPage

Session = Annotated[AsyncSession, Depends(session_dependency("proxy"), scope="function")]

router = APIRouter(prefix="/api/v1/proxy", tags=["proxy"])


def _utc(moment: datetime | None, loc: str) -> datetime | None:
    if moment is None:
        return None
    # A time without an offset is read as UTC, the zone every record is stored in.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise Unprocessable(loc, "is out of range") from None


def _before(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**63:
        raise BadRequest("The cursor is not valid; use one returned by a previous page.")
    return seq


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Audit records of calls to your installations, newest first (admins: every call)",
)
async def audit(
    user: CurrentUser,
    session: Session,
    installation_id: uuid.UUID | None = None,
    cat_id: uuid.UUID | None = None,
    decision: Decision | None = None,
    since: Annotated[datetime | None, Query(description="From this time on (UTC when no offset is given).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (UTC when no offset is given).")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> AuditPage:
    since, until = _utc(since, "query.since"), _utc(until, "query.until")
    if since is not None and until is not None and until <= since:
        raise Unprocessable("query.until", "must be later than since")
    where = AuditFilter(
        owner_id=None if user.is_admin else user.user_id,
        installation_id=installation_id,
        cat_id=cat_id,
        decision=decision,
        since=since,
        until=until,
    )
    before = _before(cursor) if cursor else None
    rows = list(await AuditRepository(session).newest_first(where, before_seq=before, limit=limit + 1))
    next_cursor = encode_cursor([rows[limit - 1].seq]) if len(rows) > limit else None
    items = [AuditEntry.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return AuditPage(items=items, next_cursor=next_cursor)
