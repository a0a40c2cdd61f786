"""One Tor stream as an asyncio reader/writer pair, in the style of ``asyncio.open_connection``
(tor-link.md §8, §9; tor-spec §6, §7.4). asyncio glue.

    stream = TorStream(link, stream_id, peername=("example.com", 80))
    reader, writer = TorStreamReader(stream), TorStreamWriter(stream)
    writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n"); await writer.drain()
    body = await reader.read()                  # to the exit's END (DONE)
    writer.close(); await writer.wait_closed()

The circuit's driver (:class:`~webtunnel_pt.tor.channel_circuit.LiveCircuit`) feeds the stream
what the relay sent (:meth:`TorStream.feed_data`, :meth:`~TorStream.feed_end`,
:meth:`~TorStream.fail`, :meth:`~TorStream.wake_writer`); the application reads and writes.

Flow control follows the application, not the network:

- **Receiving.** Data waits in the stream's buffer until the application reads it; only then is
  it reported to the circuit (:meth:`StreamLink.consumed`), which sends the stream SENDMEs. A
  reader that stops reading holds the exit back after one stream window (500 cells, about
  244 KiB), so the buffer is bounded by the window. On a circuit with congestion control the
  same reports drive XON/XOFF instead (:mod:`~webtunnel_pt.tor.flow_control`): past
  ``cc_xoff_client`` cells unread the exit is told to stop, once drained to go on.
- **Sending.** :meth:`TorStreamWriter.write` hands the circuit what its package windows allow
  and keeps the rest; :meth:`~TorStreamWriter.drain` waits until at most
  :data:`WRITE_HIGH_WATER_BYTES` is left, woken as SENDMEs reopen the windows (or the exit's
  XON lifts its XOFF).

How a stream ends: the exit's END with reason DONE is the end of the data (``read()`` returns
``b""``); any other END reason raises :class:`~webtunnel_pt.errors.StreamEnded` (carrying the
reason) once the data before it is read; the circuit's end raises its error (for example
:class:`~webtunnel_pt.errors.CircuitDestroyed` with the DESTROY reason). ``readexactly`` and
``readuntil`` raise :class:`asyncio.IncompleteReadError` and :class:`asyncio.LimitOverrunError`
as asyncio's own reader does, so code written for ``asyncio.open_connection`` works unchanged.

Tor streams do not half-close (an exit closes its TCP connection on END, tor-spec §6.3):
:meth:`TorStreamWriter.can_write_eof` is ``False``, and :meth:`~TorStreamWriter.write_eof`
sends END once the buffered data is out; the reader then returns what had arrived, and the end.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any, Protocol

from webtunnel_pt.deadlines import HALF_CLOSED_IDLE_S
from webtunnel_pt.errors import LocalProtocolError, StreamEnded
from webtunnel_pt.tor.cells import EndReason, reason_name

__all__ = [
    "END_DONE",
    "END_MISC",
    "READ_LIMIT_BYTES",
    "WRITE_HIGH_WATER_BYTES",
    "StreamLink",
    "TorStream",
    "TorStreamReader",
    "TorStreamWriter",
]

#: RELAY_END reasons used here (tor-spec §6.3); the full table is cells.EndReason.
END_DONE = 6
END_MISC = 1
#: ``drain()`` returns once at most this much written data waits for the package windows
#: (asyncio's default high-water mark for transports).
WRITE_HIGH_WATER_BYTES = 64 * 1024
#: ``readuntil``/``readline`` give up with LimitOverrunError past this (asyncio's default).
READ_LIMIT_BYTES = 64 * 1024
#: After close, buffered data waiting for SENDMEs gets this long before END goes out anyway.
CLOSE_FLUSH_TIMEOUT_S = HALF_CLOSED_IDLE_S


class StreamLink(Protocol):
    """What a stream needs from its circuit (the driver writes any cells these queue)."""

    def consumed(self, stream_id: int, nbytes: int) -> None:
        """The application took ``nbytes`` of the stream's data: stream SENDMEs may follow."""

    def sendable(self, stream_id: int) -> int:
        """Bytes :meth:`send_data` would take now (what the package windows allow)."""

    def send_data(self, stream_id: int, data: bytes) -> int:
        """Queue as much of ``data`` as the windows allow; the number of bytes taken."""

    def end_stream(self, stream_id: int, reason: int) -> None:
        """Queue END for the stream and forget it."""

    async def drain(self) -> None:
        """Wait until the channel's transport has room (its write buffer under its limit)."""


