"""API models of cats and their versions. A manifest (``cat.yaml``) is built from the same parts."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema_rs
from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    UrlConstraints,
    model_validator,
)

from cathouse.catalog.models import AssetKind, CatSource, CatStatus, VersionStatus
from cathouse.contracts.permissions import PermissionName
from cathouse.contracts.reads import secret_fields
from cathouse.platform.baseurl import UnsafeURL, parse_base_url
from cathouse.platform.schemas import Email, HttpsUrl, NonBlankLine, NonBlankProse, NotNull, Strict, Text, examples_of

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
# Slugs that name routes under /api/v1/cats rather than a cat.
RESERVED_SLUGS = frozenset({"mine", "categories", "sync", "validate", "assets", "reviews", "search", "review-queue"})
# semver.org's own expression, without build metadata (it does not order versions).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
PATH_PATTERN = r"^/$|^(/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[a-z_][a-z0-9_]*\}))+/?$"
MAX_SETTINGS_SCHEMA_BYTES = 32_768


def _not_reserved(value: str) -> str:
    if value in RESERVED_SLUGS:
        raise ValueError(f"'{value}' is reserved; choose another slug")
    return value


def _semver(value: str) -> str:
    if not SEMVER.match(value):
        raise ValueError("must be a semantic version such as 1.4.0 or 2.0.0-beta.1")
    return value


Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=SLUG_PATTERN),
    AfterValidator(_not_reserved),
]
Tag = Annotated[str, StringConstraints(max_length=32, pattern=SLUG_PATTERN)]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Tags = Annotated[list[Tag], Field(max_length=10), AfterValidator(_unique)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=80), NonBlankLine]
Summary = Annotated[str, StringConstraints(min_length=1, max_length=200), NonBlankLine]
Markdown = Annotated[str, StringConstraints(max_length=20_000), Text(prose=True, strip=False)]
# http only where the platform allows it (CatalogService.check_scheme); the document says which.
WebUrl = Annotated[
    HttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["https", "http"]), HttpsUrl(http_in_development=True)
]


def _base_url_as_written(value: object) -> object:
    """Refuse what the proxy would refuse in the text as written, before the URL parser tidies it
    (it reads a backslash as a slash, where other parsers read it otherwise)."""
    if isinstance(value, str) and re.match(r"(?i)https?://", value):
        try:
            parse_base_url(value)
        except UnsafeURL as exc:
            raise ValueError(f"the base URL {exc}") from None
    return value


BaseUrl = Annotated[WebUrl, BeforeValidator(_base_url_as_written)]
SemVer = Annotated[
    str, StringConstraints(max_length=64), AfterValidator(_semver), Field(json_schema_extra={"pattern": SEMVER.pattern})
]
FieldName = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
HeaderName = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


def semver_key(version: str) -> tuple[int, int, int, str | None]:
    match = SEMVER.match(version)
    assert match, version
    return int(match[1]), int(match[2]), int(match[3]), match[4]


_CAT_EXAMPLE = {
    "slug": "points-ledger",
    "name": "Points Ledger",
    "summary": "A ledger of points per user, with idempotent awards and balances you can trust.",
    "description": "# Points Ledger\n\nEvery point earned or spent is an entry in a ledger.",
    "category": "points",
    "tags": ["points", "ledger"],
    "homepage": "https://points-ledger.example.com",
}


class CatFields(Strict):
    name: Name
    summary: Summary
    description: Markdown = Field(default="", description="Markdown.")
    category: str = Field(max_length=32, pattern=SLUG_PATTERN, description="A slug from `GET /api/v1/cats/categories`.")
    tags: Tags = Field(default_factory=list)
    homepage: WebUrl | None = None
    support_email: Email | None = None
    support_url: WebUrl | None = None


class CatIn(CatFields):
    model_config = ConfigDict(json_schema_extra=examples_of("CatIn", _CAT_EXAMPLE))

    slug: Slug


class CatUpdate(Strict):
    """Only what is sent changes; the slug never does (installations and links use it)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"summary": "Points per user, with reversals.", "tags": ["points", "audit"]}]}
    )

    name: Annotated[Name | None, NotNull()] = None
    summary: Annotated[Summary | None, NotNull()] = None
    description: Annotated[Markdown | None, NotNull()] = None
    category: Annotated[str | None, Field(max_length=32, pattern=SLUG_PATTERN), NotNull()] = None
    tags: Annotated[Tags | None, NotNull()] = None
    homepage: WebUrl | None = None
    support_email: Email | None = None
    support_url: WebUrl | None = None

    @model_validator(mode="after")
    def _required_fields_stay(self) -> CatUpdate:
        for field in ("name", "summary", "description", "category", "tags"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


# How the installation's secret fields reach the cat's API.
class BearerCredentials(Strict):
    type: Literal["bearer"]
    field: FieldName = Field(description="The secret field sent as `Authorization: Bearer <value>`.")

    def fields(self) -> list[str]:
        return [self.field]


class BasicCredentials(Strict):
    type: Literal["basic"]
    username_field: FieldName
    password_field: FieldName

    def fields(self) -> list[str]:
        return [self.username_field, self.password_field]


class HeaderCredentials(Strict):
    type: Literal["header"]
    header: HeaderName = Field(examples=["X-Api-Key"])
    field: FieldName

    def fields(self) -> list[str]:
        return [self.field]


class QueryCredentials(Strict):
    type: Literal["query"]
    param: FieldName = Field(examples=["api_key"])
    field: FieldName

    def fields(self) -> list[str]:
        return [self.field]


# RFC 6749 3.3: a scope token is printable ASCII without spaces, quotes or backslashes.
ScopeToken = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21\x23-\x5B\x5D-\x7E]+$")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# What the platform itself puts in an authorization request: a manifest may not override it.
OAUTH_RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}
)


