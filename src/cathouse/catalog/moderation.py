"""Review by admins: submit, approve, reject, suspend, delist, reinstate."""

from __future__ import annotations

from fastapi import APIRouter

from cathouse.catalog.dependencies import Cats, Views
from cathouse.catalog.errors import CatNotFound, IllegalTransition
from cathouse.catalog.schemas import CatDetail, Reason, SlugPath
from cathouse.platform.errors import Conflict
from cathouse.platform.openapi import problems
from cathouse.platform.security import AdminUser, DeveloperUser

router = APIRouter(prefix="/api/v1/cats", tags=["moderation"])
_MOVE = problems(CatNotFound, IllegalTransition)


@router.post(
    "/{slug}/submit",
    response_model=CatDetail,
    summary="Submit a draft (or rejected) cat for review",
    responses=problems(CatNotFound, IllegalTransition, (Conflict, "The cat has no version to review yet.")),
)
async def submit(slug: SlugPath, user: DeveloperUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.submit(user, slug), user)


@router.post(
    "/{slug}/approve", response_model=CatDetail, summary="Publish a cat under review (admins)", responses=_MOVE
)
async def approve(slug: SlugPath, admin: AdminUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.approve(admin, slug), admin)


@router.post(
    "/{slug}/reject", response_model=CatDetail, summary="Send a cat back to its publisher (admins)", responses=_MOVE
)
async def reject(slug: SlugPath, body: Reason, admin: AdminUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.reject(admin, slug, body.reason), admin)


@router.post(
    "/{slug}/suspend", response_model=CatDetail, summary="Hide a published cat for now (admins)", responses=_MOVE
)
async def suspend(slug: SlugPath, body: Reason, admin: AdminUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.suspend(admin, slug, body.reason), admin)


@router.post("/{slug}/delist", response_model=CatDetail, summary="Take a cat off the catalog (admins)", responses=_MOVE)
async def delist(slug: SlugPath, body: Reason, admin: AdminUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.delist(admin, slug, body.reason), admin)


@router.post(
    "/{slug}/reinstate",
    response_model=CatDetail,
    summary="Publish a suspended or delisted cat again",
    responses=problems(
        CatNotFound, IllegalTransition, (Conflict, "The cat's manifest folder is gone; restore it and sync again.")
    ),
)
async def reinstate(slug: SlugPath, admin: AdminUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.reinstate(admin, slug), admin)
