"""The byte relay between tor's SOCKS connection and the tunnel, with backpressure and half-close.

Design (measured in ``docs/performance.md``): for the relay the two transports are taken over
from their streams. Each gets a small protocol, a :class:`_Leg`, that hands every chunk the
event loop read (up to 256 KiB from a socket, or what one TLS read produced) straight to the
other transport's ``write()``: no stream buffer, no copy, no task wake-up per chunk. That halves
the PT's CPU per byte against two ``StreamReader.read()`` / ``drain()`` pumps, and on a
two-core machine CPU is what bounds throughput. Bytes the streams already held (what tor sent
during the dial, what the server sent behind its ``101``) go first.

Backpressure: when a transport's write buffer passes its high-water mark the loop calls
``pause_writing()`` on its protocol, which is the leg reading the *other* transport; that leg
stops reading its source until ``resume_writing()``. Per connection at most about one read
chunk plus each transport's write-buffer limit is held.

Half-close policy, one direction at a time:

- a side ends its sending (EOF): if the other side's transport can half-close (TCP), it gets
  ``write_eof()``; TLS cannot half-close, so it is left as is;
- the opposite direction keeps flowing until it ends too, or stays silent for
  :data:`HALF_CLOSED_IDLE_S` (a peer that never closes must not pin the connection forever);
- an error in either direction (reset, TLS failure), or a connection closing completely, ends
  both.

When the relay ends the streams get their transports back and both writers are closed.

Allocator (issue 16, measured in ``docs/performance.md``): each upload chunk is two short-lived
allocations of about 256 KiB (the socket read, then the ciphertext asyncio's TLS takes from its
memory BIO). With glibc's default thresholds these may go to ``mmap`` or be trimmed from the
heap top as soon as they are freed, and then the next chunk faults its pages in again: up to
about 400 000 page faults per GiB uploaded, depending on the heap's history. The first relay
in a process therefore raises glibc's mmap and trim thresholds (:func:`tune_allocator`); that
changes only when freed memory goes back to the system (a few MiB may stay with the process),
never what is allocated. The callers of :func:`relay` are the PT's own processes (managed
mode, the SOCKS front).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from webtunnel_pt.deadlines import CLOSE_TIMEOUT_S, HALF_CLOSED_IDLE_S

log = logging.getLogger(__name__)

#: Largest read from tor during the dial; the relay itself reads what the event loop offers.
READ_CHUNK_BYTES = 64 * 1024

#: glibc's malloc thresholds set by :func:`tune_allocator`: allocations below the first come
#: from the heap, and the heap keeps up to the second of free memory at its top.
MALLOC_MMAP_THRESHOLD_BYTES = 1024 * 1024
MALLOC_TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024
#: Whether the first relay tunes the allocator (tests and benchmarks may turn it off).
TUNE_ALLOCATOR = True
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_allocator_tuned: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are set.

    Without glibc (musl, macOS, Windows) or without ``ctypes`` this does nothing and returns
    False. ``ctypes`` is imported here, on the first tunnel, not at start-up.
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = _set_malloc_thresholds()
    return _allocator_tuned


def _set_malloc_thresholds() -> bool:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError, ImportError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # The mmap threshold first: setting either one turns glibc's own adjustment off.
    done: bool = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES) == 1
    trimmed: bool = mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES) == 1
    return done and trimmed


class _Leg(asyncio.Protocol):
    """One direction: the protocol of ``source``, writing what it receives to ``sink``.

    It also receives ``source``'s write-side flow control, which concerns the other direction
    (whose sink ``source`` is): it then pauses and resumes reading from ``sink``.
    """

    def __init__(
        self,
        name: str,
        source: asyncio.Transport,
        sink: asyncio.Transport,
        original: asyncio.BaseProtocol,
        wake: asyncio.Event,
    ) -> None:
        self.name = name
        self.source = source
        self.sink = sink
        self.original = original
        self._wake = wake
        self.bytes = 0
        self.ended = False
        self.lost = False
        self.error: BaseException | None = None

    def data_received(self, data: bytes) -> None:
        if self.sink.is_closing():
            # The other side is gone and the relay is ending: writing on would only make
            # asyncio log "socket.send() raised exception." once per chunk.
            return
        self.bytes += len(data)
        self.sink.write(data)

    def eof_received(self) -> bool:
        self.ended = True
        self._wake.set()
        if self.sink.can_write_eof() and not self.sink.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self.sink.write_eof()
        # Keep a TCP source open for the other direction; a TLS transport closes regardless
        # (and warns if asked not to).
        return self.source.can_write_eof()

    def pause_writing(self) -> None:
        if not self.sink.is_closing():
            self.sink.pause_reading()

    def resume_writing(self) -> None:
        if not self.sink.is_closing():
            self.sink.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = self.lost = True
        self.error = exc
        self._wake.set()
        # The stream's protocol resolves the writer's wait_closed() and wakes its waiters.
        self.original.connection_lost(exc)


def _take_buffered(reader: asyncio.StreamReader) -> tuple[bytes, bool] | None:
    """Empty ``reader``: (its buffered bytes, whether it has seen EOF); None if not possible.

    ``StreamReader`` has no public way to hand over its buffer without waiting, so this reads
    the two attributes every CPython since 3.4 has; should they ever go, the relay falls back
    to the stream pumps.
    """
    buffer = getattr(reader, "_buffer", None)
    eof = getattr(reader, "_eof", None)
    if not isinstance(buffer, bytearray) or not isinstance(eof, bool):
        return None
    data = bytes(buffer)
    buffer.clear()
    return data, eof


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close politely within :data:`CLOSE_TIMEOUT_S`, then abort."""
    if writer.transport.is_closing() and writer.transport.get_extra_info("socket") is None:
        return
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except (TimeoutError, OSError, RuntimeError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


async def relay(
    tor_reader: asyncio.StreamReader,
    tor_writer: asyncio.StreamWriter,
    bridge_reader: asyncio.StreamReader,
    bridge_writer: asyncio.StreamWriter,
    *,
    half_closed_idle_s: float = HALF_CLOSED_IDLE_S,
) -> tuple[int, int]:
    """Copy both ways until both directions end; return (bytes to bridge, bytes to tor).

    Both writers are closed on return, whatever happened.
    """
    if TUNE_ALLOCATOR:
        tune_allocator()
    try:
        tor = tor_writer.transport
        bridge = bridge_writer.transport
        if not (isinstance(tor, asyncio.Transport) and isinstance(bridge, asyncio.Transport)):
            return await relay_streams(
                tor_reader, tor_writer, bridge_reader, bridge_writer, half_closed_idle_s
            )
        held = [_take_buffered(tor_reader), _take_buffered(bridge_reader)]
        if held[0] is None or held[1] is None:
            return await relay_streams(
                tor_reader, tor_writer, bridge_reader, bridge_writer, half_closed_idle_s
            )
        wake = asyncio.Event()
        up = _Leg("tor->bridge", tor, bridge, tor.get_protocol(), wake)
        down = _Leg("bridge->tor", bridge, tor, bridge.get_protocol(), wake)
        try:
            for leg, (data, eof) in zip((up, down), (held[0], held[1]), strict=True):
                leg.source.set_protocol(leg)
                if data:
                    leg.data_received(data)
                if eof:
                    leg.eof_received()
                if leg.source.is_closing():
                    leg.ended = leg.lost = True  # closed before the relay began
                elif not eof:
                    leg.source.resume_reading()  # the stream may have paused it
            for leg in (up, down):
                # A write buffer already past its mark will not signal pause_writing() again.
                if leg.source.get_write_buffer_size() > leg.source.get_write_buffer_limits()[1]:
                    leg.pause_writing()
            await _wait_ended(up, down, wake, half_closed_idle_s)
        finally:
            for leg in (up, down):
                leg.source.set_protocol(leg.original)
        if up.error or down.error:
            log.debug("relay ended: %s", up.error or down.error)
        return up.bytes, down.bytes
    finally:
        # Both closes are tasks of this group: neither outlives the relay, even if one fails.
        async with asyncio.TaskGroup() as closing:
            closing.create_task(close_writer(tor_writer))
            closing.create_task(close_writer(bridge_writer))


async def _wait_ended(up: _Leg, down: _Leg, wake: asyncio.Event, idle_s: float) -> None:
    """Return once both directions ended, a connection is gone, or the survivor went idle."""
    while not ((up.ended and down.ended) or up.lost or down.lost):
        wake.clear()
        if not (up.ended or down.ended):
            await wake.wait()
            continue
        survivor = down if up.ended else up
        before = survivor.bytes
        try:
            async with asyncio.timeout(idle_s):
                await wake.wait()
        except TimeoutError:
            if survivor.bytes == before:
                log.debug("%s idle for %g s after half-close; closing", survivor.name, idle_s)
                return


# ---- fallback: two stream pumps -------------------------------------------------------------


#: What ends a relay quietly (logged at debug): the peer went away or the network failed.
RELAY_ENDS: tuple[type[Exception], ...] = (ConnectionError, OSError, TimeoutError)


async def _pump(reader: Any, writer: Any, count: list[int]) -> None:
    while data := await reader.read(READ_CHUNK_BYTES):
        count[0] += len(data)
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def relay_streams(
    a_reader: Any,
    a_writer: Any,
    b_reader: Any,
    b_writer: Any,
    idle_s: float,
    *,
    ends: tuple[type[Exception], ...] = RELAY_ENDS,
) -> tuple[int, int]:
    """The same policy with ``read()`` / ``drain()`` pumps, for transports the legs can't take
    and for any pair of objects shaped like asyncio's streams (the built-in client's tor
    streams): copy a->b and b->a until both end, or one ended and the other moved nothing for
    ``idle_s``, or one fails with one of ``ends``; return (bytes a->b, bytes b->a)."""
    sent, received = [0], [0]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                group.create_task(_pump(a_reader, b_writer, sent)): sent,
                group.create_task(_pump(b_reader, a_writer, received)): received,
            }
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task, count in tasks.items():
                while not task.done():
                    before = count[0]
                    done, _ = await asyncio.wait([task], timeout=idle_s)
                    if not done and count[0] == before:
                        task.cancel()
                        break
    except* ends as group_error:
        log.debug("relay ended: %s", group_error.exceptions[0])
    return sent[0], received[0]
