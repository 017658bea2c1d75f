"""Search reads a narrow copy of the published cats, and browse facets read kept counts.

A search for a common word matched a fifth of the catalog, and every match was a visit to a
row of ``catalog.cats`` (about 1.2 kB with the description, seven to a page): counting its
facets read nearly the whole table. ``catalog.search_entries`` holds only what search filters,
sorts, ranks and counts by, for published cats only, so the same matches sit on about 60%
of the pages, and every browse order is an index of it. ``catalog.search_facet_counts``
holds the published cats per category and per (category, tag), so browsing without words
counts nothing.

Both are kept by triggers in the transaction that changes a cat, so they cannot drift.
Statement-level, with transition tables: a batch of cats is one upsert, and the counts are
changed in one ordered statement, so two transactions lock the rows they share in the same
order and never deadlock. A change that moves no count (an install, a rating) locks none.

Revision ID: catalog_0005
Revises: catalog_0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "catalog_0005"
down_revision: str | None = "catalog_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTRY_COLUMNS = (
    "cat_id",
    "search_vector",
    "category",
    "tags",
    "permissions",
    "publisher_id",
    "install_count",
    "rating_average",
    "rating_count",
    "published_at",
    "name_key",
)
# What each entry column is, read from a row of catalog.cats as ``c``.
ENTRY_VALUES = (
    "c.id, c.search_vector, c.category, c.tags, c.permissions, c.publisher_id, c.install_count, "
    "c.rating_average, c.rating_count, c.published_at, lower(c.name)"
)
COLUMNS = ", ".join(ENTRY_COLUMNS)
UPSERT = f"""
    INSERT INTO catalog.search_entries AS e ({COLUMNS})
    SELECT {ENTRY_VALUES} FROM {{rows}} AS c WHERE c.status = 'published' ORDER BY c.id
    ON CONFLICT (cat_id) DO UPDATE SET ({COLUMNS}) = ROW({", ".join("EXCLUDED." + c for c in ENTRY_COLUMNS)})
    WHERE ({", ".join("e." + c for c in ENTRY_COLUMNS)}) IS DISTINCT FROM
          ({", ".join("EXCLUDED." + c for c in ENTRY_COLUMNS)})
"""
# One row per category ('' as the tag: its published cats) and per (category, tag).
FACET_ROWS = (
    "SELECT category, '' AS tag, {sign} AS n FROM {rows} UNION ALL SELECT category, unnest(tags), {sign} FROM {rows}"
)
COUNT = """
    INSERT INTO catalog.search_facet_counts AS f (category, tag, n)
    SELECT category, tag, sum(n) FROM ({rows}) AS d GROUP BY category, tag HAVING sum(n) <> 0 ORDER BY category, tag
    ON CONFLICT (category, tag) DO UPDATE SET n = f.n + EXCLUDED.n
