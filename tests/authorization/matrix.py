"""The authorization matrix as docs/authorization.md states it: the one table of that page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PRINCIPALS = ("owner", "publisher", "admin", "other", "anonymous")
ROLES = {"owner": (), "publisher": ("developer",), "admin": ("admin",), "other": ("developer",)}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ROW = re.compile(r"^\|([^|]+)\|([^|]+)\|" + r"([^|]+)\|" * len(PRINCIPALS) + "$")
_ROUTE = re.compile(rf"^((?:{'|'.join(METHODS)})(?:, (?:{'|'.join(METHODS)}))*) (/\S*)$")


@dataclass(frozen=True)
class Cell:
    allowed: bool
    status: int | None = None  # a refusal's status
    reason: bool = False  # allowed only with a reason

    @classmethod
    def parse(cls, cell: str) -> Cell:
        cell = cell.strip()
        if cell in ("yes", "read"):
            return cls(allowed=True)
        if cell == "with reason":
            return cls(allowed=True, reason=True)
        refused = re.fullmatch(r"no \((\d{3})\)", cell)
        assert refused, f"a matrix cell says {cell!r}: not yes, read, with reason or no (status)"
        return cls(allowed=False, status=int(refused[1]))


@dataclass(frozen=True)
class Row:
    service: str
    cells: dict[str, Cell]


def read_matrix(page: Path) -> dict[tuple[str, str], Row]:
    """(method, full path) → its row, from the table of docs/authorization.md."""
    text = page.read_text()
    matrix: dict[tuple[str, str], Row] = {}
    for line in text.splitlines():
        found = _ROW.match(line.strip())
        if found is None or found[1].strip() in ("service", "---"):
            continue
        service, routes, *cells = (part.strip() for part in found.groups())
        row = Row(service, {p: Cell.parse(c) for p, c in zip(PRINCIPALS, cells, strict=True)})
        named = [_ROUTE.match(r) for r in re.findall(r"`([^`]+)`", routes)]
        assert any(named), f"a matrix row names no route: {line}"
        for route in filter(None, named):
            for method in route[1].split(", "):
                key = (method, "/api/v1" + route[2])
                assert key not in matrix, f"{method} {route[2]} has two rows in the matrix"
                matrix[key] = row
    return matrix
