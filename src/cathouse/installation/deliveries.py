"""Provisioning webhook deliveries: their record, for the owner and the cat's publisher; redelivery.

Only the cat's: a notification to the owner's own webhook names the owner's URL, which is no
business of the cat's publisher.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from cathouse.contracts.reads import CatReader
from cathouse.installation.dependencies import Cats, Installations, Session
from cathouse.installation.models import DeliveryStatus, Installation, Recipient, WebhookAttempt, WebhookDelivery
from cathouse.platform.errors import NotFound
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT
from cathouse.platform.security import CurrentUser, Principal

router = APIRouter(prefix="/api/v1/installations", tags=["webhook deliveries"])
_NO_INSTALLATION = (NotFound, "There is no such installation, or none you may see.")
_ONE = problems(_NO_INSTALLATION, (NotFound, "There is no such delivery."))
_TO_CAT = WebhookDelivery.recipient == Recipient.CAT


class AttemptOut(BaseModel):
    attempted_at: datetime
    status: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


Delivery = Literal[DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED]


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: str
    installation_id: uuid.UUID
    event_type: str
    url: str
    status: Delivery
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_latency_ms: int | None
    last_error: str | None
    response_excerpt: str | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[AttemptOut] | None = None


def _out(row: WebhookDelivery, history: list[WebhookAttempt] | None = None) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        webhook_id=f"msg_{row.id.hex}",
        installation_id=row.installation_id,
        event_type=row.event_type,
        url=row.url,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        last_status=row.last_status,
        last_latency_ms=row.last_latency_ms,
        last_error=row.last_error,
        response_excerpt=row.response_excerpt,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        history=[
            AttemptOut(
                attempted_at=a.attempted_at,
                status=a.status,
                latency_ms=a.latency_ms,
                error=a.error,
                response_excerpt=a.response_excerpt,
            )
            for a in history
        ]
        if history is not None
        else None,
    )


async def _publisher_of(session: Session, cats: CatReader, user: Principal, cat_id: uuid.UUID) -> bool:
    """Whether the caller publishes the cat: its developer, or an admin for the platform's own."""
    found = await cats.cats_by_id(session, [cat_id])
    if cat_id not in found:
        return False
    publisher = found[cat_id].publisher_id
    return publisher == user.user_id if publisher is not None else user.is_admin


async def _readable(
    session: Session, user: Principal, installations: Installations, installation_id: uuid.UUID, *, admin: bool = True
) -> Installation:
    """The owner, the publisher of the installed cat, or (``admin``: to read) an admin."""
    installation = await installations.installations.get(installation_id)
    if installation is None or not (
        installation.user_id == user.user_id
        or (admin and user.is_admin)
        or await _publisher_of(session, installations.cats, user, installation.cat_id)
    ):
        raise NotFound("There is no such installation.")
    return installation


async def _delivery(session: Session, installation: Installation, delivery_id: uuid.UUID) -> WebhookDelivery:
    row = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.installation_id == installation.id, _TO_CAT
        )
    )
    if row is None:
        raise NotFound("There is no such delivery.")
    return row


@router.get(
    "/deliveries",
    response_model=list[DeliveryOut],
    summary="Deliveries to one of your cats (its publisher)",
    name="list_of_cat",
    responses=problems((NotFound, "There is no such cat of yours.")),
)
async def deliveries_of_cat(
    user: CurrentUser,
    session: Session,
    cats: Cats,
    cat: Annotated[str, Query(max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", description="The cat's slug.")],
    status: Delivery | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> list[DeliveryOut]:
    found = await cats.cat_by_slug(session, cat)
    if found is None or not (user.is_admin or await _publisher_of(session, cats, user, found.id)):
        raise NotFound("There is no such cat.")
    statement = select(WebhookDelivery).where(WebhookDelivery.cat_id == found.id, _TO_CAT)
    if status:
        statement = statement.where(WebhookDelivery.status == status)
    rows = await session.scalars(statement.order_by(WebhookDelivery.created_at.desc()).limit(limit))
    return [_out(row) for row in rows]


@router.get(
    "/{installation_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="An installation's webhooks",
    name="list",
    responses=problems(_NO_INSTALLATION),
)
async def deliveries(
    installation_id: uuid.UUID,
    user: CurrentUser,
    session: Session,
    installations: Installations,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> list[DeliveryOut]:
    installation = await _readable(session, user, installations, installation_id)
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.installation_id == installation.id, _TO_CAT)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(limit)
    )
    return [_out(row) for row in rows]


@router.get(
    "/{installation_id}/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    summary="One delivery",
    name="read",
    responses=_ONE,
)
async def delivery(
    installation_id: uuid.UUID,
    delivery_id: uuid.UUID,
    user: CurrentUser,
    session: Session,
    installations: Installations,
) -> DeliveryOut:
    installation = await _readable(session, user, installations, installation_id)
    row = await _delivery(session, installation, delivery_id)
    history = await session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == row.id).order_by(WebhookAttempt.id)
    )
    return _out(row, list(history))


@router.post(
    "/{installation_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery again, as a new delivery",
    responses=_ONE,
)
async def redeliver(
    installation_id: uuid.UUID,
    delivery_id: uuid.UUID,
    user: CurrentUser,
    session: Session,
    installations: Installations,
) -> DeliveryOut:
    # Sending again is the owner's or the cat's publisher's to do; an admin only reads.
    installation = await _readable(session, user, installations, installation_id, admin=False)
    row = await _delivery(session, installation, delivery_id)
    copy = WebhookDelivery(
        id=uuid.uuid4(),
        installation_id=row.installation_id,
        cat_id=row.cat_id,
        source_event_id=uuid.uuid4(),
        event_type=row.event_type,
        url=row.url,
        payload=row.payload,
    )
    session.add(copy)
    await session.flush()
    await session.refresh(copy)
    return _out(copy)
