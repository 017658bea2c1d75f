"""The OpenAPI document and the interactive docs: Swagger UI, every file of it served by the
platform itself.

FastAPI's own docs page loads Swagger UI from a CDN: blank on a machine without internet, and a
third party told of every visit. Here the page, its script, style sheet and icon all come from
``{prefix}/docs``; the validator badge (which would send the document's address to
swagger.io) is off. Only the files the page uses are served, with Swagger UI's licence.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from swagger_ui_bundle import swagger_ui_path

from cathouse.platform.errors import NotFound

DISTRIBUTION = "swagger-ui-bundle-v2"
# The files are named for their content's version, so a browser may keep them for a day.
_CACHE = {"Cache-Control": "public, max-age=86400"}
_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def _licence() -> str:
    distribution = metadata.distribution(DISTRIBUTION)
    for name in ("licenses/LICENSE", "LICENSE"):
        text = distribution.read_text(name)
        if text:
            return text
    raise RuntimeError(f"{DISTRIBUTION} ships no licence file")  # pragma: no cover


def install_docs(app: FastAPI, *, prefix: str) -> None:
    """Serve ``{prefix}/openapi.json``, the docs page at ``{prefix}/docs`` and its files under
    ``{prefix}/docs/static/``. (As routes of the app's own, so the access log and the metrics
    name them by their template, which FastAPI's built-in ones do not get.)"""
    openapi_url, docs_url = f"{prefix}/openapi.json", f"{prefix}/docs"
    static = f"{docs_url}/static"
    directory = Path(str(swagger_ui_path))
    licence = _licence()

    @app.get(openapi_url, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(docs_url, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API docs",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={**swagger_ui_default_parameters, "validatorUrl": None},
        )

    @app.get(f"{static}/LICENSE", include_in_schema=False)
    async def swagger_ui_licence() -> PlainTextResponse:
        return PlainTextResponse(licence, headers=_CACHE)

    @app.get(f"{static}/{{name}}", include_in_schema=False)
    async def swagger_ui_file(name: str) -> Response:
        media_type = _FILES.get(name)
        if media_type is None:
            raise NotFound(f"The docs have no file named {name!r}.")
        return FileResponse(directory / name, media_type=media_type, headers=_CACHE)
