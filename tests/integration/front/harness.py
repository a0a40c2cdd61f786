"""Running a front end in-process against the fake client, for the integration tests."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.integration.front.fake_client import FakeNetwork
from tests.unit.front.vectors import BRIDGE
from webtunnel_pt.front.options import FrontOptions, add_client_arguments, front_options
from webtunnel_pt.front.socks_front import serve
from webtunnel_pt.logs import Redactor
from webtunnel_pt.stop_signal import StopSignal

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


def options(*extra: str, listen: bool = True) -> FrontOptions:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser, listen=listen)
    words = ["--bridge", BRIDGE, *(["--listen", "127.0.0.1:0"] if listen else []), *extra]
    return front_options(parser.parse_args(words))


@dataclass
class RunningFront:
    port: int
    stop: StopSignal
    task: asyncio.Task[int]
    out: io.StringIO
    err: io.StringIO


@contextlib.asynccontextmanager
async def socks_front(
    network: FakeNetwork, *extra: str, redactor: Redactor | None = None
) -> AsyncIterator[RunningFront]:
    """``serve`` on an ephemeral loopback port; stopped (and its status checked) on exit."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[tuple[str, int]] = loop.create_future()
    stop = StopSignal()
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(
        serve(
            options(*extra),
            redactor or Redactor(),
            factory=network.factory,
            stop=stop,
            out=out,
            err=err,
            on_ready=ready.set_result,
        )
    )
    await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    assert ready.done(), f"front did not start: {err.getvalue()}"
    running = RunningFront(ready.result()[1], stop, task, out, err)
    try:
        yield running
    finally:
        stop.set("test done")
        assert await task == 0


async def socks5_request(
    port: int, request: bytes, *, auth: tuple[bytes, bytes] | None = None
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """A SOCKS5 greeting (with RFC 1929 credentials if given), then ``request``; returns the
    reply's first 4 bytes + address + port, and the open stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if auth is None:
        writer.write(b"\x05\x01\x00")
        assert await reader.readexactly(2) == b"\x05\x00"
    else:
        user, password = auth
        writer.write(b"\x05\x01\x02")
        assert await reader.readexactly(2) == b"\x05\x02"
        writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        assert await reader.readexactly(2) == b"\x01\x00"
    writer.write(request)
    head = await reader.readexactly(4)
    size = {1: 4, 4: 16}[head[3]]
    return head + await reader.readexactly(size + 2), reader, writer


def connect_request(host: str, port: int) -> bytes:
    name = host.encode()
    return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big")


def resolve_request(host: str) -> bytes:
    name = host.encode()
    return b"\x05\xf0\x00\x03" + bytes([len(name)]) + name + b"\x00\x00"
