"""The test WebTunnel server on its own (no tor): the exact 101, pipelined bytes kept,
half-close passed on, non-upgrade requests refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from .webtunnel_server import BAD_REQUEST, SWITCHING_PROTOCOLS, serve

LOOPBACK = "127.0.0.1"
TIMEOUT_S = 10.0


async def _echo_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Target: collect until the client half-closes, then answer and close."""
    data = await reader.read()
    writer.write(b"got:" + data)
    await writer.drain()
    writer.close()


@asynccontextmanager
async def _server() -> AsyncIterator[int]:
    target = await asyncio.start_server(_echo_after_eof, LOOPBACK, 0)
    target_port = target.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve((LOOPBACK, 0), (LOOPBACK, target_port), stop, ready))
    port = await asyncio.wait_for(ready, TIMEOUT_S)
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)
        target.close()


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(request)
    writer.write_eof()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    return reply


@pytest.mark.parametrize("case", ["lower", "mixed"])
def test_upgrade_keeps_pipelined_bytes_and_half_close(case: str) -> None:
    conn, upg = ("upgrade", "websocket") if case == "lower" else ("Upgrade", "WebSocket")
    request = (
        f"GET /secret HTTP/1.1\r\nHost: bridge.test\r\nConnection: {conn}\r\n"
        f"Upgrade: {upg}\r\n\r\nEARLY-BYTES"
    ).encode()

    async def run() -> bytes:
        async with _server() as port:
            return await _exchange(port, request)

    assert asyncio.run(run()) == SWITCHING_PROTOCOLS + b"got:EARLY-BYTES"


def test_plain_request_refused() -> None:
    async def run() -> bytes:
        async with _server() as port:
            return await _exchange(port, b"GET / HTTP/1.1\r\nHost: bridge.test\r\n\r\n")

    assert asyncio.run(run()) == BAD_REQUEST
