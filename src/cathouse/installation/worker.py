"""The installation service's background work: provisioning webhooks and the owners' notices, beside the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.contracts.reads import CatReader
from cathouse.installation import feedback, owner_notices, provisioning
from cathouse.installation.feedback import CredentialFeedback
from cathouse.installation.keyring import Keyring
from cathouse.installation.owner_notices import OwnerNotices
from cathouse.installation.provisioning import Provisioner
from cathouse.platform.db import sessionmaker
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker


@asynccontextmanager
async def worker(settings: Settings, engine: AsyncEngine, registry: Registry) -> AsyncIterator[Worker]:
    sessions = sessionmaker(engine)
    cats = registry.get(CatReader)
    keyring = Keyring(sessions, settings.master_key_value())
    await keyring.load()
    # Redirects are not followed: a webhook URL must not bounce the request somewhere else.
    async with httpx.AsyncClient(follow_redirects=False) as http:
        provisioner = Provisioner(sessions, settings, keyring, http, cats)
        credentials = CredentialFeedback(sessions, keyring, cats)
        handlers = {e.type: [provisioner.on_event] for e in provisioning.EVENTS}
        handlers.update({e.type: [credentials.on_event] for e in feedback.EVENTS})
        notices = OwnerNotices(sessions, settings.master_key_value(), provisioner.wake)
        for e in owner_notices.EVENTS:
            handlers.setdefault(e.type, []).append(notices.on_event)
        yield Worker(handlers=handlers, loops=[provisioner.run])
