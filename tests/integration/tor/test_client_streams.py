"""tor.stream_io's reader/writer against a fake circuit link: consumption (not arrival) is
reported to the circuit, so a reader that stops reading sends no SENDME; writes take what the
windows allow and drain() waits for them to reopen; END reasons and the circuit's end become
the errors the module docstring lists; asyncio's reader API (readexactly, readuntil, ...)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from webtunnel_pt.errors import CircuitDestroyed, LocalProtocolError, StreamEnded
from webtunnel_pt.tor.cells import DestroyReason, EndReason
from webtunnel_pt.tor.stream_io import (
    WRITE_HIGH_WATER_BYTES,
    TorStream,
    TorStreamReader,
    TorStreamWriter,
)

CELL = 498


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


class FakeLink:
    """The circuit side: records consumption, takes writes up to ``window`` bytes."""

    def __init__(self, window: int = 1 << 30) -> None:
        self.consumed_calls: list[int] = []
        self.sent = bytearray()
        self.window = window
        self.ended: list[int] = []
        self.drains = 0

    def consumed(self, stream_id: int, nbytes: int) -> None:
        assert stream_id == 7
        self.consumed_calls.append(nbytes)

    def send_data(self, stream_id: int, data: bytes) -> int:
        taken = min(len(data), self.window)
        self.window -= taken
        self.sent += data[:taken]
        return taken

    def end_stream(self, stream_id: int, reason: int) -> None:
        self.ended.append(reason)

    async def drain(self) -> None:
        self.drains += 1


def pair(link: FakeLink) -> tuple[TorStream, TorStreamReader, TorStreamWriter]:
    stream = TorStream(link, 7, peername=("example.com", 80), extra={"tor_circuit_id": 5})
    return stream, TorStreamReader(stream), TorStreamWriter(stream)


async def settle() -> None:
    """Let every ready task run (yields to the loop; no timer)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_reader_that_does_not_read_reports_nothing_consumed() -> None:
    async def main() -> None:
        link = FakeLink()
        stream, reader, _ = pair(link)
        for _ in range(500):  # a whole stream window arrives
            stream.feed_data(b"x" * CELL)
        await settle()
        assert link.consumed_calls == []  # no SENDME can follow
        assert stream.buffered == 500 * CELL
        data = await reader.read(1000)
        assert data == b"x" * 1000
        assert link.consumed_calls == [1000]
        assert await reader.readexactly(CELL) == b"x" * CELL
        assert link.consumed_calls == [1000, CELL]

    run(main())


def test_read_waits_for_data_and_returns_at_most_n() -> None:
    async def main() -> None:
        link = FakeLink()
        stream, reader, _ = pair(link)
        task = asyncio.create_task(reader.read(10))
        await settle()
        assert not task.done()
        stream.feed_data(b"hello world, more than ten")
        assert await task == b"hello worl"
        stream.feed_end(EndReason.DONE)
        assert await reader.read() == b"d, more than ten"
        assert await reader.read() == b""
        assert reader.at_eof()

    run(main())


def test_end_done_is_eof_and_other_reasons_raise_after_the_data() -> None:
    async def main() -> None:
        stream, reader, _ = pair(FakeLink())
        stream.feed_data(b"partial")
        stream.feed_end(EndReason.CONNRESET)
        assert await reader.read(100) == b"partial"
        with pytest.raises(StreamEnded) as caught:
            await reader.read(100)
        assert caught.value.reason == EndReason.CONNRESET
        assert "CONNRESET" in str(caught.value)

    run(main())


def test_the_circuits_end_reaches_reader_and_writer() -> None:
    async def main() -> None:
        stream, reader, writer = pair(FakeLink())
        stream.feed_data(b"before")
        stream.fail(CircuitDestroyed(DestroyReason.CHANNEL_CLOSED, "relay destroyed"))
        assert await reader.read(100) == b"before"
        with pytest.raises(CircuitDestroyed) as caught:
            await reader.read(100)
        assert caught.value.reason == DestroyReason.CHANNEL_CLOSED
        with pytest.raises(CircuitDestroyed):
            writer.write(b"more")
        with pytest.raises(CircuitDestroyed):
            await writer.drain()

    run(main())


