"""relay.relay() over real loopback connections, on both of its designs.

``legs`` is the design the PT runs: the transports are taken over by two small protocols.
``pumps`` is the fallback for transports or StreamReaders the legs cannot take over; it is
forced here by making the buffer hand-over report "not possible", so that the code path a
future CPython could switch on is exercised, not just present.

Layout of every test::

    tor (app) <-tcp-> [tor_r/tor_w  relay()  bridge_r/bridge_w] <-tcp or tls-> bridge (app)
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.certs import Pki
from webtunnel_pt.webtunnel import relay as relay_mod

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(params=["legs", "pumps"])
def design(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pumps":
        monkeypatch.setattr(relay_mod, "_take_buffered", lambda reader: None)
    return str(request.param)


@asynccontextmanager
async def connected_pair(
    server_ssl: ssl.SSLContext | None = None, client_ssl: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Stream, Stream]]:
    """(client end, server end) of one loopback connection, TLS if contexts are given."""
    accepted: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0, ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ssl, server_hostname="127.0.0.1" if client_ssl else None
    )
    peer = await accepted
    server.close()
    try:
        yield client, peer
    finally:
        for _, writer in (client, peer):
            writer.transport.abort()


@dataclass
class Setup:
    tor: Stream  # what tor holds
    bridge: Stream  # what the bridge's server holds
    task: asyncio.Task[tuple[int, int]]  # relay() between the PT's two ends
    pt_tor: Stream  # the PT's end towards tor
    pt_bridge: Stream  # the PT's end towards the bridge

    def pt_held_bytes(self) -> int:
        """What the PT holds in user space: its write buffer towards tor plus anything
        waiting in its StreamReader from the bridge (the pumps' design reads through it)."""
        return self.pt_tor[1].transport.get_write_buffer_size() + len(self.pt_bridge[0]._buffer)


@asynccontextmanager
async def relaying(
    pki: Pki | None = None, *, idle_s: float = 30.0, before: bytes = b""
) -> AsyncIterator[Setup]:
    """tor <-> relay() <-> bridge; with ``pki`` the bridge leg is TLS. ``before`` is sent by
    the bridge before the relay starts, so it waits in the PT's StreamReader."""
    server_ssl = client_ssl = None
    if pki is not None:
        server_ssl = pki.server_context
        client_ssl = ssl.create_default_context(cafile=str(pki.ca_file))
    async with (
        connected_pair() as (tor, pt_tor),
        connected_pair(server_ssl, client_ssl) as (
            pt_bridge,
            bridge,
        ),
    ):
        if before:
            bridge[1].write(before)
            await bridge[1].drain()
            # The PT's reader must hold them before the relay takes over.
            while len(pt_bridge[0]._buffer) < len(before):
                await asyncio.sleep(0)
        task = asyncio.create_task(relay_mod.relay(*pt_tor, *pt_bridge, half_closed_idle_s=idle_s))
        yield Setup(tor, bridge, task, pt_tor, pt_bridge)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def read_all(reader: asyncio.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await reader.read(65536):
        data += chunk
        assert len(data) <= limit, "more bytes than were sent"
    return bytes(data)


async def send_and_close(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(payload)
    await writer.drain()
    writer.write_eof()


# ---- data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["tcp-bridge", "tls-bridge"])
def test_bulk_data_both_ways_at_once_arrives_intact(design: str, tls: bool, pki: Pki) -> None:
    up, down = os.urandom(6 << 20), os.urandom(6 << 20)

    async def main() -> None:
        async with relaying(pki if tls else None) as s:
            tor_r, tor_w = s.tor
            bridge_r, bridge_w = s.bridge
            tor_w.write(up)
            bridge_w.write(down)
            got_up, got_down, *_ = await asyncio.gather(
                bridge_r.readexactly(len(up)),
                tor_r.readexactly(len(down)),
                tor_w.drain(),
                bridge_w.drain(),
            )
            assert got_up == up
            assert got_down == down
            tor_w.close()
            bridge_w.close()
            assert await s.task == (len(up), len(down))

    run(main())


def test_bytes_the_bridge_sent_before_the_relay_began_come_first(design: str, pki: Pki) -> None:
    early = b"right behind the 101 " * 100

    async def main() -> None:
        async with relaying(pki, before=early) as s:
            tor_r, _ = s.tor
            _, bridge_w = s.bridge
            bridge_w.write(b"|later")
            await bridge_w.drain()
            assert await tor_r.readexactly(len(early) + 6) == early + b"|later"

    run(main())


# ---- ends ---------------------------------------------------------------------------------


def test_tcp_half_close_passes_through_and_the_other_way_keeps_flowing(design: str) -> None:
    async def main() -> None:
        async with relaying() as s:
            tor_r, tor_w = s.tor
            bridge_r, bridge_w = s.bridge
            await send_and_close(tor_w, b"request")
            assert await read_all(bridge_r, 7) == b"request"  # EOF reached the bridge
            await send_and_close(bridge_w, b"answer after the half-close")
            assert await read_all(tor_r, 64) == b"answer after the half-close"
            assert await s.task == (7, 27)

    run(main())


def test_a_tls_bridge_keeps_answering_after_tor_half_closes(design: str, pki: Pki) -> None:
    """TLS cannot pass the half-close on; the answer still arrives, then the bridge's close
    ends the relay."""

    async def main() -> None:
        async with relaying(pki) as s:
            tor_r, tor_w = s.tor
            bridge_r, bridge_w = s.bridge
            await send_and_close(tor_w, b"request")
            assert await bridge_r.readexactly(7) == b"request"
            bridge_w.write(b"answer")
            await bridge_w.drain()
            assert await tor_r.readexactly(6) == b"answer"
            bridge_w.close()
            assert await s.task == (7, 6)
            assert await tor_r.read() == b""

    run(main())


def test_a_silent_survivor_is_closed_after_the_idle_limit(design: str, pki: Pki) -> None:
    async def main() -> None:
        async with relaying(pki, idle_s=0.2) as s:
            tor_r, tor_w = s.tor
            bridge_r, _ = s.bridge
            await send_and_close(tor_w, b"bye")
            assert await bridge_r.readexactly(3) == b"bye"
            # The bridge never answers and never closes: the relay must end on its own.
            assert await s.task == (3, 0)
            assert await tor_r.read() == b""

    run(main())


def test_a_survivor_that_keeps_talking_is_not_cut_off(design: str, pki: Pki) -> None:
    async def main() -> None:
        async with relaying(pki, idle_s=0.3) as s:
            tor_r, tor_w = s.tor
            _, bridge_w = s.bridge
            await send_and_close(tor_w, b"bye")
            for _ in range(8):  # 8 x 0.1 s of traffic, well past one idle limit
                bridge_w.write(b"tick")
                await asyncio.sleep(0.1)
                assert await tor_r.readexactly(4) == b"tick"
                assert not s.task.done()
            bridge_w.close()
            assert await s.task == (3, 32)

    run(main())


def test_a_reset_from_the_bridge_ends_both_sides(design: str) -> None:
    async def main() -> None:
        async with relaying() as s:
            tor_r, tor_w = s.tor
            bridge_r, bridge_w = s.bridge
            tor_w.write(b"x")
            assert await bridge_r.readexactly(1) == b"x"
            sock = bridge_w.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            bridge_w.transport.abort()  # RST
            await s.task
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await tor_r.readexactly(1)

    run(main())


# ---- backpressure ---------------------------------------------------------------------------


def test_a_bridge_flood_into_a_tor_that_does_not_read_is_held_back(design: str) -> None:
    """The relay stops reading the bridge while tor's side is full, so what the PT holds is
    bounded: the flood stalls at the bridge, and all of it arrives once tor reads."""
    flood = os.urandom(64 << 20)

    async def main() -> None:
        async with relaying() as s:
            tor_r, _ = s.tor
            _, bridge_w = s.bridge
            bridge_w.write(flood)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await bridge_w.drain()  # must not complete: nobody reads at tor's end
            assert bridge_w.transport.get_write_buffer_size() > 0, "the flood never stalled"
            held = s.pt_held_bytes()
            assert held < 1 << 20, f"the PT holds {held} bytes while tor does not read"
            assert await tor_r.readexactly(len(flood)) == flood

    run(main())


# ---- allocator tuning (issue 16) --------------------------------------------------------------


def test_the_first_relay_tunes_the_allocator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(relay_mod, "_allocator_tuned", None)
    monkeypatch.setattr(relay_mod, "_set_malloc_thresholds", lambda: calls.append(1) or True)

    async def two_relays() -> None:
        for _ in range(2):
            async with connected_pair() as (tor_app, tor), connected_pair() as (bridge, bridge_app):
                tor_app[1].close()
                bridge_app[1].close()
                await relay_mod.relay(*tor, *bridge)

    run(two_relays())
    assert calls == [1]
    assert relay_mod.tune_allocator() is True


def test_the_allocator_is_left_alone_when_tuning_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_mod, "TUNE_ALLOCATOR", False)
    monkeypatch.setattr(relay_mod, "_allocator_tuned", None)
    monkeypatch.setattr(relay_mod, "_set_malloc_thresholds", lambda: pytest.fail("tuned"))

    async def one_relay() -> None:
        async with connected_pair() as (tor_app, tor), connected_pair() as (bridge, bridge_app):
            tor_app[1].close()
            bridge_app[1].close()
            await relay_mod.relay(*tor, *bridge)

    run(one_relay())


@pytest.mark.skipif(not hasattr(os, "confstr"), reason="no os.confstr")
def test_glibc_thresholds_are_set_where_glibc_is_the_libc() -> None:
    try:
        glibc = bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        glibc = False
    assert relay_mod._set_malloc_thresholds() is glibc
