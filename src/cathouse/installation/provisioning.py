"""Provisioning webhooks: outbox events become signed deliveries to the cat, retried until they land.

The relay hands installation events to ``on_event``, which records a delivery in the same
transaction as the state it implies (an install becomes ``provisioning``), once per event id.
``run`` sends what is due: it leases a delivery by pushing its next attempt into the future,
sends outside any transaction, then records the attempt. A process that dies mid-send loses
nothing: the lease runs out and the delivery is sent again with the same ``webhook-id``,
which receivers use to drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from loguru import logger
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from cathouse import webhooks
from cathouse.contracts.events import DomainEvent, UnknownEvent, parse
from cathouse.contracts.events import installation as events
from cathouse.contracts.reads import CatReader
from cathouse.contracts.secrets import TokenUnavailable
from cathouse.contracts.webhooks import (
    INSTALL,
    PERMISSIONS,
    RESUME,
    SUSPEND,
    UNINSTALL,
    Webhook,
    WebhookData,
    WebhookType,
)
from cathouse.installation import lifecycle
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import (
    DeliveryStatus,
    Installation,
    InstallationStatus,
    Recipient,
    WebhookAttempt,
    WebhookDelivery,
)
from cathouse.installation.oauth.provider import OAuthSpec, provider_options
from cathouse.installation.oauth.tokens import TokenKeeper
from cathouse.installation.owner_webhooks import OwnerWebhooks
from cathouse.installation.repository import InstallationRepository
from cathouse.installation.service import InstallationService
from cathouse.platform.netguard import check_public_url
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings

LEASE = timedelta(seconds=60)
EXCERPT = 300
# The events that may call for a webhook (the worker subscribes to these).
EVENTS = (events.InstallationCreated, events.InstallationStatusChanged, events.InstallationPermissionsChanged)


def webhook_for(event: DomainEvent) -> WebhookType | None:
    """Which webhook an installation event calls for, if any."""
    if isinstance(event, events.InstallationCreated):
        return INSTALL
    if isinstance(event, events.InstallationPermissionsChanged):
        return PERMISSIONS
    if not isinstance(event, events.InstallationStatusChanged):
        return None
    before, after = InstallationStatus(event.from_), InstallationStatus(event.to)
    if after == InstallationStatus.PROVISIONING and before == InstallationStatus.FAILED:
        return INSTALL
    if before == InstallationStatus.AUTHORIZING and after == InstallationStatus.PENDING:
        return INSTALL  # its owner granted access at the provider: now the cat hears of it
    if after == InstallationStatus.UNINSTALLING:
        return UNINSTALL
    if after == InstallationStatus.SUSPENDED:
        return SUSPEND
    if before == InstallationStatus.SUSPENDED and after in lifecycle.RUNNING:
        return RESUME
    return None


def parse_or_skip(event: Event) -> DomainEvent | None:
    """The event's model, or None for a type or version this code does not know: skipped (and
    logged), never retried, as ``cathouse.contracts.events`` says."""
    try:
        return parse(event.event_type, event.schema_version, event.payload)
    except UnknownEvent as exc:
        logger.warning("event skipped", event_id=event.id, event_type=event.event_type, reason=exc.reason)
        return None


class Provisioner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        keyring: Keyring,
        http: httpx.AsyncClient,
        cats: CatReader,
    ) -> None:
        self.sessions = sessions
        self.tokens = TokenKeeper(sessions, keyring, cats, settings.master_key_value(), provider_options(settings))
        self.cats = cats
        self.settings = settings
        self.config = settings.installation
        self.keyring = keyring
        self.http = http
        self._master_key = settings.master_key_value()
        self._wake = asyncio.Event()

    async def on_event(self, event: Event) -> None:
        parsed = parse_or_skip(event)
        if not isinstance(parsed, events.InstallationEvent):
            return
        kind = webhook_for(parsed)
        if kind is None:
            return
        # A client-credentials cat: the platform's first token, before the cat hears of the install.
        refused = await self._first_token(parsed.installation_id) if kind == INSTALL else None
        async with self.sessions() as session, session.begin():
            service = InstallationService(session, self.keyring, self.cats)
            installation = await service.installations.get(parsed.installation_id, for_update=True)
            if installation is None or installation.status == InstallationStatus.AUTHORIZING:
                return  # an OAuth grant comes first; its arrival calls for the webhook
            if refused is not None and installation.status in (
                InstallationStatus.PENDING,
                InstallationStatus.PROVISIONING,
            ):
                await service.move(installation, InstallationStatus.FAILED, reason=refused)
                return
            version = await service.version_of(installation)
            if version.webhook_url is None:
                await _without_webhook(service, installation, kind)
                return
            webhook = Webhook(type=kind, timestamp=event.occurred_at, data=_data(installation, parsed))
            payload = webhook.model_dump(mode="json")
            inserted = await session.execute(
                insert(WebhookDelivery)
                .values(
                    id=uuid.uuid4(),
                    installation_id=installation.id,
                    cat_id=installation.cat_id,
                    source_event_id=uuid.UUID(event.id),
                    event_type=kind,
                    url=version.webhook_url,
                    payload=payload,
                )
                .on_conflict_do_nothing(index_elements=["source_event_id"])
                .returning(WebhookDelivery.id)
            )
            if inserted.scalar() is None:
                return  # this event was handled before: a redelivery from the relay
            if kind == INSTALL and installation.status == InstallationStatus.PENDING:
                await service.move(installation, InstallationStatus.PROVISIONING)
        self._wake.set()

    async def _first_token(self, installation_id: uuid.UUID) -> str | None:
        """Why the provider would not issue a client-credentials token, or None (issued, or not
        such a cat). The token is kept: the proxy's first call uses it."""
        async with self.sessions() as session:
            installation = await InstallationRepository(session).get(installation_id)
            version = await self.cats.version_by_id(session, installation.version_id) if installation else None
        spec = OAuthSpec.of(version.credentials) if version else None
        if spec is None or spec.grant != "client_credentials":
            return None
        try:
            await self.tokens.access_token(installation_id)
        except TokenUnavailable as exc:
            return f"the cat's provider issued no token: {exc}"
        return None

    def wake(self) -> None:
        """Send what is due now, not at the next poll: a delivery was just recorded."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            sent = await self.send_due()
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.webhook_poll_interval)

    async def send_due(self, limit: int = 10) -> int:
        """Send what is due: at most one delivery per installation, its oldest pending one.

        A cat hears about one installation in the order things happened to it: a delivery
        waits while an earlier one of the same installation is in flight or being retried
        (until that one succeeds or is given up), as each aggregate's events leave in order.
        The owner's notifications keep an order of their own: neither recipient waits on the other.
        """
        earlier = aliased(WebhookDelivery)
        waiting_behind = (
            select(earlier.id)
            .where(
                earlier.installation_id == WebhookDelivery.installation_id,
                earlier.recipient == WebhookDelivery.recipient,
                earlier.status == DeliveryStatus.PENDING,
                earlier.seq < WebhookDelivery.seq,
            )
            .exists()
        )
        async with self.sessions() as session, session.begin():
            due = (
                await session.scalars(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        WebhookDelivery.next_attempt_at <= datetime.now(UTC),
                        ~waiting_behind,
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for delivery in due:
                delivery.next_attempt_at = datetime.now(UTC) + LEASE
            leased = [(d.id, d.cat_id, d.url, d.payload, d.attempts, d.recipient, d.installation_id) for d in due]
        await asyncio.gather(*(self._send(*lease) for lease in leased))
        return len(leased)

    async def _send(
        self,
        delivery_id: uuid.UUID,
        cat_id: uuid.UUID,
        url: str,
        payload: dict[str, Any],
        attempts: int,
        recipient: Recipient,
        installation_id: uuid.UUID,
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        async with self.sessions() as session:
            if recipient == Recipient.OWNER:
                secrets = await OwnerWebhooks(session, self._master_key).secrets_of_owner(installation_id)
            else:
                secrets = await self.cats.webhook_signing_secrets(session, cat_id, self._master_key)
        if not secrets:
            # The owner removed their webhook since: nothing goes out unsigned. A failed attempt
            # like any other, retried in case the owner registers one again.
            await self._record(delivery_id, attempts + 1, None, 0, "the owner has no webhook any more", None)
            return
        headers = {
            **webhooks.headers(secrets, f"msg_{delivery_id.hex}", int(time.time()), body),
            "content-type": "application/json",
            "user-agent": "CatHouse-Webhooks/1",
        }
        started = time.perf_counter()
        status: int | None = None
        error = excerpt = None
        try:
            response = await post(
                self.http,
                url,
                content=body,
                headers=headers,
                within=self.config.webhook_timeout,
                allow_private=self.config.webhook_allow_private,
            )
            status, excerpt = response.status_code, response.text[:EXCERPT]
        except (httpx.HTTPError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        latency = int((time.perf_counter() - started) * 1000)
        await self._record(delivery_id, attempts + 1, status, latency, error, excerpt)

    async def _record(
        self,
        delivery_id: uuid.UUID,
        attempt: int,
        status: int | None,
        latency: int,
        error: str | None,
        excerpt: str | None,
    ) -> None:
        succeeded = status is not None and 200 <= status < 300
        exhausted = not succeeded and attempt >= self.config.webhook_max_attempts
        async with self.sessions() as session, session.begin():
            delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id, status=status, latency_ms=latency, error=error, response_excerpt=excerpt
                )
            )
            delivery.attempts, delivery.last_status, delivery.last_latency_ms = attempt, status, latency
            delivery.last_error, delivery.response_excerpt = error, excerpt
            if succeeded:
                delivery.status, delivery.delivered_at = DeliveryStatus.SUCCEEDED, datetime.now(UTC)
            elif exhausted:
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=self._backoff(attempt))
            if succeeded or exhausted:
                await self._settle(session, delivery, succeeded)
        logger.info(
            "webhook attempt",
            delivery_id=str(delivery_id),
            attempt=attempt,
            status=status,
            latency_ms=latency,
            outcome="succeeded" if succeeded else "failed" if exhausted else "retrying",
        )

    def _backoff(self, attempt: int) -> float:
        base = self.config.webhook_backoff * 2 ** (attempt - 1)
        # Full jitter: retries from many installations do not arrive at the cat together.
        return min(self.config.webhook_max_backoff, random.uniform(base / 2, base))  # noqa: S311

    async def _settle(self, session: AsyncSession, delivery: WebhookDelivery, succeeded: bool) -> None:
        """What a final answer means for the installation the webhook was about."""
        if delivery.recipient == Recipient.OWNER:
            return  # the owner's answer moves nothing: it is told, not asked
        service = InstallationService(session, self.keyring, self.cats)
        installation = await service.installations.get(delivery.installation_id, for_update=True)
        if installation is None:
            return
        if delivery.event_type == INSTALL and installation.status == InstallationStatus.PROVISIONING:
            if succeeded:
                await service.move(installation, InstallationStatus.ACTIVE)
            else:
                failure = f"the cat did not accept the install after {delivery.attempts} attempts ({_why(delivery)})"
                await service.move(installation, InstallationStatus.FAILED, reason=failure)
        elif delivery.event_type == UNINSTALL and installation.status == InstallationStatus.UNINSTALLING:
            unanswered = None if succeeded else f"the cat did not acknowledge the uninstall ({_why(delivery)})"
            await service.move(installation, InstallationStatus.UNINSTALLED, reason=unanswered)


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    within: float,
    allow_private: bool,
) -> httpx.Response:
    """POST to ``url`` at an address the SSRF check saw, never at a second lookup of its name.

    Letting httpx resolve the name again would reopen the check: the second answer may be an
    internal address (DNS rebinding). So the request goes to a checked IP, with the name in
    ``Host`` and, over TLS, as the SNI name the certificate is verified against. The checked
    addresses are tried in order while one refuses the connection (nothing was sent to it yet).
    """
    async with asyncio.timeout(within):
        target = await check_public_url(url, allow_private=allow_private)
    named = httpx.URL(url)
    headers = {**headers, "host": named.netloc.decode("ascii")}
    extensions: dict[str, Any] = {}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
        # The pool keys connections by address alone: one verified for another name on the same
        # address must not carry this request.
        headers["connection"] = "close"
    request = http.build_request("POST", named, content=content, headers=headers, timeout=within, extensions=extensions)
    *others, last = target.addresses
    for address in others:
        request.url = named.copy_with(host=str(address))
        with contextlib.suppress(httpx.ConnectError):
            return await http.send(request)
    request.url = named.copy_with(host=str(last))
    return await http.send(request)


async def _without_webhook(service: InstallationService, installation: Installation, kind: str) -> None:
    """A cat with no webhook URL needs no answer: the install and uninstall complete at once."""
    if kind == INSTALL and installation.status in (InstallationStatus.PENDING, InstallationStatus.PROVISIONING):
        await service.move(installation, InstallationStatus.ACTIVE)
    elif kind == UNINSTALL and installation.status == InstallationStatus.UNINSTALLING:
        await service.move(installation, InstallationStatus.UNINSTALLED)


def _data(installation: Installation, event: events.InstallationEvent) -> WebhookData:
    # What the cat may know: never a secret (it receives those only inside proxied calls).
    extra: dict[str, Any] = {}
    if isinstance(event, events.InstallationCreated):
        extra = {"name": event.name, "permissions": event.permissions}
    elif isinstance(event, events.InstallationPermissionsChanged):
        extra = {"granted": event.granted, "revoked": event.revoked}
    return WebhookData(
        installation_id=installation.id,
        user_id=event.user_id,
        version=event.version,
        settings=installation.settings,
        **extra,
    )


def _why(delivery: WebhookDelivery) -> str:
    return f"last answer {delivery.last_status}" if delivery.last_status else (delivery.last_error or "no answer")
