"""Catalog search at scale: typical searches against a lookup by slug and a plain ILIKE scan.

A fresh database is migrated by the real migrations and seeded in SQL with ``--count`` cats
whose names, summaries and descriptions are drawn from a skewed vocabulary of several hundred
gamification and everyday words (plus a sprinkle of rare ones), so that full-text selectivity
and the vocabulary typos are corrected against look like a real catalog's. Each case then runs
through the real code (``search.search`` and ``CatRepository.by_slug``), one AsyncSession per
call, a few warm-up calls first, and reports p50 and p95. A first page counts its facets
afresh on every call (the worst case) except in the case marked "facets reused", which keeps
them as the service does (``CATHOUSE_CATALOG__FACET_TTL``). The secondary indexes are built after the rows are in,
from the migration's own definitions, and the table is vacuumed and analyzed before the clock
starts, as autovacuum would have done to a catalog that grew over two years.

The reference, measured in the same run on the same database, is a lookup by slug: one
unique-index probe, the floor of any read the catalog serves. Search should stay within a
small multiple of it. The other comparison is what a naive implementation does, ``ILIKE
'%word%'`` over name, summary and description: a scan of every row, which search should beat
by orders of magnitude. The ratios are what to compare between machines.

The database is ``CATHOUSE_DATABASE_URL``'s server when set (a database of its own is created
there and dropped at the end), an embedded PostgreSQL otherwise.

    CATHOUSE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/catalog_search.py --count 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sqlalchemy import make_url, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.catalog import search
from cathouse.catalog.models import Cat
from cathouse.catalog.repository import CatRepository
from cathouse.platform import migrations
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.embedded import embedded_database
from cathouse.platform.settings import Settings
from cathouse.services import COMPONENTS


def words(text: str) -> list[str]:
    return text.split()


GAMIFICATION = words("""
points badges level reward streak challenge quest achievement score progress bonus xp leaderboard rank
milestone trophy mission goal unlock tier ranking medal coins tokens prize tournament season league
competition player engagement motivation habit combo multiplier boost collectible avatar progression
mastery skill quiz trivia referral loyalty cashback voucher coupon perk vip elite champion victory
winner ladder bracket checkpoint journey adventure treasure gem crown hero loot wallet redeem currency
raffle sweepstakes daily weekly powerup experience unlockable
""")
EVERYDAY = words("""
the and for with your to of in on a by from that every each team teams user users people customers
members players staff students employees community app apps api webhook webhooks event events data
real time instant simple fast easy secure reliable flexible powerful lightweight custom configurable
automatic automated smart friendly open modern clean beautiful responsive mobile web desktop native
dashboard analytics report reports metric metrics chart charts insight insights trend trends history
account accounts profile profiles workspace workspaces project projects task tasks workflow workflows
notification notifications email emails message messages chat channel channels reminder reminders alert
alerts nudge digest summary feed timeline activity activities action actions rule rules trigger triggers
condition conditions schedule schedules calendar deadline period periods month months year years week
day days hour hours minute minutes sync export import backup archive audit log logs record records
track tracking measure measuring count counting total totals balance balances ledger ledgers transfer
transfers spend spending earn earning award awards grant grants give giving share sharing invite
invites join joining group groups role roles permission permissions admin admins owner owners manager
managers moderator moderation review reviews rating ratings feedback survey surveys poll polls vote votes
comment comments post posts like likes follow follows friend friends social network sales marketing
support service services product products shop store order orders purchase purchases checkout payment
payments subscription subscriptions plan plans billing invoice invoices price pricing discount
discounts campaign campaigns promotion promotions launch onboarding retention growth conversion
funnel cohort segment segments audience audiences target targets personal personalized recommendation
recommendations content article articles video videos course courses lesson lessons learning training
education school classroom fitness health wellness steps workout workouts running cycling meditation
sleep water nutrition finance savings budget budgets charity donation donations volunteer volunteering
sustainability green carbon recycling commute office remote hybrid meeting meetings focus productivity
sprint sprints ticket tickets issue issues bug bugs code commit commits deploy release releases github
gitlab jira slack discord zapier salesforce hubspot shopify stripe intercom zendesk notion trello asana
microsoft google apple android ios iphone widget widgets embed embeddable plugin plugins extension
extensions integration integrations connector connectors bridge relay gateway proxy queue worker
workers job jobs batch batches stream streams realtime websocket websockets graphql rest json csv sql
database cache storage cloud server serverless edge region regions global local multi single
template templates theme themes design designer brand branding color colors icon icons image images
sound sounds animation animations celebration celebrations confetti visual visuals display
screen screens kiosk tv wall board boards card cards tile tiles list lists table tables grid map maps
""")
# One cat in 20 has one of these in its description: each matches about 85 cats in 100,000.
RARE = words("""
axolotl zeppelin quokka marzipan obsidian kumquat narwhal origami tamarind bagpipe gondola harpsichord
igloo jacaranda kaleidoscope labyrinth mandolin nebula okapi pangolin quasar rhubarb sarsaparilla
tambourine ukulele vermilion walrus xylophone yodel zither aardvark bergamot cassowary dirigible
echidna flamingo gazebo hibiscus ibis jackalope kiwano lanternfish manatee nautilus ocelot platypus
quetzal rutabaga samovar tapir umbrellabird vicuna wombat yak zebu abacus bonsai catamaran dulcimer
""")
ADJECTIVES = words("""
swift bright clever bold happy mighty tiny grand smart rapid nimble cosmic golden silver epic lucky
brave calm sunny shiny quick jolly zen prime super hyper mega ultra neo
""")
SUFFIXES = words("""
hub engine kit studio forge lab box pro plus flow works desk suite tracker manager builder bot
central spark pulse boost stack relay bridge board zone
""")
TAGS = words("""
api realtime analytics mobile web slack webhooks teams notifications education email points
badges fitness sales marketing discord streaks support reports quests leaderboard rewards ios
android levels xp achievements community challenges onboarding ranking daily retention weekly
habits missions loyalty referrals coupons vouchers prizes tournaments seasons sms push zapier
shopify stripe hubspot salesforce health finance hr social surveys quizzes trivia games
sustainability productivity developer
""")
PERMISSIONS = words("""
points:read points:write badges:read badges:write leaderboards:read leaderboards:write streaks:read
streaks:write quests:read quests:write rewards:read rewards:write levels:read levels:write
users:read users:write events:read events:write webhooks:manage analytics:read
""")
# The name's middle word: what a cat of each category is about.
CATEGORY_NOUNS = {
    "points": "Points",
    "badges": "Badge",
    "leaderboards": "Leaderboard",
    "streaks": "Streak",
    "quests": "Quest",
    "rewards": "Reward",
    "levels": "Level",
    "analytics": "Analytics",
    "notifications": "Notification",
    "integrations": "Integration",
}

# One row per n; every random draw of a row happens once, in ``r`` (a subquery with volatile
# functions in its target list is never flattened into the outer query, so each draw is read
# back as the same value). The word lists are drawn from by correlated subqueries, which run
# again for every row; their aggregates order by the subquery's own ``k`` (an aggregate over
# outer columns only would belong to the outer query). exp(random() * ln(n + 1)) draws rank k
# of n words with a probability near 1 / (k ln n), as words occur in text (Zipf); tags and
# permissions are a weighted sample without replacement (the largest random() ^ (1 / weight)).
SEED_SQL = """
WITH v AS (
    SELECT CAST(:vocabulary AS text[]) AS vocabulary, CAST(:rare AS text[]) AS rare,
           CAST(:adjectives AS text[]) AS adjectives, CAST(:suffixes AS text[]) AS suffixes,
           CAST(:categories AS text[]) AS categories, CAST(:nouns AS text[]) AS nouns,
           CAST(:tags AS text[]) AS tags, CAST(:permissions AS text[]) AS permissions
)
INSERT INTO catalog.cats (
    id, slug, name, summary, description, category, tags, permissions, status,
    rating_count, rating_sum, rating_1, rating_2, rating_3, rating_4, rating_5,
    install_count, active_install_count, source, created_at, updated_at, submitted_at, published_at
)
SELECT
    gen_random_uuid(),
    'cat-' || r.n,
    initcap(v.adjectives[r.adjective]) || ' ' || v.nouns[r.category] || ' ' || initcap(v.suffixes[r.suffix]),
    left(
        lower(v.nouns[r.category]) || ' ' || (
            SELECT string_agg(
                v.vocabulary[floor(exp(random() * ln(cardinality(v.vocabulary) + 1)))::int], ' ' ORDER BY k
            )
            FROM generate_series(1, r.summary_words) AS g(k)
        ),
        200
    ),
    (
        SELECT string_agg(
            v.vocabulary[floor(exp(random() * ln(cardinality(v.vocabulary) + 1)))::int], ' ' ORDER BY k
        )
        FROM generate_series(1, r.description_words) AS g(k)
    ) || CASE WHEN r.rare <= cardinality(v.rare) THEN ' ' || v.rare[r.rare] ELSE '' END,
    v.categories[r.category],
    (
        SELECT array_agg(t ORDER BY t) FROM (
            SELECT t FROM unnest(v.tags) WITH ORDINALITY AS x(t, i)
            ORDER BY random() ^ (i::float8 ^ 0.8::float8) DESC LIMIT r.tag_count
        ) AS s
    ),
    (
        SELECT array_agg(p ORDER BY p) FROM (
            SELECT p FROM unnest(v.permissions) WITH ORDINALITY AS x(p, i)
            ORDER BY random() ^ sqrt(i::float8) DESC LIMIT r.permission_count
        ) AS s
    ),
    CASE WHEN r.published THEN 'published' ELSE 'draft' END,
    h.r1 + h.r2 + h.r3 + h.r4 + h.r5,
    h.r1 + 2 * h.r2 + 3 * h.r3 + 4 * h.r4 + 5 * h.r5,
    h.r1, h.r2, h.r3, h.r4, h.r5,
    r.installs,
    floor(r.installs * r.active_share)::int,
    'api',
    r.created_at, r.created_at, r.created_at,
    CASE WHEN r.published THEN r.created_at + r.review_delay END
