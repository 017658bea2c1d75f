"""Reviews of a cat, its publisher's replies, and admins' moderation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from cathouse.catalog.dependencies import Accounts, Installations, Session
from cathouse.catalog.errors import CatNotFound
from cathouse.catalog.models import Cat, Review
from cathouse.catalog.reviews.errors import AlreadyReviewed, CannotReviewOwnCat, ReviewNotFound
from cathouse.catalog.reviews.schemas import Author, Reply, ReplyIn, ReviewIn, ReviewOut, ReviewPage, ReviewUpdate
from cathouse.catalog.reviews.service import ReviewService
from cathouse.catalog.schemas import Reason, SlugPath
from cathouse.platform.errors import Conflict, Forbidden
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor
from cathouse.platform.security import AdminUser, CurrentUser, OptionalUser, Principal

router = APIRouter(prefix="/api/v1/cats/{slug}/reviews", tags=["reviews"])
_ONE = (CatNotFound, ReviewNotFound)
_PUBLISHER_ONLY = (Forbidden, "Only the cat's publisher may answer its reviews.")


def _service(session: Session, installations: Installations) -> ReviewService:
    return ReviewService(session, installations)


Reviews = Annotated[ReviewService, Depends(_service)]


class ReviewViews:
    """Reviews as the API shows them, with their authors' names from auth."""

    def __init__(self, session: Session, accounts: Accounts) -> None:
        self.session = session
        self.accounts = accounts

    async def many(self, reviews: Sequence[Review], principal: Principal | None) -> list[ReviewOut]:
        names = await self.accounts.display_names(self.session, (r.user_id for r in reviews))
        admin = principal is not None and principal.is_admin
        return [
            ReviewOut(
                id=r.id,
                author=Author(id=r.user_id, display_name=names.get(r.user_id, "Deleted user")),
                rating=r.rating,
                title=r.title,
                body=r.body,
                verified=r.verified,
                status=r.status,
                hidden_reason=r.hidden_reason if admin else None,
                reply=Reply(body=r.reply_body, replied_at=r.reply_at) if r.reply_body and r.reply_at else None,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in reviews
        ]

    async def one(self, found: tuple[Cat, Review], principal: Principal | None) -> ReviewOut:
        await self.session.refresh(found[1])  # server-side defaults and timestamps
        return (await self.many([found[1]], principal))[0]


Shown = Annotated[ReviewViews, Depends()]


@router.get(
    "",
    response_model=ReviewPage,
    summary="A cat's reviews, newest first",
    name="list",
    responses=problems(CatNotFound, InvalidCursor),
)
async def list_reviews(
    slug: SlugPath,
    user: OptionalUser,
    reviews: Reviews,
    shown: Shown,
    rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> ReviewPage:
    _, rows, next_cursor = await reviews.page(user, slug, rating=rating, cursor=cursor, limit=limit)
    return ReviewPage(items=await shown.many(rows, user), next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=ReviewOut,
    summary="Review a cat (once)",
    responses=problems(
        CatNotFound, CannotReviewOwnCat, AlreadyReviewed, (Conflict, "Only published cats can be reviewed.")
    ),
)
async def create(slug: SlugPath, body: ReviewIn, user: CurrentUser, reviews: Reviews, shown: Shown) -> ReviewOut:
    return await shown.one(await reviews.create(user, slug, body.rating, body.title, body.body), user)


@router.get("/mine", response_model=ReviewOut, summary="Your review of a cat", responses=problems(*_ONE))
async def mine(slug: SlugPath, user: CurrentUser, reviews: Reviews, shown: Shown) -> ReviewOut:
    return await shown.one(await reviews.mine(user, slug), user)


@router.patch(
    "/{review_id}",
    response_model=ReviewOut,
    summary="Edit your review",
    responses=problems(*_ONE, (Forbidden, "Only the review's author may edit it.")),
)
async def update(
    slug: SlugPath, review_id: uuid.UUID, body: ReviewUpdate, user: CurrentUser, reviews: Reviews, shown: Shown
) -> ReviewOut:
    changes = body.model_dump(exclude_unset=True)
    return await shown.one(await reviews.update(user, slug, review_id, changes), user)


@router.delete(
    "/{review_id}",
    status_code=204,
    summary="Delete your review",
    responses=problems(*_ONE, (Forbidden, "Only the review's author may delete it; admins hide reviews.")),
)
async def delete(slug: SlugPath, review_id: uuid.UUID, user: CurrentUser, reviews: Reviews) -> Response:
    await reviews.delete(user, slug, review_id)
    return Response(status_code=204)


@router.put(
    "/{review_id}/reply",
    response_model=ReviewOut,
    summary="Answer a review (the cat's publisher)",
    responses=problems(*_ONE, _PUBLISHER_ONLY),
)
async def reply(
    slug: SlugPath, review_id: uuid.UUID, body: ReplyIn, user: CurrentUser, reviews: Reviews, shown: Shown
) -> ReviewOut:
    return await shown.one(await reviews.reply(user, slug, review_id, body.body), user)


@router.delete(
    "/{review_id}/reply",
    response_model=ReviewOut,
    summary="Withdraw your answer",
    responses=problems(*_ONE, _PUBLISHER_ONLY),
)
async def delete_reply(
    slug: SlugPath, review_id: uuid.UUID, user: CurrentUser, reviews: Reviews, shown: Shown
) -> ReviewOut:
    return await shown.one(await reviews.reply(user, slug, review_id, None), user)


@router.post(
    "/{review_id}/hide",
    response_model=ReviewOut,
    summary="Hide an abusive review (admins)",
    responses=problems(*_ONE, (Conflict, "The review is hidden already.")),
)
async def hide(
    slug: SlugPath, review_id: uuid.UUID, body: Reason, admin: AdminUser, reviews: Reviews, shown: Shown
) -> ReviewOut:
    return await shown.one(await reviews.moderate(admin, slug, review_id, hide=True, reason=body.reason), admin)


@router.post(
    "/{review_id}/restore",
    response_model=ReviewOut,
    summary="Show a hidden review again (admins)",
    responses=problems(*_ONE, (Conflict, "The review is visible already.")),
)
async def restore(slug: SlugPath, review_id: uuid.UUID, admin: AdminUser, reviews: Reviews, shown: Shown) -> ReviewOut:
    return await shown.one(await reviews.moderate(admin, slug, review_id, hide=False), admin)
