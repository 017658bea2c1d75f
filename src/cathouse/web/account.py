"""Signing up, in and out, and the profile: the session cookie's beginning and end.

Signing in posts the email and password to the auth API like any client; the token pair it
answers goes into the sealed session cookie (``cathouse.web.session``), never into the page.
After signing in the visitor goes back where they were (``next``, a path on this site only).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cathouse.web.api import ApiProblem
from cathouse.web.session import CheckedForm, VisitDep, form_text, local_path

router = APIRouter(include_in_schema=False)

PROFILE_FIELDS = ("display_name", "bio", "avatar_url", "locale", "time_zone")


@router.get("/sign-in")
async def sign_in_page(visit: VisitDep, next: str | None = None) -> Response:
    if visit.signed_in:
        return visit.redirect(local_path(next))
    return visit.render("account/sign_in.html", {"next": local_path(next), "values": {}})


@router.post("/sign-in")
async def sign_in(visit: VisitDep, form: CheckedForm) -> Response:
    values = {"email": form_text(form, "email")}
    back = local_path(form_text(form, "next"))
    try:
        pair = await visit.api.post(
            "/api/v1/auth/login", {"email": values["email"], "password": form.get("password") or ""}
        )
        await visit.sign_in(pair["access_token"], pair["refresh_token"])
    except ApiProblem as problem:
        return visit.render(
            "account/sign_in.html", {"next": back, "values": values, "problem": problem}, status=problem.status
        )
    return visit.redirect(back)


@router.get("/sign-up")
async def sign_up_page(visit: VisitDep, next: str | None = None) -> Response:
    if visit.signed_in:
        return visit.redirect(local_path(next))
    return visit.render("account/sign_up.html", {"next": local_path(next), "values": {}})


@router.post("/sign-up")
async def sign_up(visit: VisitDep, form: CheckedForm) -> Response:
    values = {"email": form_text(form, "email"), "display_name": form_text(form, "display_name")}
    password = form.get("password") or ""
    back = local_path(form_text(form, "next"))
    try:
        await visit.api.post("/api/v1/auth/register", {**values, "password": password})
        pair = await visit.api.post("/api/v1/auth/login", {"email": values["email"], "password": password})
        await visit.sign_in(pair["access_token"], pair["refresh_token"])
    except ApiProblem as problem:
        return visit.render(
            "account/sign_up.html", {"next": back, "values": values, "problem": problem}, status=problem.status
        )
    return visit.redirect(back)


@router.post("/sign-out")
async def sign_out(visit: VisitDep, form: CheckedForm) -> Response:
    await visit.sign_out()
    return visit.redirect("/")


@router.get("/profile")
async def profile_page(visit: VisitDep, saved: bool = False) -> Response:
    if not visit.signed_in:
        return visit.to_sign_in()
    try:
        me = await visit.api.get("/api/v1/users/me")
    except ApiProblem as problem:
        return visit.refused(problem)
    return visit.render("account/profile.html", {"me": me, "values": me, "saved": saved})


@router.post("/profile")
async def update_profile(request: Request, visit: VisitDep, form: CheckedForm) -> Response:
    if not visit.signed_in:
        return visit.to_sign_in()
    values = {name: form_text(form, name) for name in PROFILE_FIELDS}
    # An emptied optional field clears it; the display name is required.
    changes = {name: (value or None) for name, value in values.items()}
    changes["display_name"] = values["display_name"]
    try:
        me = await visit.api.patch("/api/v1/users/me", changes)
    except ApiProblem as problem:
        if problem.status == 401:
            return visit.to_sign_in()
        try:
            current = await visit.api.get("/api/v1/users/me")
        except ApiProblem:
            current = {"email": "", "roles": []}
        return visit.render(
            "account/profile.html", {"me": current, "values": values, "problem": problem}, status=problem.status
        )
    visit.remember_name(str(me["display_name"]))
    return visit.redirect("/profile?saved=true")
