"""The storefront's pages: browse and search, a cat's page, and where signing in will be.

Each page is one or two GETs to the API and a template. What a visitor asked for stays in the
URL (query, facets, sort, cursor), so a search can be shared and the back button works. Query
parameters are passed to the API as they came: the API validates them, and its problem comes
back as the page's error, in words, with the API's status.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from cathouse.web.api import ApiProblem
from cathouse.web.session import VisitDep

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 12
REVIEWS_PAGE_SIZE = 10
SORTS = [
    ("relevance", "Best match"),
    ("popular", "Most installed"),
    ("rating", "Best rated"),
    ("newest", "Newest"),
    ("name", "Name"),
]
# The browse page's own parameters: anything else in the URL is ignored, not sent on.
BROWSE_KEYS = ("q", "category", "tag", "sort", "min_rating", "limit")


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _browse_params(query: QueryParams) -> dict[str, Any]:
    params: dict[str, Any] = {k: query.get(k) for k in BROWSE_KEYS if k != "tag"}
    params["tag"] = query.getlist("tag")
    return params


def _href(params: dict[str, Any], **changes: Any) -> str:
    """The browse URL for ``params`` with ``changes`` applied (None removes a key)."""
    merged = {**params, **changes}
    pairs = [(k, v) for k, value in merged.items() for v in (value if isinstance(value, list) else [value]) if v]
    return "/?" + urlencode(pairs) if pairs else "/"


@router.get("/", response_class=HTMLResponse)
async def browse(request: Request, visit: VisitDep) -> HTMLResponse:
    api, params = visit.api, _browse_params(request.query_params)
    cursor = request.query_params.get("cursor")
    search = {**params, "cursor": cursor, "limit": params["limit"] or PAGE_SIZE}
    context: dict[str, Any] = {"params": params, "href": _href, "sorts": SORTS, "cursor": cursor}
    try:
        if cursor and _htmx(request):  # "more": the next cards and the next link only
            page = await api.get("/api/v1/cats", search)
            return visit.render("_results.html", {**context, "page": page})
        page, categories = await asyncio.gather(api.get("/api/v1/cats", search), api.get("/api/v1/cats/categories"))
    except ApiProblem as problem:
        return visit.render("browse.html", {**context, "problem": problem}, status=problem.status)
    names = {c["slug"]: c["name"] for c in categories}
    return visit.render("browse.html", {**context, "page": page, "category_names": names})


@router.get("/cats/{slug}", response_class=HTMLResponse)
async def cat(visit: VisitDep, slug: str) -> HTMLResponse:
    api = visit.api
    try:
        detail, reviews = await asyncio.gather(
            api.get(f"/api/v1/cats/{slug}"),
            api.get(f"/api/v1/cats/{slug}/reviews", {"limit": REVIEWS_PAGE_SIZE}),
        )
    except ApiProblem as problem:
        return visit.render("problem.html", {"problem": problem}, status=problem.status)
    return visit.render("cat.html", {"cat": detail, "reviews": reviews, "slug": slug})


@router.get("/cats/{slug}/reviews", response_class=HTMLResponse)
async def reviews(request: Request, visit: VisitDep, slug: str) -> HTMLResponse:
    """More of a cat's reviews: the next ones alone for htmx, a page of them without JavaScript."""
    cursor = request.query_params.get("cursor")
    asked = visit.api.get(f"/api/v1/cats/{slug}/reviews", {"cursor": cursor, "limit": REVIEWS_PAGE_SIZE})
    try:
        if _htmx(request):
            return visit.render("_reviews.html", {"reviews": await asked, "slug": slug})
        # A page of its own names the cat it is about.
        page, detail = await asyncio.gather(asked, visit.api.get(f"/api/v1/cats/{slug}"))
    except ApiProblem as problem:
        return visit.render("problem.html", {"problem": problem}, status=problem.status)
    return visit.render("reviews.html", {"reviews": page, "slug": slug, "cat": detail})
