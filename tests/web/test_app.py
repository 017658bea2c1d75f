"""The pages served alone (``cathouse serve web``): their own health, their files, and an API
that cannot be reached, said in words."""

from __future__ import annotations

from pathlib import Path

from cathouse.platform.settings import Environment, Settings
from cathouse.web.app import create_web_app
from tests.support import free_port, in_process


def _alone(tmp_path: Path) -> Settings:
    # Nothing listens on the port: the catalog is down.
    return Settings(
        _env_file=None,
        env=Environment.TEST,
        data_dir=tmp_path,
        web={"api_url": f"http://127.0.0.1:{free_port()}"},  # type: ignore[arg-type]
    )


async def test_a_catalog_that_cannot_be_reached_is_said_in_words(tmp_path: Path) -> None:
    async with in_process(create_web_app(_alone(tmp_path))) as client:
        page = await client.get("/", params={"q": "points"})
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert "The service cannot be reached right now; try again soon." in page.text
        cat = await client.get("/cats/points-ledger")
        assert cat.status_code == 503
        assert "The service cannot be reached" in cat.text


async def test_the_pages_alone_answer_the_gateways_health_check_and_serve_their_files(tmp_path: Path) -> None:
    async with in_process(create_web_app(_alone(tmp_path))) as client:
        health = await client.get("/api/v1/health")
        assert health.json() == {"status": "ok", "service": "web", "version": health.json()["version"]}
        script = await client.get("/static/htmx.min.js")
        assert script.status_code == 200
        assert "htmx" in script.text[:2000]
        licence = await client.get("/static/htmx.LICENSE")
        assert "Zero-Clause BSD" in licence.text
        stylesheet = await client.get("/static/style.css")
        assert "@media (min-width: 640px)" in stylesheet.text
