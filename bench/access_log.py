"""What one access-log line costs: the platform's writer against the libraries it stands in for.

The access log is written once per request, the proxy's included, so its cost is paid on
every call. Three ways to write the same line to the same stream are timed in one run, each
for the same number of lines, as CPU time of this process:

- loguru, bound with the line's fields and formatted by the platform's own JSON sink (what
  every other log line goes through): the reference;
- ``json.dumps`` of the fields, written as one line;
- ``cathouse.platform.access.AccessLog``: the line formatted from a template, only its
  strings escaped.

The lines go to a temporary file, line-buffered, as a container's stderr to a pipe would be.

    .venv/bin/python bench/access_log.py --lines 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

from loguru import logger

from cathouse.platform.access import AccessLog
from cathouse.platform.logging import configure_logging

SECONDS = 0.001234
FIELDS: dict[str, str | int] = {
    "method": "GET",
    "route": "/api/v1/proxy/{installation_id}/{path:path}",
    "status": 200,
    "request_id": "5f0c8f0e6a2b4c1d9e7f3a2b1c0d9e8f",
    "user_id": "0b8e5f4c-3d2a-4b1c-9e8f-7a6b5c4d3e2f",
}


def per_line(write: Callable[[], None], lines: int) -> float:
    """CPU microseconds per line."""
    started = time.process_time()
    for _ in range(lines):
        write()
    return (time.process_time() - started) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryFile("w", buffering=1) as sink:
        sys.stderr = sink  # every writer below writes to stderr, as the platform's do
        configure_logging("INFO", json_lines=True)
        bound = logger.bind(service="proxy")
        fields = FIELDS
        access = AccessLog("proxy")

        def with_loguru() -> None:
            bound.info("request", duration_ms=round(SECONDS * 1000, 3), **fields)

        def with_json_dumps() -> None:
            line = {
                "time": datetime.now(UTC).isoformat(),
                "level": "INFO",
                "service": "proxy",
                "logger": "cathouse.access",
                "message": "request",
                "duration_ms": round(SECONDS * 1000, 3),
                **fields,
            }
            sink.write(json.dumps(line) + "\n")

        def with_template() -> None:
            access(
                str(FIELDS["method"]),
                str(FIELDS["route"]),
                200,
                SECONDS,
                str(FIELDS["request_id"]),
                FIELDS["user_id"],
            )

        results = {}
        for name, write in (
            ("loguru with the platform's JSON sink (reference)", with_loguru),
            ("json.dumps of the fields", with_json_dumps),
            ("AccessLog (template)", with_template),
        ):
            per_line(write, min(args.lines, 5_000))  # warm up
            results[name] = per_line(write, args.lines)
        sys.stderr = sys.__stderr__

    reference = next(iter(results.values()))
    print(f"{'writer':<52} {'µs CPU per line':>16} {'÷ loguru':>9}")
    for name, micros in results.items():
        print(f"{name:<52} {micros:>16.1f} {micros / reference:>9.2f}")


if __name__ == "__main__":
    main()
