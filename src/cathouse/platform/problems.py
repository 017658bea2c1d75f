"""RFC 9457 problem details: the one shape every error takes on the wire."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cathouse.platform.context import request_id_var
from cathouse.platform.errors import CatHouseError

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    loc: str = Field(description="Where the bad value is, e.g. `body.email`.")
    message: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "There is no such installation.",
                    "instance": "/api/v1/installations/2f6e8d4c-3b1a-4c9e-8f7d-5a6b7c8d9e0f",
                    "request_id": "01JTX3V6Q8ZK4N2M5P7R9S1T3W",
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id_var.get(),
    }
    body.update(extra)
    return ProblemResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts)


async def _domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, CatHouseError)
    return problem_response(
        exc.status,
        exc.detail,
        title=exc.title,
        type_=exc.type,
        instance=request.url.path,
        headers=exc.headers or None,
        **exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(loc=_loc(e.get("loc", ())), message=str(e.get("msg", "")), type=str(e.get("type", "")))
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e.loc}: {e.message}" for e in errors[:5])
    return problem_response(
        422,
        f"The request is not valid: {summary}",
        title="Unprocessable Content",
        instance=request.url.path,
        errors=[e.model_dump() for e in errors],
    )


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"Nothing is served at {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(exc.status_code, detail, instance=request.url.path, headers=dict(exc.headers or {}) or None)


async def _pool_exhausted(request: Request, exc: Exception) -> ProblemResponse:
    # Every connection of the process's pool stayed busy for CATHOUSE_POOL_TIMEOUT: the process is
    # overloaded, not broken. The pool does not overflow (the connection budget), so say "later".
    logger.warning("no database connection free within the pool timeout", path=request.url.path)
    return problem_response(
        503,
        "The service is busy; try again in a moment.",
        instance=request.url.path,
        headers={"Retry-After": "1"},
    )


# PostgreSQL's "this text cannot be stored": a NUL, or a lone surrogate in UTF-8.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


def _sqlstate(exc: DBAPIError) -> str | None:
    # SQLAlchemy's asyncpg adapter carries the code; the driver's own exception is its cause.
    code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
    return code if isinstance(code, str) else None


async def _database_error(request: Request, exc: Exception) -> ProblemResponse:
    """Text PostgreSQL cannot store is the client's mistake, whichever field a schema let through;
    any other database error is ours."""
    assert isinstance(exc, DBAPIError)
    if _sqlstate(exc) in _UNSTORABLE_TEXT:
        return problem_response(
            422,
            "The request holds a character that cannot be stored (a NUL, or half of a surrogate pair).",
            title="Unprocessable Content",
            instance=request.url.path,
        )
    log_unexpected(exc)
    return unexpected_error_response()


def unexpected_error_response() -> ProblemResponse:
    """A 500 that tells the client only the request id to quote; the trace goes to the log."""
    return problem_response(
        500,
        "Something went wrong on our side. Quote the request id if you report it.",
        title="Internal Server Error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CatHouseError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(DBAPIError, _database_error)


def log_unexpected(exc: BaseException) -> None:
    logger.opt(exception=exc).error("unhandled error")