class OAuth2Credentials(Strict):
    """The installation's access token comes from the cat's OAuth 2.0 provider: granted by its owner
    in the browser (authorization_code) or issued to the platform's client (client_credentials).
    The platform keeps the tokens sealed, refreshes them before they expire and injects the current
    one. The client id and secret are set apart, by the publisher (`PUT /api/v1/cats/{slug}/oauth-client`)."""

    type: Literal["oauth2"]
    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    authorization_url: BaseUrl | None = Field(
        default=None, description="Where the owner grants access (authorization_code only)."
    )
    token_url: BaseUrl
    revocation_url: BaseUrl | None = Field(default=None, description="RFC 7009: tokens are revoked here on uninstall.")
    scopes: list[ScopeToken] = Field(default_factory=list, max_length=50)
    scope_separator: Literal[" ", ","] = " "
    # Strict: a JSON 0 is not false.
    pkce: bool = Field(default=True, strict=True, description="Send an S256 code challenge (RFC 7636).")
    token_placement: Literal["header", "query"] = Field(
        default="header", description="`Authorization: Bearer <token>`, or the query parameter `query_param`."
    )
    query_param: FieldName = "access_token"
    extra_authorize_params: dict[ParamName, Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=dict, max_length=20, examples=[{"access_type": "offline", "prompt": "consent"}]
    )

    @model_validator(mode="after")
    def _grant_needs(self) -> OAuth2Credentials:
        if self.grant == "authorization_code" and self.authorization_url is None:
            raise ValueError("the authorization_code grant needs an authorization_url")
        if self.grant == "client_credentials" and self.authorization_url is not None:
            raise ValueError("the client_credentials grant has no authorization_url")
        reserved = sorted(OAUTH_RESERVED_PARAMS & set(self.extra_authorize_params))
        if reserved:
            raise ValueError(f"extra_authorize_params may not set {', '.join(reserved)}: the platform does")
        return self

    def fields(self) -> list[str]:
        return []  # nothing typed in by the installer: the tokens come from the provider

    def urls(self) -> dict[str, object]:
        return {
            "authorization_url": self.authorization_url,
            "token_url": self.token_url,
            "revocation_url": self.revocation_url,
        }


Credentials = Annotated[
    BearerCredentials | BasicCredentials | HeaderCredentials | QueryCredentials | OAuth2Credentials,
    Field(discriminator="type"),
]


class Permission(Strict):
    name: PermissionName
    description: Annotated[str, StringConstraints(min_length=1, max_length=200), NonBlankLine]
    required: bool = True


