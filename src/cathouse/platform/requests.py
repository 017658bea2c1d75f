"""Reading request bodies the framework does not parse (uploads, raw documents)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from cathouse.platform.errors import CatHouseError


async def read_body(request: Request, limit: int, too_large: Callable[[str], CatHouseError]) -> bytes:
    """The body, read no further than one chunk past ``limit``: a huge upload is refused early."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"The body is {declared} bytes; at most {limit} bytes are accepted.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"The body is over {limit} bytes; at most {limit} bytes are accepted.")
        chunks.append(chunk)
    return b"".join(chunks)
