"""Typed dependencies of the installation service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.contracts.reads import CatReader
from cathouse.installation.keyring import Keyring
from cathouse.installation.oauth.flow import OAuthFlow
from cathouse.installation.service import InstallationService
from cathouse.installation.views import InstallationViews
from cathouse.platform.db import session_dependency
from cathouse.platform.registry import registered
from cathouse.platform.settings import Settings

Session = Annotated[AsyncSession, Depends(session_dependency("installation"), scope="function")]
# What installations read of the catalog, as the catalog registered it (see cathouse.services).
Cats = Annotated[CatReader, Depends(registered(CatReader))]


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


KeyringDep = Annotated[Keyring, Depends(_keyring)]


def _installations(session: Session, keyring: KeyringDep, cats: Cats) -> InstallationService:
    return InstallationService(session, keyring, cats)


Installations = Annotated[InstallationService, Depends(_installations)]


def _views(session: Session, cats: Cats) -> InstallationViews:
    return InstallationViews(session, cats)


Shown = Annotated[InstallationViews, Depends(_views)]


def _flow(request: Request, session: Session, keyring: KeyringDep, cats: Cats) -> OAuthFlow:
    settings: Settings = request.app.state.settings
    return OAuthFlow(session, keyring, cats, settings)


Flow = Annotated[OAuthFlow, Depends(_flow)]
