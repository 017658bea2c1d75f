"""Cat manifests: a directory with a folder per cat, each holding ``cat.yaml`` (or ``cat.json``) and its images.

Pure: this module reads and checks files and never touches the database; the sync decides what to write.
Bad input never raises: every problem is reported with its file and field path, so an author sees them all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, StringConstraints, ValidationError, field_validator

from cathouse.catalog.schemas import CatIn, VersionSpec
from cathouse.platform.schemas import Email, settle_http_urls

MANIFEST_NAMES = ("cat.yaml", "cat.yml", "cat.json")
MANIFEST_SCHEMA_ID = "urn:cathouse:schema:cat-manifest:v1"
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_ASSET_BYTES = 5 * 1024 * 1024
# Past these a document is an alias bomb or junk; validating it would only burn CPU.
MAX_NODES = 50_000
MAX_DEPTH = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# No segment may start with a dot, which rules out "..", "." and hidden files at once.
ASSET_PATTERN = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*\.(?:png|jpg|jpeg|webp)$"
_ASSET = re.compile(ASSET_PATTERN)
# The first bytes of each image format, so a renamed text file is caught while the author is still here.
_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".webp": b"RIFF"}


def _asset_path(value: str) -> str:
    # The most specific reason first: "no '..'" helps an author more than "does not match".
    checks = [
        (not value.startswith("/") and not re.match(r"^[A-Za-z]:", value), "must be relative to the cat's folder"),
        ("\\" not in value, "must use '/' between folders, not '\\'"),
        (".." not in value.split("/"), "must stay inside the cat's folder (no '..')"),
        (value.endswith(IMAGE_SUFFIXES), "must be an image ending in .png, .jpg, .jpeg or .webp"),
        (bool(_ASSET.match(value)), "may contain only letters, digits, '.', '_', '-' and '/', and no hidden files"),
    ]
    for passed, message in checks:
        if not passed:
            raise ValueError(message)
    return value


AssetPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_asset_path),
    # The pattern is for authors' editors; the validator above says the same thing in words.
    Field(json_schema_extra={"pattern": ASSET_PATTERN}, examples=["icon.png", "screenshots/ranking.webp"]),
]


class Manifest(CatIn):
    """A cat as its author keeps it in version control: `cat.yaml` (or `cat.json`) in a folder named after it.

    Image paths are relative to that folder.
    """

    publisher: Email | None = Field(
        default=None,
        description="Email of the developer account that owns the cat; absent, the platform owns it.",
    )
    icon: AssetPath | None = Field(default=None, description="A square image, ideally 256x256 PNG.")
    screenshots: list[AssetPath] = Field(default_factory=list, max_length=8, description="Shown in this order.")
    versions: list[VersionSpec] = Field(
        min_length=1, max_length=50, description="Every version of the cat, each with a distinct semantic version."
    )

    @field_validator("versions", "screenshots")
    @classmethod
    def _no_repeats(cls, items: list[VersionSpec] | list[str]) -> list[VersionSpec] | list[str]:
        names = [item.version if isinstance(item, VersionSpec) else item for item in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"listed twice: {', '.join(repeated)}")
        return items


def manifest_json_schema(*, schema_id: str = MANIFEST_SCHEMA_ID, allow_http: bool = False) -> dict[str, Any]:
    """The JSON Schema of a manifest, as served to authors and their editors (``allow_http``: as
    the catalog's setting of that name)."""
    schema = Manifest.model_json_schema()
    settle_http_urls(schema, allow_http=allow_http)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        **schema,
        "title": "Cat House cat manifest (cat.yaml / cat.json)",
    }


@dataclass
class ManifestProblem:
    file: str  # relative to the scanned directory, e.g. "points-ledger/cat.yaml"
    loc: str  # dotted field path, e.g. "versions.0.endpoints.2.permission"; "" for the whole file
    message: str


@dataclass
class LoadedCat:
    """One folder. Only a cat with a manifest and no problems may be synced; the slug of a refused one
    is still known when its manifest parsed, so the sync can record why it was refused."""

    folder: str
    file: str
    manifest: Manifest | None
    problems: list[ManifestProblem] = field(default_factory=list)
    content_hash: str | None = None
    assets: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems


class _TooLarge(yaml.YAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """Keeps dates as text, as JSON would, and gives up early on a huge or deep document.

    Pure-Python YAML is slow per value (a full 1 MiB document would take seconds); libyaml's
    loader is faster but its composer recurses in C and crashes the process on deep nesting.
    """

    yaml_implicit_resolvers = {  # noqa: RUF012 - replaces the inherited table, never mutated
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _nodes = 0
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._nodes, self._depth = self._nodes + 1, self._depth + 1
        try:
            if self._nodes > MAX_NODES:
                raise _TooLarge(f"has more than {MAX_NODES} values")
            if self._depth > MAX_DEPTH:
                raise _TooLarge(f"is nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_manifest(text: bytes | str, *, file: str) -> tuple[Manifest | None, list[ManifestProblem]]:
    """Parse and validate one manifest; YAML unless ``file`` ends in ``.json``."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_MANIFEST_BYTES:
        return None, [ManifestProblem(file, "", f"is larger than {MAX_MANIFEST_BYTES // 1024} KiB")]
    data, error = _decode(raw, json_syntax=file.endswith(".json"))
    if error is None:
        error = _not_plain_data(data)
    if error is not None:
        return None, [ManifestProblem(file, error[0], error[1])]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        return None, [ManifestProblem(file, "", f"must be a mapping of fields (slug, name, versions...), not {kind}")]
    try:
        return Manifest.model_validate(data), []
    except ValidationError as exc:
        return None, _validation_problems(exc, data, file)


def _decode(raw: bytes, *, json_syntax: bool) -> tuple[Any, tuple[str, str] | None]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, ("", f"is not UTF-8 text (byte {exc.start})")
    try:
        if json_syntax:
            return json.loads(text), None
        return yaml.load(text, Loader=_Loader), None  # noqa: S506 - _Loader is a SafeLoader
    except _TooLarge as exc:
        return None, ("", str(exc))
    except json.JSONDecodeError as exc:
        return None, ("", f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, ("", f"YAML error{where}: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:  # control characters, or our own limits
        return None, ("", f"YAML error: {exc}")
    except RecursionError:  # json's parser recurses; _Loader stops before Python's limit
        return None, ("", f"is nested more than {MAX_DEPTH} levels deep")


def _not_plain_data(data: Any) -> tuple[str, str] | None:
    """Where the document stops being plain JSON-like data, if it does.

    Walks without recursion and counts shared (aliased) nodes every time they are reached,
    as validation would: that is how a YAML alias bomb is caught before it costs anything.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    for _ in range(MAX_NODES):
        if not stack:
            return None
        node, loc, depth = stack.pop()
        if depth > MAX_DEPTH:
            return loc, f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    return loc, f"keys must be text, not {str(key)[:40]!r}"
                stack.append((value, _join(loc, key), depth + 1))
        elif isinstance(node, list):
            stack.extend((value, _join(loc, i), depth + 1) for i, value in enumerate(node))
        elif node is not None and not isinstance(node, str | int | float):
            return loc, f"{type(node).__name__} values are not supported: use text, numbers, lists and mappings"
    return "", f"has more than {MAX_NODES} values"


def _join(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")


def _validation_problems(exc: ValidationError, data: dict[str, Any], file: str) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    for error in exc.errors(include_url=False):
        loc, message = error["loc"], error["msg"].removeprefix("Value error, ")
        # VersionSpec reports this for the whole version; the author needs the endpoint's own line.
        if len(loc) == 2 and loc[0] == "versions" and "undeclared permissions" in message:
            split = _undeclared_permissions(data, int(loc[1]))
            if split:
                problems.extend(ManifestProblem(file, at, why) for at, why in split)
                continue
        problems.append(ManifestProblem(file, _join(*loc), message))
    return problems


def _undeclared_permissions(data: dict[str, Any], index: int) -> list[tuple[str, str]]:
    # The version validated field by field before its model check ran, so its shape is known good.
    version = data["versions"][index]
    declared = {p["name"] for p in version["permissions"]}
    return [
        (f"versions.{index}.endpoints.{i}.permission", f"'{e['permission']}' is not declared in permissions")
        for i, e in enumerate(version["endpoints"])
        if e["permission"] not in declared
    ]


def load_directory(root: Path) -> list[LoadedCat]:
    """Every cat folder directly under ``root``, sorted by folder name.

    Raises only when ``root`` itself is not a directory: an empty result must mean "no cats",
    never "a mistyped path", or a sync would take every cat for removed.
    """
    root = root.resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(root)
    folders = sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.is_symlink()))
    cats = [_load_folder(root, folder) for folder in folders]
    _refuse_duplicate_slugs(cats)
    return cats


def validate_directory(root: Path) -> list[ManifestProblem]:
    return [problem for cat in load_directory(root) for problem in cat.problems]


def _load_folder(root: Path, folder: Path) -> LoadedCat:
    name = folder.name
    if not _inside(root, folder):
        return LoadedCat(name, name, None, [ManifestProblem(name, "", "links outside the directory")])
    if not folder.is_dir():
        return LoadedCat(name, name, None, [ManifestProblem(name, "", "is a broken link")])
    present = [n for n in MANIFEST_NAMES if (folder / n).exists() or (folder / n).is_symlink()]
    if len(present) != 1:
        message = "has no cat.yaml or cat.json" if not present else f"has {' and '.join(present)}: keep one"
        return LoadedCat(name, name, None, [ManifestProblem(name, "", message)])
    file = f"{name}/{present[0]}"
    raw, error = _read(root, folder / present[0], MAX_MANIFEST_BYTES)
    if raw is None:
        return LoadedCat(name, file, None, [ManifestProblem(file, "", error)])
    manifest, problems = parse_manifest(raw, file=file)
    cat = LoadedCat(name, file, manifest, problems)
    if manifest is not None:
        _read_assets(root, folder, cat, manifest)
    cat.content_hash = _content_hash(raw, cat.assets)
    return cat


def _read_assets(root: Path, folder: Path, cat: LoadedCat, manifest: Manifest) -> None:
    wanted = ([("icon", manifest.icon)] if manifest.icon else []) + [
        (f"screenshots.{i}", path) for i, path in enumerate(manifest.screenshots)
    ]
    for loc, path in wanted:
        data, error = _read(root, folder / path, MAX_ASSET_BYTES)
        if data is not None and not data.startswith(_MAGIC[Path(path).suffix]):
            data, error = None, f"is not a {Path(path).suffix[1:].upper()} image"
        if data is None:
            cat.problems.append(ManifestProblem(cat.file, loc, f"{path} {error}"))
        else:
            cat.assets[path] = data


def _read(root: Path, path: Path, limit: int) -> tuple[bytes | None, str]:
    """The file's bytes, or None and why not. Reads at most ``limit + 1`` bytes whatever stat said."""
    try:
        if not path.exists():
            return None, "does not exist"
        if not _inside(root, path):
            return None, "links outside the directory"
        if not path.resolve().is_file():  # a FIFO or device would block or never end
            return None, "is not a regular file"
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    if len(data) > limit:
        return None, f"is larger than {limit // 1024} KiB"
    return data, ""


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _content_hash(manifest: bytes, assets: dict[str, bytes]) -> str:
    # Length prefixes keep the concatenation unambiguous: no two inputs hash the same stream.
    digest = hashlib.sha256()
    for part in [manifest, *(p for path in sorted(assets) for p in (path.encode(), assets[path]))]:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _refuse_duplicate_slugs(cats: list[LoadedCat]) -> None:
    by_slug: defaultdict[str, list[LoadedCat]] = defaultdict(list)
    for cat in cats:
        if cat.manifest is not None:
            by_slug[cat.manifest.slug].append(cat)
    for slug, owners in by_slug.items():
        for cat in owners if len(owners) > 1 else []:
            others = ", ".join(o.folder for o in owners if o is not cat)
            cat.problems.append(ManifestProblem(cat.file, "slug", f"'{slug}' is also the slug of {others}"))
