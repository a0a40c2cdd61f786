"""tor.channel's one reader task over real loopback TLS: cells reach the inbox of the circuit
they name, an inbox holds at most MAX_QUEUED_CELLS_PER_CIRCUIT cells (a flood destroys that
circuit), SENDMEs go out only as cells are taken, the end of the link wakes every waiter with
ChannelClosed, waits end at their Deadline, and aclose() leaves no task behind; an inbox hands
out its queued cells in bounded batches (get_batch); an inline receiver gets the queued cells,
then each arrival, then the link's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.scripted_relay import (
    FakeRelay,
    Script,
    answer_create_fast,
    read_cell,
    run,
    send,
    with_relay,
)
from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import (
    ChannelClosed,
    CircuitDestroyed,
    HandshakeTimeout,
    LinkProtocolError,
)
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    DestroyReason,
    RelayCell,
    RelayCommand,
    destroy_cell,
    encode_cell,
)
from webtunnel_pt.tor.channel import MAX_QUEUED_CELLS_PER_CIRCUIT, Channel
from webtunnel_pt.tor.channel_circuit import CircuitInbox
from webtunnel_pt.tor.circuit import STREAM_SENDME_INCREMENT, StreamData

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


async def one_circuit(reader: Reader, writer: Writer, parser: CellParser) -> None:
    """The relay side: answer one CREATE_FAST, then listen until the client closes."""
    await answer_create_fast(reader, writer, parser)
    await reader.read()


def run_on_channel(
    tmp_path: Path, script: Script, body: Callable[[Channel], Awaitable[None]]
) -> None:
    """Run ``body`` on a channel to a scripted relay; the channel is closed afterwards."""

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            try:
                await body(channel)
            finally:
                await channel.aclose()

    run(main())


def reader_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("tor channel reader")]


def test_interleaved_cells_reach_their_own_circuit(tmp_path: Path) -> None:
    ids: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        a, b = await ids.get()
        cells = []
        for i in range(5):
            cells += [
                Cell(a, CellCommand.RELAY, b"a%d" % i),
                Cell(b, CellCommand.RELAY, b"b%d" % i),
            ]
        send(
            writer,
            *cells,
            Cell(0, CellCommand.PADDING, b""),
            Cell(0x80000077, CellCommand.RELAY, b"nobody's"),  # unknown circuit: dropped
            destroy_cell(a, DestroyReason.FINISHED),
            destroy_cell(b, DestroyReason.REQUESTED),
        )
        await writer.drain()
        await reader.read()

    async def body(channel: Channel) -> None:
        a, b = channel.new_circuit(), channel.new_circuit()
        assert a.circ_id != b.circ_id
        await ids.put((a.circ_id, b.circ_id))
        got_b = [(await b.next_cell()).payload[:2] for _ in range(5)]
        got_a = [(await a.next_cell()).payload[:2] for _ in range(5)]
        assert got_a == [b"a%d" % i for i in range(5)]
        assert got_b == [b"b%d" % i for i in range(5)]
        with pytest.raises(CircuitDestroyed) as destroyed_b:
            await b.next_event(Deadline.after(5))
        with pytest.raises(CircuitDestroyed) as destroyed_a:
            await a.next_event(Deadline.after(5))
        assert destroyed_a.value.reason == DestroyReason.FINISHED
        assert destroyed_b.value.reason == DestroyReason.REQUESTED
        # an ended circuit answers at once, and the channel no longer routes to it
        with pytest.raises(CircuitDestroyed):
            await a.next_event()
        assert a.circ_id not in channel._inboxes and b.circ_id not in channel._inboxes

    run_on_channel(tmp_path, script, body)


def test_a_flood_beyond_the_bound_destroys_only_that_circuit(tmp_path: Path) -> None:
    marker_id: asyncio.Queue[int] = asyncio.Queue()
    go_on = asyncio.Event()
    destroyed: asyncio.Queue[Cell] = asyncio.Queue()

    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        flooded = await answer_create_fast(reader, writer, parser)
        marker = await marker_id.get()
        filler = [Cell(flooded, CellCommand.RELAY, b"x")] * MAX_QUEUED_CELLS_PER_CIRCUIT
        send(writer, *filler, Cell(marker, CellCommand.RELAY, b"full"))
        await writer.drain()
        await go_on.wait()
        send(writer, *[Cell(flooded, CellCommand.RELAY, b"y")] * 500)
        send(writer, Cell(marker, CellCommand.RELAY, b"over"))
        await writer.drain()
        await destroyed.put(await read_cell(reader, parser))
        await reader.read()

    async def body(channel: Channel) -> None:
        flooded = await channel.create_fast_circuit(timeout_s=5)
        marker = channel.new_circuit()
        await marker_id.put(marker.circ_id)
        assert (await marker.next_cell(Deadline.after(10))).payload[:4] == b"full"
        assert len(flooded.inbox) == MAX_QUEUED_CELLS_PER_CIRCUIT
        assert not flooded.inbox.closed
        go_on.set()
        assert (await marker.next_cell(Deadline.after(10))).payload[:4] == b"over"
        assert len(flooded.inbox) == 0  # memory freed, not grown
        with pytest.raises(LinkProtocolError, match=f"more than {MAX_QUEUED_CELLS_PER_CIRCUIT}"):
            await flooded.next_cell()
        with pytest.raises(LinkProtocolError, match="SENDME window"):
            await flooded.next_event()
        assert flooded.circ_id not in channel._inboxes
        cell = await asyncio.wait_for(destroyed.get(), 10)
        assert cell.command == CellCommand.DESTROY and cell.circ_id == flooded.circ_id
        assert cell.payload[0] == DestroyReason.NONE  # as tor's client: no reason on the wire
        assert not channel.is_closed  # the other circuit and the channel live on
        assert marker.circ_id in channel._inboxes

    run_on_channel(tmp_path, script, body)


def test_sendmes_go_out_as_cells_are_taken(tmp_path: Path) -> None:
    """A stream SENDME is due after 50 DATA cells; it leaves only once the 50th is taken, so
    the window bounds what a slow reader can have queued."""
    marker_id: asyncio.Queue[int] = asyncio.Queue()
    taken = asyncio.Event()
    sendme: asyncio.Queue[RelayCell] = asyncio.Queue()
    cells = STREAM_SENDME_INCREMENT + 5

    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        relay = FakeRelay(await read_cell(reader, parser))
        send(writer, relay.created)
        begin = relay.receive(await read_cell(reader, parser))
        assert begin.command == RelayCommand.BEGIN_DIR
        send(writer, relay.send(RelayCell(RelayCommand.CONNECTED, begin.stream_id)))
        data = [
            relay.send(RelayCell(RelayCommand.DATA, begin.stream_id, b"%03d" % i))
            for i in range(cells)
        ]
        send(writer, *data, Cell(await marker_id.get(), CellCommand.RELAY, b"sent"))
        await writer.drain()
        first = await read_cell(reader, parser)  # nothing was taken yet: no SENDME before it
        assert first.command == CellCommand.PADDING, first
        await taken.wait()
        await sendme.put(relay.receive(await read_cell(reader, parser)))
        await reader.read()

    async def body(channel: Channel) -> None:
        circuit = await channel.create_fast_circuit(timeout_s=5)
        stream_id = await circuit.begin_dir(timeout_s=5)
        marker = channel.new_circuit()
        await marker_id.put(marker.circ_id)
        assert (await marker.next_cell(Deadline.after(10))).payload[:4] == b"sent"
        assert len(circuit.inbox) == cells
        channel._writer.write(encode_cell(Cell(0, CellCommand.PADDING, b""), 5))
        events = [await circuit.next_event() for _ in range(STREAM_SENDME_INCREMENT)]
        assert events[0] == StreamData(stream_id, b"000")
        taken.set()
        message = await asyncio.wait_for(sendme.get(), 10)
        assert message.command == RelayCommand.SENDME and message.stream_id == stream_id
        assert len(circuit.inbox) == cells - STREAM_SENDME_INCREMENT

    run_on_channel(tmp_path, script, body)


def test_the_end_of_the_link_wakes_every_waiter(tmp_path: Path) -> None:
    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        await read_cell(reader, parser)  # CREATE_FAST: the waiters are all waiting, hang up

    async def body(channel: Channel) -> None:
        circuits = [channel.new_circuit() for _ in range(3)]
        waiters = [
            asyncio.create_task(circuits[0].next_event()),
            asyncio.create_task(circuits[1].next_cell()),
            asyncio.create_task(circuits[2].next_event(Deadline.after(60))),
        ]
        with pytest.raises(ChannelClosed):
            await channel.create_fast_circuit(timeout_s=30)
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert [type(r) for r in results] == [ChannelClosed] * 3
        assert "relay closed the link" in str(results[0])
        assert channel.is_closed
        assert channel._reader_task.done()  # ended by itself, before aclose
        with pytest.raises(ChannelClosed):
            channel.new_circuit()

    run_on_channel(tmp_path, script, body)


def test_waits_end_at_the_deadline(tmp_path: Path) -> None:
    async def body(channel: Channel) -> None:
        circuit = await channel.create_fast_circuit(deadline=Deadline.after(5))
        with pytest.raises(TimeoutError):
            await circuit.next_event(Deadline.after(0.05))
        with pytest.raises(HandshakeTimeout, match=r"BEGIN_DIR within 0\.1 s"):
            await circuit.begin_dir(timeout_s=30, deadline=Deadline.after(0.1))
        with pytest.raises(HandshakeTimeout, match="CREATED_FAST"):
            await channel.create_fast_circuit(timeout_s=30, deadline=Deadline.after(0.1))

    run_on_channel(tmp_path, one_circuit, body)


def test_aclose_leaves_no_task_running(tmp_path: Path) -> None:
    async def main() -> None:
        async with with_relay(tmp_path, one_circuit) as connect:
            before = asyncio.all_tasks()
            channel = await connect()
            assert reader_tasks() == [channel._reader_task]
            circuit = await channel.create_fast_circuit(timeout_s=5)
            waiter = asyncio.create_task(circuit.next_event())
            async with channel:
                pass
            assert reader_tasks() == [] and channel._reader_task.done()
            with pytest.raises(ChannelClosed, match="channel closed"):
                await waiter
            assert asyncio.all_tasks() - before - {waiter} <= _relay_side_tasks()
            await channel.aclose()  # a second close is harmless

    run(main())


def _relay_side_tasks() -> set[asyncio.Task[object]]:
    """The scripted relay's connection handler (asyncio.start_server) is not the channel's."""
    return {t for t in asyncio.all_tasks() if "handle" in repr(t.get_coro())}


def test_a_cell_breaking_the_protocol_destroys_its_circuit(tmp_path: Path) -> None:
    """A RELAY cell before CREATED_FAST: LinkProtocolError for the owner, DESTROY (PROTOCOL)
    to the relay, and later waits on that circuit fail at once with the same kind of error."""
    destroyed: asyncio.Queue[Cell] = asyncio.Queue()

    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        create = await read_cell(reader, parser)
        send(writer, Cell(create.circ_id, CellCommand.RELAY, b"too early"))
        await writer.drain()
        await destroyed.put(await read_cell(reader, parser))
        await reader.read()

    async def body(channel: Channel) -> None:
        with pytest.raises(LinkProtocolError, match="not open"):
            await channel.create_fast_circuit(timeout_s=5)
        cell = await asyncio.wait_for(destroyed.get(), 10)
        assert cell.command == CellCommand.DESTROY
        assert cell.payload[0] == DestroyReason.NONE  # as tor's client: no reason on the wire
        assert channel._inboxes == {} and channel._circuits == {}
        assert not channel.is_closed

    run_on_channel(tmp_path, script, body)


def test_a_failing_reader_still_wakes_every_waiter(tmp_path: Path) -> None:
    """A bug in routing must not leave circuits waiting forever: the channel closes."""

    async def body(channel: Channel) -> None:
        waiting = channel.new_circuit()
        waiter = asyncio.create_task(waiting.next_event())

        def broken(cell: Cell) -> None:
            raise RuntimeError("routing bug")

        channel._route = broken  # type: ignore[method-assign]
        with pytest.raises(ChannelClosed, match="reader failed: RuntimeError: routing bug"):
            await channel.create_fast_circuit(timeout_s=5)
        with pytest.raises(ChannelClosed) as info:
            await waiter
        assert isinstance(info.value.__cause__, RuntimeError)
        await channel.aclose()
        assert reader_tasks() == []

    run_on_channel(tmp_path, one_circuit, body)


def test_an_inbox_hands_out_what_is_queued_in_bounded_batches_then_its_error() -> None:
    async def main() -> None:
        inbox = CircuitInbox()
        cells = [Cell(5, CellCommand.RELAY, bytes([n])) for n in range(5)]
        waiting = asyncio.create_task(inbox.get_batch(3))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing queued: it waits
        for cell in cells:
            assert inbox.offer(cell)
        assert await waiting == cells[:3]
        assert await inbox.get_batch(3) == cells[3:]
        inbox.offer(cells[0])
        inbox.close(lambda: ChannelClosed("gone"))
        assert await inbox.get_batch(3) == [cells[0]]  # queued cells first, then the error
        with pytest.raises(ChannelClosed):
            await inbox.get_batch(3)
        with pytest.raises(TimeoutError):
            await CircuitInbox().get_batch(3, Deadline.after(0.01))

    asyncio.run(asyncio.wait_for(main(), 20))


class Recorder:
    """An InlineReceiver that keeps what the channel hands it."""

    def __init__(self) -> None:
        self.cells: list[bytes] = []
        self.ended: list[Exception] = []
        self.got_two = asyncio.Event()

    def take_cell(self, cell: Cell) -> None:
        self.cells.append(cell.payload[:2])
        if len(self.cells) == 2:
            self.got_two.set()

    def take_cells(self, cells: list[Cell]) -> None:
        for cell in cells:
            self.take_cell(cell)

    def circuit_ended(self, error: Exception) -> None:
        self.ended.append(error)


def test_inline_receivers_get_queued_cells_then_arrivals_then_the_links_end(
    tmp_path: Path,
) -> None:
    """receive_inline: what the inbox held first, in order, then each cell as it is read (in
    the reader, no inbox); an ended circuit is reported at once; the link's end reaches the
    receiver as ChannelClosed, once."""
    ids: asyncio.Queue[int] = asyncio.Queue()
    more = asyncio.Event()

    async def script(reader: Reader, writer: Writer, parser: CellParser) -> None:
        circ_id = await ids.get()
        send(writer, *(Cell(circ_id, CellCommand.RELAY, b"q%d" % i) for i in range(2)))
        await writer.drain()
        await more.wait()
        send(writer, *(Cell(circ_id, CellCommand.RELAY, b"r%d" % i) for i in range(3)))
        await writer.drain()
        writer.close()  # the link ends

    async def body(channel: Channel) -> None:
        live, gone = channel.new_circuit(), channel.new_circuit()
        await ids.put(live.circ_id)
        async with asyncio.timeout(5):
            while len(live.inbox) < 2:  # both queued before the circuit goes inline
                await asyncio.sleep(0.01)
        receiver = Recorder()
        live.receive_inline(receiver)
        assert receiver.cells == [b"q0", b"q1"] and len(live.inbox) == 0
        channel.end_circuit(gone.circ_id, lambda: LinkProtocolError("gone"))
        ended = Recorder()
        gone.receive_inline(ended)
        assert [type(e) for e in ended.ended] == [LinkProtocolError]
        more.set()
        async with asyncio.timeout(5):
            while not receiver.ended:
                await asyncio.sleep(0.01)
        assert receiver.cells == [b"q0", b"q1", b"r0", b"r1", b"r2"]
        assert len(live.inbox) == 0
        assert [type(e) for e in receiver.ended] == [ChannelClosed]
        await channel.aclose()
        assert len(receiver.ended) == 1  # the close does not report it again

    run_on_channel(tmp_path, script, body)