class TorStream:
    """The state a stream's reader and writer share; fed by the circuit's driver."""

    def __init__(
        self,
        link: StreamLink,
        stream_id: int,
        *,
        peername: tuple[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.link = link
        self.stream_id = stream_id
        self.peername = peername
        self.extra: dict[str, Any] = dict(extra or {})
        self._buffer = bytearray()
        self._pending = bytearray()
        self._end_reason: int | None = None  # the exit's END
        self._error: BaseException | None = None  # the circuit's or channel's end
        self._closing = False  # we asked to close: END after the pending data
        self._discard = False  # the application will not read any more
        self._ended = False  # our END went out, or the stream is gone
        self._changed = asyncio.Event()

    # ---- fed by the circuit's driver ------------------------------------------------------

    def feed_data(self, data: bytes) -> None:
        """DATA from the exit (bounded by the stream's deliver window)."""
        if self._discard:
            return  # the application closed: late data is dropped
        self._buffer += data
        self._changed.set()

    def feed_end(self, reason: int) -> None:
        """The exit's END (``reason``, §8.3): no more data, no more writes."""
        if self._end_reason is None:
            self._end_reason = reason
        self._ended = True
        self._pending.clear()
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        """The circuit or channel ended: reads (after the buffer) and writes raise ``error``."""
        if self._error is None and self._end_reason is None:
            self._error = error
        self._ended = True
        self._pending.clear()
        self._changed.set()

    def wake_writer(self) -> None:
        """A SENDME reopened a package window: hand over what waits."""
        self._pump()
        self._changed.set()

    # ---- state ------------------------------------------------------------------------------

    @property
    def end_reason(self) -> int | None:
        return self._end_reason

    @property
    def finished(self) -> bool:
        """Nothing more can arrive (END, our END, or the circuit's end)."""
        return self._ended or self._end_reason is not None or self._error is not None

    @property
    def buffered(self) -> int:
        """Received bytes not yet read by the application."""
        return len(self._buffer)

    @property
    def pending(self) -> int:
        """Written bytes the windows have not taken yet."""
        return len(self._pending)

    def _end_error(self) -> BaseException | None:
        """What a read past the buffer raises; None for a clean end (END DONE)."""
        if self._error is not None:
            return self._error
        reason = self._end_reason
        if reason is None or reason == END_DONE:
            return None
        return StreamEnded(reason, f"the exit ended the stream: {_end_name(reason)}")

    def _write_error(self) -> BaseException | None:
        if self._error is not None:
            return self._error
        if self._end_reason is not None:
            reason = self._end_reason
            return StreamEnded(reason, f"the exit ended the stream: {_end_name(reason)}")
        return None

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    # ---- reading ----------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes (one copy), reported consumed."""
        buffer = self._buffer
        if n >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            with memoryview(buffer) as view:
                data = bytes(view[:n])
            del buffer[:n]
        if data and not self._ended:
            self.link.consumed(self.stream_id, len(data))
        return data

    async def _wait_data(self) -> bool:
        """Wait until the buffer has data (True) or the stream is over (False, buffer empty)."""
        while not self._buffer:
            if self.finished:
                return False
            await self._wait_changed()
        return True

    def _raise_end(self) -> None:
        error = self._end_error()
        if error is not None:
            raise error

    # ---- writing ----------------------------------------------------------------------------

    def _pump(self) -> None:
        """Hand the circuit what the windows take; END once all is out after a close."""
        while self._pending and not self._ended:
            room = min(len(self._pending), self.link.sendable(self.stream_id))
            if room <= 0:
                break  # the windows are shut: a SENDME wakes us (wake_writer)
            with memoryview(self._pending) as view:
                offer = bytes(view[:room])  # only what the windows take now
            taken = self.link.send_data(self.stream_id, offer)
            if taken <= 0:
                break
            del self._pending[:taken]
        if self._closing and not self._pending:
            self._send_end(END_DONE)

    def _send_end(self, reason: int) -> None:
        if not self._ended:
            self._ended = True
            self.link.end_stream(self.stream_id, reason)
        self._changed.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        error = self._write_error()
        if error is not None:
            raise error
        if self._closing:
            raise LocalProtocolError("write on a closed stream")
        if data:
            self._pending += data
            self._pump()

    async def drain(self) -> None:
        while True:
            error = self._write_error()
            if error is not None:
                raise error
            self._pump()
            if len(self._pending) <= WRITE_HIGH_WATER_BYTES or self._ended:
                break
            await self._wait_changed()
        await self.link.drain()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._discard = True
        self._buffer.clear()  # the application is done reading
        self._pump()
        self._changed.set()

    async def wait_closed(self) -> None:
        """Until our END went out (at most :data:`CLOSE_FLUSH_TIMEOUT_S` for data that waits
        for SENDMEs; then END goes out and the rest is dropped)."""
        try:
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT_S):
                while not self._ended:
                    await self._wait_changed()
        except TimeoutError:
            self._pending.clear()
            self._send_end(END_MISC)
        if self._error is None:
            try:
                await self.link.drain()
            except Exception:  # the channel ended meanwhile: nothing left to flush
                pass


def _end_name(reason: int) -> str:
    return reason_name(EndReason, reason)


class TorStreamReader:
    """The reading half, like :class:`asyncio.StreamReader`."""

    def __init__(self, stream: TorStream, limit: int = READ_LIMIT_BYTES) -> None:
        self._stream = stream
        self._limit = limit

    def at_eof(self) -> bool:
        """The buffer is empty and nothing more will arrive."""
        return self._stream.buffered == 0 and self._stream.finished

    def exception(self) -> BaseException | None:
        return self._stream._end_error() if self._stream.finished else None

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: everything to the end); ``b""`` at a clean end."""
        stream = self._stream
        if n == 0:
            return b""
        if n < 0:
            chunks: list[bytes] = []
            while True:
                chunk = await self.read(READ_LIMIT_BYTES)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        if not await stream._wait_data():
            stream._raise_end()
            return b""
        return stream._take(n)

    async def readexactly(self, n: int) -> bytes:
        stream = self._stream
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        while stream.buffered < n:
            if stream.finished:
                stream._raise_end()
                partial = stream._take(stream.buffered)
                raise asyncio.IncompleteReadError(partial, n)
            await stream._wait_changed()
        return stream._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        stream = self._stream
        if not separator:
            raise ValueError("separator should be at least one-byte string")
        start = 0
        while True:
            index = stream._buffer.find(separator, start)
            if index >= 0:
                end = index + len(separator)
                if end > self._limit:
                    raise asyncio.LimitOverrunError("separator found past the limit", index)
                return stream._take(end)
            start = max(0, stream.buffered - len(separator) + 1)
            if stream.buffered > self._limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", start)
            if stream.finished:
                stream._raise_end()
                raise asyncio.IncompleteReadError(stream._take(stream.buffered), None)
            await stream._wait_changed()

    async def readline(self) -> bytes:
        """A line with its ``\\n``; at the end, what is left (possibly ``b""``)."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    def __aiter__(self) -> TorStreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class TorStreamWriter:
    """The writing half, like :class:`asyncio.StreamWriter`."""

    def __init__(self, stream: TorStream) -> None:
        self._stream = stream

    @property
    def stream_id(self) -> int:
        return self._stream.stream_id

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; the circuit takes what its windows allow now, the rest waits."""
        self._stream.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    async def drain(self) -> None:
        """Wait until at most :data:`WRITE_HIGH_WATER_BYTES` waits for the windows and the
        channel has room; raises the stream's error if it ended."""
        await self._stream.drain()

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        """END once the buffered data is out (Tor has no half-close); reading goes on until
        the exit stops."""
        stream = self._stream
        if not stream._closing:
            stream._closing = True
            stream._pump()

    def close(self) -> None:
        """END (DONE) once the buffered data is out; unread data is dropped."""
        self._stream.close()

    def is_closing(self) -> bool:
        return self._stream._closing or self._stream.finished

    async def wait_closed(self) -> None:
        await self._stream.wait_closed()

    async def start_tls(
        self,
        sslcontext: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TLS with the destination over this stream (``https://`` through the exit): asyncio's
        own reader and writer over it (:mod:`~webtunnel_pt.tor.stream_transport`), checked
        against ``sslcontext`` for ``server_hostname`` (default: the host asked for). This
        pair must not be used afterwards."""
        from webtunnel_pt.tor.stream_transport import asyncio_streams

        stream = self._stream
        host = server_hostname
        if host is None and stream.peername is not None:
            host = stream.peername[0].strip("[]")
        reader, writer = await asyncio_streams(stream)
        try:
            await writer.start_tls(
                sslcontext, server_hostname=host, ssl_handshake_timeout=ssl_handshake_timeout
            )
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``: the (host, port) asked for; ``stream_id``; the circuit's details the
        client adds (``tor_path``, ``tor_circuit_id``, ``exit_address``,
        ``tor_congestion_control``: whether the exit negotiated it; live state, None without
        it: ``tor_congestion_window`` (the circuit's
        :class:`~webtunnel_pt.tor.congestion.CongestionWindow`), ``tor_stream_flow`` (the
        stream's :class:`~webtunnel_pt.tor.flow_control.StreamFlow`))."""
        if name == "peername":
            return self._stream.peername
        if name == "stream_id":
            return self._stream.stream_id
        return self._stream.extra.get(name, default)
