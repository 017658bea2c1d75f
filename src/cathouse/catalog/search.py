"""Browse and search published cats: full-text with typo tolerance, filters, keyset pages, facets.

Matching: a cat matches when the query's words match its full-text vector (stemmed English
over name, tags, summary and description), or when the query is close, word by word, to its
name, tags and summary by trigram similarity (``%>``), which is what forgives typos. Both
conditions are served by GIN indexes. Ranking adds the full-text rank to the similarity.

Every order is a keyset over an index: a deep page costs what the first one does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, and_, cast, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from cathouse.catalog.models import Cat
from cathouse.platform.errors import BadRequest
from cathouse.platform.pagination import decode_cursor, encode_cursor

SortKey = tuple[ColumnElement[Any] | InstrumentedAttribute[Any], bool]
Sort = Literal["relevance", "popular", "rating", "newest", "name"]
# How close a query must be to some part of a cat's text to count as a typo of it (0..1).
TYPO_THRESHOLD = 0.45
FACET_TAGS = 20


@dataclass(frozen=True)
class Query:
    q: str | None = None
    category: str | None = None
    tags: Sequence[str] = ()
    publisher: uuid.UUID | None = None
    min_rating: float | None = None
    permissions: Sequence[str] = ()
    sort: Sort | None = None
    cursor: str | None = None
    limit: int = 20

    @property
    def text(self) -> str | None:
        stripped = " ".join((self.q or "").split()).lower()
        return stripped or None

    @property
    def order(self) -> Sort:
        if self.sort is None:
            return "relevance" if self.text else "popular"
        # Without words to rank by, relevance means what most people install.
        return "popular" if self.sort == "relevance" and not self.text else self.sort


@dataclass
class Result:
    cats: list[Cat]
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]] | None = field(default=None)


def _filters(query: Query) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Cat.status == "published"]
    if query.category:
        conditions.append(Cat.category == query.category)
    if query.tags:
        conditions.append(Cat.tags.contains(list(query.tags)))
    if query.permissions:
        conditions.append(Cat.permissions.contains(list(query.permissions)))
    if query.publisher:
        conditions.append(Cat.publisher_id == query.publisher)
    if query.min_rating is not None:
        conditions.append(and_(Cat.rating_count > 0, Cat.rating_average >= query.min_rating))
    text = query.text
    if text:
        words = func.websearch_to_tsquery("english", text)
        conditions.append(or_(Cat.search_vector.op("@@")(words), Cat.search_text.op("%>")(text)))
    return conditions


def _score(text: str) -> ColumnElement[float]:
    words = func.websearch_to_tsquery("english", text)
    rank = func.ts_rank_cd(Cat.search_vector, words, 32) + func.word_similarity(text, Cat.search_text)
    return cast(rank, Float)


def _keys(query: Query) -> list[SortKey]:
    """The sort key columns, each with True when it ascends; the id breaks ties."""
    order = query.order
    if order == "relevance":
        assert query.text
        return [(_score(query.text), False), (Cat.id, False)]
    if order == "popular":
        return [(Cat.install_count, False), (Cat.id, False)]
    if order == "rating":
        return [(Cat.rating_average, False), (Cat.rating_count, False), (Cat.id, False)]
    if order == "newest":
        return [(Cat.published_at, False), (Cat.id, False)]
    return [(func.lower(Cat.name).collate("C"), True), (Cat.id, True)]


def _after(keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
    # Every order runs one way, so the row comparison matches the index order.
    columns = tuple_(*(column for column, _ in keys))
    bound = tuple_(*(literal(v) if not isinstance(v, uuid.UUID) else literal(v, Cat.id.type) for v in values))
    return columns > bound if keys[0][1] else columns < bound


def _decode(query: Query, keys: list[SortKey]) -> list[Any]:
    assert query.cursor is not None
    values = decode_cursor(query.cursor, len(keys) + 1)
    if values[0] != query.order:
        raise BadRequest("The cursor belongs to another sort order; start again without it.")
    try:
        parsed = [_parse(query.order, i, v) for i, v in enumerate(values[1:])]
    except (TypeError, ValueError):
        raise BadRequest("The cursor is not valid; use one returned by a previous page.") from None
    return parsed


def _parse(order: Sort, index: int, value: Any) -> Any:
    last = {"relevance": 1, "popular": 1, "rating": 2, "newest": 1, "name": 1}[order]
    if index == last:
        return uuid.UUID(value)
    if order == "newest":
        return datetime.fromisoformat(value)
    if order == "name":
        return str(value)
    if order == "relevance" or (order == "rating" and index == 0):
        return float(value)
    return int(value)


def _encode(order: Sort, row: Sequence[Any]) -> str:
    return encode_cursor([order, *(v.isoformat() if hasattr(v, "isoformat") else v for v in row)])


async def search(session: AsyncSession, query: Query) -> Result:
    keys = _keys(query)
    conditions = _filters(query)
    if query.text:
        # The session's transaction scopes this: it does not leak to other requests.
        await session.execute(select(func.set_config("pg_trgm.word_similarity_threshold", str(TYPO_THRESHOLD), True)))
    statement = select(Cat, *(column for column, _ in keys)).where(*conditions)
    if query.cursor:
        statement = statement.where(_after(keys, _decode(query, keys)))
    ordering = [column.asc() if ascending else column.desc() for column, ascending in keys]
    rows = (await session.execute(statement.order_by(*ordering).limit(query.limit + 1))).all()
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = _encode(query.order, [str(v) if isinstance(v, uuid.UUID) else v for v in rows[-1][1:]])
    facets = None if query.cursor else await _facets(session, conditions)
    return Result(cats=[row[0] for row in rows], next_cursor=next_cursor, facets=facets)


async def _facets(session: AsyncSession, conditions: list[ColumnElement[bool]]) -> dict[str, list[tuple[str, int]]]:
    by_category = await session.execute(
        select(Cat.category, func.count()).where(*conditions).group_by(Cat.category).order_by(func.count().desc())
    )
    tags = select(func.unnest(Cat.tags).label("tag")).where(*conditions).subquery()
    by_tag = await session.execute(
        select(tags.c.tag, func.count())
        .group_by(tags.c.tag)
        .order_by(func.count().desc(), tags.c.tag)
        .limit(FACET_TAGS)
    )
    return {
        "category": [(str(value), int(count)) for value, count in by_category],
        "tag": [(str(value), int(count)) for value, count in by_tag],
    }
