"""The proxy's SSRF guard, and the address classification it shares with webhooks (netguard)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Sequence

import pytest

from cathouse.platform.netguard import is_public
from cathouse.proxy.ssrf import NEGATIVE_TTL, Blocked, Destination, Guard

PUBLIC = "93.184.216.34"


class FakeDNS:
    """Answers from a table; a host answers its list in turn, staying on the last one."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]] | None = None, delay: float = 0) -> None:
        self.answers = answers or {}
        self.delay = delay
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if self.delay:
            await asyncio.sleep(self.delay)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        sequence = self.answers[host]
        return list(sequence[min(len(self.calls_for(host)) - 1, len(sequence) - 1)])

    def calls_for(self, host: str) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] == host]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dns() -> FakeDNS:
    return FakeDNS(
        {
            "public.test": [[PUBLIC]],
            "private.test": [["10.0.0.5"]],
            "mixed.test": [[PUBLIC, "192.168.0.7"]],
            "mixed6.test": [["2606:4700:4700::1111", "::1"]],
            "metadata.test": [["169.254.169.254"]],
            "localhost": [[PUBLIC]],
        }
    )


LITERAL = "is not a public address"
RESOLVED = "resolves to an address that is not public"
# (base_url, why it is refused)
FORBIDDEN = [
    ("http://127.0.0.1/", LITERAL),
    ("http://2130706433/", LITERAL),
    ("http://0177.0.0.1/", LITERAL),
    ("http://0x7f.0.0.1/", LITERAL),
    ("http://0x7f000001/", LITERAL),
    ("http://0x7F.1/", LITERAL),
    ("http://017700000001/", LITERAL),
    ("http://127.1/", LITERAL),
    ("http://10.1.2/", LITERAL),
    ("http://127.0.0.1.:8080/", LITERAL),
    ("http://[::1]/", LITERAL),
    ("http://[::ffff:127.0.0.1]/", LITERAL),
    ("http://[::ffff:7f00:1]/", LITERAL),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", LITERAL),
    ("http://[::127.0.0.1]/", LITERAL),  # IPv4-compatible
    ("http://[::ffff:0:7f00:1]/", LITERAL),  # IPv4-translated
    ("http://10.0.0.1/", LITERAL),
    ("http://172.16.5.4/", LITERAL),
    ("http://192.168.1.1/", LITERAL),
    ("http://169.254.169.254/latest/meta-data", LITERAL),
    ("http://[fd00:ec2::254]/", LITERAL),  # AWS metadata over IPv6
    ("http://100.100.100.200/", LITERAL),  # Alibaba metadata, in the shared range
    ("http://100.64.0.1/", LITERAL),
    ("http://0.0.0.0/", LITERAL),
    ("http://0/", LITERAL),
    ("http://[::]/", LITERAL),
    ("http://224.0.0.1/", LITERAL),
    ("http://255.255.255.255/", LITERAL),
    ("http://[ff02::1]/", LITERAL),
    ("http://[fe80::1]/", LITERAL),
    ("http://[fec0::1]/", LITERAL),
    ("http://[64:ff9b::7f00:1]/", LITERAL),  # NAT64 to 127.0.0.1
    ("http://[64:ff9b:1::a00:1]/", LITERAL),
    ("http://[2002:7f00:1::]/", LITERAL),  # 6to4 to 127.0.0.1
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", LITERAL),  # Teredo
    ("http://[fe80::1%25eth0]/", "network interface"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", LITERAL),  # full-width digits
    ("http://127。0。0。1/", LITERAL),  # ideographic full stops
    ("http://localhost/", RESOLVED),
    ("http://localhost:8000/", RESOLVED),
    ("http://foo.localhost/", RESOLVED),
    ("http://LOCALHOST./", RESOLVED),
    ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", RESOLVED),  # full-width letters
    ("https://private.test/", RESOLVED),
    ("https://metadata.test/", RESOLVED),
    ("https://mixed.test/", RESOLVED),  # one public, one private answer
    ("https://mixed6.test/", RESOLVED),
    ("file:///etc/passwd", "http or https"),
    ("gopher://public.test:70/_", "http or https"),
    ("ftp://public.test/", "http or https"),
    ("dict://public.test:11211/", "http or https"),
    ("//public.test/", "absolute"),
    ("public.test", "absolute"),
    ("https://user@public.test/", "credentials"),
    ("https://user:secret@public.test/", "credentials"),
    ("https://public.test@127.0.0.1/", "credentials"),
    # urlsplit reads the host as 127.0.0.1, WHATWG parsers as public.test: refuse what is ambiguous.
    ("https://public.test\\@127.0.0.1/", "characters that are not allowed"),
    ("https://public.test /", "characters that are not allowed"),
    ("https://public.test\t/", "characters that are not allowed"),
    ("https://%6c%6fcalhost/", "invalid host"),
    ("https://nowhere.test/", "cannot be resolved"),
    ("https://public.test:0/", "invalid port"),
    ("https://public.test:65536/", "invalid port"),
    ("https://public.test:+443/", "invalid port"),
    ("https://public.test:80:80/", "invalid host"),
    ("https://public.test/?x=1", "query or fragment"),
    ("https://public.test/#top", "query or fragment"),
    ("https://256.1.1.1/", "invalid host"),
    ("https://1.2.3.4.5/", "invalid host"),
    ("https://08.0.0.1/", "invalid host"),
    ("https://cat.123/", "invalid host"),
    ("https://[v1.fe80::1]/", "invalid host"),
    ("https://[::1/", "invalid host"),
]


@pytest.mark.parametrize(("url", "reason"), FORBIDDEN)
async def test_a_forbidden_destination_is_blocked(url: str, reason: str) -> None:
    with pytest.raises(Blocked, match=re.escape(reason)):
        await Guard(resolver=dns()).destination(url)


async def test_a_refusal_names_the_host_but_not_the_address_behind_it() -> None:
    with pytest.raises(Blocked) as refused:
        await Guard(resolver=dns()).destination("https://private.test/")
    assert "private.test" in str(refused.value)
    assert "10.0.0.5" not in str(refused.value)


async def test_an_unresolvable_host_is_reported_as_such() -> None:
    with pytest.raises(Blocked, match=r"nowhere\.test cannot be resolved"):
        await Guard(resolver=dns()).destination("https://nowhere.test/")


async def test_a_resolver_that_hangs_counts_as_unresolvable() -> None:
    guard = Guard(resolver=FakeDNS({"slow.test": [[PUBLIC]]}, delay=1), resolve_timeout=0.01)
    with pytest.raises(Blocked, match="cannot be resolved"):
        await guard.destination("https://slow.test/")


async def test_a_public_ip_literal_passes_without_dns() -> None:
    resolver = dns()
    destination = await Guard(resolver=resolver).destination(f"http://{PUBLIC}:8080/api/")
    assert destination == Destination("http", PUBLIC, 8080, PUBLIC, "/api")
    assert resolver.calls == []


async def test_ip_literals_are_never_looked_up() -> None:
    resolver = dns()
    guard = Guard(resolver=resolver)
    for url in ["http://127.0.0.1/", "http://0x7f.1/", "http://[::1]/", "http://[2606:4700::1111]/", "http://8.8.8.8/"]:
        with contextlib.suppress(Blocked):
            await guard.destination(url)
    assert resolver.calls == []


async def test_localhost_is_not_looked_up() -> None:
    resolver = dns()  # which would answer a public address for "localhost"
    with pytest.raises(Blocked):
        await Guard(resolver=resolver).destination("http://localhost/")
    assert resolver.calls == []


async def test_a_name_resolving_to_a_public_address_passes() -> None:
    resolver = dns()
    destination = await Guard(resolver=resolver).destination("https://Public.TEST./v1/")
    assert destination == Destination("https", "public.test", 443, PUBLIC, "/v1")
    assert resolver.calls == [("public.test", 443)]


async def test_the_first_of_several_public_answers_is_the_address() -> None:
    resolver = FakeDNS({"many.test": [["2606:4700:4700::1111", "1.1.1.1", "2606:4700:4700::1111"]]})
    destination = await Guard(resolver=resolver).destination("http://many.test")
    assert destination.address == "2606:4700:4700::1111"
    assert destination.base_path == ""


async def test_an_idn_host_is_idna_encoded() -> None:
    resolver = FakeDNS({"xn--bcher-kva.test": [[PUBLIC]]})
    destination = await Guard(resolver=resolver).destination("https://BÜCHER.test/")
    assert destination.host == "xn--bcher-kva.test"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://0x7f.0.0.1/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://10.1.2/", "10.1.0.2"),
        ("http://0x10.0x/", "16.0.0.0"),
        ("http://1.0x10.0100.1/", "1.16.64.1"),
    ],
)
async def test_ipv4_is_read_in_every_inet_aton_notation(url: str, address: str) -> None:
    destination = await Guard(allow=["0.0.0.0/0"], resolver=dns()).destination(url)
    assert destination.address == address
    assert destination.host == address


