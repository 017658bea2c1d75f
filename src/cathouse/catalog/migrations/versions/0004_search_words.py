"""Typo tolerance through a vocabulary of the catalog's words, instead of trigrams on every cat.

Matching a query by trigram similarity against every cat's text scored each of tens of
thousands of rows per search. Now the query's unknown words are corrected against the
vocabulary (a few thousand words, nearest by trigram distance on a GiST index), and the
corrected words go to the full-text index like any other.

Revision ID: catalog_0004
Revises: catalog_0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "catalog_0004"
down_revision: str | None = "catalog_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Words as a reader sees them (not stemmed: a typo is of the word, not of its stem), with
# their stem, which tells a word the catalog has in another form ("reminding" for "reminds")
# from a typo.
WORDS = """
    SELECT DISTINCT w, (ts_lexize('english_stem', w))[1]
    FROM regexp_split_to_table(
        lower({row}name || ' ' || catalog.tags_text({row}tags) || ' ' || {row}summary || ' ' || {row}description),
        '[^[:alnum:]]+'
    ) AS w
    WHERE length(w) BETWEEN 3 AND 40
    ORDER BY 1
"""


def upgrade() -> None:
    op.execute("DROP INDEX catalog.ix_cats_search_text")
    op.execute("ALTER TABLE catalog.cats DROP COLUMN search_text")
    op.execute(
        "CREATE TABLE catalog.search_words "
        "(word text NOT NULL, stem text, CONSTRAINT pk_search_words PRIMARY KEY (word))"
    )
    op.execute("CREATE INDEX ix_search_words_trgm ON catalog.search_words USING gist (word gist_trgm_ops)")
    op.execute("CREATE INDEX ix_search_words_stem ON catalog.search_words (stem)")
    # Inserted in order, so two transactions adding overlapping words take their locks in the
    # same order and never deadlock. Words are only ever added: a word no cat uses any more
    # costs one row and corrects to a word that matches nothing, which is then not found.
    op.execute(
        "CREATE FUNCTION catalog.collect_search_words() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO catalog.search_words (word, stem) "
        + WORDS.format(row="NEW.")
        + " ON CONFLICT DO NOTHING; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER tr_cats_search_words AFTER INSERT OR UPDATE OF name, tags, summary, description "
        "ON catalog.cats FOR EACH ROW EXECUTE FUNCTION catalog.collect_search_words()"
    )
    op.execute(
        "INSERT INTO catalog.search_words (word, stem) "
        + WORDS.format(row="c.").replace("FROM regexp_split_to_table", "FROM catalog.cats AS c, regexp_split_to_table")
        + " ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tr_cats_search_words ON catalog.cats")
    op.execute("DROP FUNCTION catalog.collect_search_words()")
    op.execute("DROP TABLE catalog.search_words")
    op.execute(
        "ALTER TABLE catalog.cats ADD COLUMN search_text text GENERATED ALWAYS AS "
        "(lower(name || ' ' || catalog.tags_text(tags) || ' ' || summary)) STORED"
    )
    op.execute("CREATE INDEX ix_cats_search_text ON catalog.cats USING gin (search_text gin_trgm_ops)")
