"""Icons and screenshots over HTTP: upload, replace, remove, and serve with cache headers."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image

from tests.catalog.conftest import People, draft, published


def png(width: int = 256, height: int = 256, colour: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_with_exif(width: int = 1280, height: int = 720) -> bytes:
    image = Image.new("RGB", (width, height), "teal")
    exif = Image.Exif()
    exif[0x010F] = "Secret Camera Co"  # Make
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


async def test_a_publisher_sets_an_icon_that_everyone_can_fetch(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    uploaded = await api.put(
        f"/api/v1/cats/{cat['slug']}/icon",
        content=png(),
        headers={**people.developer.headers, "Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 200, uploaded.text
    icon = uploaded.json()
    assert (icon["kind"], icon["content_type"], icon["width"], icon["height"]) == ("icon", "image/png", 256, 256)
    listed = (await api.get("/api/v1/cats", params={"q": cat["name"]})).json()["items"][0]
    assert listed["icon_url"] == icon["url"]
    served = await api.get(icon["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert "immutable" in served.headers["cache-control"]
    assert Image.open(io.BytesIO(served.content)).size == (256, 256)
    again = await api.get(icon["url"], headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_a_new_icon_replaces_the_old_one(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    url = f"/api/v1/cats/{cat['slug']}/icon"
    await api.put(url, content=png(colour="red"), headers=people.developer.headers)
    second = (await api.put(url, content=png(colour="blue"), headers=people.developer.headers)).json()
    detail = (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()
    assert detail["icon_url"] == second["url"]
    assert (await api.delete(url, headers=people.developer.headers)).status_code == 204
    assert (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()["icon_url"] is None


async def test_screenshots_lose_their_metadata_and_stop_at_eight(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    url = f"/api/v1/cats/{cat['slug']}/screenshots"
    shots: list[dict[str, Any]] = []
    for i in range(8):
        response = await api.post(url, content=jpeg_with_exif(1280 + i, 720), headers=people.developer.headers)
        assert response.status_code == 201, response.text
        shots.append(response.json())
    ninth = await api.post(url, content=jpeg_with_exif(), headers=people.developer.headers)
    assert ninth.status_code == 409
    served = await api.get(shots[0]["url"], headers=people.developer.headers)
    assert b"Secret Camera Co" not in served.content
    assert not Image.open(io.BytesIO(served.content)).getexif()
    removed = await api.delete(f"{url}/{shots[0]['id']}", headers=people.developer.headers)
    assert removed.status_code == 204
    detail = (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()
    assert [s["id"] for s in detail["screenshots"]] == [s["id"] for s in shots[1:]]


async def test_a_draft_cats_images_are_private(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    icon = (await api.put(f"/api/v1/cats/{cat['slug']}/icon", content=png(), headers=people.developer.headers)).json()
    assert (await api.get(icon["url"])).status_code == 404
    own = await api.get(icon["url"], headers=people.developer.headers)
    assert own.status_code == 200
    assert own.headers["cache-control"].startswith("private")


async def test_what_is_not_an_image_is_refused_by_content(api: httpx.AsyncClient, people: People) -> None:
    cat = await draft(api, people.developer)
    url = f"/api/v1/cats/{cat['slug']}/icon"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for body, content_type in ((svg, "image/png"), (b"GIF89a" + b"\0" * 100, "image/gif"), (b"hello", "image/png")):
        response = await api.put(url, content=body, headers={**people.developer.headers, "Content-Type": content_type})
        assert response.status_code == 415, response.text
        assert response.headers["content-type"] == "application/problem+json"
    wrong_shape = await api.put(url, content=png(300, 200), headers=people.developer.headers)
    assert wrong_shape.status_code == 422
    assert "square" in wrong_shape.json()["detail"]
    too_big = await api.put(url, content=b"\0" * (6 * 1024 * 1024), headers=people.developer.headers)
    assert too_big.status_code == 413
    assert (await api.get(f"/api/v1/cats/{cat['slug']}", headers=people.developer.headers)).json()["icon_url"] is None


async def test_only_the_publisher_changes_images(api: httpx.AsyncClient, people: People) -> None:
    cat = await published(api, people)
    url = f"/api/v1/cats/{cat['slug']}/icon"
    assert (await api.put(url, content=png(), headers=people.other_developer.headers)).status_code == 404
    assert (await api.put(url, content=png(), headers=people.user.headers)).status_code == 403
    # Admins moderate a cat; they do not change it.
    assert (await api.put(url, content=png(), headers=people.admin.headers)).status_code == 404
    assert (await api.put(url, content=png(), headers=people.developer.headers)).status_code == 200


async def test_unknown_and_malformed_asset_names(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/api/v1/cats/assets/{'0' * 64}.png")).status_code == 404
    bad = await api.get("/api/v1/cats/assets/..%2F..%2Fetc%2Fpasswd")
    assert bad.status_code in (400, 404)
    assert bad.headers["content-type"] == "application/problem+json"