class Endpoint(Strict):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(max_length=300, pattern=PATH_PATTERN, examples=["/users/{user_id}/points"])
    permission: PermissionName


def _check_settings_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(schema)) > MAX_SETTINGS_SCHEMA_BYTES:
        raise ValueError(f"must be at most {MAX_SETTINGS_SCHEMA_BYTES} bytes of JSON")
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ValueError('must be a JSON Schema with "type": "object" and "properties"')
    _local_refs_only(schema)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        raise ValueError(f"is not a valid JSON Schema: {exc.message}") from None
    except jsonschema_rs.ReferencingError as exc:
        raise ValueError(f"is not a valid JSON Schema: {exc}") from None
    return schema


def _local_refs_only(node: Any) -> None:
    # A remote $ref would make validating an installer's settings fetch a URL.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith("#")):
                raise ValueError("may only use local references ($ref starting with #)")
            _local_refs_only(value)
    elif isinstance(node, list):
        for item in node:
            _local_refs_only(item)


SettingsSchema = Annotated[
    dict[str, Any],
    AfterValidator(_check_settings_schema),
    Field(
        description="A JSON Schema (draft 2020-12) of what an installer provides: an object with "
        f"`properties`, local `$ref`s only, at most {MAX_SETTINGS_SCHEMA_BYTES} bytes of JSON. "
        "Secret fields are marked `writeOnly: true`: installers send them, nobody reads them back.",
        json_schema_extra={
            "required": ["type", "properties"],
            "properties": {"type": {"const": "object"}, "properties": {"type": "object"}},
        },
        examples=[
            {
                "type": "object",
                "properties": {"api_key": {"type": "string", "writeOnly": True}, "team": {"type": "string"}},
                "required": ["api_key"],
            }
        ],
    ),
]


