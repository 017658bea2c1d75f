"""Reviews: one per user per cat, a publisher's reply, admins' moderation, exact ratings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.errors import CatNotFound
from cathouse.catalog.models import Cat, CatStatus, Review, ReviewStatus
from cathouse.catalog.repository import CatRepository
from cathouse.catalog.reviews.errors import AlreadyReviewed, CannotReviewOwnCat, ReviewNotFound
from cathouse.catalog.reviews.repository import ReviewRepository
from cathouse.catalog.service import can_manage, can_see
from cathouse.contracts.events import catalog as events
from cathouse.contracts.reads import InstallationReader
from cathouse.platform.errors import Conflict, Forbidden
from cathouse.platform.outbox import record
from cathouse.platform.pagination import decode_time_cursor, encode_time_cursor
from cathouse.platform.security import Principal


class ReviewService:
    def __init__(self, session: AsyncSession, installations: InstallationReader) -> None:
        self.session = session
        self.installations = installations
        self.cats = CatRepository(session)
        self.reviews = ReviewRepository(session)

    def _event(self, event: events.ReviewEvent) -> None:
        # Keyed by the cat (the models' aggregate): a cat's rating events arrive in the order they were counted.
        record(self.session, event)

    async def _cat(self, slug: str, principal: Principal | None, *, lock: bool = False) -> Cat:
        cat = await self.cats.by_slug(slug, for_update=lock)
        if cat is None or not can_see(cat, principal):
            raise CatNotFound()
        return cat

    async def _review(self, cat: Cat, review_id: uuid.UUID, principal: Principal | None) -> Review:
        review = await self.reviews.get(cat.id, review_id, for_update=True)
        if review is None or (review.status == ReviewStatus.HIDDEN and not (principal and principal.is_admin)):
            raise ReviewNotFound()
        return review

    async def create(self, principal: Principal, slug: str, rating: int, title: str, body: str) -> tuple[Cat, Review]:
        # Every review write locks the cat first: its figures and its events stay in one order.
        cat = await self._cat(slug, principal, lock=True)
        if cat.status != CatStatus.PUBLISHED:
            raise Conflict("Only published cats can be reviewed.")
        if cat.publisher_id == principal.user_id:
            raise CannotReviewOwnCat()
        if await self.reviews.by_author(cat.id, principal.user_id) is not None:
            raise AlreadyReviewed()
        verified = await self.installations.has_installed(self.session, principal.user_id, cat.id)
        review = Review(
            id=uuid.uuid4(),
            cat_id=cat.id,
            user_id=principal.user_id,
            rating=rating,
            title=title,
            body=body,
            verified=verified,
        )
        self.reviews.add(review)
        try:
            await self.session.flush()
        except IntegrityError:
            raise AlreadyReviewed() from None
        await self.reviews.count_rating(cat.id, rating, 1)
        self._event(
            events.ReviewCreated(
                cat_id=cat.id,
                slug=cat.slug,
                review_id=review.id,
                user_id=principal.user_id,
                rating=rating,
                verified=verified,
            )
        )
        await self.session.flush()
        return cat, review

    async def update(
        self, principal: Principal, slug: str, review_id: uuid.UUID, changes: dict[str, Any]
    ) -> tuple[Cat, Review]:
        cat = await self._cat(slug, principal, lock=True)
        review = await self._review(cat, review_id, principal)
        if review.user_id != principal.user_id:
            raise Forbidden("Only the review's author may edit it.")
        previous = review.rating
        for field, value in changes.items():
            setattr(review, field, value)
        review.updated_at = datetime.now(UTC)
        if review.status == ReviewStatus.VISIBLE and review.rating != previous:
            await self.reviews.count_rating(cat.id, previous, -1)
            await self.reviews.count_rating(cat.id, review.rating, 1)
        self._event(
            events.ReviewUpdated(
                cat_id=cat.id,
                slug=cat.slug,
                review_id=review.id,
                user_id=review.user_id,
                rating=review.rating,
                previous_rating=previous,
            )
        )
        await self.session.flush()
        return cat, review

    async def delete(self, principal: Principal, slug: str, review_id: uuid.UUID) -> None:
        cat = await self._cat(slug, principal, lock=True)
        review = await self._review(cat, review_id, principal)
        if review.user_id != principal.user_id:
            # Admins hide a review, with a reason its author is told; they do not delete it.
            raise Forbidden("Only the review's author may delete it; admins hide reviews.")
        if review.status == ReviewStatus.VISIBLE:
            await self.reviews.count_rating(cat.id, review.rating, -1)
        self._event(
            events.ReviewDeleted(
                cat_id=cat.id, slug=cat.slug, review_id=review.id, user_id=review.user_id, rating=review.rating
            )
        )
        await self.reviews.delete(review)
        await self.session.flush()

    async def reply(
        self, principal: Principal, slug: str, review_id: uuid.UUID, body: str | None
    ) -> tuple[Cat, Review]:
        cat = await self._cat(slug, principal, lock=True)
        if not can_manage(cat, principal):
            raise Forbidden("Only the cat's publisher may reply to its reviews.")
        review = await self._review(cat, review_id, principal)
        review.reply_body, review.reply_at = body, (datetime.now(UTC) if body is not None else None)
        if body is not None:
            self._event(events.ReviewReplied(cat_id=cat.id, slug=cat.slug, review_id=review.id, by=principal.user_id))
        await self.session.flush()
        return cat, review

    async def moderate(
        self, admin: Principal, slug: str, review_id: uuid.UUID, *, hide: bool, reason: str | None = None
    ) -> tuple[Cat, Review]:
        cat = await self._cat(slug, admin, lock=True)
        review = await self._review(cat, review_id, admin)
        target = ReviewStatus.HIDDEN if hide else ReviewStatus.VISIBLE
        if review.status == target:
            raise Conflict(f"The review is {target} already.", current_status=review.status)
        review.status, review.hidden_reason = target, reason
        # A hidden review does not count: its stars leave the figures until it is restored.
        await self.reviews.count_rating(cat.id, review.rating, -1 if hide else 1)
        if hide:
            self._event(
                events.ReviewHidden(cat_id=cat.id, slug=cat.slug, review_id=review.id, reason=reason, by=admin.user_id)
            )
        else:
            self._event(events.ReviewRestored(cat_id=cat.id, slug=cat.slug, review_id=review.id, by=admin.user_id))
        await self.session.flush()
        return cat, review

    async def page(
        self, principal: Principal | None, slug: str, *, rating: int | None, cursor: str | None, limit: int
    ) -> tuple[Cat, list[Review], str | None]:
        cat = await self._cat(slug, principal)
        after = decode_time_cursor(cursor) if cursor else None
        include_hidden = principal is not None and principal.is_admin
        rows = list(
            await self.reviews.page(cat.id, include_hidden=include_hidden, rating=rating, after=after, limit=limit + 1)
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_time_cursor(rows[-1].created_at, rows[-1].id)
        return cat, rows, next_cursor

    async def mine(self, principal: Principal, slug: str) -> tuple[Cat, Review]:
        cat = await self._cat(slug, principal)
        review = await self.reviews.by_author(cat.id, principal.user_id)
        if review is None:
            raise ReviewNotFound()
        return cat, review
