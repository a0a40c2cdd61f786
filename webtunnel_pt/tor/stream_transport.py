"""A Tor stream as an :class:`asyncio.Transport`, so asyncio's own streams and TLS run over it:
``writer.start_tls()`` for ``https://`` through the exit (issue 15's ``fetch``), or a protocol
of the caller's. asyncio glue.

    reader, writer = await tor.open_connection("example.com", 443)
    reader, writer = await writer.start_tls(ssl.create_default_context())   # TLS to the site
    writer.write(b"GET / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n")

:class:`TorTransport` owns the stream from then on; one task (owned by the transport, ended
by :meth:`~TorTransport.close` or :meth:`~TorTransport.abort`) reads the stream and hands
the data to the protocol. Flow control is the stream's: a protocol that pauses reading stops
the reads, so nothing more is consumed and the exit's stream window closes; writes beyond
what the package windows take pause the protocol's writing until SENDMEs reopen them. The end
of the stream reaches the protocol as ``eof_received`` (END with DONE) or as
``connection_lost`` with the stream's error (any other END reason, DESTROY, the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from webtunnel_pt.tor.stream_io import (
    READ_LIMIT_BYTES,
    WRITE_HIGH_WATER_BYTES,
    TorStream,
    TorStreamReader,
)

__all__ = ["READ_CHUNK_BYTES", "TorTransport", "asyncio_streams"]

#: One hand-over to the protocol: about a stream window's SENDME increment (50 cells).
READ_CHUNK_BYTES = 32 * 1024


class TorTransport(asyncio.Transport):
    """An asyncio transport over one :class:`~webtunnel_pt.tor.stream_io.TorStream`."""

    _start_tls_compatible = True  # loop.start_tls() accepts it (it needs only this API)

    def __init__(self, stream: TorStream, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._stream = stream
        self._protocol = protocol
        self._reader = TorStreamReader(stream)
        self._reading = asyncio.Event()
        self._reading.set()
        self._closing = False
        self._lost = False
        self._write_paused = False
        self._high_water = WRITE_HIGH_WATER_BYTES
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._writer_task: asyncio.Task[None] | None = None
        #: Flushes the stream after close() (bounded by the stream's close timeout).
        self._close_task: asyncio.Task[None] | None = None
        self._task = loop.create_task(self._pump(), name=f"tor stream {stream.stream_id}")

    # ---- reading ----------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while not self._closing:
                await self._reading.wait()
                data = await self._reader.read(READ_CHUNK_BYTES)
                await self._reading.wait()  # paused meanwhile (start_tls does): hold it
                if not data:
                    keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
                    if not keep_open:
                        self.close()
                    return
                self._deliver(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream's end: END reason, DESTROY, channel
            self._connection_lost(exc)

    def _deliver(self, data: bytes) -> None:
        protocol = self._protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view:
                buffer = memoryview(protocol.get_buffer(len(view)))
                size = min(len(buffer), len(view))
                buffer[:size] = view[:size]
                protocol.buffer_updated(size)
                view = view[size:]
        else:
            protocol.data_received(data)  # type: ignore[attr-defined]

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set() and not self._closing

    # ---- writing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return  # as asyncio's transports: late writes are dropped
        try:
            self._stream.write(bytes(data))
        except Exception as exc:
            self._connection_lost(exc)
            return
        if self._stream.pending > self._high_water and not self._write_paused:
            self._write_paused = True
            self._protocol.pause_writing()
            self._writer_task = self._loop.create_task(self._wait_writable())

    async def _wait_writable(self) -> None:
        try:
            await self._stream.drain()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._connection_lost(exc)
            return
        self._write_paused = False
        self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self._stream.pending

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water = WRITE_HIGH_WATER_BYTES if high is None else high

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("Tor streams do not half-close")

    # ---- the rest of the transport API ------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._stream.peername
        if name == "stream_id":
            return self._stream.stream_id
        return self._stream.extra.get(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """END (DONE) once the written data is out; then ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        self._stream.close()
        self._stop_tasks()
        self._close_task = self._loop.create_task(self._finish_close())

    async def _finish_close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.wait_closed()
        self._connection_lost(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        """Drop what waits, END at once, ``connection_lost(exc)`` (sslproto calls this)."""
        self._closing = True
        self._stream.close()
        self._stop_tasks()
        self._connection_lost(exc)

    def _stop_tasks(self) -> None:
        for task in (self._task, self._writer_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._stream.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)


async def asyncio_streams(
    stream: TorStream, limit: int = READ_LIMIT_BYTES
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio's own StreamReader/StreamWriter over ``stream`` (through a
    :class:`TorTransport`), e.g. to call :meth:`asyncio.StreamWriter.start_tls`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = TorTransport(stream, protocol)
    protocol.connection_made(transport)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
