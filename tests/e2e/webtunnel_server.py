"""A minimal WebTunnel server for the e2e tests (webtunnel-wire.md §5), run behind nginx.

    python -m tests.e2e.webtunnel_server --listen 127.0.0.1:P --target 127.0.0.1:Q
    python tests/e2e/webtunnel_server.py  --listen 127.0.0.1:P --target 127.0.0.1:Q

Per connection: read one HTTP/1.1 request head (bounded, with a deadline); require
`Connection: upgrade` and `Upgrade: websocket` (values compared case-insensitively, as the
official server does; the path is nginx's business); answer the exact 101 below; connect to
the target (the bridge ORPort) and copy bytes both ways, propagating half-closes.  Bytes the
client sent right behind the request head stay in the reader's buffer and are forwarded
first.  SIGTERM/SIGINT stop the server and every tunnel.  Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import sys

MAX_REQUEST_HEAD_BYTES = 16 * 1024  # h11's default bound for a header block
REQUEST_HEAD_TIMEOUT_S = 10.0  # a client that cannot send 16 KiB in 10 s is not a client
CONNECT_TIMEOUT_S = 10.0
COPY_CHUNK_BYTES = 64 * 1024
SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def log(msg: str) -> None:
    print(f"webtunnel-server: {msg}", file=sys.stderr, flush=True)


class BadRequest(ValueError):
    pass


def parse_request_head(head: bytes) -> tuple[str, dict[str, str]]:
    """Request target and headers (lower-cased names, first occurrence wins)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequest("non-ASCII request head") from exc
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        raise BadRequest(f"bad request line {request_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line!r}")
        headers.setdefault(name.lower(), value.strip())
    return parts[1], headers


async def read_request_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(request head without the blank line, bytes that came after it in the same reads)."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_REQUEST_HEAD_BYTES:
            raise BadRequest(f"request head larger than {MAX_REQUEST_HEAD_BYTES} bytes")
        chunk = await reader.read(COPY_CHUNK_BYTES)
        if not chunk:
            raise asyncio.IncompleteReadError(buf, None)
        buf += chunk
    return buf[:end], buf[end + 4 :]


def is_upgrade(headers: dict[str, str]) -> bool:
    return (
        headers.get("connection", "").lower() == "upgrade"
        and headers.get("upgrade", "").lower() == "websocket"
    )


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Copy until EOF, then half-close the other side; returns the byte count."""
    total = 0
    while chunk := await reader.read(COPY_CHUNK_BYTES):
        writer.write(chunk)
        await writer.drain()
        total += len(chunk)
    if writer.can_write_eof() and not writer.is_closing():
        # ENOTCONN if the peer is already gone entirely; the other direction will notice.
        with contextlib.suppress(OSError):
            writer.write_eof()
    return total


class WebtunnelServer:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        cid = next(self._ids)
        try:
            await self._serve_logged(cid, reader, writer)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # End normally: Python 3.11's stream callback chokes on a cancelled handler task.
            log(f"#{cid} cancelled by shutdown")
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _serve_logged(
        self, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._serve(cid, reader, writer)
        except* (OSError, asyncio.IncompleteReadError) as group:
            log(f"#{cid} ended: {group.exceptions!r}")

    async def _serve(
        self, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head, early = await asyncio.wait_for(read_request_head(reader), REQUEST_HEAD_TIMEOUT_S)
            target, headers = parse_request_head(head)
        except asyncio.IncompleteReadError as exc:
            log(f"#{cid} closed after {len(exc.partial)} bytes, before a full request head")
            return
        except (BadRequest, TimeoutError) as exc:
            log(f"#{cid} rejected: {exc}")
            writer.write(BAD_REQUEST)
            await writer.drain()
            return
        if not is_upgrade(headers):
            log(f"#{cid} rejected: not an upgrade request for {target}")
            writer.write(BAD_REQUEST)
            await writer.drain()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            log(f"#{cid} cannot reach target {self.target}: {exc}")
            writer.write(BAD_GATEWAY)
            await writer.drain()
            return
        writer.write(SWITCHING_PROTOCOLS)
        log(f"#{cid} upgraded {target}; {len(early)} bytes arrived with the request head")
        try:
            up_writer.write(early)  # the client may pipeline; never drop these
            async with asyncio.TaskGroup() as tasks:
                sent = tasks.create_task(_copy(reader, up_writer))
                received = tasks.create_task(_copy(up_reader, writer))
            up = len(early) + sent.result()
            log(f"#{cid} closed: {up} bytes to target, {received.result()} back")
        finally:
            up_writer.close()

    async def aclose(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


async def serve(
    listen: tuple[str, int],
    target: tuple[str, int],
    stop: asyncio.Event,
    ready: asyncio.Future[int] | None = None,
) -> None:
    """Serve until `stop` is set; `ready` gets the bound port (useful with port 0)."""
    app = WebtunnelServer(target)
    server = await asyncio.start_server(app.handle, *listen)
    port: int = server.sockets[0].getsockname()[1]
    log(f"listening on {listen[0]}:{port}, target {target[0]}:{target[1]}")
    if ready is not None:
        ready.set_result(port)
    async with server:
        await stop.wait()
        server.close()
        await app.aclose()
    log("stopped")


async def _main(listen: tuple[str, int], target: tuple[str, int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(listen, target, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_host_port, required=True)
    parser.add_argument("--target", type=_host_port, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.listen, args.target))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
