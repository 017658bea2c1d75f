"""Typed dependencies of the installation service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.installation.keyring import Keyring
from cathouse.installation.service import InstallationService
from cathouse.platform.db import session_dependency

Session = Annotated[AsyncSession, Depends(session_dependency("installation"), scope="function")]


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


KeyringDep = Annotated[Keyring, Depends(_keyring)]


def _installations(session: Session, keyring: KeyringDep) -> InstallationService:
    return InstallationService(session, keyring)


Installations = Annotated[InstallationService, Depends(_installations)]
