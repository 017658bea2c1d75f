"""Tell an installation's owner, at their own webhook, when its credentials break.

A sibling of the provisioner's handler on the same events: when an installation moves to
``credentials_invalid`` and its owner registered a webhook, a delivery to the owner is recorded
in the same table, so the provisioner's leases, retries, backoff and attempts carry it too,
signed with the owner's secret. Once per event, whatever the relay redelivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.contracts.events import installation as events
from cathouse.contracts.webhooks import CREDENTIALS_INVALID, Webhook, WebhookData
from cathouse.installation.models import Installation, InstallationStatus, Recipient, WebhookDelivery
from cathouse.installation.owner_webhooks import OwnerWebhooks
from cathouse.installation.provisioning import parse_or_skip
from cathouse.platform.outbox.relay import Event

EVENTS = (events.InstallationStatusChanged,)
# The owner's delivery of an event gets an id of its own, derived from the event's: still one per
# event, and never in the way of a webhook the cat may be sent for the same event.
_NAMESPACE = uuid.UUID("5b0f3c9e-8e77-4c4e-9a43-0d6f2f1c7a21")


def source_id(event_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"owner:{event_id}")


class OwnerNotices:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], master_key: str, wake: Callable[[], None]) -> None:
        """``wake``: the provisioner's, to send a delivery just recorded now rather than at its next poll."""
        self.sessions = sessions
        self.master_key = master_key
        self.wake = wake

    async def on_event(self, event: Event) -> None:
        parsed = parse_or_skip(event)
        if (
            not isinstance(parsed, events.InstallationStatusChanged)
            or InstallationStatus(parsed.to) != InstallationStatus.CREDENTIALS_INVALID
        ):
            return
        async with self.sessions() as session, session.begin():
            hook = await OwnerWebhooks(session, self.master_key).get(parsed.user_id)
            installation = await session.get(Installation, parsed.installation_id)
            if hook is None or installation is None:
                return  # no webhook: the activity feed alone tells the owner
            data = WebhookData(
                installation_id=installation.id,
                user_id=parsed.user_id,
                version=parsed.version,
                settings=installation.settings,
                reason=parsed.reason,
            )
            webhook = Webhook(type=CREDENTIALS_INVALID, timestamp=event.occurred_at, data=data)
            inserted = await session.execute(
                insert(WebhookDelivery)
                .values(
                    id=uuid.uuid4(),
                    installation_id=installation.id,
                    cat_id=installation.cat_id,
                    source_event_id=source_id(event.id),
                    event_type=CREDENTIALS_INVALID,
                    recipient=Recipient.OWNER,
                    url=hook.url,
                    payload=webhook.model_dump(mode="json"),
                )
                .on_conflict_do_nothing(index_elements=["source_event_id"])
                .returning(WebhookDelivery.id)
            )
            if inserted.scalar() is None:
                return  # handled before: a redelivery from the relay
        self.wake()
