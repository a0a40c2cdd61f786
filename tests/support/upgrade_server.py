"""A scripted WebTunnel web server for integration tests: TLS (or plain HTTP) on 127.0.0.1.

It performs the server side of the upgrade the way the real WebTunnel server does (one request
head, ``101 Switching Protocols``, then raw bytes) and misbehaves on purpose when the request
path asks for it. It runs its own event loop in a thread, so a PT under test can be a separate
process or live in the test's loop.

Paths:
    /echo            101, then echo; on EOF from the client: ``BYE`` and close
    /early           101 and ``EARLY-PAYLOAD`` in the same write, then echo
    /continue        ``100 Continue``, then 101, then echo
    /talk-after-eof  101; read ``ping``; send ``TALK_BYTES`` of pattern; close
    /status/<n>      answer HTTP <n> instead of 101
    /no-upgrade, /h2c, /no-connection, /http10   a 101 that must be refused
    /garbage         non-HTTP bytes
    /drip            a response head that never ends, one byte at a time
    /huge-head       a 101 head far beyond any sane bound
    /close-mid-head  half a head, then close
    /close-after-101 101, then close
    /silent          read the request and say nothing
    /flood           101, then pattern bytes as fast as the client takes them
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
TALK_BYTES = 1024 * 1024
#: /flood stops after this much even if nobody notices (bounded test traffic).
FLOOD_LIMIT_BYTES = 1024 * 1024 * 1024
EARLY_PAYLOAD = b"EARLY-PAYLOAD"
REASONS = {
    200: "OK",
    301: "Moved Permanently",
    403: "Forbidden",
    404: "Not Found",
    502: "Bad Gateway",
}

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    writer.write(b"BYE")
    await writer.drain()


def pattern(size: int) -> bytes:
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


class ScriptedWebServer:
    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self.request_heads: list[bytes] = []
        self.open_connections = 0
        self.flood_sent = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(timeout=10)
        return self.port

    async def _start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve,
            "127.0.0.1",
            0,
            ssl=self.ssl_context,
            ssl_handshake_timeout=10 if self.ssl_context else None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- per connection --------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            self.request_heads.append(head)
            path = head.split(b" ", 2)[1].decode("latin-1")
            await self._route(path, reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _route(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if path.startswith("/echo"):
            writer.write(SWITCHING)
            await _echo(reader, writer)
        elif path == "/early":
            writer.write(SWITCHING + EARLY_PAYLOAD)
            await _echo(reader, writer)
        elif path == "/continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCHING)
            await _echo(reader, writer)
        elif path == "/talk-after-eof":
            writer.write(SWITCHING)
            await reader.readexactly(4)
            writer.write(pattern(TALK_BYTES))
            await writer.drain()
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            reason = REASONS.get(code, "Whatever")
            writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n".encode())
        elif path == "/no-upgrade":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n")
        elif path == "/h2c":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
        elif path == "/no-connection":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        elif path == "/http10":
            writer.write(SWITCHING.replace(b"HTTP/1.1", b"HTTP/1.0"))
        elif path == "/garbage":
            writer.write(b"\x00\x01garbage that is not HTTP\r\n\r\n")
        elif path == "/drip":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)  # the misbehaviour under test: a head that never ends
        elif path == "/huge-head":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Filler: " + b"y" * 200 + b"\r\n"
            )
            writer.write((b"X-Filler: " + b"y" * 200 + b"\r\n") * 500 + b"\r\n")
        elif path == "/close-mid-head":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: up")
        elif path == "/close-after-101":
            writer.write(SWITCHING)
        elif path == "/flood":
            writer.write(SWITCHING)
            block = pattern(64 * 1024)
            while not writer.transport.is_closing() and self.flood_sent < FLOOD_LIMIT_BYTES:
                writer.write(block)
                await writer.drain()
                self.flood_sent += len(block)
                # Once the peer is gone, a TLS writer's drain() can return without ever
                # yielding; give the loop (and connection_lost) a turn each block.
                await asyncio.sleep(0)
        elif path == "/silent":
            await reader.read()
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
