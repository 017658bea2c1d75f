"""Read the audit log: owners their installations' records, admins everyone's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.platform.db import session_dependency
from cathouse.platform.errors import NotFound
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor
from cathouse.platform.security import CurrentUser
from cathouse.proxy.audit import Decision
from cathouse.proxy.audit.signing import PublicKey, b64url
from cathouse.proxy.repository import AuditFilter, AuditRepository
from cathouse.proxy.schemas import AuditEntry, AuditPage, AuditPublicKey

Session = Annotated[AsyncSession, Depends(session_dependency("proxy"), scope="function")]

router = APIRouter(prefix="/api/v1/proxy", tags=["proxy"])


def _not_a_number(value: object) -> object:
    # Pydantic reads a number as seconds since 1970; the published format is a date-time.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("must be a date and time such as 2026-05-01T12:00:00Z, not a number")
    return value


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)\s*")
Moment = Annotated[datetime | None, BeforeValidator(_not_a_number)]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    # A time without an offset is read as UTC, the zone every record is stored in.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        # Within a day of the ends of what a datetime holds: before or after every record.
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _before(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**63:
        raise InvalidCursor()
    return seq


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Audit records of calls to your installations, newest first (admins: every call)",
    responses=problems(InvalidCursor),
)
async def audit(
    user: CurrentUser,
    session: Session,
    installation_id: uuid.UUID | None = None,
    cat_id: uuid.UUID | None = None,
    decision: Decision | None = None,
    since: Annotated[Moment, Query(description="From this time on (UTC when no offset is given).")] = None,
    until: Annotated[
        Moment, Query(description="Before this time (UTC when no offset is given); not after `since`: no records.")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> AuditPage:
    since, until = _utc(since), _utc(until)
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


@router.get(
    "/audit/public-key",
    response_model=AuditPublicKey,
    summary="The public key that verifies the audit log's signed checkpoints (no sign-in needed)",
    responses=problems((NotFound, "This process signs no audit checkpoints.")),
)
async def audit_public_key(request: Request) -> AuditPublicKey:
    key: PublicKey | None = getattr(request.app.state, "audit_public_key", None)
    if key is None:
        raise NotFound("This process signs no audit checkpoints.")
    return AuditPublicKey(key_id=key.key_id, public_key=b64url(key.raw), pem=key.pem)


# The cat's API is the cat's: what is sent and answered is any content, bytes as they are.
_ANY_CONTENT = {"schema": {"type": "string", "format": "binary"}}
_CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The cat's answer, status, headers and body as the cat sent them.",
        "content": {"*/*": _ANY_CONTENT},
    },
    **{
        status: {"description": description}
        for status, description in {
            400: "The path or a header cannot be forwarded.",
            401: "No valid access token or installation API key.",
            403: "The endpoint's permission was not granted (the problem names it).",
            404: "No such installation (or not yours), or the cat's map has no such endpoint.",
            405: "A method no cat's endpoint can have (Allow lists those that can).",
            409: "The installation is not active.",
            413: "The request body is larger than allowed.",
            422: "The installation id is not a UUID.",
            429: "A rate limit is used up (Retry-After and RateLimit-* say when).",
            502: "The cat could not be reached, or its address is not public.",
            503: "The cat is failing (circuit open) or rate limiting is unavailable.",
            504: "The cat did not answer in time.",
        }.items()
    },
}


async def call_a_cat(installation_id: uuid.UUID, path: str) -> Response:
    # Reached only by an id the gateway does not read as one (not in the canonical 36-character
    # form); any other id is answered by the gateway before routing.
    raise NotFound("No such installation.")


_CALL_DESCRIPTION = (
    "Served by the proxy's gateway ahead of the routes: authenticate with the owner's access "
    "token or the installation's API key (`Authorization: Bearer chk_...`); the method and path must "
    "be in the installed version's endpoint map and its permission granted. Every call, allowed "
    "or refused, leaves one audit record. Refusals are problem+json with a `decision` field."
)
# Either the owner's access token or one of the installation's API keys, both as a bearer token.
CALL_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"InstallationApiKey": []}]
SECURITY_SCHEMES = {
    "InstallationApiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "chk_...",
        "description": "An installation's API key from `POST /api/v1/installations/{installation_id}/api-keys`, "
        "sent as `Authorization: Bearer chk_...`; it calls that installation's cat only.",
    }
}
# A JSON object, what most cats take, named as such (a generated client then sends it as JSON), or
# any bytes at all.
_CALL_BODY = {
    "required": False,
    "description": "Forwarded to the cat as it is, with its Content-Type.",
    "content": {
        "application/json": {"schema": {"type": "object"}, "example": {"user": "u_42", "amount": 50}},
        "*/*": {**_ANY_CONTENT, "example": "user=u_42&amount=50"},
    },
}
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    _extra: dict[str, Any] = {"security": CALL_SECURITY}
    if _method in ("POST", "PUT", "PATCH"):
        _extra["requestBody"] = _CALL_BODY
    router.add_api_route(
        "/{installation_id}/{path:path}",
        call_a_cat,
        methods=[_method],
        operation_id=f"proxy_call_{_method.lower()}",
        responses=_CALL_RESPONSES,
        summary=f"Call the cat behind an installation ({_method}), through every check",
        description=_CALL_DESCRIPTION,
        response_class=Response,
        openapi_extra=_extra,
    )
