"""Upload a cat's icon and screenshots; serve every image at a stable, cacheable URL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from cathouse.catalog.assets.images import AnimatedImage, ImageTooLarge, ImageWrongSize, UnsupportedImage
from cathouse.catalog.assets.service import AssetService
from cathouse.catalog.assets.storage import (
    IMMUTABLE_CACHE_CONTROL,
    KEY_PATTERN,
    AssetStorage,
    InvalidAssetKey,
    check_key,
)
from cathouse.catalog.dependencies import AppSettings, Cats, Session
from cathouse.catalog.errors import AssetNotFound, CatNotFound
from cathouse.catalog.models import AssetKind
from cathouse.catalog.repository import AssetRepository
from cathouse.catalog.schemas import AssetOut, SlugPath
from cathouse.catalog.views import asset_out
from cathouse.platform.errors import Conflict, NotFound
from cathouse.platform.openapi import problems
from cathouse.platform.requests import read_body
from cathouse.platform.security import DeveloperUser, OptionalBrowserUser

router = APIRouter(prefix="/api/v1/cats", tags=["assets"])

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "application/octet-stream")
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image's bytes: PNG, JPEG or WebP, judged by content, not by the declared type.",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
    }
}


_IMAGE_REFUSED = (CatNotFound, UnsupportedImage, ImageTooLarge, ImageWrongSize, AnimatedImage)


def storage(request: Request) -> AssetStorage:
    storage: AssetStorage = request.app.state.catalog_storage
    return storage


def _assets(
    session: Session, settings: AppSettings, storage: Annotated[AssetStorage, Depends(storage)]
) -> AssetService:
    return AssetService(session, storage, settings)


Assets = Annotated[AssetService, Depends(_assets)]


@router.put(
    "/{slug}/icon",
    response_model=AssetOut,
    openapi_extra=IMAGE_BODY,
    summary="Set a cat's icon",
    responses=problems(*_IMAGE_REFUSED),
)
async def put_icon(slug: SlugPath, request: Request, user: DeveloperUser, cats: Cats, assets: Assets) -> AssetOut:
    cat = await cats.managed(slug, user)
    data = await read_body(request, assets.settings.max_image_bytes, ImageTooLarge)
    return asset_out(await assets.set_icon(cat, data))


@router.delete(
    "/{slug}/icon",
    status_code=204,
    summary="Remove a cat's icon",
    responses=problems(CatNotFound, (NotFound, "The cat has no icon.")),
)
async def delete_icon(slug: SlugPath, user: DeveloperUser, cats: Cats, assets: Assets) -> Response:
    await assets.remove(await cats.managed(slug, user), AssetKind.ICON)
    return Response(status_code=204)


@router.post(
    "/{slug}/screenshots",
    status_code=201,
    response_model=AssetOut,
    openapi_extra=IMAGE_BODY,
    summary="Add a screenshot (at most 8)",
    responses=problems(*_IMAGE_REFUSED, (Conflict, "The cat has as many screenshots as it may; delete one first.")),
)
async def add_screenshot(slug: SlugPath, request: Request, user: DeveloperUser, cats: Cats, assets: Assets) -> AssetOut:
    cat = await cats.managed(slug, user)
    data = await read_body(request, assets.settings.max_image_bytes, ImageTooLarge)
    return asset_out(await assets.add_screenshot(cat, data))


@router.delete(
    "/{slug}/screenshots/{asset_id}",
    status_code=204,
    summary="Remove a screenshot",
    responses=problems(CatNotFound, (NotFound, "The cat has no such screenshot.")),
)
async def delete_screenshot(
    slug: SlugPath, asset_id: uuid.UUID, user: DeveloperUser, cats: Cats, assets: Assets
) -> Response:
    await assets.remove(await cats.managed(slug, user), AssetKind.SCREENSHOT, asset_id)
    return Response(status_code=204)


@router.get(
    "/assets/{key}",
    response_class=Response,
    responses={
        200: {
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES[:3]},
            "description": "The image.",
        },
        304: {"description": "Not modified."},
        **problems(AssetNotFound, InvalidAssetKey),
    },
    summary="An image, by its content-addressed name",
    name="read",
)
async def read_asset(
    key: Annotated[str, Path(max_length=80, pattern=f"^{KEY_PATTERN.pattern}$")],
    request: Request,
    user: OptionalBrowserUser,
    session: Session,
    assets: Assets,
) -> Response:
    check_key(key)
    repository = AssetRepository(session)
    public = await repository.visible_key(key, None)
    visible = public or await repository.visible_key(key, user)
    asset, data = await assets.read(key, visible)
    etag = f'"{asset.sha256}"'
    # Named by content, an image never changes: public ones may be cached by anyone for good.
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE_CACHE_CONTROL if public else "private, max-age=3600"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=asset.content_type, headers=headers)
