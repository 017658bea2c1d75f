"""Manifests over HTTP: their JSON Schema, a check before committing one, and an admin's sync."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from cathouse.catalog.assets.router import storage as asset_storage
from cathouse.catalog.assets.storage import AssetStorage
from cathouse.catalog.dependencies import Accounts, AppSettings, Cats, Session
from cathouse.catalog.manifests import MAX_MANIFEST_BYTES, ManifestProblem, manifest_json_schema, parse_manifest
from cathouse.catalog.schemas import SyncProblem
from cathouse.catalog.sync import CatalogSync
from cathouse.platform.errors import CatHouseError, Conflict
from cathouse.platform.openapi import problems
from cathouse.platform.requests import read_body
from cathouse.platform.security import AdminUser, DeveloperUser

router = APIRouter(prefix="/api/v1/cats", tags=["manifests"])

SCHEMA_PATH = "/api/v1/cats/manifest.schema.json"
_EXAMPLE_YAML = """\
slug: points-ledger
name: Points Ledger
summary: A ledger of points per user, with idempotent awards and balances you can trust.
category: points
tags: [points, ledger]
versions:
  - version: 1.0.0
    base_url: https://api.points-ledger.example.com/v1
    credentials: {type: bearer, field: api_token}
    permissions:
      - {name: "points:read", description: "Read balances."}
    endpoints:
      - {method: GET, path: "/users/{user_id}/balance", permission: "points:read"}
    settings_schema:
      type: object
      properties:
        api_token: {type: string, writeOnly: true, minLength: 20}
      required: [api_token]
"""
# Whatever is sent is checked and reported on, a missing or non-mapping body included (as a
# problem of the report, not a refusal): what `GET manifest.schema.json` describes is the goal.
MANIFEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": f"One manifest, as the text of `cat.yaml` or `cat.json` ([its schema]({SCHEMA_PATH})); "
        "anything else is reported as a problem. (JSON is YAML too; `file=cat.json` reads it as JSON.)",
        # The text as bytes: any text is a manifest to check, and a generated client sends a file's bytes.
        "content": {"application/yaml": {"schema": {"type": "string", "format": "binary"}, "example": _EXAMPLE_YAML}},
    }
}


class ManifestTooLarge(CatHouseError):
    """The manifest is larger than accepted."""

    status = 413
    title = "Content Too Large"


class ValidationReport(BaseModel):
    valid: bool
    problems: list[SyncProblem]
    note: str = (
        "Images are not checked here, only named: `cathouse catalog validate DIR` checks a whole folder, "
        "images included."
    )


class SyncedCat(BaseModel):
    folder: str
    slug: str | None
    result: Literal["created", "updated", "unchanged", "failed", "orphaned"]
    problems: list[SyncProblem]


class SyncReport(BaseModel):
    cats: list[SyncedCat]
    summary: dict[str, int]


@router.get(
    "/manifest.schema.json",
    response_model=dict[str, Any],
    summary="The JSON Schema of a cat manifest (cat.yaml / cat.json)",
)
async def manifest_schema(request: Request) -> dict[str, Any]:
    allow_http = request.app.state.settings.catalog.allow_http
    return manifest_json_schema(schema_id=str(request.url_for("manifest_schema")), allow_http=allow_http)


@router.post(
    "/validate",
    response_model=ValidationReport,
    openapi_extra=MANIFEST_BODY,
    summary="Check a manifest before committing it: every problem, with its field path",
    responses=problems(ManifestTooLarge),
)
async def validate(
    request: Request,
    user: DeveloperUser,
    cats: Cats,
    file: Annotated[str, Query(max_length=200, description="The name to report problems under.")] = "cat.yaml",
) -> ValidationReport:
    text = await read_body(request, MAX_MANIFEST_BYTES, ManifestTooLarge)
    manifest, problems = await asyncio.to_thread(parse_manifest, text, file=file)
    if manifest is not None:
        failures: list[CatHouseError] = []
        try:
            await cats.check_fields(manifest.model_dump(mode="json"), loc="")
        except CatHouseError as error:
            failures.append(error)
        for index, spec in enumerate(manifest.versions):
            try:
                cats.check_base_url(spec.base_url, f"versions.{index}.base_url")
            except CatHouseError as error:
                failures.append(error)
        for failure in failures:
            for found in failure.extra.get("errors", []):
                problems.append(ManifestProblem(file, str(found["loc"]), str(found["message"])))
    return ValidationReport(valid=not problems, problems=[SyncProblem(**vars(p)) for p in problems])


@router.post(
    "/sync",
    response_model=SyncReport,
    summary="Sync the configured manifest directory (admins)",
    responses=problems((Conflict, "No manifest directory is configured (`CATHOUSE_CATALOG__MANIFEST_DIR`).")),
)
async def sync(
    admin: AdminUser,
    session: Session,
    settings: AppSettings,
    storage: Annotated[AssetStorage, Depends(asset_storage)],
    accounts: Accounts,
) -> SyncReport:
    directory = settings.catalog.manifest_dir
    if directory is None or not directory.is_dir():
        raise Conflict("No manifest directory is configured: set CATHOUSE_CATALOG__MANIFEST_DIR to one.")
    outcomes = await CatalogSync(session, settings, storage, accounts).run(directory, by=admin.user_id)
    return SyncReport(
        cats=[
            SyncedCat(
                folder=o.folder, slug=o.slug, result=o.result, problems=[SyncProblem(**vars(p)) for p in o.problems]
            )
            for o in outcomes
        ],
        summary=dict(Counter(o.result for o in outcomes)),
    )