"""
ADDED = FACET_ROWS.format(sign=1, rows="added")
REMOVED = FACET_ROWS.format(sign=-1, rows="removed")
# The indexes search uses: matching, the filters, and one per browse order (a page is a range scan).
INDEXES = {
    "ix_search_entries_search_vector": "USING gin (search_vector)",
    "ix_search_entries_tags": "USING gin (tags)",
    "ix_search_entries_permissions": "USING gin (permissions)",
    "ix_search_entries_popular": "(install_count DESC, cat_id DESC)",
    "ix_search_entries_rating": "(rating_average DESC, rating_count DESC, cat_id DESC)",
    "ix_search_entries_newest": "(published_at DESC, cat_id DESC)",
    "ix_search_entries_name": "(name_key, cat_id)",
    "ix_search_entries_category": "(category, install_count DESC, cat_id DESC)",
    "ix_search_entries_publisher_id": "(publisher_id)",
}
# What catalog.cats indexed for search, which search no longer reads there.
CAT_INDEXES = {
    "ix_cats_search_vector": "USING gin (search_vector)",
    "ix_cats_tags": "USING gin (tags)",
    "ix_cats_permissions": "USING gin (permissions)",
    "ix_cats_newest": "(published_at DESC, id DESC) WHERE status = 'published'",
    "ix_cats_popular": "(install_count DESC, id DESC) WHERE status = 'published'",
    "ix_cats_rating": "(rating_average DESC, rating_count DESC, id DESC) WHERE status = 'published'",
    "ix_cats_name": "(lower(name) COLLATE \"C\", id) WHERE status = 'published'",
    "ix_cats_category": "(category, published_at DESC, id DESC) WHERE status = 'published'",
}


def upgrade() -> None:
    # No cat changes between the copy below and the triggers that keep it; reads go on.
    op.execute("LOCK TABLE catalog.cats IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        """
        CREATE TABLE catalog.search_entries (
            cat_id uuid NOT NULL,
            search_vector tsvector NOT NULL,
            category varchar(32) NOT NULL,
            tags varchar(32)[] NOT NULL,
            permissions varchar(64)[] NOT NULL,
            publisher_id uuid,
            install_count integer NOT NULL,
            rating_average float8 NOT NULL,
            rating_count integer NOT NULL,
            published_at timestamptz,
            name_key text COLLATE "C" NOT NULL,
            CONSTRAINT pk_search_entries PRIMARY KEY (cat_id),
            CONSTRAINT fk_search_entries_cat_id_cats FOREIGN KEY (cat_id)
                REFERENCES catalog.cats (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE catalog.search_facet_counts (
            category varchar(32) NOT NULL,
            tag varchar(32) NOT NULL,
            n integer NOT NULL,
            -- No CHECK (n >= 0): a decrement goes in as a negative row that conflicts, and
            -- PostgreSQL checks a row before it looks for the conflict.
            CONSTRAINT pk_search_facet_counts PRIMARY KEY (category, tag)
        )
        """
    )
    op.execute(UPSERT.format(rows="catalog.cats"))
    op.execute(COUNT.format(rows=FACET_ROWS.format(sign=1, rows="catalog.search_entries")))
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON catalog.search_entries {definition}")

    op.execute(
        "CREATE FUNCTION catalog.sync_search_entries() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'UPDATE' THEN "
        "DELETE FROM catalog.search_entries AS e USING changed AS c WHERE e.cat_id = c.id AND c.status <> 'published'; "
        "END IF; " + UPSERT.format(rows="changed") + "; RETURN NULL; END $$"
    )
    for event in ("INSERT", "UPDATE"):
        # A deleted cat's entry goes with it (the foreign key cascades).
        op.execute(
            f"CREATE TRIGGER tr_cats_search_entries_{event.lower()} AFTER {event} ON catalog.cats "
            "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION catalog.sync_search_entries()"
        )
    op.execute(
        "CREATE FUNCTION catalog.count_search_facets() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {COUNT.format(rows=ADDED)}; "
        f"ELSIF TG_OP = 'DELETE' THEN {COUNT.format(rows=REMOVED)}; "
        f"ELSE {COUNT.format(rows=ADDED + ' UNION ALL ' + REMOVED)}; "
        "END IF; RETURN NULL; END $$"
    )
    transitions = {
        "INSERT": "NEW TABLE AS added",
        "UPDATE": "OLD TABLE AS removed NEW TABLE AS added",
        "DELETE": "OLD TABLE AS removed",
    }
    for event, tables in transitions.items():
        op.execute(
            f"CREATE TRIGGER tr_search_entries_facets_{event.lower()} AFTER {event} ON catalog.search_entries "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION catalog.count_search_facets()"
        )
    for name in CAT_INDEXES:
        op.execute(f"DROP INDEX catalog.{name}")


def downgrade() -> None:
    for name, definition in CAT_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON catalog.cats {definition}")
    for event in ("INSERT", "UPDATE"):
        op.execute(f"DROP TRIGGER tr_cats_search_entries_{event.lower()} ON catalog.cats")
    op.execute("DROP TABLE catalog.search_facet_counts")
    op.execute("DROP TABLE catalog.search_entries")
    op.execute("DROP FUNCTION catalog.sync_search_entries()")
    op.execute("DROP FUNCTION catalog.count_search_facets()")