FROM v, (
    SELECT
        n,
        1 + floor(random() * :adjective_count)::int AS adjective,
        1 + floor(power(random(), 1.5) * :category_count)::int AS category,
        1 + floor(random() * :suffix_count)::int AS suffix,
        6 + floor(random() * 10)::int AS summary_words,
        25 + floor(random() * 45)::int AS description_words,
        1 + floor(random() * 20 * :rare_count)::int AS rare,
        2 + floor(random() * 4)::int AS tag_count,
        1 + floor(random() * 4)::int AS permission_count,
        random() < 0.95 AS published,
        -- Pareto: most cats have a handful of installs, a few have hundreds of thousands.
        least(floor(3 / power(1 - random(), 1 / 1.1)) - 3, 2000000)::int AS installs,
        0.3 + 0.6 * random() AS active_share,
        0.02 + 0.08 * random() AS rated_share,
        random() AS quality,
        now() - random() * interval '730 days' - interval '1 day' AS created_at,
        random() * interval '1 day' AS review_delay
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
) AS r, LATERAL (
    -- A histogram that leans towards 5 stars for a good cat and towards 1 for a poor one.
    -- Rounded at random, so that a cat with two ratings is not always a five-star one.
    SELECT
        floor(c * greatest(0, 0.25 - 0.3 * r.quality) + random())::int AS r1,
        floor(c * greatest(0, 0.2 - 0.15 * r.quality) + random())::int AS r2,
        floor(c * (0.25 - 0.1 * r.quality) + random())::int AS r3,
        floor(c * 0.2 + random())::int AS r4,
        floor(c * (0.1 + 0.55 * r.quality) + random())::int AS r5
    FROM (SELECT r.installs * r.rated_share AS c) AS rated
) AS h
"""

VOCABULARY_SQL = """
INSERT INTO catalog.search_words (word, stem)
SELECT DISTINCT w, (ts_lexize('english_stem', w))[1]
FROM catalog.cats AS c,
     regexp_split_to_table(
         lower(c.name || ' ' || catalog.tags_text(c.tags) || ' ' || c.summary || ' ' || c.description), '[^[:alnum:]]+'
     ) AS w
