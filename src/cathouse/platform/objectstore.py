"""S3-compatible object storage (AWS S3, MinIO, R2, ...) through obstore, configured once from
the ``CATHOUSE_S3_*`` settings for whatever keeps objects there (image assets, audit checkpoints)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from obstore.store import S3Store

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

    from cathouse.platform.settings import Settings

# S3 requests give up rather than hold a request (and its worker) for ever.
S3_CLIENT_OPTIONS: ClientConfig = {"connect_timeout": "5s", "timeout": "30s"}


def s3_store(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    prefix: str = "",
) -> S3Store:
    config: S3Config = {"region": region}
    if endpoint_url:
        config["endpoint"] = endpoint_url
    # Without keys, the usual AWS sources (environment, instance role) are used.
    if access_key_id and secret_access_key:
        config["access_key_id"] = access_key_id
        config["secret_access_key"] = secret_access_key
    client_options = S3_CLIENT_OPTIONS.copy()
    # Plain http only for an endpoint that says so: a local MinIO or a test server.
    if endpoint_url and endpoint_url.startswith("http://"):
        client_options["allow_http"] = True
    return S3Store(bucket, prefix=prefix or None, config=config, client_options=client_options)


def s3_store_from_settings(settings: Settings, prefix: str) -> S3Store:
    """The configured bucket (``CATHOUSE_S3_BUCKET``, which must be set), under ``prefix``."""
    if not settings.s3_bucket:
        raise ValueError("no S3 bucket is configured (CATHOUSE_S3_BUCKET)")
    return s3_store(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
        secret_access_key=settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None,
        prefix=prefix,
    )