async def test_an_allowed_network_lets_its_addresses_through() -> None:
    guard = Guard(allow=["127.0.0.0/8", "::1/128"], resolver=dns())
    assert (await guard.destination("http://127.0.0.1:9000/")).address == "127.0.0.1"
    assert (await guard.destination("http://[::1]:9000/")).host == "[::1]"
    with pytest.raises(Blocked):
        await guard.destination("http://10.0.0.1/")


async def test_an_allowed_network_also_lets_localhost_through_without_dns() -> None:
    resolver = dns()
    destination = await Guard(allow=["127.0.0.0/8"], resolver=resolver).destination("http://localhost:8000/")
    assert destination.address == "127.0.0.1"
    assert resolver.calls == []


async def test_an_allowed_host_passes_whatever_it_resolves_to() -> None:
    resolver = FakeDNS({"cat.test": [["127.0.0.1", "10.0.0.1"]]})
    guard = Guard(allow=["cat.test"], resolver=resolver)
    destination = await guard.destination("http://CAT.test.:8080/")
    assert destination == Destination("http", "cat.test", 8080, "127.0.0.1", "")
    for other in ["http://other.cat.test/", "http://localhost/"]:
        with pytest.raises(Blocked):
            await guard.destination(other)


async def test_an_allowed_localhost_is_resolved() -> None:
    resolver = FakeDNS({"localhost": [["::1", "127.0.0.1"]]})
    destination = await Guard(allow=["localhost"], resolver=resolver).destination("http://localhost:8000/")
    assert destination.address == "::1"


