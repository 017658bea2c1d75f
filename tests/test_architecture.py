"""The import contracts of ``make lint`` are real: they pass here and bite on a violation."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

SERVICES = ("auth", "catalog", "installation", "proxy", "activity")
PACKAGES = ("platform", "contracts", *SERVICES, "web", "cli")
LAYERS = "The layers: the CLI, the wiring, the services, the contracts, the kernel"


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
    """A skeleton of the package in which module ``violation[0]`` imports ``violation[1]``
    (a module the skeleton then has, empty)."""
    root = tmp_path / "src"
    for package in PACKAGES:
        (root / "cathouse" / package).mkdir(parents=True)
        (root / "cathouse" / package / "__init__.py").write_text("")
    for module in ("__init__", "services", "webhooks", "contracts/secrets"):
        (root / "cathouse" / f"{module}.py").write_text("")
    source, target = violation
    package, _, module = target.partition(".")
    if module:
        (root / "cathouse" / package / f"{module}.py").write_text("")
    (root / "cathouse" / source / "bad.py").write_text(f"import cathouse.{target}\n")
    return root


def lint_fake(tmp_path: Path, repo_root: Path, violation: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    return lint_imports(fake_tree(tmp_path, violation), Path(config))


def test_the_real_tree_keeps_every_contract(repo_root: Path) -> None:
    result = lint_imports(repo_root / "src", repo_root / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_contract_lets_an_import_through_by_exception(repo_root: Path) -> None:
    contracts = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert [c["name"] for c in contracts if c.get("ignore_imports")] == []


def test_no_service_reaches_another_even_through_a_third_module() -> None:
    """No import chain, however long, from one service to another: no cycle between them either."""
    graph = grimp.build_graph("cathouse")
    chains = [
        (a, b)
        for a, b in itertools.permutations(SERVICES, 2)
        if graph.chain_exists(f"cathouse.{a}", f"cathouse.{b}", as_packages=True)
    ]
    assert chains == []


def test_the_kernel_importing_a_service_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    result = lint_fake(tmp_path, repo_root, ("platform", "catalog"))
    assert result.returncode != 0
    assert "The kernel imports no service BROKEN" in result.stdout


def test_a_service_importing_another_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    result = lint_fake(tmp_path, repo_root, ("installation", "catalog"))
    assert result.returncode != 0
    assert "No service imports another service BROKEN" in result.stdout


@pytest.mark.parametrize("violation", [("catalog", "auth.queries"), ("installation", "catalog.queries")])
def test_a_service_importing_anothers_query_module_breaks_the_build(
    tmp_path: Path, repo_root: Path, violation: tuple[str, str]
) -> None:
    result = lint_fake(tmp_path, repo_root, violation)
    assert result.returncode != 0
    assert "No service imports another service BROKEN" in result.stdout
    assert "The layers: the CLI, the wiring, the services, the contracts, the kernel BROKEN" in result.stdout


def test_every_service_may_import_the_contracts(tmp_path: Path, repo_root: Path) -> None:
    result = lint_fake(tmp_path, repo_root, ("catalog", "contracts.reads"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("violation", "broken"),
    [
        (("platform", "contracts"), "The layers: the CLI, the wiring, the services, the contracts, the kernel"),
        (("contracts", "platform"), "The contracts import nothing of the platform"),
    ],
)
def test_the_kernel_and_the_contracts_know_nothing_of_each_other(
    tmp_path: Path, repo_root: Path, violation: tuple[str, str], broken: str
) -> None:
    result = lint_fake(tmp_path, repo_root, violation)
    assert result.returncode != 0
    assert f"{broken} BROKEN" in result.stdout


def test_a_service_importing_the_wiring_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    result = lint_fake(tmp_path, repo_root, ("proxy", "services"))
    assert result.returncode != 0
    assert "The layers: the CLI, the wiring, the services, the contracts, the kernel BROKEN" in result.stdout


def test_a_module_in_no_layer_breaks_the_build(tmp_path: Path, repo_root: Path) -> None:
    config = shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    root = fake_tree(tmp_path, ("catalog", "contracts.reads"))
    (root / "cathouse" / "helpers.py").write_text("")
    result = lint_imports(root, Path(config))
    assert result.returncode != 0
    assert "cathouse.helpers" in result.stdout


@pytest.mark.parametrize("violation", [("catalog", "web"), ("web", "catalog"), ("web", "services")])
def test_the_web_pages_are_a_client_of_the_services_never_imported_by_them(
    tmp_path: Path, repo_root: Path, violation: tuple[str, str]
) -> None:
    """The pages reach the services through their HTTP API only, and the services know nothing of them."""
    result = lint_fake(tmp_path, repo_root, violation)
    assert result.returncode != 0
    assert f"{LAYERS} BROKEN" in result.stdout


def test_the_web_pages_may_import_the_kernel_and_the_contracts(tmp_path: Path, repo_root: Path) -> None:
    assert lint_fake(tmp_path / "kernel", repo_root, ("web", "platform")).returncode == 0
    assert lint_fake(tmp_path / "contracts", repo_root, ("web", "contracts.reads")).returncode == 0


def test_only_the_proxy_may_read_credentials_in_clear(tmp_path: Path, repo_root: Path) -> None:
    refused = lint_fake(tmp_path / "catalog", repo_root, ("catalog", "contracts.secrets"))
    assert refused.returncode != 0
    assert "Only the proxy reads credentials in clear BROKEN" in refused.stdout
    allowed = lint_fake(tmp_path / "proxy", repo_root, ("proxy", "contracts.secrets"))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
