"""The outer TLS on a non-blocking :class:`ssl.SSLSocket`, driven by the event loop.

    reader, writer = await open_ssl_socket_connection(sock, ctx, "example.com",
                                                      limit=64 * 1024, handshake_timeout_s=30)

What it promises is what ``asyncio.open_connection(sock=..., ssl=ctx, server_hostname=...)``
gives (the same :class:`ssl.SSLContext`, so the same ClientHello on the wire): handshake
failures raise :class:`ssl.SSLError` (``SSLCertVerificationError`` with its ``verify_message``)
or ``ConnectionError``; the writer's ``get_extra_info("ssl_object")`` is the ``SSLSocket``
(``version()``, ``cipher()``, ``getpeercert()``); ``"peercert"`` is the certificate decoded once
after the handshake. TLS cannot half-close: ``can_write_eof()`` is false, and a peer's
close_notify or a TCP FIN is EOF for the protocol and then closes the connection (answering
with our close_notify). ``writer.start_tls()`` works on it (the built-in client's inner TLS:
asyncio's TLS in this one).

Why (``docs/performance.md``, issue 16): asyncio's TLS runs OpenSSL on memory BIOs, so every
byte is copied between the socket and the BIOs and each record becomes a ``bytes`` object on
the way; here OpenSSL reads and writes the file descriptor itself, and the transport reads
plaintext into one buffer per thread, shared by every connection (copied out once per read:
a protocol may keep what it gets), so an idle tunnel holds no read buffer of its own.

How: one thread, the loop's. ``add_reader`` / ``add_writer`` wake the transport; a read can
need the socket writable (a TLS 1.3 key update to answer) and a write readable, which
:mod:`webtunnel_pt.outbound.tls_direct_state` keeps track of, with the write queue and its
flow-control marks. Plaintext OpenSSL already decrypted (``pending()``) is read before the fd
is waited on again. A write OpenSSL could not finish is retried with the same bytes, as
``SSL_write`` requires.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from webtunnel_pt.outbound.tls_direct_state import Interest, WriteQueue

#: Plaintext read per readable event, at most: up to 16 records, into one buffer per thread.
READ_BUFFER_BYTES = 256 * 1024


class SslSocketTransport(asyncio.Transport):
    """An asyncio transport over a connected, handshaken, non-blocking ``SSLSocket``."""

    #: ``loop.start_tls()`` may layer asyncio's TLS on it (the built-in client's inner TLS);
    #: that protocol is a ``BufferedProtocol``, which :meth:`_deliver` serves too.
    _start_tls_compatible = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sslsock: ssl.SSLSocket,
        protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock: ssl.SSLSocket | None = sslsock
        self._fd = sslsock.fileno()
        self._protocol = protocol
        self._extra: dict[str, Any] = {
            "ssl_object": sslsock,
            "sslcontext": context,
            "peercert": sslsock.getpeercert(),
            "peername": _address(sslsock.getpeername),
            "sockname": _address(sslsock.getsockname),
            "cipher": sslsock.cipher(),
            "compression": sslsock.compression(),
        }
        # The SSLSocket's own OpenSSL connection, when it has one we can reach (every CPython
        # since 3.5): its read/write skip the wrapper's checks, a few calls per record.
        sslobj = getattr(sslsock, "_sslobj", None)
        self._ssl_read: Callable[[int, memoryview], int] = getattr(sslobj, "read", None) or (
            lambda n, view: sslsock.recv_into(view, n)
        )
        self._ssl_write: Callable[[Any], int] = getattr(sslobj, "write", None) or sslsock.write
        self._queue = WriteQueue()
        self._interest = Interest()
        self._registered = (False, False)  # (reader, writer) registered with the loop
        self._closing = False  # close() called, or EOF/error: no more writes accepted
        self._closed = False  # socket closed, connection_lost scheduled
        self._eof = False
        self._pending_read_scheduled = False

    # -- asyncio.Transport ------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._interest.reading = False
        if not self._queue:
            self._shutdown_and_close(None)
        else:
            self._update()

    def abort(self) -> None:
        self._closing = True
        self._close_now(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return self._interest.reading and not self._closed

    def pause_reading(self) -> None:
        if self._closed or not self._interest.reading:
            return
        self._interest.reading = False
        self._update()

    def resume_reading(self) -> None:
        if self._closed or self._closing or self._eof or self._interest.reading:
            return
        self._interest.reading = True
        self._update()
        self._schedule_pending_read()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._queue.set_limits(high, low)
        if self._queue.above_high() and self._queue.mark_paused():
            self._call_protocol("pause_writing")

    def get_write_buffer_size(self) -> int:
        return self._queue.size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._queue.low, self._queue.high

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._closed or not data:
            return
        if not self._queue:
            try:
                self._ssl_write(data)
                return
            except ssl.SSLWantWriteError:
                self._queue.push(bytes(data))
                self._interest.write_wants_read = False
            except ssl.SSLWantReadError:
                self._queue.push(bytes(data))
                self._interest.write_wants_read = True
            except (ssl.SSLError, OSError) as exc:
                self._fatal(exc)
                return
            self._update()
        else:
            self._queue.push(bytes(data))
        if self._queue.above_high() and self._queue.mark_paused():
            self._call_protocol("pause_writing")

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    # -- event handlers -----------------------------------------------------------------------
    def _on_readable(self) -> None:
        if self._closed:
            return
        if self._interest.write_wants_read:
            self._flush()
            if self._closed:
                return
        if self._interest.read_wants_write:
            return  # the read goes on when the socket is writable
        if self._interest.reading:
            self._read()

    def _on_writable(self) -> None:
        if self._closed:
            return
        if self._interest.read_wants_write:
            self._interest.read_wants_write = False
            self._update()
            if self._interest.reading:
                self._read()
                if self._closed:
                    return
        if self._queue and not self._interest.write_wants_read:
            self._flush()

    def _read(self) -> None:
        read = self._ssl_read
        view = _read_buffer()
        size = len(view)
        got = 0
        eof = False
        try:
            while got < size:
                n = read(size - got, view[got:])
                if not n:
                    eof = True
                    break
                got += n
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLEOFError:  # TCP FIN without close_notify: EOF all the same
            eof = True
        except ssl.SSLWantWriteError:
            self._interest.read_wants_write = True
            self._update()
        except (ssl.SSLError, OSError) as exc:
            if got:
                self._deliver(view, got)
            self._fatal(exc)
            return
        if got:
            self._deliver(view, got)
            if self._closed:
                return
        if eof:
            self._on_eof()
        elif got >= size:
            self._schedule_pending_read()

    def _deliver(self, view: memoryview, count: int) -> None:
        # Copied out before the protocol runs: the buffer is the thread's, shared by every
        # connection, and a protocol may keep what it is given.
        data = bytes(view[:count])
        protocol = self._protocol
        try:
            if isinstance(protocol, asyncio.BufferedProtocol):
                _feed_buffered(protocol, data)
            else:
                protocol.data_received(data)  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._protocol_failed(exc, "data_received")

    def _schedule_pending_read(self) -> None:
        """Plaintext OpenSSL holds does not make the fd readable: read it on the next turn."""
        sock = self._sock
        if self._pending_read_scheduled or sock is None:
            return
        self._pending_read_scheduled = True
        self._loop.call_soon(self._pending_read)

    def _pending_read(self) -> None:
        self._pending_read_scheduled = False
        if self._closed or not self._interest.reading or self._interest.read_wants_write:
            return
        self._read()

    def _on_eof(self) -> None:
        self._eof = True
        self._interest.reading = False
        self._update()
        try:
            self._call_protocol("eof_received")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._protocol_failed(exc, "eof_received")
            return
        self.close()  # TLS cannot stay half-open: answer with close_notify and close

    def _flush(self) -> None:
        write = self._ssl_write
        queue = self._queue
        while queue:
            try:
                write(queue.head())
            except ssl.SSLWantWriteError:
                self._interest.write_wants_read = False
                break
            except ssl.SSLWantReadError:
                self._interest.write_wants_read = True
                break
            except (ssl.SSLError, OSError) as exc:
                self._fatal(exc)
                return
            self._interest.write_wants_read = False
            queue.pop()
        if queue.below_low() and queue.mark_resumed():
            self._call_protocol("resume_writing")
        if not queue and self._closing:
            self._shutdown_and_close(None)
            return
        self._update()

    # -- closing ------------------------------------------------------------------------------
    def _fatal(self, exc: BaseException) -> None:
        self._closing = True
        self._close_now(exc if isinstance(exc, Exception) else None)

    def _shutdown_and_close(self, exc: Exception | None) -> None:
        sslobj = getattr(self._sock, "_sslobj", None)
        if sslobj is not None and exc is None:
            try:
                sslobj.shutdown()  # sends our close_notify; not waiting for the peer's
            except (ssl.SSLError, OSError, AttributeError, ValueError):
                pass
        self._close_now(exc)

    def _close_now(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._interest.reading = False
        self._interest.read_wants_write = self._interest.write_wants_read = False
        self._queue.clear()
        self._update()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def _protocol_failed(self, exc: BaseException, method: str) -> None:
        """As asyncio's transports do: report to the loop's exception handler, then abort."""
        self._loop.call_exception_handler(
            {
                "message": f"Fatal error: protocol.{method}() call failed.",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            }
        )
        self._fatal(exc)

    def _call_protocol(self, method: str) -> Any:
        return getattr(self._protocol, method)()

    # -- loop registration --------------------------------------------------------------------
    def _update(self) -> None:
        """Register with the loop for what the state needs, and only when that changed."""
        if self._closed:
            want_read = want_write = False
        else:
            want_read, want_write = self._interest.wanted(bool(self._queue))
        reader, writer = self._registered
        if want_read != reader:
            if want_read:
                self._loop.add_reader(self._fd, self._on_readable)
            else:
                self._loop.remove_reader(self._fd)
        if want_write != writer:
            if want_write:
                self._loop.add_writer(self._fd, self._on_writable)
            else:
                self._loop.remove_writer(self._fd)
        self._registered = (want_read, want_write)

    def _start(self) -> None:
        self._interest.reading = True
        self._update()
        self._protocol.connection_made(self)
        self._schedule_pending_read()


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand ``data`` to a buffered protocol through as many of its buffers as it takes."""
    rest = memoryview(data)
    while rest:
        buffer = memoryview(protocol.get_buffer(len(rest))).cast("B")
        if not buffer:
            raise RuntimeError("get_buffer() returned an empty buffer")
        n = min(len(buffer), len(rest))
        buffer[:n] = rest[:n]
        protocol.buffer_updated(n)
        rest = rest[n:]


