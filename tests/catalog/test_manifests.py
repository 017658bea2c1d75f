from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from cathouse.catalog.manifests import (
    MAX_ASSET_BYTES,
    LoadedCat,
    ManifestProblem,
    load_directory,
    manifest_json_schema,
    parse_manifest,
    validate_directory,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "cats"
ICON = (EXAMPLES / "points-ledger" / "icon.png").read_bytes()


def manifest(**changes: Any) -> dict[str, Any]:
    """A valid manifest (the points ledger example's), with top-level changes."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "points-ledger" / "cat.yaml").read_text())
    return {**data, **changes}


def write_cat(root: Path, folder: str, data: dict[str, Any], *, name: str = "cat.yaml", icon: bytes = ICON) -> Path:
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data, sort_keys=False)
    (path / name).write_text(text)
    (path / "icon.png").write_bytes(icon)
    return path


def alias_bomb() -> bytes:
    """A few hundred bytes of YAML, 8**7 values once every alias is followed."""
    lines = ["a: &a [x, x, x, x, x, x, x, x]"]
    lines += [f"{name}: &{name} [{', '.join(['*' + prev] * 8)}]" for prev, name in zip("abcdef", "bcdefg", strict=True)]
    return "\n".join(lines).encode()


def only_cat(root: Path) -> LoadedCat:
    [cat] = load_directory(root)
    return cat


def problems_at(root: Path) -> dict[str, str]:
    return {f"{p.file}:{p.loc}": p.message for p in validate_directory(root)}


def test_the_examples_load_without_problems() -> None:
    cats = load_directory(EXAMPLES)
    assert [p for cat in cats for p in cat.problems] == []
    assert len(cats) >= 6
    assert all(cat.ok and cat.manifest and cat.manifest.slug == cat.folder for cat in cats)
    assert all(cat.manifest and cat.manifest.icon in cat.assets for cat in cats)
    categories = {cat.manifest.category for cat in cats if cat.manifest}
    assert {"points", "badges", "leaderboards", "streaks", "quests", "integrations"} <= categories
    credentials = {v.credentials.type for cat in cats if cat.manifest for v in cat.manifest.versions}
    assert credentials == {"bearer", "basic", "header", "query", "oauth2"}
    assert any(cat.manifest and len(cat.manifest.versions) > 1 for cat in cats)


def test_a_slug_used_by_two_folders_refuses_both(tmp_path: Path) -> None:
    write_cat(tmp_path, "ledger", manifest())
    write_cat(tmp_path, "ledger-copy", manifest())
    write_cat(tmp_path, "other", manifest(slug="other"))
    ledger, copy, other = load_directory(tmp_path)
    assert ledger.problems == [
        ManifestProblem("ledger/cat.yaml", "slug", "'points-ledger' is also the slug of ledger-copy")
    ]
    assert copy.problems == [
        ManifestProblem("ledger-copy/cat.yaml", "slug", "'points-ledger' is also the slug of ledger")
    ]
    assert not ledger.ok
    assert not copy.ok
    assert other.ok


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0+build.5", ""])
def test_versions_must_be_semantic(tmp_path: Path, version: str) -> None:
    data = manifest()
    data["versions"][0]["version"] = version
    write_cat(tmp_path, "ledger", data)
    assert "semantic version" in problems_at(tmp_path)["ledger/cat.yaml:versions.0.version"]


def test_two_versions_may_not_share_a_number(tmp_path: Path) -> None:
    data = manifest()
    data["versions"][1]["version"] = "1.0.0"
    write_cat(tmp_path, "ledger", data)
    assert problems_at(tmp_path) == {"ledger/cat.yaml:versions": "listed twice: 1.0.0"}


def test_urls_must_be_valid(tmp_path: Path) -> None:
    data = manifest(homepage="points-ledger dot example")
    data["versions"][0]["base_url"] = "ftp://api.points-ledger.example.com"
    write_cat(tmp_path, "ledger", data)
    assert problems_at(tmp_path).keys() == {"ledger/cat.yaml:homepage", "ledger/cat.yaml:versions.0.base_url"}


def test_an_undeclared_permission_is_reported_at_its_endpoint(tmp_path: Path) -> None:
    data = manifest()
    data["versions"][1]["endpoints"][2]["permission"] = "points:spend"
    write_cat(tmp_path, "ledger", data)
    assert problems_at(tmp_path) == {
        "ledger/cat.yaml:versions.1.endpoints.2.permission": "'points:spend' is not declared in permissions"
    }


def test_a_missing_asset_is_reported_at_its_field(tmp_path: Path) -> None:
    write_cat(tmp_path, "ledger", manifest(icon="logo.png", screenshots=["icon.png", "shots/board.webp"]))
    cat = only_cat(tmp_path)
    assert problems_at(tmp_path) == {
        "ledger/cat.yaml:icon": "logo.png does not exist",
        "ledger/cat.yaml:screenshots.1": "shots/board.webp does not exist",
    }
    assert cat.assets == {"icon.png": ICON}


def test_an_asset_must_be_the_image_it_claims_and_not_too_large(tmp_path: Path) -> None:
    folder = write_cat(tmp_path, "ledger", manifest(screenshots=["fake.png", "huge.png"]))
    (folder / "fake.png").write_text("not an image")
    (folder / "huge.png").write_bytes(ICON + bytes(MAX_ASSET_BYTES))
    assert problems_at(tmp_path) == {
        "ledger/cat.yaml:screenshots.0": "fake.png is not a PNG image",
        "ledger/cat.yaml:screenshots.1": "huge.png is larger than 5120 KiB",
    }


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../points-ledger/icon.png", "no '..'"),
        ("/etc/icon.png", "relative"),
        ("C:/icon.png", "relative"),
        ("art\\icon.png", "'/'"),
        (".hidden.png", "hidden"),
        ("icon.svg", ".png"),
    ],
)
def test_asset_paths_stay_inside_the_folder(tmp_path: Path, path: str, reason: str) -> None:
    write_cat(tmp_path, "ledger", manifest(icon=path))
    assert reason in problems_at(tmp_path)["ledger/cat.yaml:icon"]


def test_symlinks_out_of_the_directory_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_cat(outside, "elsewhere", manifest(slug="elsewhere"))
    root = tmp_path / "cats"
    folder = write_cat(root, "ledger", manifest(icon="link.png"))
    os.symlink(outside / "elsewhere" / "icon.png", folder / "link.png")
    os.symlink(outside / "elsewhere", root / "linked-folder")
    assert problems_at(root) == {
        "ledger/cat.yaml:icon": "link.png links outside the directory",
        "linked-folder:": "links outside the directory",
    }


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    data = manifest(colour="teal")
    data["versions"][0]["endpoints"][0]["timeout"] = 5
    write_cat(tmp_path, "ledger", data)
    assert problems_at(tmp_path) == {
        "ledger/cat.yaml:colour": "Extra inputs are not permitted",
        "ledger/cat.yaml:versions.0.endpoints.0.timeout": "Extra inputs are not permitted",
    }


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "cat.yaml").write_text("slug: ledger\nname: Ledger\ntags: [points, ledger\nsummary: x\n")
    cat = only_cat(tmp_path)
    assert cat.manifest is None
    [problem] = cat.problems
    assert problem.file == "ledger/cat.yaml"
    assert problem.loc == ""
    assert problem.message.startswith("YAML error at line 4, column 8:")


def test_every_error_is_reported_not_just_the_first() -> None:
    found, problems = parse_manifest("slug: Bad Slug\nname: ''\ncategory: points\nversions: []\n", file="x/cat.yaml")
    assert found is None
    assert [p.loc for p in problems] == ["name", "summary", "slug", "versions"]


def test_a_json_manifest_loads_like_yaml(tmp_path: Path) -> None:
    write_cat(tmp_path / "yaml", "ledger", manifest())
    write_cat(tmp_path / "json", "ledger", manifest(), name="cat.json")
    from_yaml, from_json = only_cat(tmp_path / "yaml"), only_cat(tmp_path / "json")
    assert from_json.ok
    assert from_json.file == "ledger/cat.json"
    assert from_json.manifest == from_yaml.manifest
    assert parse_manifest('{"slug": ', file="x/cat.json")[1] == [
        ManifestProblem("x/cat.json", "", "JSON syntax error at line 1, column 10: Expecting value")
    ]


def test_a_folder_needs_exactly_one_manifest(tmp_path: Path) -> None:
    folder = write_cat(tmp_path, "both", manifest())
    (folder / "cat.json").write_text(json.dumps(manifest()))
    (tmp_path / "none").mkdir()
    (tmp_path / "README.md").write_text("Not a cat.")
    (tmp_path / ".git").mkdir()
    assert problems_at(tmp_path) == {
        "both:": "has cat.yaml and cat.json: keep one",
        "none:": "has no cat.yaml or cat.json",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "is not UTF-8 text (byte 0)"),
        (b"- just\n- a list\n", "must be a mapping of fields (slug, name, versions...), not a list"),
        (b"", "must be a mapping of fields (slug, name, versions...), not empty"),
        (alias_bomb(), "has more than 50000 values"),
        (b"[" * 10_000, "is nested more than 64 levels deep"),
        (b"icon: !!binary aGVsbG8=\n", "bytes values are not supported"),
        (b"slug: x\n" * 150_000, "is larger than 1024 KiB"),
    ],
)
def test_bad_input_is_reported_never_raised(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "cat.yaml").write_bytes(content)
    [problem] = only_cat(tmp_path).problems
    assert message in problem.message


def test_the_hash_changes_with_the_manifest_or_an_asset_only(tmp_path: Path) -> None:
    def hash_of(name: str, data: dict[str, Any], icon: bytes = ICON) -> str | None:
        write_cat(tmp_path / name, "ledger", data, icon=icon)
        return only_cat(tmp_path / name).content_hash

    original = hash_of("a", manifest())
    assert original is not None
    assert hash_of("b", manifest()) == original
    assert hash_of("c", manifest(), icon=ICON[:-1] + b"\x00") != original
    assert hash_of("d", manifest(summary="Something else.")) != original


def test_the_published_schema_agrees_with_the_loader() -> None:
    schema = manifest_json_schema()
    assert schema["$id"]
    assert "manifest" in schema["title"]
    validator = jsonschema_rs.validator_for(schema)
    for path in sorted(EXAMPLES.glob("*/cat.yaml")):
        data = yaml.safe_load(path.read_text())
        assert list(validator.iter_errors(data)) == [], path
        assert parse_manifest(path.read_bytes(), file=path.name)[1] == []
    assert not validator.is_valid(manifest(colour="teal"))
    assert not validator.is_valid(manifest(icon="../icon.png"))
