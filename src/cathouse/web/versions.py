"""A cat's version written as YAML in the console, checked by the catalog's manifest validator.

The developer writes one version (endpoint map, permissions, settings schema and the rest) in a
textarea. The page does not judge it itself: it wraps the text, unparsed, as the one version of
a manifest made from the cat's own listing and posts that to ``POST /api/v1/cats/validate``,
whose checks, limits and words are the ones ``cat.yaml`` gets. Each problem names a field path
(``versions.0.endpoints.1.permission``) or, for a syntax error, a line of the whole manifest;
both are turned back into a line of what the developer wrote, so the page shows the problem
under that line.

Only once the validator finds nothing is the text read into data here, to post it to the
version endpoint: by then its size and shape are known to be sane.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

# What a new cat's first version starts from: valid as it stands, so the developer edits rather
# than starts from a blank page.
EXAMPLE = """\
version: 1.0.0
base_url: https://api.example.com/v1
credentials: {type: bearer, field: api_token}
permissions:
  - {name: "points:read", description: "Read balances."}
endpoints:
  - {method: GET, path: "/users/{user_id}/balance", permission: "points:read"}
settings_schema:
  type: object
  properties:
    api_token: {type: string, writeOnly: true, minLength: 20, description: "Your API token."}
  required: [api_token]
rate_limit_per_minute: 600
changelog: First release.
"""
# The parts of a version kept when the next one starts from it.
SPEC_KEYS = (
    "version",
    "base_url",
    "credentials",
    "permissions",
    "endpoints",
    "settings_schema",
    "webhook_url",
    "rate_limit_per_minute",
    "changelog",
)
# What the user's text is indented by inside the manifest: "  - " on its first line.
INDENT = 4
_SYNTAX = re.compile(r"^YAML error at line (\d+), column (\d+): ")


@dataclass(frozen=True)
class LineProblem:
    line: int  # 1-based, in the developer's text
    field: str  # the field path inside the version ("endpoints.1.permission"), "" for the line itself
    message: str


class _TextLoader(yaml.SafeLoader):
    """Dates stay text, as the catalog reads them (a changelog of "2026-01-01" is not a date)."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - replaces the inherited table, never mutated
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def manifest(cat: dict[str, Any], text: str) -> tuple[str, int]:
    """``text`` as the one version of a manifest of ``cat``, and how many lines come before it."""
    head = [f"{key}: {json.dumps(cat[key])}" for key in ("slug", "name", "summary", "category")]
    head.append("versions:")
    lines = text.replace("\r\n", "\n").split("\n")
    body = ["  - " + lines[0], *(" " * INDENT + line for line in lines[1:])]
    return "\n".join(head + body) + "\n", len(head)


def as_yaml(version: dict[str, Any] | None) -> str:
    """An earlier version as the text the next one starts from (its patch number raised), or the example."""
    if not version:
        return EXAMPLE
    spec = {key: version[key] for key in SPEC_KEYS if version.get(key) is not None}
    spec["version"] = _next_patch(str(spec.get("version", "")))
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def _next_patch(version: str) -> str:
    found = re.match(r"^(\d+)\.(\d+)\.(\d+)$", version)
    return f"{found[1]}.{found[2]}.{int(found[3]) + 1}" if found else version


def spec(text: str) -> Any:
    """The version the text describes, once the validator has passed it."""
    return yaml.load(text, Loader=_TextLoader)  # noqa: S506 - a SafeLoader


def placed(text: str, problems: list[dict[str, str]], prefix: str = "versions.0") -> list[LineProblem]:
    """``problems`` (``{"loc", "message"}``, locs under ``prefix``) on the lines of ``text`` they concern.

    Problems about anything but the version (the cat's own listing, which its own form checks)
    are left out; a problem of the whole version goes on its first line.
    """
    wrapped, offset = manifest({"slug": "", "name": "", "summary": "", "category": ""}, text)
    try:
        root: yaml.Node | None = yaml.compose(wrapped, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    found = []
    for problem in problems:
        loc, message = str(problem.get("loc") or ""), str(problem.get("message") or "")
        syntax = _SYNTAX.match(message) if not loc else None
        if syntax:
            line = max(1, int(syntax[1]) - offset)
            column = max(1, int(syntax[2]) - INDENT)
            found.append(LineProblem(line, "", f"YAML error at column {column}: {message[syntax.end() :]}"))
        elif loc == prefix or loc.startswith(prefix + "."):
            field = loc.removeprefix(prefix).lstrip(".")
            found.append(LineProblem(max(1, _line(root, loc.split(".")) - offset), field, message))
        elif not loc:
            found.append(LineProblem(1, "", message))
    return sorted(found, key=lambda p: p.line)


def _line(node: yaml.Node | None, path: list[str]) -> int:
    """The 1-based line of the deepest node of ``path`` the document has (a key's own line)."""
    line = 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and step.isdigit() and int(step) < len(node.value):
            node = node.value[int(step)]
            line = node.start_mark.line + 1
        else:
            break
    return line
