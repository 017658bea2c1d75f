"""Browse and search published cats: full-text with typo tolerance, filters, keyset pages, facets.

Everything here reads ``search_entries``: a narrow copy of the published cats (their vector,
filter and sort columns, no descriptions), kept by triggers in the transaction that changes a
cat. A common word matches a large share of the catalog; its matches sit on fewer pages there
than in ``cats``, and only the page's cats are read from ``cats`` (bench/catalog_search.py
prints both tables' sizes).

Matching: a cat matches when the query's words match its full-text vector (stemmed English
over name, tags, summary and description, on a GIN index). Typos are forgiven before that:
a query word the catalog never uses is replaced by itself or its nearest words in the
catalog's vocabulary (trigram distance on a GiST index over a few thousand words), so the
cost of forgiving a typo does not grow with the number of cats.

Relevance ranks the ``POOL`` most-installed matches by full-text rank: ranking every match of
a common word would read tens of thousands of rows per search. Sort by popular, newest,
rating or name to page through every match. Every other order is a keyset over an index: a
deep page costs what the first one does.

Facets: browsing without words, filtered by category at most, reads counts kept by a trigger
(``search_facet_counts``), exact at once; so does a search for one term (one lexeme, as most
searches are), filtered by category at most (``search_term_facets``). Any other first page
counts every match, once per ``FACET_TTL`` seconds for the same filters (a ``FacetCache`` per
process): counting a common word's matches reads each of them.

Plans: every statement of a search is planned with its own values (``plan_cache_mode`` for the
transaction). After a few runs of a prepared statement PostgreSQL may reuse a generic plan,
which cannot know that a word matches a large share of the catalog or that a tag is rare, and
reads every match.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.selectable import CTE
from sqlalchemy.types import Text

from cathouse.catalog.models import Cat, SearchEntry, SearchFacetCount, SearchTermFacet
from cathouse.platform.cache import MISSING, Cache
from cathouse.platform.pagination import InvalidCursor, decode_cursor, encode_cursor

SortKey = tuple[ColumnElement[Any] | InstrumentedAttribute[Any], bool]
Sort = Literal["relevance", "popular", "rating", "newest", "name"]
# How close (trigram similarity, 0..1) a word of the catalog must be to count as what a
# misspelt query word meant, and how many such words stand in for it.
TYPO_SIMILARITY = 0.4
TYPO_ALTERNATIVES = 3
POOL = 500
FACET_TAGS = 20
FACET_TTL = 30.0
_WORD = re.compile(r"[^\W_]+")
# A tsquery's text form when it is a plain lexeme, or alternatives of plain lexemes (none with
# a quote or a space, so that dropping the " | " between them leaves each whole).
_ALTERNATIVES = r"^'[^' ]+'( \| '[^' ]+')*$"
# Plans made with each statement's own values, for the rest of the transaction.
_CUSTOM_PLANS = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"
# The query's words, each with whether the catalog uses it (as written, or in another form of
# the same stem: two index probes), and the nearest words it does use. Being a search's first
# statement, it also asks for custom plans (in the same round trip).
_CORRECTIONS = text(
    f"""
    SELECT q.word,
           EXISTS (SELECT FROM catalog.search_words AS s WHERE s.word = q.word)
           OR EXISTS (
               SELECT FROM catalog.search_words AS s WHERE s.stem = (ts_lexize('english_stem', q.word))[1]
           ) AS known,
           ARRAY(
               SELECT n.word FROM (
                   SELECT s.word, s.word <-> q.word AS distance FROM catalog.search_words AS s
                   ORDER BY s.word <-> q.word LIMIT :alternatives
               ) AS n WHERE n.distance <= 1 - CAST(:similarity AS float8)
           ) AS near
    FROM unnest(:words) AS q(word), ({_CUSTOM_PLANS}) AS custom
    """
).bindparams(bindparam("words", type_=ARRAY(Text)))
Entry = SearchEntry


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

    @property
    def filtered_by_category_at_most(self) -> bool:
        return not (self.tags or self.publisher or self.min_rating is not None or self.permissions)

    @property
    def browsing(self) -> bool:
        """No words and no filter but a category: the facets are the kept counts."""
        return not self.text and self.filtered_by_category_at_most


@dataclass
class Result:
    cats: list[Cat]
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]] | None = field(default=None)


def _words(text_: str) -> list[str]:
    """The words of ``text_`` that typos are looked for in."""
    return list(dict.fromkeys(w for w in _WORD.findall(text_) if 3 <= len(w) <= 40))


async def matching(session: AsyncSession, text_: str) -> ColumnElement[Any]:
    """The tsquery for ``text_``, its misspelt words replaced by what the catalog has."""
    words = _words(text_)
    replaced: dict[str, list[str]] = {}
    if words:
        rows = await session.execute(
            _CORRECTIONS, {"words": words, "alternatives": TYPO_ALTERNATIVES, "similarity": TYPO_SIMILARITY}
        )
        replaced = {word: [word, *near] for word, known, near in rows if not known}
    if not replaced:
        # Every word is one the catalog uses: the query keeps its web-search syntax ("phrases", -not, or).
        return func.websearch_to_tsquery("english", text_)
    # Letters and digits only, so each alternative is a plain lexeme to to_tsquery.
    terms = " & ".join("(" + " | ".join(replaced.get(w, [w])) + ")" for w in _WORD.findall(text_))
    return func.to_tsquery("english", terms)


def _filters(query: Query, words: ColumnElement[Any] | None = None) -> list[ColumnElement[bool]]:
    """Conditions on ``search_entries``, which holds published cats only."""
    conditions: list[ColumnElement[bool]] = []
    if query.category:
        conditions.append(Entry.category == query.category)
    if query.tags:
        conditions.append(Entry.tags.contains(list(query.tags)))
    if query.permissions:
        conditions.append(Entry.permissions.contains(list(query.permissions)))
    if query.publisher:
        conditions.append(Entry.publisher_id == query.publisher)
    if query.min_rating is not None:
        conditions.append(and_(Entry.rating_count > 0, Entry.rating_average >= query.min_rating))
    if words is not None:
        conditions.append(Entry.search_vector.op("@@")(words))
    return conditions


def _keys(order: Sort) -> list[SortKey]:
    """The sort key columns of the orders an index serves, each with True when it ascends;
    the id breaks ties."""
    if order == "popular":
        return [(Entry.install_count, False), (Entry.cat_id, False)]
    if order == "rating":
        return [(Entry.rating_average, False), (Entry.rating_count, False), (Entry.cat_id, False)]
    if order == "newest":
        return [(Entry.published_at, False), (Entry.cat_id, False)]
    return [(Entry.name_key, True), (Entry.cat_id, True)]


def _after(keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
    # Every order runs one way, so the row comparison matches the index order.
    columns = tuple_(*(column for column, _ in keys))
    bound = tuple_(*(literal(v) if not isinstance(v, uuid.UUID) else literal(v, Entry.cat_id.type) for v in values))
    return columns > bound if keys[0][1] else columns < bound


def _decode(query: Query, size: int) -> list[Any]:
    assert query.cursor is not None
    values = decode_cursor(query.cursor, size + 1)
    if values[0] != query.order:
        raise InvalidCursor("belongs to another sort order; start again without it")
    try:
        parsed = [_parse(query.order, i, v) for i, v in enumerate(values[1:])]
    except (TypeError, ValueError):
        raise InvalidCursor() from None
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


def _page(
    query: Query, words: ColumnElement[Any] | None, conditions: list[ColumnElement[bool]]
) -> tuple[Subquery, list[bool]]:
    """The page's sort keys (the cat's id last), from ``search_entries`` alone."""
    if query.order == "relevance":
        assert words is not None
        pool = (
            select(Entry.cat_id, Entry.search_vector)
            .where(*conditions)
            .order_by(Entry.install_count.desc(), Entry.cat_id.desc())
            .limit(POOL)
            .subquery("pool")
        )
        rank = cast(func.ts_rank_cd(pool.c.search_vector, words, 32), Float)
        keys: list[SortKey] = [(rank, False), (pool.c.cat_id, False)]
        statement = select(*(column.label(f"k{i}") for i, (column, _) in enumerate(keys)))
    else:
        keys = _keys(query.order)
        statement = select(*(column.label(f"k{i}") for i, (column, _) in enumerate(keys))).where(*conditions)
    if query.cursor:
        statement = statement.where(_after(keys, _decode(query, len(keys))))
    ordering = [column.asc() if ascending else column.desc() for column, ascending in keys]
    return statement.order_by(*ordering).limit(query.limit + 1).subquery("page"), [asc for _, asc in keys]


async def search(session: AsyncSession, query: Query, facets: FacetCache | None = None) -> Result:
    if not (query.text and _words(query.text)):
        # Otherwise the corrections query, the first statement, asks for custom plans.
        await session.execute(text(_CUSTOM_PLANS))
    words = await matching(session, query.text) if query.text else None
    conditions = _filters(query, words)
    page, ascending = _page(query, words, conditions)
    keys = list(page.c)
    statement = (
        select(Cat, *keys)
        .join(page, Cat.id == keys[-1])
        .order_by(*(key.asc() if up else key.desc() for key, up in zip(keys, ascending, strict=True)))
    )
    rows = (await session.execute(statement)).all()
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = _encode(query.order, [str(v) if isinstance(v, uuid.UUID) else v for v in rows[-1][1:]])
    counts = None
    if not query.cursor:
        counts = await (facets or FacetCache(ttl=0)).get(session, query, conditions, words)
    return Result(cats=[row[0] for row in rows], next_cursor=next_cursor, facets=counts)


FacetCounts = dict[str, list[tuple[str, int]]]


class FacetCache:
    """Facet counts by filters, kept ``ttl`` seconds: a first page of a popular query need not
    count its matches again on every request. Bounded, least recently used first out. Browsing
    and a search for one term read kept counts, which are cheap and exact at once: those are
    never cached."""

    def __init__(self, ttl: float = FACET_TTL, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: Cache[tuple[Any, ...], FacetCounts] = Cache(size, ttl)

    async def get(
        self,
        session: AsyncSession,
        query: Query,
        conditions: list[ColumnElement[bool]],
        words: ColumnElement[Any] | None = None,
    ) -> FacetCounts:
        if query.browsing:
            return await _kept_facets(session, query.category)
        if words is not None and query.filtered_by_category_at_most:
            kept = await _term_facets(session, words, query.category)
            if kept is not None:
                return kept
        key = (
            query.text,
            query.category,
            tuple(query.tags),
            query.publisher,
            query.min_rating,
            tuple(query.permissions),
        )
        cached = self._entries.get(key)
        if cached is not MISSING:
            return cached
        counts = await _facets(session, conditions)
        self._entries.set(key, counts)
        return counts


async def _facets(session: AsyncSession, conditions: list[ColumnElement[bool]]) -> FacetCounts:
    """Matches per category and the most used tags, in one pass over the matches."""
    matches = select(Entry.category, Entry.tags).where(*conditions).cte("matches").prefix_with("MATERIALIZED")
    by_category = select(literal("category").label("facet"), matches.c.category.label("value"), func.count().label("n"))
    by_category = by_category.group_by(matches.c.category)
    # unnest in the select list: one pass over the matches, not a function scan per match.
    tag = select(func.unnest(matches.c.tags).label("value")).subquery("tag")
    by_tag = (
        select(literal("tag").label("facet"), tag.c.value, func.count().label("n"))
        .group_by(tag.c.value)
        .order_by(func.count().desc(), tag.c.value)
        .limit(FACET_TAGS)
    )
    return _collect(await session.execute(by_category.union_all(by_tag.subquery().select())))


def _term(words: ColumnElement[Any]) -> CTE:
    """One row: the lexeme whose matches are exactly those of ``words``, else NULL. That is when
    ``words`` is one plain lexeme, or alternatives (a corrected typo) of which one at most is in
    any cat's vector; the others match nothing. The tsquery's text form, its ``|`` dropped, reads
    as a tsvector of its lexemes: both quote and escape them the same way."""
    query = cast(words, Text)
    alternatives = (
        select(
            func.unnest(
                func.tsvector_to_array(cast(func.replace(query, " | ", " "), TSVECTOR), type_=ARRAY(Text))
            ).label("lexeme")
        )
        .where(query.regexp_match(_ALTERNATIVES))
        .subquery("alternatives")
    )
    kept = SearchTermFacet
    used = select(kept.lexeme).where(kept.lexeme == alternatives.c.lexeme, kept.tag == "", kept.n > 0).exists()
    lexeme = case(
        (
            and_(func.count() > 0, func.count().filter(used) <= 1),
            func.coalesce(func.max(alternatives.c.lexeme).filter(used), func.max(alternatives.c.lexeme)),
        )
    )
    return select(lexeme.label("lexeme")).select_from(alternatives).cte("term")


def _kept(counts: type[SearchFacetCount] | type[SearchTermFacet], category: str | None, *scope: Any) -> list[Any]:
    """What the kept ``counts`` say of the published cats (of ``category``), within ``scope``:
    each category's, and the most used tags."""
    by_category = select(literal("category").label("facet"), counts.category.label("value"), counts.n).where(
        *scope, counts.tag == "", counts.n > 0
    )
    n = func.sum(counts.n) if category is None else func.max(counts.n)
    by_tag = (
        select(literal("tag").label("facet"), counts.tag.label("value"), n.label("n"))
        .where(*scope, counts.tag != "")
        .group_by(counts.tag)
        .having(n > 0)
        .order_by(n.desc(), counts.tag)
        .limit(FACET_TAGS)
    )
    if category is not None:
        by_category = by_category.where(counts.category == category)
        by_tag = by_tag.where(counts.category == category)
    return [by_category, by_tag.subquery().select()]


async def _kept_facets(session: AsyncSession, category: str | None) -> FacetCounts:
    """The facets of every published cat (of ``category``), from the kept counts."""
    return _collect(await session.execute(union_all(*_kept(SearchFacetCount, category))))


async def _term_facets(session: AsyncSession, words: ColumnElement[Any], category: str | None) -> FacetCounts | None:
    """The facets of the published cats (of ``category``) that ``words`` matches, from the kept
    counts per term, in one round trip; None when no one lexeme matches what ``words`` does."""
    term = _term(words)
    kept = _kept(SearchTermFacet, category, SearchTermFacet.lexeme == select(term.c.lexeme).scalar_subquery())
    other = select(literal("other"), literal(""), literal(0)).select_from(term).where(term.c.lexeme.is_(None))
    rows = list(await session.execute(union_all(*kept, other)))
    return None if any(facet == "other" for facet, _, _ in rows) else _collect(rows)


def _collect(rows: Iterable[Sequence[Any]]) -> FacetCounts:
    counts: FacetCounts = {"category": [], "tag": []}
    for facet, value, n in rows:
        counts[facet].append((str(value), int(n)))
    counts["category"].sort(key=lambda c: (-c[1], c[0]))
    return counts
