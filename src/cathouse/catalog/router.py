"""Browse, search, publish and edit cats and their versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from cathouse.catalog import search
from cathouse.catalog.dependencies import Cats, FacetCacheDep, Session, Views
from cathouse.catalog.errors import (
    CatNotFound,
    IllegalTransition,
    SlugTaken,
    VersionExists,
    VersionNotDraft,
    VersionNotFound,
)
from cathouse.catalog.models import Cat, CatStatus
from cathouse.catalog.repository import CategoryRepository, CatRepository
from cathouse.catalog.schemas import (
    SLUG_PATTERN,
    CatDetail,
    CategoryOut,
    CatIn,
    CatSummary,
    CatUpdate,
    Facet,
    Facets,
    SearchPage,
    SlugPath,
    Tag,
    VersionOut,
    VersionSpec,
)
from cathouse.catalog.views import CatViews, version_out
from cathouse.contracts.permissions import PermissionName
from cathouse.platform.errors import Conflict
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor, Page
from cathouse.platform.schemas import SingleLine
from cathouse.platform.security import AdminUser, DeveloperUser, OptionalUser

router = APIRouter(prefix="/api/v1/cats", tags=["cats"])

VersionPath = Annotated[str, Path(max_length=64)]


@router.get(
    "",
    response_model=SearchPage,
    summary="Browse and search published cats",
    name="search",
    responses=problems(InvalidCursor),
)
async def browse(
    session: Session,
    views: Views,
    facet_cache: FacetCacheDep,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Words to look for; typos are forgiven."),
        SingleLine,
    ] = None,
    category: Annotated[
        str | None, Query(max_length=32, pattern=SLUG_PATTERN, description="A slug from `/cats/categories`.")
    ] = None,
    tag: Annotated[list[Tag], Query(max_length=10, description="Cats with every one of these tags.")] = [],  # noqa: B006
    publisher: uuid.UUID | None = None,
    min_rating: Annotated[float | None, Query(ge=1, le=5)] = None,
    permission: Annotated[
        list[PermissionName], Query(max_length=10, description="Cats whose current version requests all of these.")
    ] = [],  # noqa: B006
    sort: Annotated[search.Sort | None, Query(description="Default: relevance with `q`, popular without.")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> SearchPage:
    query = search.Query(
        q=q,
        category=category,
        tags=tag,
        publisher=publisher,
        min_rating=min_rating,
        permissions=permission,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    result = await search.search(session, query, facet_cache)
    facets = None
    if result.facets is not None:
        facets = Facets(
            category=[Facet(value=v, count=n) for v, n in result.facets["category"]],
            tag=[Facet(value=v, count=n) for v, n in result.facets["tag"]],
        )
    return SearchPage(items=await views.summaries(result.cats), next_cursor=result.next_cursor, facets=facets)


@router.post(
    "", status_code=201, response_model=CatDetail, summary="Create a cat (a draft)", responses=problems(SlugTaken)
)
async def create(body: CatIn, user: DeveloperUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.create(user.user_id, body), user)


@router.get("/categories", response_model=list[CategoryOut], summary="Categories, with their published cats")
async def categories(session: Session) -> list[CategoryOut]:
    rows = await CategoryRepository(session).with_counts()
    return [CategoryOut(slug=c.slug, name=c.name, description=c.description, cat_count=count) for c, count in rows]


# The pages of cats in slug order: the cursor is the last slug of the previous page.
SlugCursor = Annotated[
    str | None,
    Query(max_length=63, pattern=SLUG_PATTERN, description="`next_cursor` of the previous page (a slug)."),
]


@router.get("/mine", response_model=Page[CatSummary], summary="Your cats, in every state")
async def mine(
    user: DeveloperUser,
    session: Session,
    views: Views,
    cursor: SlugCursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Page[CatSummary]:
    rows = await CatRepository(session).of_publisher(user, limit=limit + 1, after=cursor)
    return await _slug_page(views, rows, limit)


async def _slug_page(views: CatViews, rows: Sequence[Cat], limit: int) -> Page[CatSummary]:
    """A page of ``rows`` (``limit + 1`` fetched, ordered by slug): the cursor is the last slug shown."""
    next_cursor = rows[limit - 1].slug if len(rows) > limit else None
    return Page[CatSummary](items=await views.summaries(rows[:limit]), next_cursor=next_cursor)


@router.get("/review-queue", response_model=Page[CatSummary], summary="Cats waiting for review (admins)")
async def review_queue(
    admin: AdminUser,
    session: Session,
    views: Views,
    cursor: SlugCursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Page[CatSummary]:
    rows = await CatRepository(session).in_status(CatStatus.PENDING_REVIEW, limit=limit + 1, after=cursor)
    return await _slug_page(views, rows, limit)


@router.get("/{slug}", response_model=CatDetail, summary="One cat", responses=problems(CatNotFound))
async def read(slug: SlugPath, user: OptionalUser, cats: Cats, views: Views) -> CatDetail:
    return await views.detail(await cats.visible(slug, user), user)


@router.patch(
    "/{slug}", response_model=CatDetail, summary="Edit a cat (its publisher)", responses=problems(CatNotFound)
)
async def update(slug: SlugPath, body: CatUpdate, user: DeveloperUser, cats: Cats, views: Views) -> CatDetail:
    cat = await cats.update(user, slug, body.model_dump(mode="json", exclude_unset=True))
    return await views.detail(cat, user)


@router.delete(
    "/{slug}",
    status_code=204,
    summary="Delete a cat that was never published",
    responses=problems(CatNotFound, (Conflict, "The cat has been published: an admin can delist it instead.")),
)
async def delete(slug: SlugPath, user: DeveloperUser, cats: Cats) -> Response:
    await cats.delete(user, slug)
    return Response(status_code=204)


@router.get(
    "/{slug}/versions",
    response_model=list[VersionOut],
    summary="A cat's versions, newest first",
    name="list_versions",
    responses=problems(CatNotFound),
)
async def versions(slug: SlugPath, user: OptionalUser, cats: Cats) -> list[VersionOut]:
    cat = await cats.visible(slug, user)
    return [version_out(cat, v, user) for v in await cats.listed_versions(cat, user)]


@router.post(
    "/{slug}/versions",
    status_code=201,
    response_model=VersionOut,
    summary="Add a version (a draft)",
    responses=problems(CatNotFound, VersionExists),
)
async def add_version(slug: SlugPath, body: VersionSpec, user: DeveloperUser, cats: Cats) -> VersionOut:
    version = await cats.add_version(user, slug, body)
    return version_out(await cats.managed(slug, user), version, user)


@router.get(
    "/{slug}/versions/{version}",
    response_model=VersionOut,
    summary="One version of a cat",
    responses=problems(CatNotFound, VersionNotFound),
)
async def read_version(slug: SlugPath, version: VersionPath, user: OptionalUser, cats: Cats) -> VersionOut:
    cat = await cats.visible(slug, user)
    return version_out(cat, await cats.version(cat, version, user), user)


@router.post(
    "/{slug}/versions/{version}/publish",
    response_model=VersionOut,
    summary="Publish a draft version of a live cat",
    responses=problems(CatNotFound, VersionNotFound, IllegalTransition, VersionNotDraft),
)
async def publish_version(slug: SlugPath, version: VersionPath, user: DeveloperUser, cats: Cats) -> VersionOut:
    published = await cats.publish_version(user, slug, version)
    return version_out(await cats.managed(slug, user), published, user)


@router.delete(
    "/{slug}/versions/{version}",
    status_code=204,
    summary="Delete a draft version",
    responses=problems(CatNotFound, VersionNotFound, VersionNotDraft),
)
async def delete_version(slug: SlugPath, version: VersionPath, user: DeveloperUser, cats: Cats) -> Response:
    await cats.delete_version(user, slug, version)
    return Response(status_code=204)
