"""Facet counts per search term, kept by a trigger: a one-word search counts nothing.

Counting the facets of a common word read every match (a large share of the catalog) and split
every match's tags into rows to group, most of its cost the tags.
Moving the vector out of line so that ``search_entries`` rows are narrow was tried first and
does not pay: PostgreSQL only hands a row to the toaster when it is wider than
TOAST_TUPLE_THRESHOLD (2 kB, a compile-time constant), so ``toast_tuple_target`` and
``STORAGE EXTERNAL`` leave these 750-byte rows as they are, on insert and on every rewrite
(VACUUM FULL, CLUSTER, ALTER TYPE). Forced out of line, the heap shrinks, but the count gains
little (the tags cost the same), and every page that filters an index walk by the words (the
relevance pool, sorted searches) must fetch each vector back from TOAST, several times slower.

So ``catalog.search_term_facets`` keeps, per lexeme of the entries' vectors, the entries per
category (``tag`` '') and per (category, tag): what ``search_facet_counts`` keeps for all
entries, per term. A search for one term, filtered by category at most, reads a few hundred
rows. Kept like the other counts: a statement-level trigger with transition tables, one
ordered upsert per statement, and an update that changes no vector, category or tags (an
install, a rating) counts and locks nothing. Rows are keyed by category, as the counts of
``search_facet_counts`` are, so it adds no lock that two transactions did not already share.

Revision ID: catalog_0006
Revises: catalog_0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "catalog_0006"
down_revision: str | None = "catalog_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per lexeme of each entry and per its category ('' as the tag) or (category, tag).
TERM_ROWS = (
    "SELECT l AS lexeme, r.category, t AS tag, {sign} AS n FROM {rows} AS r, "
    "unnest(tsvector_to_array(r.search_vector)) AS l, unnest(array_prepend(''::varchar, r.tags)) AS t"
)
COUNT = """
    INSERT INTO catalog.search_term_facets AS f (lexeme, category, tag, n)
    SELECT lexeme, category, tag, sum(n) FROM ({rows}) AS d
    GROUP BY lexeme, category, tag HAVING sum(n) <> 0 ORDER BY lexeme, category, tag
    ON CONFLICT (lexeme, category, tag) DO UPDATE SET n = f.n + EXCLUDED.n
"""
# An updated entry counts only when what is counted changed: as it was, and as it is.
SAME = "s.cat_id = r.cat_id AND s.search_vector = r.search_vector AND s.category = r.category AND s.tags = r.tags"
CHANGED = "(SELECT * FROM {rows} AS r WHERE NOT EXISTS (SELECT FROM {other} AS s WHERE " + SAME + "))"
ADDED = TERM_ROWS.format(sign=1, rows="added")
REMOVED = TERM_ROWS.format(sign=-1, rows="removed")
UPDATED = (
    TERM_ROWS.format(sign=1, rows=CHANGED.format(rows="added", other="removed"))
    + " UNION ALL "
    + TERM_ROWS.format(sign=-1, rows=CHANGED.format(rows="removed", other="added"))
)
TRANSITIONS = {
    "INSERT": "NEW TABLE AS added",
    "UPDATE": "OLD TABLE AS removed NEW TABLE AS added",
    "DELETE": "OLD TABLE AS removed",
}


def upgrade() -> None:
    # No entry changes between the count below and the triggers that keep it; reads go on.
    op.execute("LOCK TABLE catalog.search_entries IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        """
        CREATE TABLE catalog.search_term_facets (
            lexeme text COLLATE "C" NOT NULL,
            category varchar(32) NOT NULL,
            tag varchar(32) NOT NULL,
            n integer NOT NULL,
            CONSTRAINT pk_search_term_facets PRIMARY KEY (lexeme, category, tag)
        )
        """
    )
    op.execute(COUNT.format(rows=TERM_ROWS.format(sign=1, rows="catalog.search_entries")))
    op.execute(
        "CREATE FUNCTION catalog.count_search_term_facets() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'INSERT' THEN {COUNT.format(rows=ADDED)}; "
        f"ELSIF TG_OP = 'DELETE' THEN {COUNT.format(rows=REMOVED)}; "
        f"ELSE {COUNT.format(rows=UPDATED)}; "
        "END IF; RETURN NULL; END $$"
    )
    # Named to fire after tr_search_entries_facets_*: every transaction locks counts in one order.
    for event, tables in TRANSITIONS.items():
        op.execute(
            f"CREATE TRIGGER tr_search_entries_terms_{event.lower()} AFTER {event} ON catalog.search_entries "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION catalog.count_search_term_facets()"
        )


def downgrade() -> None:
    for event in TRANSITIONS:
        op.execute(f"DROP TRIGGER tr_search_entries_terms_{event.lower()} ON catalog.search_entries")
    op.execute("DROP FUNCTION catalog.count_search_term_facets()")
    op.execute("DROP TABLE catalog.search_term_facets")
