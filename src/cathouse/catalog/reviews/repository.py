"""Every query of reviews, and the one statement that keeps a cat's rating exact."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import Cat, Review, ReviewStatus


class ReviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, review: Review) -> None:
        self.session.add(review)

    async def get(self, cat_id: uuid.UUID, review_id: uuid.UUID, *, for_update: bool = False) -> Review | None:
        statement = select(Review).where(Review.cat_id == cat_id, Review.id == review_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_author(self, cat_id: uuid.UUID, user_id: uuid.UUID) -> Review | None:
        statement = select(Review).where(Review.cat_id == cat_id, Review.user_id == user_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def delete(self, review: Review) -> None:
        await self.session.delete(review)

    async def page(
        self,
        cat_id: uuid.UUID,
        *,
        include_hidden: bool,
        rating: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Review]:
        statement = (
            select(Review)
            .where(Review.cat_id == cat_id)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(limit)
        )
        if not include_hidden:
            statement = statement.where(Review.status == ReviewStatus.VISIBLE)
        if rating is not None:
            statement = statement.where(Review.rating == rating)
        if after is not None:
            statement = statement.where(tuple_(Review.created_at, Review.id) < tuple_(*after))
        return (await self.session.scalars(statement)).all()

    async def count_rating(self, cat_id: uuid.UUID, stars: int, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) one rating of ``stars`` from the cat's figures.

        Arithmetic in the database, on a row the caller has locked: concurrent reviews of one cat
        serialise on it, and the histogram's CHECK constraint refuses any drift.
        """
        histogram = getattr(Cat, f"rating_{stars}")
        await self.session.execute(
            update(Cat)
            .where(Cat.id == cat_id)
            .values(
                {
                    Cat.rating_count: Cat.rating_count + sign,
                    Cat.rating_sum: Cat.rating_sum + sign * stars,
                    histogram: histogram + sign,
                }
            )
            .execution_options(synchronize_session=False)
        )