def test_an_invalid_allow_entry_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="allow_hosts"):
        Guard(allow=["*.cat.test"])


async def test_a_dns_answer_that_changes_between_check_and_connect() -> None:
    resolver = FakeDNS({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    clock = Clock()
    guard = Guard(resolver=resolver, clock=clock, dns_ttl=30)
    first = await guard.destination("https://rebind.test/")
    clock.now += 29
    second = await guard.destination("https://rebind.test/")
    assert first.address == second.address == PUBLIC
    assert len(resolver.calls) == 1
    clock.now += 2
    with pytest.raises(Blocked):
        await guard.destination("https://rebind.test/")
    assert len(resolver.calls) == 2


async def test_base_urls_on_one_host_share_a_lookup() -> None:
    resolver = dns()
    guard = Guard(resolver=resolver)
    await guard.destination("https://public.test/a")
    await guard.destination("https://public.test/b")
    await guard.destination("https://public.test:8443/b")
    assert resolver.calls == [("public.test", 443), ("public.test", 8443)]


async def test_concurrent_first_calls_share_a_lookup() -> None:
    resolver = FakeDNS({"public.test": [[PUBLIC]]}, delay=0.01)
    guard = Guard(resolver=resolver)
    results = await asyncio.gather(*(guard.destination(f"https://public.test/{n}") for n in range(10)))
    assert {result.address for result in results} == {PUBLIC}
    assert len(resolver.calls) == 1


async def test_a_cancelled_caller_does_not_cancel_the_lookup_of_others() -> None:
    resolver = FakeDNS({"public.test": [[PUBLIC]]}, delay=0.02)
    guard = Guard(resolver=resolver)
    impatient = asyncio.create_task(guard.destination("https://public.test/a"))
    patient = asyncio.create_task(guard.destination("https://public.test/b"))
    await asyncio.sleep(0.005)
    impatient.cancel()
    assert (await patient).address == PUBLIC
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_refusal_is_remembered_only_briefly() -> None:
    resolver = FakeDNS({"fixed.test": [["10.0.0.1"], [PUBLIC]]})
    clock = Clock()
    guard = Guard(resolver=resolver, clock=clock)
    for _ in range(2):
        with pytest.raises(Blocked):
            await guard.destination("https://fixed.test/")
    assert len(resolver.calls) == 1
    clock.now += NEGATIVE_TTL + 0.1
    assert (await guard.destination("https://fixed.test/")).address == PUBLIC


async def test_without_a_ttl_every_call_resolves() -> None:
    resolver = dns()
    guard = Guard(resolver=resolver, dns_ttl=0)
    await guard.destination("https://public.test/")
    await guard.destination("https://public.test/")
    assert len(resolver.calls) == 2


@pytest.mark.parametrize(
    "address",
    [
        "0.1.2.3",
        "10.0.0.1",
        "100.64.0.1",
        "100.100.100.200",
        "127.0.0.1",
        "169.254.169.254",
        "172.31.255.255",
        "192.0.0.9",
        "192.0.2.1",
        "192.168.0.1",
        "198.18.0.1",
        "198.19.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::7f00:1",
        "::808:808",
        "::ffff:127.0.0.1",
        "::ffff:0:a00:1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::808:808",
        "100::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "2002:a00:1::",
        "2002:7f00:1::1",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
    ],
)
def test_netguard_refuses_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_netguard_accepts_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