class VersionSpec(Strict):
    """Everything installations and the proxy need from one version of a cat."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": "1.0.0",
                    "base_url": "https://api.points-ledger.example.com/v1",
                    "credentials": {"type": "bearer", "field": "api_token"},
                    "permissions": [
                        {"name": "points:read", "description": "Read balances."},
                        {"name": "points:write", "description": "Award and spend points.", "required": False},
                    ],
                    "endpoints": [
                        {"method": "GET", "path": "/users/{user_id}/balance", "permission": "points:read"},
                        {"method": "POST", "path": "/users/{user_id}/entries", "permission": "points:write"},
                    ],
                    "settings_schema": {
                        "type": "object",
                        "properties": {
                            "api_token": {"type": "string", "writeOnly": True},
                            "currency": {"type": "string", "default": "xp"},
                        },
                        "required": ["api_token"],
                    },
                    "webhook_url": "https://hooks.points-ledger.example.com/cathouse",
                    "rate_limit_per_minute": 600,
                    "changelog": "First release.",
                }
            ]
        }
    )

    version: SemVer
    base_url: BaseUrl = Field(
        description="The cat's API; https unless the platform allows http for development. No credentials, query, "
        "fragment or backslash; a literal address must be public."
    )
    credentials: Credentials
    permissions: list[Permission] = Field(max_length=50)
    endpoints: list[Endpoint] = Field(min_length=1, max_length=200)
    settings_schema: SettingsSchema
    webhook_url: WebUrl | None = Field(default=None, description="Receives signed provisioning webhooks.")
    rate_limit_per_minute: int = Field(ge=1, le=100_000, description="Requests per minute per installation.")
    changelog: Annotated[str, StringConstraints(max_length=5000)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> VersionSpec:
        names = [p.name for p in self.permissions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"permissions are declared twice: {', '.join(duplicates)}")
        undeclared = sorted({e.permission for e in self.endpoints} - set(names))
        if undeclared:
            raise ValueError(f"the endpoint map uses undeclared permissions: {', '.join(undeclared)}")
        routes = [(e.method, e.path) for e in self.endpoints]
        repeated = sorted({f"{m} {p}" for m, p in routes if routes.count((m, p)) > 1})
        if repeated:
            raise ValueError(f"the endpoint map names a route twice: {', '.join(repeated)}")
        secrets = set(secret_fields(self.settings_schema))
        missing = [f for f in self.credentials.fields() if f not in secrets]
        if missing:
            raise ValueError(
                f"credential fields must be writeOnly string properties of settings_schema: {', '.join(missing)}"
            )
        return self


class PermissionOut(BaseModel):
    name: str
    description: str
    required: bool


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: str
    status: Literal[VersionStatus.DRAFT, VersionStatus.PUBLISHED]
    base_url: str
    credentials: dict[str, Any]
    permissions: list[PermissionOut]
    endpoints: list[dict[str, Any]]
    settings_schema: dict[str, Any]
    secret_fields: list[str]
    rate_limit_per_minute: int
    changelog: str | None
    created_at: datetime
    published_at: datetime | None
    webhook_url: str | None = Field(default=None, description="Shown to the cat's publisher and admins only.")


class VersionBrief(BaseModel):
    version: str
    status: Literal[VersionStatus.DRAFT, VersionStatus.PUBLISHED]
    published_at: datetime | None


class Publisher(BaseModel):
    id: uuid.UUID | None = Field(description="None for cats the platform publishes itself.")
    display_name: str


class Rating(BaseModel):
    count: int
    average: float | None
    histogram: dict[str, int] = Field(description="Reviews per star, '1' to '5'.")


class AssetOut(BaseModel):
    id: uuid.UUID
    kind: Literal[AssetKind.ICON, AssetKind.SCREENSHOT]
    url: str
    content_type: str
    width: int
    height: int
    size: int


_SUMMARY_EXAMPLE = {
    "slug": "points-ledger",
    "name": "Points Ledger",
    "summary": "A ledger of points per user, with idempotent awards and balances you can trust.",
    "category": "points",
    "tags": ["points", "ledger"],
    "publisher": {"id": "5d1c2f4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f", "display_name": "Ledger Labs"},
    "status": "published",
    "rating": {"count": 12, "average": 4.5, "histogram": {"1": 0, "2": 0, "3": 1, "4": 4, "5": 7}},
    "install_count": 31,
    "current_version": "1.1.0",
    "icon_url": "/api/v1/cats/assets/3f2a9c0e.png",
    "published_at": "2026-05-01T12:00:00Z",
}


# Every status, spelled as a Literal rather than the enum so that the OpenAPI document lists
# the values in place, as it does for every other closed set here.
CatStatusOut = Literal[
    CatStatus.DRAFT,
    CatStatus.PENDING_REVIEW,
    CatStatus.PUBLISHED,
    CatStatus.REJECTED,
    CatStatus.SUSPENDED,
    CatStatus.DELISTED,
]


class CatSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples_of("CatSummary", _SUMMARY_EXAMPLE))

    slug: str
    name: str
    summary: str
    category: str
    tags: list[str]
    publisher: Publisher
    status: CatStatusOut
    rating: Rating
    install_count: int
    current_version: str | None
    icon_url: str | None
    published_at: datetime | None


class SyncProblem(BaseModel):
    file: str
    loc: str
    message: str


class CatDetail(CatSummary):
    id: uuid.UUID
    description: str
    homepage: str | None
    support_email: str | None
    support_url: str | None
    permissions: list[str]
    active_install_count: int
    version: VersionOut | None = Field(description="The current (newest published) version.")
    versions: list[VersionBrief]
    screenshots: list[AssetOut]
    created_at: datetime
    updated_at: datetime
    moderation_reason: str | None = Field(default=None, description="Shown to the publisher and admins only.")
    source: Literal[CatSource.API, CatSource.MANIFEST]
    sync_errors: list[SyncProblem] | None = Field(
        default=None, description="What the last manifest sync refused (publisher and admins only)."
    )
    orphaned: bool


class Reason(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "The support address bounces."}]})

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), NonBlankProse]


class Facet(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    category: list[Facet]
    tag: list[Facet]


class SearchPage(BaseModel):
    items: list[CatSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; absent on the last one.")
    facets: Facets | None = Field(description="Counts over every match; on the first page only.")


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str
    description: str
    cat_count: int = Field(description="Published cats in the category.")


# A cat's slug in a path: one that cannot be a slug (a NUL, spaces, capitals) is refused with 422
# before it reaches the database.
SlugPath = Annotated[str, Path(max_length=63, pattern=SLUG_PATTERN, description="The cat's slug.")]
