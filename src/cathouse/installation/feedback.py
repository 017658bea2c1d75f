"""What the proxy reports about an installation's credentials, applied to its lifecycle.

The proxy never writes this service's tables: it records ``proxy.credentials_rejected`` (the
cat answered 401) and ``proxy.credentials_accepted`` (a success after that) in the outbox, and
this handler moves the installation. Applying one twice changes nothing, so a redelivered
event is harmless.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.contracts.events.proxy import CredentialsAccepted, CredentialsRejected, CredentialsVerdict
from cathouse.contracts.reads import CatReader
from cathouse.installation import lifecycle
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import InstallationStatus
from cathouse.installation.provisioning import parse_or_skip
from cathouse.installation.service import InstallationService
from cathouse.platform.outbox.relay import Event

EVENTS = (CredentialsRejected, CredentialsAccepted)


class CredentialFeedback:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: Keyring, cats: CatReader) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.cats = cats

    async def on_event(self, event: Event) -> None:
        verdict = parse_or_skip(event)
        if not isinstance(verdict, CredentialsVerdict):
            return
        installation_id = verdict.installation_id
        async with self.sessions() as session, session.begin():
            service = InstallationService(session, self.keyring, self.cats)
            installation = await service.installations.get(installation_id, for_update=True)
            if installation is None:
                return
            if isinstance(verdict, CredentialsRejected):
                if InstallationStatus.CREDENTIALS_INVALID in lifecycle.TRANSITIONS[installation.status]:
                    reason = f"the cat answered {verdict.upstream_status} to its credentials"
                    await service.move(installation, InstallationStatus.CREDENTIALS_INVALID, reason=reason)
            elif installation.status == InstallationStatus.CREDENTIALS_INVALID:
                # Back to where it was: an upgrade still waiting for consent keeps waiting.
                pending = installation.target_version_id is not None
                await service.move(
                    installation, InstallationStatus.PERMISSIONS_PENDING if pending else InstallationStatus.ACTIVE
                )
