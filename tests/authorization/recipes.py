"""How to call each route: its path filled in, a body that works for whoever may call it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.auth.conftest import PASSWORD
from tests.authorization.matrix import METHODS
from tests.authorization.world import World, ok, png
from tests.catalog.conftest import cat_body


@dataclass
class Call:
    method: str
    url: str
    json: Any = None
    params: dict[str, Any] | None = None
    content: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def without_reason(self) -> Call:
        json = {k: v for k, v in self.json.items() if k != "reason"} if isinstance(self.json, dict) else self.json
        params = {k: v for k, v in (self.params or {}).items() if k != "reason"}
        return Call(self.method, self.url, json, params, self.content, self.headers)


Make = Callable[[World, str, str], Awaitable[Call]]


@dataclass(frozen=True)
class Recipe:
    make: Make
    # Each allowed principal needs data of its own (the call changes what the next would find).
    fresh: bool = True
    # Each principal needs accounts of its own (the call ends sessions or changes the account).
    fresh_people: frozenset[str] = frozenset()


RECIPES: dict[tuple[str, str], Recipe] = {}


def route(*keys: str, fresh: bool = True, fresh_people: tuple[str, ...] = ()) -> Callable[[Make], Make]:
    def register(make: Make) -> Make:
        for key in keys:
            method, path = key.split(" ", 1)
            RECIPES[(method, "/api/v1" + path)] = Recipe(make, fresh, frozenset(fresh_people))
        return make

    return register


def reads(*keys: str) -> Callable[[Make], Make]:
    return route(*keys, fresh=False)


@reads(
    "GET /health",
    "GET /health/db",
    "GET /health/ready",
    "GET /auth/.well-known/jwks.json",
    "GET /auth/validate",
    "GET /users/me",
    "GET /users",
    "GET /cats",
    "GET /cats/categories",
    "GET /cats/manifest.schema.json",
    "GET /cats/mine",
    "GET /cats/review-queue",
    "GET /installations",
    "GET /proxy/audit",
    "GET /proxy/audit/public-key",
    "GET /activity",
    "GET /activity/me",
    "GET /activity/stats",
    "GET /activity/stream",
    "GET /events/asyncapi.json",
)
async def _plain(world: World, method: str, path: str) -> Call:
    return Call(method, path)


# auth


@route("POST /auth/register", fresh=False)
async def _register(world: World, method: str, path: str) -> Call:
    email = f"new-{uuid.uuid4().hex[:10]}@example.com"
    return Call(method, path, json={"email": email, "password": PASSWORD, "display_name": "New"})


@route("POST /auth/login", fresh=False)
async def _login(world: World, method: str, path: str) -> Call:
    return Call(method, path, json={"email": world.cast.spare.email, "password": PASSWORD})


@route("POST /auth/refresh", "POST /auth/logout", fresh=False)
async def _session(world: World, method: str, path: str) -> Call:
    tokens = ok(
        await world.api.post("/api/v1/auth/login", json={"email": world.cast.spare.email, "password": PASSWORD})
    )
    return Call(method, path, json={"refresh_token": tokens["refresh_token"]})


EVERYONE = ("owner", "publisher", "admin", "other")


@route("POST /auth/logout-all", fresh_people=EVERYONE)
async def _logout_all(world: World, method: str, path: str) -> Call:
    return Call(method, path)


@route("PATCH /users/me", fresh=False)
async def _profile(world: World, method: str, path: str) -> Call:
    return Call(method, path, json={"bio": "Cats."})


@route("POST /users/me/password", fresh_people=EVERYONE)
async def _password(world: World, method: str, path: str) -> Call:
    return Call(method, path, json={"current_password": PASSWORD, "new_password": "another long passphrase"})


@route("DELETE /users/me", fresh_people=EVERYONE)
async def _delete_me(world: World, method: str, path: str) -> Call:
    return Call(method, path, json={"password": PASSWORD})


@reads("GET /users/{user_id}")
async def _read_user(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(user_id=await world.target()))


@route("POST /users/{user_id}/disable", fresh_people=("owner",))
async def _user(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(user_id=await world.target()))


@route("PUT /users/{user_id}/roles", fresh_people=("owner",))
async def _roles(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(user_id=await world.target()), json={"roles": ["developer"]})


@route("POST /users/{user_id}/enable", fresh_people=("owner",))
async def _enable(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(user_id=await world.target(disabled=True)))


# catalog


@route("POST /cats/validate", fresh=False)
async def _validate(world: World, method: str, path: str) -> Call:
    return Call(method, path, content="slug: a-cat\n", headers={"Content-Type": "application/yaml"})


@route("POST /cats/sync", fresh=False)
async def _sync(world: World, method: str, path: str) -> Call:
    return Call(method, path)


@route("POST /cats", fresh=False)
async def _create_cat(world: World, method: str, path: str) -> Call:
    return Call(method, path, json=cat_body())


@reads("GET /cats/{slug}", "GET /cats/{slug}/versions", "GET /activity/cats/{slug}", "GET /activity/cats/{slug}/stats")
async def _draft(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.draft()))


@reads("GET /cats/{slug}/versions/{version}")
async def _draft_cats_version(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.draft(), version="1.0.0"))


@route("DELETE /cats/{slug}", "POST /cats/{slug}/submit")
async def _own_draft(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.draft()))


@route("PATCH /cats/{slug}")
async def _edit(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.published()), json={"summary": "Points, now with streaks."})


@route("POST /cats/{slug}/versions")
async def _add_version(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.published()), json=world.version("3.0.0"))


@route("DELETE /cats/{slug}/versions/{version}", "POST /cats/{slug}/versions/{version}/publish")
async def _draft_version(world: World, method: str, path: str) -> Call:
    slug, label = await world.draft_version()
    return Call(method, path.format(slug=slug, version=label))


@route("POST /cats/{slug}/approve")
async def _approve(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.pending()))


@route("POST /cats/{slug}/reject")
async def _reject(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.pending()), json={"reason": "Needs a privacy policy."})


@route("POST /cats/{slug}/suspend", "POST /cats/{slug}/delist")
async def _take_down(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.published()), json={"reason": "Reported as malware."})


@route("POST /cats/{slug}/reinstate")
async def _reinstate(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(slug=await world.suspended_cat()))


@route("PUT /cats/{slug}/icon", "POST /cats/{slug}/screenshots")
async def _upload(world: World, method: str, path: str) -> Call:
    size = (320, 200) if path.endswith("screenshots") else (128, 128)
    return Call(method, path.format(slug=await world.published()), content=png(size=size))


@route("DELETE /cats/{slug}/icon")
async def _icon(world: World, method: str, path: str) -> Call:
    slug = await world.published()
    await world.as_("publisher", "PUT", f"/api/v1/cats/{slug}/icon", content=png())
    return Call(method, path.format(slug=slug))


@route("GET /cats/{slug}/webhook-secrets", "POST /cats/{slug}/webhook-secrets/rotate")
async def _publisher_only(world: World, method: str, path: str) -> Call:
    body = {"overlap_hours": 1} if path.endswith("rotate") else None
    return Call(method, path.format(slug=await world.published()), json=body)


@route("PUT /cats/{slug}/oauth-client", "GET /cats/{slug}/oauth-client")
async def _oauth_client(world: World, method: str, path: str) -> Call:
    body = {"client_id": "cathouse", "client_secret": "another-secret"} if method == "PUT" else None
    return Call(method, path.format(slug=await world.oauth_cat()), json=body)


@route("GET /installations/{installation_id}/oauth/authorize", "POST /installations/{installation_id}/oauth/reconnect")
async def _oauth_start(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(installation_id=await world.oauth_installation()))


@route("PUT /installations/owner-webhook", "GET /installations/owner-webhook", "DELETE /installations/owner-webhook")
async def _owner_webhook(world: World, method: str, path: str) -> Call:
    body = {"url": f"{world.fake_cat.url}/owner"}
    if method != "PUT":  # each caller reads or deletes a webhook of their own
        for principal in ("owner", "publisher", "admin", "other"):
            await world.as_(principal, "PUT", path, json=body)
    return Call(method, path, json=body if method == "PUT" else None)


@route("GET /oauth/callback")
async def _oauth_return(world: World, method: str, path: str) -> Call:
    return Call(method, path, params={"state": await world.oauth_state(), "code": "a-code"})


@route("DELETE /cats/{slug}/screenshots/{asset_id}")
async def _screenshot(world: World, method: str, path: str) -> Call:
    slug, asset_id = await world.screenshot()
    return Call(method, path.format(slug=slug, asset_id=asset_id))


@reads("GET /cats/assets/{key}")
async def _asset(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(key=await world.draft_image()))


@reads("GET /cats/{slug}/reviews", "GET /cats/{slug}/reviews/mine")
async def _reviews(world: World, method: str, path: str) -> Call:
    slug, _ = await world.review()
    return Call(method, path.format(slug=slug))


@route("POST /cats/{slug}/reviews")
async def _write_review(world: World, method: str, path: str) -> Call:
    slug = await world.published()
    return Call(method, path.format(slug=slug), json={"rating": 5, "title": "Great", "body": "Love it."})


@route(
    "PATCH /cats/{slug}/reviews/{review_id}",
    "DELETE /cats/{slug}/reviews/{review_id}",
    "PUT /cats/{slug}/reviews/{review_id}/reply",
    "DELETE /cats/{slug}/reviews/{review_id}/reply",
    "POST /cats/{slug}/reviews/{review_id}/hide",
)
async def _review(world: World, method: str, path: str) -> Call:
    slug, review_id = await world.review()
    bodies: dict[str, dict[str, Any]] = {
        "PATCH": {"rating": 2},
        "PUT": {"body": "Thanks for the review."},
        "POST": {"reason": "Off topic."},
    }
    body = bodies.get(method)
    return Call(method, path.format(slug=slug, review_id=review_id), json=body)


@route("POST /cats/{slug}/reviews/{review_id}/restore")
async def _restore(world: World, method: str, path: str) -> Call:
    slug, review_id = await world.hidden_review()
    return Call(method, path.format(slug=slug, review_id=review_id))


# installation


@route("POST /installations", fresh=False)
async def _install(world: World, method: str, path: str) -> Call:
    body = {
        "cat": await world.published(),
        "version": "1.0.0",
        "name": f"Mine {uuid.uuid4().hex[:6]}",
        "permissions": ["points:read"],
        "secrets": {"api_key": "sk-live-9876543210"},
    }
    return Call(method, path, json=body)


@reads(
    "GET /installations/{installation_id}",
    "GET /installations/{installation_id}/api-keys",
    "GET /installations/{installation_id}/deliveries",
)
async def _installation(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(installation_id=await world.installation()))


INSTALLATION_BODIES: dict[str, dict[str, Any]] = {
    "PATCH /installations/{installation_id}": {"name": "Renamed", "settings": {"team": "red"}},
    "PUT /installations/{installation_id}/secrets": {"secrets": {"api_key": "sk-attacker-0000000000"}},
    "PUT /installations/{installation_id}/permissions": {"permissions": ["points:read"]},
    "POST /installations/{installation_id}/suspend": {"reason": "Abusing the cat's API."},
    "POST /installations/{installation_id}/api-keys": {"name": "stolen"},
}


@route(*INSTALLATION_BODIES)
async def _change_installation(world: World, method: str, path: str) -> Call:
    body = INSTALLATION_BODIES[f"{method} {path.removeprefix('/api/v1')}"]
    return Call(method, path.format(installation_id=await world.installation()), json=body)


@route("POST /installations/{installation_id}/upgrade")
async def _upgrade(world: World, method: str, path: str) -> Call:
    installation_id = await world.installation()
    label = await world.newer_version("1.1.0")
    return Call(method, path.format(installation_id=installation_id), json={"version": label})


@route("DELETE /installations/{installation_id}")
async def _uninstall(world: World, method: str, path: str) -> Call:
    installation_id = await world.installation()
    return Call(method, path.format(installation_id=installation_id), params={"reason": "Abusing the cat's API."})


@route("POST /installations/{installation_id}/permissions/accept")
async def _accept(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(installation_id=await world.installation_in("permissions_pending")))


@route("POST /installations/{installation_id}/resume")
async def _resume(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(installation_id=await world.installation_in("suspended")))


@route("POST /installations/{installation_id}/retry")
async def _retry(world: World, method: str, path: str) -> Call:
    return Call(method, path.format(installation_id=await world.installation_in("failed")))


@route("DELETE /installations/{installation_id}/api-keys/{key_id}")
async def _revoke(world: World, method: str, path: str) -> Call:
    installation_id, key_id = await world.api_key()
    return Call(method, path.format(installation_id=installation_id, key_id=key_id))


@reads("GET /installations/deliveries")
async def _cat_deliveries(world: World, method: str, path: str) -> Call:
    await world.installation()
    return Call(method, path, params={"cat": await world.published()})


@reads("GET /installations/{installation_id}/deliveries/{delivery_id}")
async def _delivery(world: World, method: str, path: str) -> Call:
    installation_id, delivery_id = await world.delivery()
    return Call(method, path.format(installation_id=installation_id, delivery_id=delivery_id))


@route("POST /installations/{installation_id}/deliveries/{delivery_id}/redeliver")
async def _redeliver(world: World, method: str, path: str) -> Call:
    installation_id, delivery_id = await world.delivery()
    return Call(method, path.format(installation_id=installation_id, delivery_id=delivery_id))


# proxy


@reads(*(f"{m} /proxy/{{installation_id}}/{{path}}" for m in METHODS))
async def _proxy(world: World, method: str, path: str) -> Call:
    installation_id = await world.installation()
    body = {"points": 5} if method in ("POST", "PUT", "PATCH") else None
    return Call(method, path.format(installation_id=installation_id, path="points"), json=body)
