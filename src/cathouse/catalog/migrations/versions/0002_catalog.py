"""Categories, cats, versions, reviews and assets; full-text and trigram search.

Revision ID: catalog_0002
Revises: catalog_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "catalog_0002"
down_revision: str | None = "catalog_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)

CATEGORIES = [
    ("points", "Points", "Ledgers and balances: award, spend and transfer points."),
    ("badges", "Badges", "Achievements and badges earned for what people do."),
    ("leaderboards", "Leaderboards", "Rankings by score, period and group."),
    ("streaks", "Streaks", "Daily and weekly streaks, with freezes and reminders."),
    ("quests", "Quests", "Multi-step quests, missions and challenges."),
    ("rewards", "Rewards", "Catalogues of rewards to redeem points for."),
    ("levels", "Levels", "Experience points, levels and progression."),
    ("analytics", "Analytics", "Engagement metrics and reports."),
    ("notifications", "Notifications", "Nudges, reminders and celebrations."),
    ("integrations", "Integrations", "Webhooks, relays and glue to other systems."),
]

SEARCH_VECTOR = (
    "setweight(to_tsvector('english', name), 'A') || "
    "setweight(to_tsvector('english', catalog.tags_text(tags)), 'B') || "
    "setweight(to_tsvector('english', summary), 'B') || "
    "setweight(to_tsvector('english', description), 'C')"
)
SEARCH_TEXT = "lower(name || ' ' || catalog.tags_text(tags) || ' ' || summary)"
RATING_AVERAGE = "CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END"
SLUG = "^[a-z0-9]+(-[a-z0-9]+)*$"
CAT_STATUSES = "'draft', 'pending_review', 'published', 'rejected', 'suspended', 'delisted'"


def upgrade() -> None:
    # Trusted since PostgreSQL 13: a database owner may create it. Typo-tolerant search needs it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # array_to_string is only STABLE; for a text[] it cannot change, and a generated column needs IMMUTABLE.
    op.execute(
        "CREATE FUNCTION catalog.tags_text(tags varchar[]) RETURNS text "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN array_to_string(tags, ' ')"
    )
    op.create_table(
        "categories",
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_categories"),
        schema="catalog",
    )
    categories = sa.table(
        "categories",
        sa.column("slug", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("position", sa.Integer),
        schema="catalog",
    )
    op.bulk_insert(
        categories,
        [{"slug": s, "name": n, "description": d, "position": i} for i, (s, n, d) in enumerate(CATEGORIES)],
    )
    op.create_table(
        "cats",
        sa.Column("id", UUID, nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("summary", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.String(32)), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("homepage", sa.String(2048)),
        sa.Column("support_email", sa.String(320)),
        sa.Column("support_url", sa.String(2048)),
        sa.Column("publisher_id", UUID),
        sa.Column("status", sa.String(16), server_default="draft", nullable=False),
        sa.Column("moderation_reason", sa.String(500)),
        sa.Column("current_version_id", UUID),
        sa.Column("permissions", postgresql.ARRAY(sa.String(64)), server_default=sa.text("'{}'"), nullable=False),
        *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in RATING_COLUMNS),
        # 0 for a cat nobody rated yet, so the rating order needs no NULL handling.
        sa.Column("rating_average", sa.Float(), sa.Computed(RATING_AVERAGE, persisted=True), nullable=False),
        sa.Column("install_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active_install_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("search_vector", postgresql.TSVECTOR(), sa.Computed(SEARCH_VECTOR, persisted=True), nullable=False),
        sa.Column("search_text", sa.Text(), sa.Computed(SEARCH_TEXT, persisted=True), nullable=False),
        sa.Column("source", sa.String(16), server_default="api", nullable=False),
        sa.Column("manifest_path", sa.String(300)),
        sa.Column("manifest_hash", sa.String(64)),
        sa.Column("sync_error", postgresql.JSONB()),
        sa.Column("orphaned_at", TS),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("submitted_at", TS),
        sa.Column("published_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_cats"),
        sa.UniqueConstraint("slug", name="uq_cats_slug"),
        sa.ForeignKeyConstraint(["category"], ["catalog.categories.slug"], name="fk_cats_category_categories"),
        sa.ForeignKeyConstraint(["publisher_id"], ["auth.users.id"], name="fk_cats_publisher_id_users"),
        sa.CheckConstraint(f"slug ~ '{SLUG}'", name="ck_cats_slug"),
        sa.CheckConstraint(f"status IN ({CAT_STATUSES})", name="ck_cats_status"),
        sa.CheckConstraint("source IN ('api', 'manifest')", name="ck_cats_source"),
        sa.CheckConstraint(
            "rating_count = rating_1 + rating_2 + rating_3 + rating_4 + rating_5 AND "
            "rating_sum = rating_1 + 2 * rating_2 + 3 * rating_3 + 4 * rating_4 + 5 * rating_5",
            name="ck_cats_rating_histogram",
        ),
        schema="catalog",
    )
    op.create_index("ix_cats_publisher_id", "cats", ["publisher_id"], schema="catalog")
    op.execute("CREATE INDEX ix_cats_search_vector ON catalog.cats USING gin (search_vector)")
    op.execute("CREATE INDEX ix_cats_search_text ON catalog.cats USING gin (search_text gin_trgm_ops)")
    op.execute("CREATE INDEX ix_cats_tags ON catalog.cats USING gin (tags)")
    op.execute("CREATE INDEX ix_cats_permissions ON catalog.cats USING gin (permissions)")
    # One index per browse order, over published cats only: a page is an index range scan.
    published = "WHERE status = 'published'"
    op.execute(f"CREATE INDEX ix_cats_newest ON catalog.cats (published_at DESC, id DESC) {published}")
    op.execute(f"CREATE INDEX ix_cats_popular ON catalog.cats (install_count DESC, id DESC) {published}")
    op.execute(
        f"CREATE INDEX ix_cats_rating ON catalog.cats (rating_average DESC, rating_count DESC, id DESC) {published}"
    )
    op.execute(f'CREATE INDEX ix_cats_name ON catalog.cats (lower(name) COLLATE "C", id) {published}')
    op.execute(f"CREATE INDEX ix_cats_category ON catalog.cats (category, published_at DESC, id DESC) {published}")

    op.create_table(
        "cat_versions",
        sa.Column("id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("prerelease", sa.String(64)),
        sa.Column("status", sa.String(16), server_default="draft", nullable=False),
        sa.Column("base_url", sa.String(2048), nullable=False),
        sa.Column("credentials", postgresql.JSONB(), nullable=False),
        sa.Column("permissions", postgresql.JSONB(), nullable=False),
        sa.Column("endpoints", postgresql.JSONB(), nullable=False),
        sa.Column("settings_schema", postgresql.JSONB(), nullable=False),
        sa.Column("webhook_url", sa.String(2048)),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("changelog", sa.Text()),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("published_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_cat_versions"),
        sa.UniqueConstraint("cat_id", "version", name="uq_cat_versions_cat_id"),
        sa.ForeignKeyConstraint(
            ["cat_id"], ["catalog.cats.id"], name="fk_cat_versions_cat_id_cats", ondelete="CASCADE"
        ),
        sa.CheckConstraint("status IN ('draft', 'published')", name="ck_cat_versions_status"),
        sa.CheckConstraint("rate_limit_per_minute > 0", name="ck_cat_versions_rate_limit"),
        schema="catalog",
    )
    op.create_foreign_key(
        "fk_cats_current_version_id_cat_versions",
        "cats",
        "cat_versions",
        ["current_version_id"],
        ["id"],
        source_schema="catalog",
        referent_schema="catalog",
    )

    op.create_table(
        "reviews",
        sa.Column("id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="visible", nullable=False),
        sa.Column("hidden_reason", sa.String(500)),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reply_body", sa.Text()),
        sa.Column("reply_at", TS),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("cat_id", "user_id", name="uq_reviews_cat_id"),
        sa.ForeignKeyConstraint(["cat_id"], ["catalog.cats.id"], name="fk_reviews_cat_id_cats", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_reviews_user_id_users"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
        sa.CheckConstraint("status IN ('visible', 'hidden')", name="ck_reviews_status"),
        schema="catalog",
    )
    op.create_index("ix_reviews_cat_newest", "reviews", ["cat_id", "created_at", "id"], schema="catalog")
    op.create_index("ix_reviews_user_id", "reviews", ["user_id"], schema="catalog")

    op.create_table(
        "assets",
        sa.Column("id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.ForeignKeyConstraint(["cat_id"], ["catalog.cats.id"], name="fk_assets_cat_id_cats", ondelete="CASCADE"),
        sa.CheckConstraint("kind IN ('icon', 'screenshot')", name="ck_assets_kind"),
        schema="catalog",
    )
    op.create_index("ix_assets_cat_id", "assets", ["cat_id", "kind", "position"], schema="catalog")
    op.create_index("ix_assets_storage_key", "assets", ["storage_key"], schema="catalog")
    op.execute("CREATE UNIQUE INDEX uq_assets_one_icon ON catalog.assets (cat_id) WHERE kind = 'icon'")


RATING_COLUMNS = ("rating_count", "rating_sum", "rating_1", "rating_2", "rating_3", "rating_4", "rating_5")


def downgrade() -> None:
    op.drop_table("assets", schema="catalog")
    op.drop_table("reviews", schema="catalog")
    op.drop_constraint("fk_cats_current_version_id_cat_versions", "cats", schema="catalog", type_="foreignkey")
    op.drop_table("cat_versions", schema="catalog")
    op.drop_table("cats", schema="catalog")
    op.drop_table("categories", schema="catalog")
    op.execute("DROP FUNCTION catalog.tags_text(varchar[])")
    # pg_trgm stays: it is database-wide and other schemas may use it.
