"""The templates' environment: autoescaping on, a few filters for numbers and dates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

import cathouse
from cathouse.web import markdown

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def _count(n: int) -> str:
    """1234 as "1.2k": install counts read at a glance on a card."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def _date(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).strftime("%-d %b %Y")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["count"] = _count
    env.filters["date"] = _date
    env.filters["markdown"] = markdown.render
    # Static files carry the version, so a release never meets a browser's stale copy.
    env.globals["static"] = lambda name: f"/static/{name}?v={cathouse.__version__}"
    return env


ENVIRONMENT = _environment()


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    html = ENVIRONMENT.get_template(name).render({"request_path": request.url.path, **context})
    return HTMLResponse(html, status_code=status)
