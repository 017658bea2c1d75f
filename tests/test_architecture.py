"""The import contracts of ``make lint`` are real: they pass here and bite on a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("platform", "auth", "catalog", "installation", "proxy", "activity", "cli")


def lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(config), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def fake_tree(tmp_path: Path, violation: tuple[str, str]) -> Path:
    """A skeleton of the package in which module ``violation[0]`` imports ``violation[1]``."""
    root = tmp_path / "src"
    for package in PACKAGES:
        (root / "cathouse" / package).mkdir(parents=True)
        (root / "cathouse" / package / "__init__.py").write_text("")
    (root / "cathouse" / "__init__.py").write_text("")
    (root / "cathouse" / "services.py").write_text("")
    source, target = violation
    (root / "cathouse" / source / "bad.py").write_text(f"import cathouse.{target}\n")
    return root


def test_the_real_tree_keeps_every_contract(repo_root: Path) -> None:
    result = lint_imports(repo_root / "src", repo_root / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_kernel_importing_a_service_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    root = fake_tree(tmp_path, ("platform", "catalog"))
    config = shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(root, Path(config))
    assert result.returncode != 0
    assert "The kernel imports no service BROKEN" in result.stdout


def test_a_service_importing_another_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    root = fake_tree(tmp_path, ("installation", "catalog"))
    config = shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(root, Path(config))
    assert result.returncode != 0
    assert "No service imports another service BROKEN" in result.stdout


def test_a_service_may_read_another_only_through_its_query_module(tmp_path: Path, repo_root: Path) -> None:
    config = Path(shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml"))
    allowed = fake_tree(tmp_path / "allowed", ("catalog", "auth.queries"))
    (allowed / "cathouse" / "auth" / "queries.py").write_text("")
    assert lint_imports(allowed, config).returncode == 0
    forbidden = fake_tree(tmp_path / "forbidden", ("catalog", "auth.models"))
    (forbidden / "cathouse" / "auth" / "models.py").write_text("")
    result = lint_imports(forbidden, config)
    assert result.returncode != 0
    assert "No service imports another service BROKEN" in result.stdout
