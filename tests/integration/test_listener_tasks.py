"""What the listener runs is owned: once it is closed (``aclose()``, or managed mode stopped by
SIGTERM) none of its tasks is left, although connections were in the middle of a dial and of
a relay. The bridges are small servers in the test's own loop, so every step is awaited on an
event: the dial reached the bridge, the relay echoed.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.socks_client import send_bridge_request
from tests.support.upgrade_server import SWITCHING
from webtunnel_pt.logs import PtStdout
from webtunnel_pt.pt import managed
from webtunnel_pt.pt.listener import ServerOptions, SocksServer
from webtunnel_pt.webtunnel.dial import DialOptions

TEST_FILE = __file__


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


#: Tasks that existed before the test body began (asyncio.run's and wait_for's).
BASELINE: set[asyncio.Task[Any]] = set()


def mark_baseline() -> None:
    BASELINE.clear()
    BASELINE.update(asyncio.all_tasks())


class Bridges:
    """Two plain-HTTP bridges: ``silent`` reads the upgrade request and never answers (a dial
    in progress); ``echo`` answers 101 and echoes (a relay in progress)."""

    def __init__(self) -> None:
        self.dial_reached = asyncio.Event()
        self.silent_port = 0
        self.echo_port = 0

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.dial_reached.set()
        await reader.read()  # until the PT goes away
        writer.close()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(SWITCHING)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()


@asynccontextmanager
async def bridges() -> AsyncIterator[Bridges]:
    found = Bridges()
    silent = await asyncio.start_server(found._silent, "127.0.0.1", 0)
    echo = await asyncio.start_server(found._echo, "127.0.0.1", 0)
    found.silent_port = silent.sockets[0].getsockname()[1]
    found.echo_port = echo.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        for server in (silent, echo):
            server.close()


async def socks_connect(
    port: int, bridge_port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send tor's SOCKS5 request for a bridge; the reply is left unread."""
    return await send_bridge_request(port, {"url": f"http://127.0.0.1:{bridge_port}/tunnel-path"})


def listener_tasks() -> set[asyncio.Task[Any]]:
    """Running tasks other than the test's own (its body and its bridges' handlers)."""
    found = set()
    for task in asyncio.all_tasks() - BASELINE:
        code = getattr(task.get_coro(), "cr_code", None)
        if task is asyncio.current_task() or (code is not None and code.co_filename == TEST_FILE):
            continue
        found.add(task)
    return found


async def busy_listener(port: int, found: Bridges) -> list[asyncio.StreamWriter]:
    """One connection relaying, one dialling; returns their writers (kept open)."""
    relaying_reader, relaying_writer = await socks_connect(port, found.echo_port)
    reply = await relaying_reader.readexactly(10)  # type: ignore[attr-defined]
    assert reply[1] == 0
    relaying_writer.write(b"ping")  # type: ignore[attr-defined]
    assert await relaying_reader.readexactly(4) == b"ping"  # type: ignore[attr-defined]
    _, dialling_writer = await socks_connect(port, found.silent_port)
    await found.dial_reached.wait()
    # two connection tasks, the dial and the watch on tor's side during it
    assert len(listener_tasks()) >= 4
    return [relaying_writer, dialling_writer]  # type: ignore[list-item]


def test_aclose_leaves_no_task_behind() -> None:
    async def main() -> None:
        mark_baseline()
        async with bridges() as found:
            server = SocksServer(ServerOptions(dial=DialOptions(timeout_s=20.0)))
            _, port = await server.start()
            writers = await busy_listener(port, found)
            assert server.active_connections == 2
            await server.aclose()
            assert listener_tasks() == set()
            assert server.active_connections == 0
            for writer in writers:
                writer.close()

    run(main())


def test_cancelling_the_owner_leaves_no_task_behind() -> None:
    """The task that serves ``async with SocksServer()`` is cancelled (as asyncio.run does on
    Ctrl-C): leaving the block still cancels and awaits every connection."""

    async def main() -> None:
        mark_baseline()
        async with bridges() as found:
            listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()

            async def owner() -> None:
                async with SocksServer(ServerOptions(dial=DialOptions(timeout_s=20.0))) as server:
                    _, port = await server.start()
                    listening.set_result(port)
                    await asyncio.Event().wait()  # serve until cancelled

            serving = asyncio.create_task(owner())
            writers = await busy_listener(await listening, found)
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            assert listener_tasks() == set()
            for writer in writers:
                writer.close()

    run(main())


class CmethodWatch(io.StringIO):
    """The PT's stdout: wakes the test once the CMETHOD line is written."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = asyncio.Event()

    def write(self, text: str) -> int:
        if text.startswith("CMETHOD webtunnel "):
            self.listening.set()
        return super().write(text)

    def port(self) -> int:
        line = next(x for x in self.getvalue().splitlines() if x.startswith("CMETHOD webtunnel"))
        return int(line.rsplit(":", 1)[1])


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_managed_mode_stopped_by_sigterm_leaves_no_task_behind(tmp_path: Path) -> None:
    env = {
        "TOR_PT_MANAGED_TRANSPORT_VER": "1",
        "TOR_PT_CLIENT_TRANSPORTS": "webtunnel",
        "TOR_PT_STATE_LOCATION": str(tmp_path / "state"),
    }

    async def main() -> None:
        mark_baseline()
        async with bridges() as found:
            stdout = CmethodWatch()
            serving = asyncio.create_task(managed.serve(env, PtStdout(stdout)))
            await stdout.listening.wait()
            writers = await busy_listener(stdout.port(), found)
            os.kill(os.getpid(), signal.SIGTERM)  # the handler managed mode installed
            assert await serving == 0
            assert listener_tasks() == set()
            assert "CMETHODS DONE" in stdout.getvalue()
            for writer in writers:
                writer.close()
        # the handlers are gone with managed mode: SIGTERM is back to its default
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    run(main())