def test_a_waiting_reader_is_woken_by_the_end() -> None:
    async def main() -> None:
        stream, reader, _ = pair(FakeLink())
        task = asyncio.create_task(reader.readexactly(4))
        await settle()
        stream.feed_data(b"ab")
        stream.feed_end(EndReason.DONE)
        with pytest.raises(asyncio.IncompleteReadError) as caught:
            await task
        assert caught.value.partial == b"ab"

    run(main())


def test_readuntil_and_readline_as_asyncio() -> None:
    async def main() -> None:
        stream, reader, _ = pair(FakeLink())
        stream.feed_data(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nbody")
        assert await reader.readline() == b"HTTP/1.0 200 OK\r\n"
        assert await reader.readuntil(b"\r\n\r\n") == b"A: b\r\n\r\n"
        stream.feed_end(EndReason.DONE)
        assert await reader.readline() == b"body"
        assert await reader.readline() == b""

    run(main())


def test_readuntil_is_bounded_by_its_limit() -> None:
    async def main() -> None:
        stream = TorStream(FakeLink(), 7)
        reader = TorStreamReader(stream, limit=16)
        stream.feed_data(b"x" * 40)
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")

    run(main())


def test_writes_take_what_the_window_allows_and_drain_waits_for_a_sendme() -> None:
    async def main() -> None:
        link = FakeLink(window=1000)
        stream, _, writer = pair(link)
        data = bytes(range(256)) * 400  # 102,400 bytes
        writer.write(data)
        assert bytes(link.sent) == data[:1000]
        assert stream.pending == len(data) - 1000
        drain = asyncio.create_task(writer.drain())
        await settle()
        assert not drain.done()  # more than the high-water mark waits for the window
        link.window = len(data) - 1000 - WRITE_HIGH_WATER_BYTES  # a SENDME arrives
        stream.wake_writer()
        await drain
        assert stream.pending == WRITE_HIGH_WATER_BYTES
        link.window = 1 << 30
        stream.wake_writer()
        assert bytes(link.sent) == data
        assert link.drains == 1

    run(main())


def test_close_sends_end_done_after_the_pending_data() -> None:
    async def main() -> None:
        link = FakeLink(window=10)
        stream, _, writer = pair(link)
        writer.write(b"0123456789abcdef")
        writer.close()
        assert writer.is_closing()
        assert link.ended == []  # "abcdef" still waits for the window
        link.window = 100
        stream.wake_writer()
        assert link.ended == [EndReason.DONE]
        await writer.wait_closed()
        assert bytes(link.sent) == b"0123456789abcdef"
        with pytest.raises(LocalProtocolError):
            writer.write(b"late")

    run(main())


def test_data_arriving_after_close_is_dropped() -> None:
    async def main() -> None:
        link = FakeLink()
        stream, reader, writer = pair(link)
        writer.close()
        stream.feed_data(b"late")
        assert stream.buffered == 0
        assert link.consumed_calls == []
        assert await reader.read(10) == b""

    run(main())


def test_writing_after_the_exit_ended_raises_its_reason() -> None:
    async def main() -> None:
        stream, _, writer = pair(FakeLink())
        stream.feed_end(EndReason.CONNRESET)
        with pytest.raises(StreamEnded) as caught:
            writer.write(b"x")
        assert caught.value.reason == EndReason.CONNRESET

    run(main())


def test_extra_info() -> None:
    _, _, writer = pair(FakeLink())
    assert writer.get_extra_info("peername") == ("example.com", 80)
    assert writer.get_extra_info("stream_id") == 7
    assert writer.get_extra_info("tor_circuit_id") == 5
    assert writer.get_extra_info("nothing", "default") == "default"
    assert not writer.can_write_eof()
