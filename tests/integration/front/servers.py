"""Small loopback servers for the front ends' integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator


async def _http_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pages: dict[str, bytes]
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        if target == "/moved":
            writer.write(
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere.test/\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        elif target in pages:
            body = pages[target]
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + (b"" if head.startswith(b"HEAD") else body)
            )
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nno such page")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def http_server(
    pages: dict[str, bytes], context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """An HTTP/1.1 server on 127.0.0.1 (TLS with ``context``); yields its port."""
    server = await asyncio.start_server(
        lambda r, w: _http_handler(r, w, pages), "127.0.0.1", 0, ssl=context
    )
    async with server:
        yield server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
