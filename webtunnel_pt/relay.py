"""The byte relay between tor's SOCKS connection and the tunnel, with backpressure and half-close.

Two pumps, one per direction. Each reads at most :data:`READ_CHUNK_BYTES`, writes, and waits on
``drain()`` before reading again, so a slow reader on one side stops the other side's reads:
per connection at most about ``2 x STREAM_LIMIT + writer high-water + chunk`` bytes are held.

Half-close policy, one direction at a time:

- a side ends its sending (EOF): if the other side's transport can half-close (TCP), it gets
  ``write_eof()``; TLS cannot half-close, so it is left as is;
- the opposite direction keeps flowing until it ends too, or stays silent for
  :data:`HALF_CLOSED_IDLE_S` (a peer that never closes must not pin the connection forever);
- an error in either direction (reset, TLS failure) ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024
#: How long the remaining direction may stay silent once the other has ended. tor closes whole
#: connections rather than half-closing them, and a TLS bridge connection cannot pass a
#: half-close on, so this is also how long a tunnel outlives tor's close when the bridge is quiet.
HALF_CLOSED_IDLE_S = 10.0
#: Closing politely (TLS close_notify) must not take longer than this.
CLOSE_TIMEOUT_S = 2.0


class _Pump:
    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.name = name
        self.reader = reader
        self.writer = writer
        self.bytes = 0

    async def run(self) -> None:
        reader, writer = self.reader, self.writer
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                break
            self.bytes += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


async def _wait_while_active(pump: _Pump, task: asyncio.Task[None], idle_s: float) -> None:
    """Let ``task`` finish on its own while it keeps moving bytes; cancel it once idle."""
    while not task.done():
        before = pump.bytes
        done, _ = await asyncio.wait([task], timeout=idle_s)
        if not done and pump.bytes == before:
            log.debug("%s idle for %g s after half-close; closing", pump.name, idle_s)
            task.cancel()
            return


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
    upstream = _Pump("tor->bridge", tor_reader, bridge_writer)
    downstream = _Pump("bridge->tor", bridge_reader, tor_writer)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                group.create_task(upstream.run()): upstream,
                group.create_task(downstream.run()): downstream,
            }
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # One direction ended cleanly (an error would have cancelled the group): the other
            # may go on, but not silently forever.
            for task, pump in tasks.items():
                await _wait_while_active(pump, task, half_closed_idle_s)
    except* (ConnectionError, OSError, TimeoutError) as group_error:
        log.debug("relay ended: %s", group_error.exceptions[0])
    finally:
        await asyncio.gather(close_writer(tor_writer), close_writer(bridge_writer))
    return upstream.bytes, downstream.bytes
