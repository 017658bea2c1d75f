"""The installation API key's prefix: the installation service issues keys with it, and the proxy
tells an API key from an access token by it."""

from __future__ import annotations

API_KEY_PREFIX = "chk_"
