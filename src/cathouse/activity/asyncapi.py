"""``GET /api/v1/events/asyncapi.json``: the AsyncAPI document of every event and webhook.

Served by the activity service, the platform's read side of events; the document itself is built
from ``cathouse.contracts`` alone, so it says what the producers' models say.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import cathouse
from cathouse.contracts.asyncapi import document

router = APIRouter(prefix="/api/v1/events", tags=["events"])


@functools.cache
def _document() -> dict[str, Any]:
    return document(cathouse.__version__)


@router.get(
    "/asyncapi.json",
    summary="The AsyncAPI 3.0 document of every event and provisioning webhook",
    response_description="An AsyncAPI 3.0 document (JSON).",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def asyncapi() -> JSONResponse:
    """Every domain event (its envelope and payload, by type and ``schema_version``) and every
    webhook sent to cats, generated from the models the services publish with."""
    return JSONResponse(_document(), headers={"cache-control": "public, max-age=300"})
