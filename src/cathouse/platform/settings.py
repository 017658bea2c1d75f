"""One settings model for the whole platform, read from ``CATHOUSE_*`` variables and ``.env``.

Nested sections use ``__``: ``CATHOUSE_CATALOG__POOL_SIZE=4``.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseModel):
    """What one service needs to run: where it listens and how many connections its process's pool
    holds when it runs alone (``cathouse serve``, ``cathouse up --split``). Pools never overflow:
    a request that finds every connection busy waits for one (``CATHOUSE_POOL_TIMEOUT``)."""

    port: int = Field(ge=1, le=65535)
    pool_size: int = Field(ge=1, le=100)


class AuthSettings(ServiceSettings):
    """The auth service: token lifetimes, password hashing and login throttling."""

    port: int = Field(default=8005, ge=1, le=65535)
    # Two: a login holds its connection while its password is hashed (in a thread).
    pool_size: int = Field(default=2, ge=1, le=100)
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=60)
    # A refresh token presented again this many seconds after it was rotated, by the client that
    # rotated it, gets the same successor (two tabs refreshing at once); later, or from another
    # client, it is reuse and revokes its family.
    refresh_reuse_grace: float = Field(default=10.0, ge=0, le=60)
    # argon2id at OWASP's minimum: 19 MiB, 2 iterations, 1 lane. Raising these rehashes at login.
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_iterations: int = Field(default=2, ge=2)
    argon2_lanes: int = Field(default=1, ge=1)
    login_rate: str = "30/minute"
    register_rate: str = "10/hour"
    signing_key_reload: float = Field(default=10.0, gt=0)


class CatalogSettings(ServiceSettings):
    """The catalog: what it accepts from publishers and where image assets live."""

    port: int = Field(default=8002, ge=1, le=65535)
    # Searches are one statement each and their facet counts are cached (facet_ttl).
    pool_size: int = Field(default=1, ge=1, le=100)
    # Plain-http base and webhook URLs, for cats running on a developer's machine.
    allow_http: bool = False
    # The manifest directory `POST /api/v1/cats/sync` reads; unset, the endpoint is off.
    manifest_dir: Path | None = None
    # Local asset storage when no S3 bucket is set; default: <data_dir>/assets.
    assets_dir: Path | None = None
    max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=4096 * 4096, ge=64 * 64)
    # Seconds a search's facet counts are reused for the same filters (0: count every time).
    facet_ttl: float = Field(default=30.0, ge=0, le=3600)


class InstallationSettings(ServiceSettings):
    """Installations: how provisioning webhooks are delivered and retried."""

    port: int = Field(default=8003, ge=1, le=65535)
    pool_size: int = Field(default=1, ge=1, le=100)
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    # Retry n waits about base * 2**n seconds (with jitter), at most max_backoff.
    webhook_backoff: float = Field(default=2.0, gt=0)
    webhook_max_backoff: float = Field(default=3600.0, gt=0)
    webhook_poll_interval: float = Field(default=0.5, gt=0, le=60)
    # Webhook URLs on loopback and private addresses: for cats on a developer's machine only.
    webhook_allow_private: bool = False
    # OAuth 2.0 with cats' providers: how long a call to a provider may take, how long an owner
    # has to grant access, and how early before expiry an access token is refreshed (at most a
    # quarter of its lifetime, so short-lived tokens are not refreshed on every call).
    oauth_timeout: float = Field(default=10.0, gt=0, le=60)
    oauth_state_ttl: int = Field(default=600, ge=30, le=3600)
    oauth_refresh_margin: float = Field(default=60.0, ge=0, le=3600)
    # Providers on loopback and private addresses: for development and tests only.
    oauth_allow_private: bool = False


class ProxySettings(ServiceSettings):
    """The proxy: limits and timeouts of calls to cats, rate limits, the SSRF guard, the audit log."""

    port: int = Field(default=8004, ge=1, le=65535)
    # One connection: lookups are cached and audit records written in batches.
    pool_size: int = Field(default=1, ge=1, le=100)
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    # Between two reads of the upstream's answer, and for the whole call.
    read_timeout: float = Field(default=30.0, gt=0, le=600)
    total_timeout: float = Field(default=60.0, gt=0, le=3600)
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    max_response_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    # Keep-alive connections kept open per upstream address.
    max_idle_connections: int = Field(default=32, ge=0, le=1024)
    # Requests per minute per user, across all of the user's installations.
    user_rate_per_minute: int = Field(default=1200, ge=1)
    # When Redis cannot answer: serve (fail open, counted in a metric) or refuse with 503.
    rate_limit_fail_closed: bool = False
    # Hosts (exact names) and networks (CIDR) the SSRF guard lets through: development and tests.
    allow_hosts: list[str] = Field(default_factory=list)
    dns_cache_ttl: float = Field(default=30.0, ge=0, le=3600)
    # How long an installation's grants, status and credentials are remembered by a proxy process.
    context_cache_ttl: float = Field(default=5.0, ge=0, le=300)
    # Idempotent calls: attempts on a connection error or a 502/503/504, and the longest wait.
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_backoff: float = Field(default=0.1, gt=0, le=10)
    retry_max_wait: float = Field(default=5.0, ge=0, le=60)
    # The circuit breaker per cat: consecutive failures that open it, and seconds it stays open.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_open_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Audit records: written in batches of at most this many, at least this often.
    audit_batch_size: int = Field(default=500, ge=1, le=10_000)
    audit_flush_interval: float = Field(default=0.2, gt=0, le=60)
    audit_retention_days: int = Field(default=90, ge=1)


class AuditSettings(BaseModel):
    """Checkpoints of the proxy's audit chain: its head signed at a cadence, with a key the
    database never holds, and kept outside PostgreSQL (see ``cathouse.proxy.audit.checkpoints``)."""

    # A file holding the Ed25519 private key: PEM (PKCS#8, as `openssl genpkey -algorithm ed25519`
    # writes it) or the raw 32-byte seed. Unset: generated once into <data dir>/secrets in
    # development and tests; the proxy refuses to start without it in production.
    signing_key: Path | None = None
    # A checkpoint once this many records were committed since the last one, or this many seconds
    # after a commit that no checkpoint covers yet: records newer than that can vanish unseen.
    checkpoint_records: int = Field(default=1000, ge=1, le=1_000_000)
    checkpoint_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # Where checkpoints go without an S3 bucket; default: <data dir>/audit-checkpoints.
    checkpoint_dir: Path | None = None
    # Their key prefix in the bucket when CATHOUSE_S3_BUCKET is set.
    s3_prefix: str = Field(default="audit-checkpoints/", min_length=1)


class ActivitySettings(ServiceSettings):
    """The activity read model: how long its Redis lists are, and how live streams behave."""

    port: int = Field(default=8006, ge=1, le=65535)
    # Plus, while a live stream is open, the process's LISTEN connection.
    pool_size: int = Field(default=1, ge=1, le=100)
    # With CATHOUSE_REDIS_URL set the read model lives in Redis, in lists capped at these lengths
    # (PostgreSQL keeps everything). Keys start with the prefix, so several platforms share a server.
    global_feed_cap: int = Field(default=1000, ge=10, le=1_000_000)
    user_feed_cap: int = Field(default=100, ge=10, le=100_000)
    cat_feed_cap: int = Field(default=1000, ge=10, le=1_000_000)
    redis_prefix: str = Field(default="cathouse:activity:", min_length=1, max_length=64)
    # How long Redis remembers an applied event id (a redelivery later than this applies again); 0: forever.
    dedupe_ttl_days: int = Field(default=30, ge=0, le=3650)
    # Live streams: a comment line this often keeps proxies from closing an idle stream; new entries
    # are announced by NOTIFY, and looked for at least this often in case a notification was missed.
    stream_heartbeat: float = Field(default=15.0, gt=0, le=300)
    stream_poll_interval: float = Field(default=2.0, gt=0, le=60)
    # A stream ends after this long and the client reconnects with Last-Event-ID, losing nothing.
    stream_max_age: float = Field(default=3600.0, gt=0)
    # How often the consumer's lag (events waiting in the outbox) is measured.
    lag_interval: float = Field(default=5.0, gt=0, le=3600)
    rebuild_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Days of proxy calls a cat's statistics show.
    proxy_days: int = Field(default=30, ge=1, le=366)


class WebSettings(BaseModel):
    """The web pages (``cathouse.web``): a client of the services' public HTTP API, holding no
    database. In the one-process platform they call the API inside the process; served alone
    (``cathouse serve web``) they call ``api_url``: the gateway; unset, each service on this
    machine at its own port (``CATHOUSE_AUTH__PORT``...), as ``cathouse up --split`` runs them."""

    port: int = Field(default=8007, ge=1, le=65535)
    api_url: str | None = Field(default=None, pattern=r"^https?://")
    api_timeout: float = Field(default=5.0, gt=0, le=60)


class TokenSettings(BaseModel):
    """How every service checks an access token."""

    issuer: str = "cathouse"
    audience: str = "cathouse"
    access_token_ttl: int = Field(default=15 * 60, ge=60, le=3600)
    leeway: int = Field(default=30, ge=0, le=30)
    # Where services running apart from auth fetch the public keys.
    jwks_url: str = "http://127.0.0.1:8005/api/v1/auth/.well-known/jwks.json"
    jwks_refresh_interval: float = Field(default=30.0, gt=0)
    verified_cache_size: int = Field(default=10_000, ge=0)
    # How often each process reads the revocations changed lately, besides when PostgreSQL
    # notifies it: the longest a disabled account or a demotion takes to reach it.
    revocation_poll_interval: float = Field(default=1.0, gt=0, le=5)


class EventSettings(BaseModel):
    """The outbox relay and, with ``CATHOUSE_BROKER_URL`` set, the broker's names and consumers."""

    # The pool of the ``cathouse relay`` process, shared by the relay and every worker: at least two,
    # as the relay's transaction stays open while the workers' handlers run.
    pool_size: int = Field(default=2, ge=2, le=100)
    # LISTEN/NOTIFY wakes the relay when an event commits; the poll is then only a safety net.
    # Without it (``listen=false``, one connection fewer) lower the poll to about 0.2 s.
    listen: bool = True
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    max_backoff: float = Field(default=60.0, gt=0)
    # The longest pause of the relay while the broker is unreachable: how soon it drains once back.
    broker_max_backoff: float = Field(default=5.0, gt=0, le=300)
    # Names on the broker: NATS stream <PREFIX>_EVENTS and subjects <prefix>.events.*, Redis keys
    # <prefix>:events:*, Kafka topic <prefix>.events. Different prefixes share a server safely.
    broker_prefix: str = Field(default="cathouse", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    # An aggregate's events go to one partition (by its key) and each partition is handled one
    # event at a time per consumer group: the partitions are a group's parallelism. Change it only
    # with the broker drained: a key may move to another partition.
    broker_partitions: int = Field(default=8, ge=1, le=256)
    broker_publish_timeout: float = Field(default=5.0, gt=0, le=120)
    # A consumer whose handler fails gets the event again after base * 2**n seconds, at most max.
    consumer_backoff: float = Field(default=0.5, gt=0, le=60)
    consumer_max_backoff: float = Field(default=30.0, gt=0, le=3600)
    # How long a consumer may hold a message (NATS ack wait, Redis partition lease) without a sign
    # of life before another member of its group takes it over.
    consumer_lease: float = Field(default=30.0, ge=1, le=3600)


class MetricsSettings(BaseModel):
    """Where Prometheus reads ``/metrics``, and who may.

    With ``port`` set, a listener of its own on ``host:port`` serves them (loopback by default:
    for an agent on the same machine) and the public port does not. With ``token`` set, the
    public port's ``/metrics`` answers only ``Authorization: Bearer <token>``. In production,
    with neither, the public port does not serve them at all.
    """

    port: int | None = Field(default=None, ge=1, le=65535)
    host: str = "127.0.0.1"
    token: SecretStr | None = None


MIN_SECRET_LENGTH = 32


# The connection budget: at the defaults every process together holds at most 10 connections (a
# free-tier managed PostgreSQL), 6 as one process; see ``connection_budget`` and deploy/README.md.
class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CATHOUSE_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
        extra="ignore",
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".cathouse")
    # The services' role: reads and writes their data, cannot change the schema or rewrite audit.
    database_url: SecretStr | None = None
    # The schemas' owner, for `cathouse migrate` and privileged jobs (audit pruning); unset: the
    # same URL as the services (one role does everything, as in a single-user setup).
    migration_database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    broker_url: SecretStr | None = None
    master_key: SecretStr | None = None
    # S3-compatible object storage for image assets; with no bucket, a local directory.
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = "assets/"

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Where browsers reach the platform (the gateway in a deployment): OAuth providers send owners
    # back to <public_url>/api/v1/oauth/callback. Unset: http://<host>:<port>.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+$")
    log_level: str = "INFO"
    log_json: bool = True
    # One JSON line per request (method, route template, status, duration, request and user id).
    access_log: bool = True
    # The interactive docs and the OpenAPI document; unset: on, except in production.
    docs: bool | None = None
    # Processes of `cathouse serve --workers` (which sets it): each takes its own metrics port.
    workers: int = Field(default=1, ge=1, le=256)

    # The one-process platform (``cathouse up``): one pool for every service, the relay and the
    # workers (at least two: the relay's transaction stays open while the handlers run).
    pool_size: int = Field(default=5, ge=2, le=100)
    pool_pre_ping: bool = True
    pool_recycle: int = Field(default=1800, ge=-1)
    # How long a request waits for a connection of its process's pool before it fails.
    pool_timeout: float = Field(default=30.0, gt=0)
    db_connect_timeout: float = Field(default=5.0, gt=0)

    auth: AuthSettings = AuthSettings()
    catalog: CatalogSettings = CatalogSettings()
    installation: InstallationSettings = InstallationSettings()
    proxy: ProxySettings = ProxySettings()
    audit: AuditSettings = AuditSettings()
    activity: ActivitySettings = ActivitySettings()
    web: WebSettings = WebSettings()
    events: EventSettings = EventSettings()
    tokens: TokenSettings = TokenSettings()
    metrics: MetricsSettings = MetricsSettings()

    @property
    def docs_enabled(self) -> bool:
        return self.docs if self.docs is not None else self.env is not Environment.PRODUCTION

    @property
    def metrics_on_public_port(self) -> bool:
        """Whether the app's own port serves ``/metrics`` (to whom: see ``metrics.token``)."""
        if self.metrics.port is not None:
            return False
        return self.metrics.token is not None or self.env is not Environment.PRODUCTION

    @model_validator(mode="after")
    def _no_generated_secrets_outside_development(self) -> Settings:
        if self.env is not Environment.PRODUCTION:
            return self
        key = self.master_key.get_secret_value() if self.master_key else ""
        if len(key) < MIN_SECRET_LENGTH or "change-me" in key:
            raise ValueError(
                f"CATHOUSE_MASTER_KEY must be set to a real secret of at least {MIN_SECRET_LENGTH} characters "
                "in production: generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return self

    @model_validator(mode="after")
    def _no_guessable_metrics_token(self) -> Settings:
        token = self.metrics.token.get_secret_value() if self.metrics.token else None
        if self.env is Environment.PRODUCTION and token is not None and len(token) < MIN_SECRET_LENGTH:
            raise ValueError(f"CATHOUSE_METRICS__TOKEN must be at least {MIN_SECRET_LENGTH} characters in production")
        return self

    def service(self, name: str) -> ServiceSettings:
        section = getattr(self, name, None)
        if not isinstance(section, ServiceSettings):
            raise KeyError(f"no service named {name!r}")
        return section

    def owner_database_url(self) -> SecretStr | None:
        """The URL migrations and privileged jobs connect with."""
        return self.migration_database_url or self.database_url

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def public_origin(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def master_key_value(self) -> str:
        """The master key: from settings, or in development generated once into the data dir."""
        if self.master_key is not None:
            return self.master_key.get_secret_value()
        return dev_secret(self.secrets_dir, "master.key")


def connection_budget(settings: Settings) -> dict[str, int]:
    """The most connections each process of the split layout (``cathouse up --split``, or every
    service in a container of its own and ``cathouse relay``) holds at once: its pool, and its
    LISTEN connection where something listens (the activity hub while a stream is open, the relay).
    ``cathouse up`` alone holds ``pool_size`` + 1."""
    sections = {name: getattr(settings, name) for name in type(settings).model_fields}
    shares = {name: s.pool_size for name, s in sections.items() if isinstance(s, ServiceSettings)}
    shares["activity"] += 1
    shares["relay"] = settings.events.pool_size + int(settings.events.listen)
    return shares


def dev_secret(directory: Path, name: str) -> str:
    """Read a development secret, creating it (owner-only) the first time it is asked for."""
    path = directory / name
    if path.exists():
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    # O_EXCL: when two processes race to create it, one wins and the other reads the winner's.
    try:
        fd = path.open("x", encoding="utf-8")
    except FileExistsError:
        return path.read_text().strip()
    with fd:
        path.chmod(0o600)
        fd.write(value)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
