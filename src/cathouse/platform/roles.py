"""Least privilege in the database: the owner migrates, the services connect as a role of their own.

The services' role (the user of ``CATHOUSE_DATABASE_URL`` when ``CATHOUSE_MIGRATION_DATABASE_URL``
names another) reads and writes the services' data and nothing more: no CREATE on their schemas,
no table of its own, and on the tables a component declares append-only (the proxy's audit log)
only SELECT and INSERT. ``cathouse migrate`` applies the grants after the migrations;
``cathouse db grant-sql`` prints the same statements for a server managed by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cathouse.platform.service import Component
from cathouse.platform.settings import Settings

# The role the embedded database's services connect as, and `cathouse db grant-sql`'s default.
SERVICE_ROLE = "cathouse_service"
VERSION_TABLE = "alembic_version"

DUPLICATE_OBJECT = "42710"
UNIQUE_VIOLATION = "23505"  # two CREATE ROLE at once can also end this way
INSUFFICIENT_PRIVILEGE = "42501"


class RoleError(Exception):
    """The services' role cannot be given least privilege as things stand; the message says why."""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def service_role(settings: Settings) -> str | None:
    """The services' role when it is not the owner: the user of ``database_url`` when
    ``migration_database_url`` connects as someone else; otherwise ``None`` (one role for all)."""
    if settings.migration_database_url is None or settings.database_url is None:
        return None
    service = make_url(settings.database_url.get_secret_value()).username
    owner = make_url(settings.migration_database_url.get_secret_value()).username
    return service if service and service != owner else None


def service_password(settings: Settings) -> str | None:
    if settings.database_url is None:
        return None
    return make_url(settings.database_url.get_secret_value()).password


def create_role_sql(role: str) -> str:
    """Create the role unless it exists: safe to run again, and beside another run."""
    return (
        f"DO $$ BEGIN\n  CREATE ROLE {ident(role)} LOGIN;\n"
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;\nEND $$;"
    )


def grant_statements(role: str, components: Sequence[Component]) -> list[str]:
    """Every statement that gives ``role`` what the services need in ``components``' schemas,
    and takes away the rest. Idempotent; meant for one transaction, run by the schemas' owner."""
    r = ident(role)
    statements = [
        # PUBLIC may connect by default, but a managed server may have revoked that.
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), "
        f"{_literal(role)}); END $$"
    ]
    for component in components:
        s = ident(component.schema)
        statements += [
            f"GRANT USAGE ON SCHEMA {s} TO {r}",
            f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
            # From a clean slate each time, so a grant given by hand (TRUNCATE, ALL) goes too.
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
            f"REVOKE INSERT, UPDATE, DELETE ON {s}.{VERSION_TABLE} FROM {r}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {r}",
            # Tables the owner creates later are usable before the next grant runs.
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT EXECUTE ON FUNCTIONS TO {r}",
        ]
        for table in component.append_only:
            t = f"{s}.{ident(table.table)}"
            # Revoking table privileges revokes column privileges too: the columns come after.
            statements += [f"REVOKE ALL ON {t} FROM {r}", f"GRANT SELECT, INSERT ON {t} TO {r}"]
            if table.updatable:
                statements.append(f"GRANT UPDATE ({', '.join(ident(c) for c in table.updatable)}) ON {t} TO {r}")
    return statements


def grant_script(role: str, components: Sequence[Component]) -> str:
    """What ``cathouse db grant-sql`` prints: psql input for the owner, after ``cathouse migrate``."""
    lines = [
        f"-- Cat House: the services' role {role}. Run as the owner of the schemas, after `cathouse migrate`:",
        '--   cathouse db grant-sql | psql "$CATHOUSE_MIGRATION_DATABASE_URL"',
        f"-- then give the role a password (psql: \\password {role}) and put it in CATHOUSE_DATABASE_URL.",
        create_role_sql(role),
        "BEGIN;",
        *(f"{statement};" for statement in grant_statements(role, components)),
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


async def ensure_role(conn: AsyncConnection, role: str, password: str | None = None) -> bool:
    """Create ``role`` (LOGIN, with ``password`` if given) unless it exists; whether it was created.

    Role names belong to the whole server: another process may create the same one meanwhile,
    which is the same outcome as finding it.
    """
    if await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}):
        return False
    statement = f"CREATE ROLE {ident(role)} LOGIN" + (f" PASSWORD {_literal(password)}" if password else "")
    try:
        async with conn.begin_nested():
            await conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if state in (DUPLICATE_OBJECT, UNIQUE_VIOLATION):
            return False
        if state == INSUFFICIENT_PRIVILEGE:
            raise RoleError(
                f"the services' role {role} does not exist and this user may not create roles: "
                "create it (`cathouse db grant-sql` prints the SQL) and run `cathouse migrate` again"
            ) from None
        raise
    logger.info("database role created", role=role)
    return True


async def apply_grants(conn: AsyncConnection, role: str, components: Sequence[Component]) -> None:
    """Give ``role`` least privilege in those of ``components``' schemas that exist (one
    transaction: the caller commits). Refused when the role could get round the grants."""
    found = await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role})
    row = found.first()
    if row is None:
        raise RoleError(f"no database role named {role}: create it first (`cathouse db grant-sql` prints the SQL)")
    if row.rolsuper:
        raise RoleError(f"the services' role {role} is a superuser: no grant can hold it back")
    if await conn.scalar(text("SELECT current_user")) == role:
        raise RoleError(f"{role} is the services' role: grants must be given by the owner of the schemas")
    existing = set(
        (
            await conn.scalars(
                text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:s)"), {"s": [c.schema for c in components]}
            )
        ).all()
    )
    present = [c for c in components if c.schema in existing]
    if not present:
        return
    # A lock of its own: two `cathouse migrate` granting at once would otherwise collide.
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('cathouse.roles'))"))
    for statement in grant_statements(role, present):
        await conn.exec_driver_sql(statement)
    owned = (
        await conn.scalars(
            text(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ANY(:schemas) AND pg_get_userbyid(c.relowner) = :role "
                "UNION ALL SELECT format('schema %I', nspname) FROM pg_namespace "
                "WHERE nspname = ANY(:schemas) AND pg_get_userbyid(nspowner) = :role"
            ),
            {"schemas": [c.schema for c in present], "role": role},
        )
    ).all()
    if owned:
        raise RoleError(
            f"the services' role {role} owns {', '.join(sorted(owned)[:5])}{' …' if len(owned) > 5 else ''}: "
            f"an owner may change its tables whatever the grants; as the owner run REASSIGN OWNED BY {ident(role)} "
            "TO CURRENT_USER"
        )
    logger.info("database grants applied", role=role, schemas=[c.schema for c in present])


async def provide(
    engine: AsyncEngine, role: str, components: Sequence[Component], *, password: str | None = None
) -> None:
    """Create the services' role if needed and give it its grants, over the owner's ``engine``."""
    async with engine.connect() as conn:
        await ensure_role(conn, role, password)
        await conn.commit()
        await apply_grants(conn, role, components)
        await conn.commit()