_buffers = threading.local()


def _read_buffer() -> memoryview:
    """The thread's read buffer, made on first use: one per thread, not per connection (a
    zero-filled buffer is resident memory, and idle tunnels must stay small)."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None or len(view) != READ_BUFFER_BYTES:
        view = _buffers.view = memoryview(bytearray(READ_BUFFER_BYTES))
    return view


def _address(getter: Any) -> Any:
    try:
        return getter()
    except OSError:
        return None


async def _wait_fd(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    waiter: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _handshake(loop: asyncio.AbstractEventLoop, sslsock: ssl.SSLSocket) -> None:
    fd = sslsock.fileno()
    while True:
        try:
            sslsock.do_handshake()
            return
        except ssl.SSLWantReadError:
            await _wait_fd(loop, fd, write=False)
        except ssl.SSLWantWriteError:
            await _wait_fd(loop, fd, write=True)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            # asyncio's TLS reports a peer that hangs up mid-handshake as a lost connection.
            raise ConnectionResetError(errno.ECONNRESET, "connection closed") from exc


def loop_supported(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` watches file descriptors (``add_reader``): every selector loop and
    uvloop do; Windows' default proactor loop does not, and keeps asyncio's TLS."""
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    return proactor is None or not isinstance(loop, proactor)


async def open_ssl_socket_connection(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_hostname: str,
    *,
    limit: int,
    handshake_timeout_s: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection(sock=sock, ssl=context, server_hostname=...)``, with the
    TLS on the socket itself. ``sock`` is taken over (closed on failure)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    sslsock = context.wrap_socket(
        sock, server_hostname=server_hostname, do_handshake_on_connect=False
    )
    try:
        async with asyncio.timeout(handshake_timeout_s):
            await _handshake(loop, sslsock)
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport = SslSocketTransport(loop, sslsock, protocol, context)
    except BaseException:
        sslsock.close()
        raise
    transport._start()
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


__all__ = [
    "READ_BUFFER_BYTES",
    "SslSocketTransport",
    "loop_supported",
    "open_ssl_socket_connection",
]
