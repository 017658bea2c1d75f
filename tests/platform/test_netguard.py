"""What the SSRF check hands back: the addresses it checked, which are the ones to connect to.

Which addresses count as public is tested with the proxy's guard (tests/proxy/test_ssrf.py).
"""

from __future__ import annotations

import ipaddress

import pytest

from cathouse.platform.netguard import BlockedAddress, check_public_url


async def test_the_check_returns_the_addresses_it_resolved_and_the_name_for_host_and_tls() -> None:
    checked = await check_public_url("https://LocalHost:8443/hooks?x=1", allow_private=True)
    assert (checked.scheme, checked.host, checked.port) == ("https", "localhost", 8443)
    assert ipaddress.ip_address("127.0.0.1") in checked.addresses


async def test_an_internal_address_is_refused_naming_it() -> None:
    with pytest.raises(BlockedAddress, match=r"localhost resolves to an address that is not public \(127\.0\.0\.1"):
        await check_public_url("http://localhost/hooks")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "file:///etc/passwd"])
async def test_only_http_and_https_urls_with_a_host_pass(url: str) -> None:
    with pytest.raises(BlockedAddress, match="only http and https"):
        await check_public_url(url, allow_private=True)
