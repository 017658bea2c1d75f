"""Every event the platform publishes: its aggregate, payload fields and ``schema_version``.

This is the one place the payloads are written down, read from the services' ``events`` modules
(``cathouse.auth.events``, ``cathouse.catalog.events``, ``cathouse.installation.events``) and the
proxy's credential verdicts (``cathouse.proxy.gateway``); ``tests/activity/test_catalogue.py``
fails when a module names an event this catalogue lacks. Every payload is a JSON object of
strings, numbers, booleans, lists and nulls; ids are UUIDs as strings. No payload carries a
secret, a credential or a setting's value: ``fields`` lists name fields, never their contents.

A consumer applies an event whose type is listed here at a version it knows, and ignores (and
counts, in ``cathouse_activity_events_skipped_total``) any other: a producer may add a type or
a version before its consumers learn it. Adding a field keeps the version; removing or changing
the meaning of one raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Catalog: every payload has cat_id and slug; aggregate "cat".
CAT_SUBMITTED = "cat.submitted"
CAT_PUBLISHED = "cat.published"
CAT_REJECTED = "cat.rejected"
CAT_UPDATED = "cat.updated"
CAT_VERSION_PUBLISHED = "cat.version_published"
CAT_SUSPENDED = "cat.suspended"
CAT_REINSTATED = "cat.reinstated"
CAT_DELISTED = "cat.delisted"
CAT_SYNC_FAILED = "cat.sync_failed"
# Reviews: aggregate "cat" too, so a cat's rating events keep their order.
REVIEW_CREATED = "review.created"
REVIEW_UPDATED = "review.updated"
REVIEW_DELETED = "review.deleted"
REVIEW_HIDDEN = "review.hidden"
REVIEW_RESTORED = "review.restored"
REVIEW_REPLIED = "review.replied"
# Installations: aggregate "installation".
INSTALLATION_CREATED = "installation.created"
INSTALLATION_STATUS_CHANGED = "installation.status_changed"
INSTALLATION_PERMISSIONS_CHANGED = "installation.permissions_changed"
INSTALLATION_UPGRADED = "installation.upgraded"
INSTALLATION_UPDATED = "installation.updated"
INSTALLATION_SECRETS_REPLACED = "installation.secrets_replaced"
# The proxy's verdicts on an installation's credentials: aggregate "installation".
CREDENTIALS_REJECTED = "proxy.credentials_rejected"
CREDENTIALS_ACCEPTED = "proxy.credentials_accepted"
# Auth: aggregate "user".
USER_REGISTERED = "user.registered"
USER_UPDATED = "user.updated"
USER_ROLES_CHANGED = "user.roles_changed"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_DELETED = "user.deleted"
REFRESH_TOKEN_REUSED = "auth.refresh_token_reused"  # noqa: S105 - an event name


@dataclass(frozen=True)
class EventSpec:
    type: str
    aggregate: str
    schema_version: int
    # Every field the payload has; those in brackets only sometimes.
    fields: tuple[str, ...]
    meaning: str


_CAT = ("cat_id", "slug")
_REVIEW = (*_CAT, "review_id")
_INSTALLATION = ("installation_id", "user_id", "cat_id", "version")

SPECS: tuple[EventSpec, ...] = (
    EventSpec(CAT_SUBMITTED, "cat", 1, (*_CAT, "publisher_id"), "A developer submitted a draft cat for review."),
    EventSpec(
        CAT_PUBLISHED,
        "cat",
        1,
        (*_CAT, "name", "category", "publisher_id", "version"),
        "An admin approved the cat (or a manifest sync published it); version is the current one or null.",
    ),
    EventSpec(CAT_REJECTED, "cat", 1, (*_CAT, "reason", "by"), "An admin turned a submitted cat down."),
    EventSpec(CAT_UPDATED, "cat", 1, (*_CAT, "fields"), "A published cat's listing changed; fields names them."),
    EventSpec(
        CAT_VERSION_PUBLISHED,
        "cat",
        1,
        (*_CAT, "version", "permissions", "current"),
        "A published cat got a new version; current says whether installs now get it by default.",
    ),
    EventSpec(CAT_SUSPENDED, "cat", 1, (*_CAT, "reason", "by"), "An admin took a published cat down for now."),
    EventSpec(CAT_REINSTATED, "cat", 1, (*_CAT, "by"), "A suspended or delisted cat is published again."),
    EventSpec(
        CAT_DELISTED,
        "cat",
        1,
        (*_CAT, "reason", "by", "orphaned"),
        "The cat left the catalog for good; by is null and orphaned true when its manifest folder went.",
    ),
    EventSpec(CAT_SYNC_FAILED, "cat", 1, (*_CAT, "problems"), "A synced cat's manifest no longer validates."),
    EventSpec(
        REVIEW_CREATED,
        "cat",
        1,
        (*_REVIEW, "user_id", "rating", "verified"),
        "A user reviewed a cat (rating 1-5); verified when they had installed it.",
    ),
    EventSpec(
        REVIEW_UPDATED,
        "cat",
        1,
        (*_REVIEW, "user_id", "rating", "previous_rating"),
        "A review's author edited it.",
    ),
    EventSpec(REVIEW_DELETED, "cat", 1, (*_REVIEW, "user_id", "rating"), "The author or an admin deleted a review."),
    EventSpec(REVIEW_HIDDEN, "cat", 1, (*_REVIEW, "reason", "by"), "An admin hid a review: its rating stops counting."),
    EventSpec(REVIEW_RESTORED, "cat", 1, (*_REVIEW, "by"), "An admin made a hidden review visible again."),
    EventSpec(REVIEW_REPLIED, "cat", 1, (*_REVIEW, "by"), "The cat's publisher replied to a review."),
    EventSpec(
        INSTALLATION_CREATED,
        "installation",
        1,
        (*_INSTALLATION, "name", "permissions"),
        "A user installed a cat; it starts pending.",
    ),
    EventSpec(
        INSTALLATION_STATUS_CHANGED,
        "installation",
        1,
        (*_INSTALLATION, "from", "to", "reason", "by", "[by_admin]"),
        "An installation moved through its lifecycle (pending, provisioning, active, ..., uninstalled); "
        "by_admin (true) when an admin suspended or uninstalled another user's installation, with the reason.",
    ),
    EventSpec(
        INSTALLATION_PERMISSIONS_CHANGED,
        "installation",
        1,
        (*_INSTALLATION, "granted", "revoked"),
        "The owner's consent changed: permissions granted and revoked.",
    ),
    EventSpec(
        INSTALLATION_UPGRADED,
        "installation",
        1,
        (*_INSTALLATION, "from_version"),
        "The installation moved to another version of its cat (version is the new one).",
    ),
    EventSpec(INSTALLATION_UPDATED, "installation", 1, (*_INSTALLATION, "fields"), "Its name or settings changed."),
    EventSpec(
        INSTALLATION_SECRETS_REPLACED,
        "installation",
        1,
        (*_INSTALLATION, "fields"),
        "Secret fields were replaced; fields names them, never their values.",
    ),
    EventSpec(
        CREDENTIALS_REJECTED,
        "installation",
        1,
        ("installation_id", "cat_id", "upstream_status"),
        "The cat refused the installation's credentials (it answered 401).",
    ),
    EventSpec(
        CREDENTIALS_ACCEPTED,
        "installation",
        1,
        ("installation_id", "cat_id"),
        "The cat accepted credentials it had refused before.",
    ),
    EventSpec(
        USER_REGISTERED,
        "user",
        1,
        ("user_id", "[display_name]", "[roles]", "[by]"),
        "An account was created: by sign-up (display_name), or as an admin from the CLI (roles, by).",
    ),
    EventSpec(USER_UPDATED, "user", 1, ("user_id", "fields"), "A user changed their profile; fields names them."),
    EventSpec(USER_ROLES_CHANGED, "user", 1, ("user_id", "roles", "by"), "An admin (or the CLI) changed roles."),
    EventSpec(USER_DISABLED, "user", 1, ("user_id", "by"), "An admin disabled the account."),
    EventSpec(USER_ENABLED, "user", 1, ("user_id", "by"), "An admin enabled the account again."),
    EventSpec(USER_DELETED, "user", 1, ("user_id",), "The user deleted their account."),
    EventSpec(
        REFRESH_TOKEN_REUSED,
        "user",
        1,
        ("user_id", "family_id"),
        "A used refresh token came back: that login's every session was ended.",
    ),
)

CATALOGUE: dict[str, EventSpec] = {spec.type: spec for spec in SPECS}


def spec(event_type: str) -> EventSpec | None:
    return CATALOGUE.get(event_type)
