"""The rate limiter's RESP client: encoding, replies in order, one write per loop turn, real Redis."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

import pytest

from cathouse.proxy.resp import Connection, ReplyError, command, connect

REDIS_URL = os.environ.get("CATHOUSE_REDIS_URL")


class _Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def abort(self) -> None:
        self.aborted = True


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command(b"GET", b"key") == b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
    assert command(b"EVALSHA", b"ab", more=2) + b"$1\r\nx\r\n$0\r\n\r\n" == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\nx\r\n$0\r\n\r\n"
    )


async def test_the_calls_of_one_turn_leave_in_one_write_and_replies_resolve_in_order() -> None:
    conn = Connection(timeout=5)
    transport = _Recording()
    conn.connection_made(transport)  # type: ignore[arg-type]
    calls = [conn.call(command(b"PING")), conn.call(command(b"BAD")), conn.call(command(b"EVALSHA"))]
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [command(b"PING") + command(b"BAD") + command(b"EVALSHA")]

    # Replies may arrive split anywhere.
    conn.data_received(b"+PONG\r\n-ERR unknown command\r\n*4\r\n:1\r\n:2\r\n$3\r\nab")
    assert calls[0].result() == b"PONG"
    with pytest.raises(ReplyError, match="unknown command"):
        calls[1].result()
    assert not calls[2].done()
    conn.data_received(b"c\r\n$-1\r\n")
    assert calls[2].result() == [1, 2, b"abc", None]


async def test_an_array_of_integers_split_inside_a_number_is_read_whole() -> None:
    conn = Connection(timeout=5)
    conn.connection_made(_Recording())  # type: ignore[arg-type]
    call = conn.call(command(b"EVALSHA"))
    for piece in (b"*4\r\n:1\r\n:2", b"3\r", b"\n:-4\r\n:600", b"00\r\n"):
        assert not call.done()
        conn.data_received(piece)
    assert call.result() == [1, 23, -4, 60000]


async def test_an_unreadable_reply_fails_every_call_and_drops_the_connection() -> None:
    conn = Connection(timeout=5)
    transport = _Recording()
    conn.connection_made(transport)  # type: ignore[arg-type]
    first, second = conn.call(command(b"PING")), conn.call(command(b"PING"))
    conn.data_received(b"?what\r\n")
    assert transport.aborted
    conn.connection_lost(None)  # what the aborted transport reports next
    for call in (first, second):
        with pytest.raises(ConnectionError, match="unreadable reply"):
            call.result()


async def test_an_unanswered_call_times_out() -> None:
    conn = Connection(timeout=0.05)
    transport = _Recording()
    conn.connection_made(transport)  # type: ignore[arg-type]
    call = conn.call(command(b"PING"))
    await asyncio.sleep(0.2)
    assert transport.aborted
    conn.connection_lost(None)
    with pytest.raises(TimeoutError):
        call.result()


@pytest.mark.skipif(not REDIS_URL, reason="CATHOUSE_REDIS_URL unset")
async def test_a_real_redis_answers_pipelined_calls() -> None:
    assert REDIS_URL is not None
    conn = await connect(urlsplit(REDIS_URL), 2.0)
    try:
        replies = await asyncio.gather(*(conn.call(command(b"ECHO", b"%d" % i)) for i in range(50)))
        assert replies == [b"%d" % i for i in range(50)]
    finally:
        conn.close()
