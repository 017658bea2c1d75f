"""Typed dependencies of the catalog service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.search import FacetCache
from cathouse.catalog.service import CatService
from cathouse.catalog.views import CatViews
from cathouse.contracts.reads import AccountReader, InstallationReader
from cathouse.platform.db import session_dependency
from cathouse.platform.registry import registered
from cathouse.platform.settings import Settings

Session = Annotated[AsyncSession, Depends(session_dependency("catalog"), scope="function")]
# What the catalog reads of other services, as they registered it (see cathouse.services).
Accounts = Annotated[AccountReader, Depends(registered(AccountReader))]
Installations = Annotated[InstallationReader, Depends(registered(InstallationReader))]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]


def _cats(session: Session, settings: AppSettings) -> CatService:
    return CatService(session, settings)


def _views(session: Session, accounts: Accounts) -> CatViews:
    return CatViews(session, accounts)


Cats = Annotated[CatService, Depends(_cats)]
Views = Annotated[CatViews, Depends(_views)]


def _facet_cache(request: Request) -> FacetCache:
    cache: FacetCache = request.app.state.catalog_facets
    return cache


FacetCacheDep = Annotated[FacetCache, Depends(_facet_cache)]