WHERE length(w) BETWEEN 3 AND 40
ON CONFLICT DO NOTHING
"""

SLUG_CASE = "slug lookup (reference)"
FLOOR_CASE = "SELECT 1 (the floor: a session, a round trip)"
COMMON = "leaderboard"
RARE_WORD = "axolotl"
TYPO = "leaderbord"
DEEP_PAGES = 50


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks drop the database


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _engine(url: str, pool_size: int = 1) -> AsyncEngine:
    # No pre-ping: every case would pay the same extra round trip, which only blurs the ratios.
    settings = Settings(_env_file=None, pool_pre_ping=False)
    return create_engine(settings, application_name="cathouse-bench", pool_size=pool_size, url=url)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, *, keep: bool, reuse: str | None = None) -> AsyncIterator[str]:
    """A new database on the server of ``server_url``, migrated to head; dropped at the end
    unless ``keep``. With ``reuse``, that database instead (one a ``--keep`` run left), migrated
    to head and kept."""
    name = reuse or f"cathouse_bench_{uuid.uuid4().hex[:12]}"
    keep = keep or reuse is not None
    admin = _engine(server_url)
    try:
        if reuse is None:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = _with_database(server_url, name)
        try:
            engine = _engine(url)
            await migrations.upgrade(engine, list(COMPONENTS.values()))
            await engine.dispose()
            yield url
        finally:
            if keep:
                print(f"kept the database: {make_url(url).render_as_string(hide_password=True)}", file=sys.stderr)
            else:
                async with admin.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def vocabulary() -> list[str]:
    """Most frequent first (a word's rank sets how often it is drawn): a dozen function words,
    then gamification and everyday words interleaved."""
    function_words, everyday = EVERYDAY[:12], EVERYDAY[12:]
    ranked = sorted(
        [(i / len(GAMIFICATION), w) for i, w in enumerate(GAMIFICATION)]
        + [(i / len(everyday), w) for i, w in enumerate(everyday)]
    )
    return function_words + [w for _, w in ranked]


SEARCH_TABLES = ("catalog.cats", "catalog.search_entries")


async def _rebuildable_indexes(conn: AsyncConnection) -> dict[str, str]:
    """The indexes of the tables search reads that back no constraint, by name, with their
    definitions."""
    rows = await conn.execute(
        text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid IN (SELECT to_regclass(t) FROM unnest(CAST(:tables AS text[])) AS t) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ),
        {"tables": list(SEARCH_TABLES)},
    )
    return {str(name): str(definition) for name, definition in rows}


async def seed(url: str, count: int, batch: int = 50_000) -> float:
    """Insert ``count`` cats; the seconds it took. Batches run on one connection per core, each
    with a seed of its own, so the catalog is the same on every run (ids aside). The migration's
    secondary indexes (of ``cats`` and of ``search_entries``, which the migration's triggers fill
    as the cats go in) are dropped first and built again afterwards from their own definitions:
    one build is much faster than a million GIN insertions, and gives the same index."""
    workers = max(1, min(os.cpu_count() or 1, 4))
    engine = _engine(url, pool_size=workers)
    started = time.perf_counter()

    def progress(what: str) -> None:
        print(f"  {what}, {time.perf_counter() - started:.0f} s", file=sys.stderr)

    try:
        async with engine.begin() as conn:
            categories = list((await conn.scalars(text("SELECT slug FROM catalog.categories ORDER BY position"))).all())
            indexes = await _rebuildable_indexes(conn)
            for name in indexes:
                await conn.execute(text(f"DROP INDEX {name}"))
            # The vocabulary is collected once at the end, as the migration collects it.
            await conn.execute(text("ALTER TABLE catalog.cats DISABLE TRIGGER tr_cats_search_words"))
        params = {
            "vocabulary": vocabulary(),
            "rare": RARE,
            "adjectives": ADJECTIVES,
            "suffixes": SUFFIXES,
            "categories": categories,
            "nouns": [CATEGORY_NOUNS.get(c, c.title()) for c in categories],
            "tags": TAGS,
            "permissions": PERMISSIONS,
            "adjective_count": len(ADJECTIVES),
            "suffix_count": len(SUFFIXES),
            "rare_count": len(RARE),
            "category_count": len(categories),
        }
        batches = iter(range(1, count + 1, batch))
        done = 0

        async def insert() -> None:
            nonlocal done
            for first in batches:  # shared by the workers: each batch is taken once
                last = min(first + batch - 1, count)
                async with engine.begin() as conn:
                    await conn.execute(text("SELECT setseed(:seed)"), {"seed": (first // batch % 1024) / 1024})
                    await conn.execute(text(SEED_SQL), {**params, "first": first, "last": last})
                done += last - first + 1
                progress(f"seeded {done:,} cats")

        await asyncio.gather(*(insert() for _ in range(workers)))
        async with engine.begin() as conn:
            await conn.execute(text(VOCABULARY_SQL))
            await conn.execute(text("ALTER TABLE catalog.cats ENABLE TRIGGER tr_cats_search_words"))
        progress("collected the vocabulary")
        # The GIN indexes take longest: start them first, on different connections.
        pending = iter(sorted(indexes.values(), key=lambda definition: "USING gin" not in definition))

        async def build() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SET maintenance_work_mem = '512MB'"))
                for definition in pending:
                    await conn.execute(text(definition))
                    await conn.commit()

        await asyncio.gather(*(build() for _ in range(workers)))
        progress(f"built {len(indexes)} indexes")
        await _vacuum(engine)
        progress("vacuumed and analyzed")
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _vacuum(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        # What autovacuum would do soon anyway, done before the clock starts rather than
        # during it: statistics, hint bits and the visibility map.
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in SEARCH_TABLES:
            if await conn.scalar(text("SELECT to_regclass(:table)"), {"table": table}):
                await conn.execute(text(f"VACUUM (ANALYZE) {table}"))


async def settle(url: str) -> float:
    """For a reused database: vacuum and analyze, as after a seed; the seconds it took."""
    started = time.perf_counter()
    engine = _engine(url)
    try:
        await _vacuum(engine)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


Outcome = tuple[int, int | None]  # cats returned, and how many matched when the call says
Operation = Callable[[AsyncSession], Awaitable[Outcome]]


@dataclass(frozen=True)
class Case:
    name: str
    operation: Operation
    # For a scan: the name of the search case it stands in for.
    instead_of: str | None = None


@dataclass(frozen=True)
class Timing:
    case: Case
    seconds: list[float]
    outcome: Outcome

    def percentile_ms(self, p: int) -> float:
        if len(self.seconds) < 2:
            return self.seconds[0] * 1000
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[p - 1] * 1000

    @property
    def p50(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95(self) -> float:
        return self.percentile_ms(95)


async def select_one(session: AsyncSession) -> Outcome:
    await session.execute(text("SELECT 1"))
    return 0, None


def by_slug(count: int) -> Operation:
    rng = random.Random(7)  # noqa: S311 - which slug to look up, not a secret

    async def operation(session: AsyncSession) -> Outcome:
        slug = f"cat-{rng.randint(1, count)}"
        cat = await CatRepository(session).by_slug(slug)
        if cat is None:
            raise SystemExit(f"{slug} is missing: the seed went wrong")
        return 1, None

    return operation


def searching(query: search.Query, facets: search.FacetCache | None = None) -> Operation:
    """``search.search`` as the catalog serves it; with ``facets``, facet counts are reused as the
    service reuses them (a cache per process, ``CATHOUSE_CATALOG__FACET_TTL`` seconds)."""

    async def operation(session: AsyncSession) -> Outcome:
        result = await search.search(session, query, facets)
        matching = sum(n for _, n in result.facets["category"]) if result.facets else None
        return len(result.cats), matching

    return operation


def facets_alone(query: search.Query) -> Operation:
    """What a first page adds to a cursor page when its facets are not cached: one pass
    counting every match by category and tag."""

    async def operation(session: AsyncSession) -> Outcome:
        words = await search.matching(session, query.text) if query.text else None
        facets = await search._facets(session, search._filters(query, words))
        return len(facets["tag"]), sum(n for _, n in facets["category"])

    return operation


def ilike_scan(word: str) -> Operation:
    """What a naive search does: a substring match on every published cat, then a top-20 sort."""
    pattern = f"%{word}%"
    statement = (
        select(Cat)
        .where(
            Cat.status == "published",
            or_(Cat.name.ilike(pattern), Cat.summary.ilike(pattern), Cat.description.ilike(pattern)),
        )
        .order_by(Cat.name, Cat.id)
        .limit(20)
    )

    async def operation(session: AsyncSession) -> Outcome:
        return len((await session.scalars(statement)).all()), None

    return operation


async def cursor_at(maker: async_sessionmaker[AsyncSession], query: search.Query, pages: int) -> search.Query:
    """``query`` with the cursor a client holds after following ``pages`` pages."""
    async with maker() as session:
        for page in range(pages):
            result = await search.search(session, query)
            if result.next_cursor is None:
                raise SystemExit(f"{query} has only {page + 1} pages; seed more cats")
            query = dataclasses.replace(query, cursor=result.next_cursor)
    return query


async def cases(maker: async_sessionmaker[AsyncSession], count: int) -> list[Case]:
    Q = search.Query
    common = f'q="{COMMON}" (common word)'
    typo = f'q="{TYPO}" (typo)'
    rare = f'q="{RARE_WORD}" (rare word)'
    relevance_pages = search.POOL // 20 - 1
    return [
        Case(FLOOR_CASE, select_one),
        Case(SLUG_CASE, by_slug(count)),
        Case(common, searching(Q(q=COMMON))),
        Case(f'q="{COMMON}", facets reused (as the service serves it)', searching(Q(q=COMMON), search.FacetCache())),
        Case('q="points leaderboard" (two words)', searching(Q(q="points leaderboard"))),
        Case(typo, searching(Q(q=TYPO))),
        Case('q="acheivement" (typo)', searching(Q(q="acheivement"))),
        Case(rare, searching(Q(q=RARE_WORD))),
        Case(
            "category + tag, sort=popular, no words",
            searching(Q(category="leaderboards", tags=["slack"], sort="popular")),
        ),
        Case('q="streak" + category + min_rating=4', searching(Q(q="streak", category="streaks", min_rating=4))),
        Case("sort=rating, no words", searching(Q(sort="rating"))),
        Case('q="quest", sort=newest', searching(Q(q="quest", sort="newest"))),
        Case(f'q="{COMMON}" page 2 (a cursor page: no facets)', searching(await cursor_at(maker, Q(q=COMMON), 1))),
        Case(f'q="{COMMON}" facets alone', facets_alone(Q(q=COMMON))),
        Case(
            f'q="tournament" page {relevance_pages + 1} (relevance cursor: the pool\'s end)',
            searching(await cursor_at(maker, Q(q="tournament"), relevance_pages)),
        ),
        Case(
            f'q="tournament", sort=newest, page {DEEP_PAGES + 1} (cursor)',
            searching(await cursor_at(maker, Q(q="tournament", sort="newest"), DEEP_PAGES)),
        ),
        Case(f"sort=popular page {DEEP_PAGES + 1} (cursor)", searching(await cursor_at(maker, Q(), DEEP_PAGES))),
        Case(f"ILIKE '%{COMMON}%'", ilike_scan(COMMON), instead_of=common),
        Case(f"ILIKE '%{TYPO}%'", ilike_scan(TYPO), instead_of=typo),
        Case(f"ILIKE '%{RARE_WORD}%'", ilike_scan(RARE_WORD), instead_of=rare),
    ]


async def measure(
    maker: async_sessionmaker[AsyncSession], case: Case, *, repeat: int, min_repeat: int, budget: float
) -> Timing:
    """A few warm-up calls, then as many timed calls as ``budget`` seconds allow, between
    ``min_repeat`` and ``repeat``. A call is a session of its own: open, the operation, close."""

    async def call() -> tuple[float, Outcome]:
        started = time.perf_counter()
        async with maker() as session:
            outcome = await case.operation(session)
        return time.perf_counter() - started, outcome

    for _ in range(2):
        warm, _outcome = await call()
    n = max(min_repeat, min(repeat, int(budget / warm)))
    seconds: list[float] = []
    outcome: Outcome = (0, None)
    for _ in range(n):
        elapsed, outcome = await call()
        seconds.append(elapsed)
    print(f"  {case.name}: {n} calls, p50 {statistics.median(seconds) * 1000:.2f} ms", file=sys.stderr)
    return Timing(case, seconds, outcome)


async def describe(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                "current_setting('work_mem'), current_setting('max_parallel_workers_per_gather'), "
                "pg_size_pretty(pg_table_size('catalog.cats')), pg_size_pretty(pg_indexes_size('catalog.cats')), "
                "pg_size_pretty(pg_table_size(to_regclass('catalog.search_entries'))), "
                "pg_size_pretty(pg_indexes_size(to_regclass('catalog.search_entries'))), "
                "(SELECT count(*) FROM catalog.cats WHERE status = 'published')"
            )
        )
        version, buffers, work_mem, workers, table, indexes, entries, entry_indexes, published = rows.one()
    return {
        "version": str(version),
        "shared_buffers": str(buffers),
        "work_mem": str(work_mem),
        "parallel workers": str(workers),
        "table": str(table),
        "indexes": str(indexes),
        "entries": f"{entries} + indexes {entry_indexes}",
        "published": f"{published:,}",
    }


def report(timings: list[Timing]) -> None:
    by_name = {t.case.name: t for t in timings}
    slug = by_name[SLUG_CASE].p50
    width = max(len(t.case.name) for t in timings)
    print(
        f"{'case':<{width}}  {'calls':>5}  {'cats':>4}  {'matching':>8}  {'p50 ms':>9}  {'p95 ms':>9}  "
        f"{'÷ slug p50':>10}  scan p50 ÷ search p50"
    )
    for t in timings:
        matching = "" if t.outcome[1] is None else f"{t.outcome[1]:,}"
        versus = ""
        if t.case.instead_of:
            versus = f"{t.p50 / by_name[t.case.instead_of].p50:.1f}x {t.case.instead_of}"
        print(
            f"{t.case.name:<{width}}  {len(t.seconds):>5}  {t.outcome[0]:>4}  {matching:>8}  {t.p50:>9.2f}  "
            f"{t.p95:>9.2f}  {t.p50 / slug:>9.1f}x  {versus}"
        )


async def run(url: str, args: argparse.Namespace, server: str) -> None:
    async with fresh_database(url, keep=args.keep, reuse=args.reuse) as database:
        if args.reuse:
            print(f"reusing {args.reuse} ({server}), migrated to head", file=sys.stderr)
            seconds = await settle(database)
        else:
            print(f"seeding {args.count:,} cats into {make_url(database).database} ({server})", file=sys.stderr)
            seconds = await seed(database, args.count)
        engine = _engine(database)
        try:
            facts = await describe(engine)
            maker = sessionmaker(engine)
            load_before = os.getloadavg()[0]
            timings = [
                await measure(maker, case, repeat=args.repeat, min_repeat=args.min_repeat, budget=args.budget)
                for case in await cases(maker, args.count)
            ]
            load_after = os.getloadavg()[0]
        finally:
            await engine.dispose()

    seeded = f"reused {args.reuse}" if args.reuse else f"seeded in {seconds:.0f} s"
    print(f"cats: {args.count:,} ({facts['published']} published), {seeded}")
    print(
        f"{os.cpu_count()} cores; PostgreSQL {facts['version']} ({server}): shared_buffers {facts['shared_buffers']}, "
        f"work_mem {facts['work_mem']}, {facts['parallel workers']} parallel workers per query; "
        f"catalog.cats {facts['table']} + indexes {facts['indexes']}, catalog.search_entries "
        f"{facts['entries']}; load average {load_before:.2f} before, "
        f"{load_after:.2f} after"
    )
    print(
        "one AsyncSession per call (open, the call, close); 'cats': returned by the call; 'matching': "
        "the cats a first page's facets count (the facets row: tags returned); ILIKE: published cats whose "
        "name, summary or description contains the word, ORDER BY name LIMIT 20"
    )
    report(timings)
    by_name = {t.case.name: t for t in timings}
    slug = by_name[SLUG_CASE]
    searches = [t for t in timings if t.case.name not in (SLUG_CASE, FLOOR_CASE) and t.case.instead_of is None]
    fastest, slowest = min(searches, key=lambda t: t.p50), max(searches, key=lambda t: t.p50)
    print(f"slug lookup (reference): p50 {slug.p50:.2f} ms, p95 {slug.p95:.2f} ms")
    print(
        f"search p50: from {fastest.p50 / slug.p50:.1f}x ({fastest.case.name}) "
        f"to {slowest.p50 / slug.p50:.1f}x ({slowest.case.name}) the slug lookup"
    )
    for scan in (t for t in timings if t.case.instead_of):
        assert scan.case.instead_of is not None
        found = "" if scan.outcome[0] else ", and finds nothing: a substring match cannot forgive a typo"
        print(f"{scan.case.name}: {scan.p50 / by_name[scan.case.instead_of].p50:.1f}x {scan.case.instead_of}{found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="cats to seed")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per case, at most")
    parser.add_argument("--min-repeat", type=int, default=20, help="timed calls per case, at least")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per case, beyond --min-repeat")
    parser.add_argument("--keep", action="store_true", help="keep the database (and an embedded server's data)")
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="measure a database a --keep run left on CATHOUSE_DATABASE_URL's server (migrated to head, not "
        "seeded again; --count must be the count it was seeded with)",
    )
    args = parser.parse_args()
    if args.count < (DEEP_PAGES + 1) * 20 * 10:
        parser.error(f"--count must be at least {(DEEP_PAGES + 1) * 200:,}: the deep pages need that many cats")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    configured = os.environ.get("CATHOUSE_DATABASE_URL")
    if args.reuse and not configured:
        parser.error("--reuse needs CATHOUSE_DATABASE_URL: an embedded server's data is not kept between runs")
    if configured:
        server = make_url(configured).render_as_string(hide_password=True)
        asyncio.run(run(configured, args, server))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="cathouse-bench-"))
    try:
        with embedded_database(data_dir) as url:
            asyncio.run(run(url, args, "embedded"))
    finally:
        if args.keep:
            print(f"kept the embedded server's data: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
