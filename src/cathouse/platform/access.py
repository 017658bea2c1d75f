"""The access log: one line per request, on stderr beside the other logs.

A line says what was asked and how it went, never what was sent: the method, the route
template (``/api/v1/cats/{slug}``, so no id, query string, header or body reaches the log), the
status, the duration, the request id and, when the request was authenticated, the user's id.

Written directly rather than through loguru: ``bench/access_log.py`` times the three ways in
one run, and a loguru record through the platform's JSON sink cost about ten times this line,
formatted from a template with only its strings escaped (``json.dumps`` of the fields about
1.5 times). Its fields are those of every other JSON line (``platform/logging.py``), so both
read as one stream.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from json.encoder import encode_basestring as quote  # a JSON string, in C
from typing import Final

from cathouse.platform.settings import Settings

LOGGER_NAME: Final = "cathouse.access"


class AccessLog:
    """Call it once per finished request; it writes one line."""

    __slots__ = ("_service", "json_lines", "service")

    def __init__(self, service: str, *, json_lines: bool = True) -> None:
        self.service = service
        self.json_lines = json_lines
        self._service = quote(service)

    def __call__(
        self, method: str, route: str, status: int, seconds: float, request_id: str | None, user_id: object
    ) -> None:
        now = datetime.now(UTC)
        user = None if user_id is None else str(user_id)
        millis = round(seconds * 1000, 3)
        if self.json_lines:
            # The keys of every log line first (time, level, service, request_id, logger, message).
            line = (
                f'{{"time": "{now.isoformat()}", "level": "INFO", "service": {self._service}, '
                f'"request_id": {"null" if request_id is None else quote(request_id)}, '
                f'"logger": "{LOGGER_NAME}", "message": "request", "method": {quote(method)}, '
                f'"route": {quote(route)}, "status": {int(status)}, "duration_ms": {millis!r}, '
                f'"user_id": {"null" if user is None else quote(user)}}}'
            )
        else:
            line = (
                f"{now:%Y-%m-%d %H:%M:%S.%f} | INFO     | {LOGGER_NAME} - {method} {route} {status} {millis} ms"
                f" request_id={request_id} user_id={user}"
            )
        # Looked up on every write, as the other logs do: a replaced sys.stderr is honoured.
        # Closed or gone, the request still succeeds.
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(line + "\n")


def access_log(settings: Settings, service: str) -> AccessLog | None:
    """The access log, unless ``CATHOUSE_ACCESS_LOG=false``. It is a stream of its own: the log
    level (which says which diagnostics to keep) does not turn it off."""
    if not settings.access_log:
        return None
    return AccessLog(service, json_lines=settings.log_json)
