"""tor.channel_circuit.LiveCircuit over real loopback TLS, against a scripted relay that plays
all three hops (tests.support.scripted_relay.FakePath, FakeHandshake): CREATE2 and two
EXTEND2s, a stream whose SENDMEs follow the application's reads (a reader that does not read
lets only circuit SENDMEs out), and the hostile cases: a bad CREATED2 AUTH, DESTROY and
TRUNCATED mid-stream, a cell no hop recognizes, DATA for a stream never opened, the link's
end; each reaches the stream as the error carrying its reason, and no task is left behind; stream
SENDMEs go out as the reader reads, circuit SENDMEs as the cells arrive; with congestion
control, circuit SENDMEs every 31 cells and XOFF / XON for an idle, then busy reader.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.scripted_relay import (
    FakeHandshake,
    FakePath,
    Received,
    fake_server_reply,
    read_cell,
    run,
    send,
    with_relay,
)
from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import (
    ChannelClosed,
    CircuitDestroyed,
    CircuitHandshakeError,
    CircuitProtocolError,
    CircuitTruncated,
    LinkProtocolError,
    StreamRefused,
    StreamTimeout,
)
from webtunnel_pt.socks.codes import SocksReply
from webtunnel_pt.tor.cells import (
    MAX_RELAY_DATA,
    Cell,
    CellCommand,
    CellParser,
    DestroyReason,
    EndReason,
    RelayCell,
    RelayCommand,
    destroy_cell,
)
from webtunnel_pt.tor.channel import Channel
from webtunnel_pt.tor.linkspec import decode_link_specifiers, encode_link_specifiers
from webtunnel_pt.tor.live_circuit import LiveCircuit
from webtunnel_pt.tor.stream_io import TorStream, TorStreamReader, TorStreamWriter

SPEC = encode_link_specifiers(
    address="127.0.0.2", or_port=9001, rsa_identity=bytes(20), ed25519_identity=bytes(32)
)


class RelayEnd:
    """The relay side of one circuit: answers CREATE2 and EXTEND2, then hands the test the
    relay cells it receives."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        self.reader, self.writer, self.parser = reader, writer, parser
        self.path: FakePath | None = None

    async def cell(self) -> Cell:
        return await read_cell(self.reader, self.parser)

    async def build(self, hops: int = 3) -> FakePath:
        create = await self.cell()
        self.path = FakePath(create.circ_id)
        send(self.writer, self.path.created2(create))
        for _ in range(hops - 1):
            got = await self.relay()
            assert got.message.command == RelayCommand.EXTEND2 and got.early
            body = got.message.data
            _, used = decode_link_specifiers(body)
            _, hlen = struct.unpack_from(">HH", body, used)
            hdata = body[used + 4 : used + 4 + hlen]
            reply, keys = fake_server_reply(hdata)
            answer = RelayCell(RelayCommand.EXTENDED2, 0, struct.pack(">H", len(reply)) + reply)
            send(self.writer, self.path.send(got.hop, answer))
            self.path.add_hop(keys)
        return self.path

    async def rest(self) -> list[Cell]:
        """Every cell until the client closes the link."""
        cells = []
        while True:
            try:
                cells.append(await self.cell())
            except (AssertionError, ConnectionError):
                return cells

    async def relay(self) -> Received:
        assert self.path is not None
        return self.path.receive(await self.cell())

    def reply(self, message: RelayCell, hop: int = 2) -> None:
        assert self.path is not None
        send(self.writer, self.path.send(hop, message))

    async def accept_begin(self) -> int:
        got = await self.relay()
        assert got.hop == 2 and got.message.command == RelayCommand.BEGIN
        assert got.message.data.startswith(b"example.com:80\0")
        connected = ipaddress.IPv4Address("192.0.2.7").packed + struct.pack(">I", 300)
        self.reply(RelayCell(RelayCommand.CONNECTED, got.message.stream_id, connected))
        return got.message.stream_id


RelayScript = Callable[[RelayEnd], Awaitable[None]]
ClientScript = Callable[[Channel, LiveCircuit], Awaitable[None]]


def scenario(tmp_path: Path, relay: RelayScript, client: ClientScript) -> None:
    failures: list[Exception] = []

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, p: CellParser) -> None:
        try:
            await relay(RelayEnd(r, w, p))
        except Exception as exc:
            failures.append(exc)
            raise

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            closed: list[LiveCircuit] = []
            live = LiveCircuit(channel.new_circuit(), on_close=closed.append)
            try:
                await client(channel, live)
            except Exception:
                assert failures == []
                raise
            finally:
                await live.aclose()
                await channel.aclose()
            assert failures == []  # the relay's own checks
            assert closed == [live]  # the pool hears of every end
            left = [t for t in asyncio.all_tasks() if t.get_name().startswith("tor ")]
            assert left == []

    run(main())


async def build(live: LiveCircuit) -> None:
    await live.create(FakeHandshake(0), Deadline.after(5))
    await live.extend(SPEC, FakeHandshake(1), Deadline.after(5), "the middle")
    await live.extend(SPEC, FakeHandshake(2), Deadline.after(5), "the exit")


async def open_stream(live: LiveCircuit) -> tuple[TorStream, TorStreamReader, TorStreamWriter]:
    stream = await live.open_stream("example.com", 80, Deadline.after(5))
    return stream, TorStreamReader(stream), TorStreamWriter(stream)


def test_three_hops_and_a_stream_whose_sendmes_follow_the_reader(tmp_path: Path) -> None:
    read_now = asyncio.Event()
    cells = 100

    async def relay(end: RelayEnd) -> None:
        await end.build()
        sid = await end.accept_begin()
        got = await end.relay()  # the request
        assert got.message == RelayCell(RelayCommand.DATA, sid, b"GET / HTTP/1.0\r\n\r\n")
        for n in range(cells):
            end.reply(RelayCell(RelayCommand.DATA, sid, bytes([n]) * MAX_RELAY_DATA))
        got = await end.relay()  # as the cells arrive: the circuit SENDME, nothing else
        assert got.message.command == RelayCommand.SENDME and got.message.stream_id == 0
        read_now.set()
        got = await end.relay()  # only once 50 cells were read: the stream SENDME
        assert got.message.command == RelayCommand.SENDME and got.message.stream_id == sid
        end.reply(RelayCell(RelayCommand.END, sid, bytes([EndReason.DONE])))
        assert (await end.rest())[-1].command == CellCommand.DESTROY  # at the close

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        assert live.circuit.hops == 3
        _, reader, writer = await open_stream(live)
        assert writer.get_extra_info("exit_address") == "192.0.2.7"
        assert writer.get_extra_info("exit_ttl") == 300
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        await read_now.wait()
        body = await reader.readexactly(50 * MAX_RELAY_DATA)
        assert body[:MAX_RELAY_DATA] == bytes(MAX_RELAY_DATA)
        rest = await reader.read()
        assert len(body) + len(rest) == cells * MAX_RELAY_DATA
        assert rest[-1] == cells - 1
        assert live.stream_count == 0

    scenario(tmp_path, relay, client)


def test_a_bad_created2_auth_fails_the_build(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        create = await end.cell()
        path = FakePath(create.circ_id)
        good = path.created2(create)
        send(end.writer, Cell(good.circ_id, good.command, good.payload[:40] + bytes(26)))
        assert (await end.cell()).command == CellCommand.DESTROY

    async def client(channel: Channel, live: LiveCircuit) -> None:
        with pytest.raises(CircuitHandshakeError):
            await live.create(FakeHandshake(0), Deadline.after(5))
        assert not live.is_open
        assert not channel.is_closed  # only that circuit

    scenario(tmp_path, relay, client)


@pytest.mark.parametrize(
    ("command", "error", "reason"),
    [
        (CellCommand.DESTROY, CircuitDestroyed, DestroyReason.CONNECTFAILED),
        (RelayCommand.TRUNCATED, CircuitTruncated, DestroyReason.CHANNEL_CLOSED),
    ],
)
def test_destroy_and_truncated_end_the_stream_with_their_reason(
    tmp_path: Path, command: int, error: type[CircuitDestroyed], reason: int
) -> None:
    async def relay(end: RelayEnd) -> None:
        path = await end.build()
        sid = await end.accept_begin()
        end.reply(RelayCell(RelayCommand.DATA, sid, b"first"))
        if command == CellCommand.DESTROY:
            send(end.writer, destroy_cell(path.circ_id, reason))
        else:
            end.reply(RelayCell(RelayCommand.TRUNCATED, 0, bytes([reason])), hop=0)
        rest = [cell.command for cell in await end.rest()]
        assert rest == ([] if command == CellCommand.DESTROY else [CellCommand.DESTROY])

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        _, reader, writer = await open_stream(live)
        assert await reader.read(100) == b"first"
        with pytest.raises(error) as caught:
            await reader.read(100)
        assert caught.value.reason == reason
        assert type(caught.value) is error
        with pytest.raises(error):
            writer.write(b"more")
        assert not live.is_open
        with pytest.raises(error):
            await live.open_stream("example.com", 80, Deadline.after(5))

    scenario(tmp_path, relay, client)


def test_a_cell_no_hop_recognizes_destroys_the_circuit(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        path = await end.build()
        await end.accept_begin()
        send(end.writer, Cell(path.circ_id, CellCommand.RELAY, (bytes(range(256)) * 2)[:509]))
        assert (await end.cell()).command == CellCommand.DESTROY

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        _, reader, _ = await open_stream(live)
        with pytest.raises(LinkProtocolError):
            await reader.read(100)
        assert not channel.is_closed

    scenario(tmp_path, relay, client)


def test_data_for_a_stream_never_opened_destroys_the_circuit(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        await end.build()
        sid = await end.accept_begin()
        end.reply(RelayCell(RelayCommand.DATA, sid + 100, b"who?"))
        assert (await end.cell()).command == CellCommand.DESTROY

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        _, reader, _ = await open_stream(live)
        with pytest.raises(CircuitProtocolError):
            await reader.read(100)

    scenario(tmp_path, relay, client)


def test_the_links_end_reaches_every_stream(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        await end.build()
        await end.accept_begin()
        await end.accept_begin()
        end.writer.transport.abort()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        readers = [(await open_stream(live))[1] for _ in range(2)]
        for reader in readers:
            with pytest.raises(ChannelClosed):
                await reader.read(100)
        assert not live.is_open

    scenario(tmp_path, relay, client)


def test_end_before_connected_is_a_refusal_with_the_socks_reply(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        await end.build()
        got = await end.relay()
        sid = got.message.stream_id
        end.reply(RelayCell(RelayCommand.END, sid, bytes([EndReason.EXITPOLICY])))
        await end.rest()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        with pytest.raises(StreamRefused) as caught:
            await open_stream(live)
        assert caught.value.reason == EndReason.EXITPOLICY
        assert caught.value.socks_reply == SocksReply.NOT_ALLOWED
        assert "EXITPOLICY" in str(caught.value)
        assert live.is_open and live.stream_count == 0

    scenario(tmp_path, relay, client)


def test_no_connected_before_the_deadline_is_a_stream_timeout(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        await end.build()
        await end.relay()  # BEGIN, never answered
        got = await end.relay()  # the END we send when we give up
        assert got.message.command == RelayCommand.END
        await end.rest()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        with pytest.raises(StreamTimeout):
            await live.open_stream("example.com", 80, Deadline.after(0.2))
        assert live.stream_count == 0

    scenario(tmp_path, relay, client)


def test_resolve_returns_the_exits_answers(tmp_path: Path) -> None:
    async def relay(end: RelayEnd) -> None:
        await end.build()
        got = await end.relay()
        assert got.message.command == RelayCommand.RESOLVE
        assert got.message.data == b"example.com\0"
        answers = bytes([4, 4]) + bytes([192, 0, 2, 9]) + struct.pack(">I", 60)
        end.reply(RelayCell(RelayCommand.RESOLVED, got.message.stream_id, answers))
        await end.rest()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        answers = await live.resolve("example.com", Deadline.after(5))
        assert [(a.kind, a.value, a.ttl) for a in answers] == [("ipv4", "192.0.2.9", 60)]

    scenario(tmp_path, relay, client)


def test_sendmes_go_out_as_cells_arrive_and_as_the_reader_reads(tmp_path: Path) -> None:
    """300 DATA cells at once: the channel's reader runs them through the circuit as they
    arrive, so the circuit SENDMEs go out without waiting for the application, and the stream
    SENDMEs (due per 50 cells read) as the application reads."""
    cells = 300

    async def relay(end: RelayEnd) -> None:
        await end.build()
        sid = await end.accept_begin()
        assert end.path is not None
        path = end.path
        data = [
            RelayCell(RelayCommand.DATA, sid, bytes([n % 256]) * MAX_RELAY_DATA)
            for n in range(cells)
        ]
        send(end.writer, *(path.send(2, message) for message in data))  # one write
        seen: set[int] = set()
        while seen != {0, sid}:  # a circuit SENDME and a stream SENDME
            got = await end.relay()
            assert got.message.command == RelayCommand.SENDME
            seen.add(got.message.stream_id)
        end.reply(RelayCell(RelayCommand.END, sid, bytes([EndReason.DONE])))
        await end.rest()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        _, reader, _ = await open_stream(live)
        received = bytearray()
        while chunk := await reader.read(65536):
            received += chunk
        assert len(received) == cells * MAX_RELAY_DATA
        assert received[-1] == (cells - 1) % 256

    scenario(tmp_path, relay, client)


def test_congestion_control_xoff_while_unread_xon_once_read(tmp_path: Path) -> None:
    """With CC on the exit hop, 1500 cells at once (past the fixed-window inbox bound of 1100):
    circuit SENDMEs every 31 cells as they arrive, no stream SENDME, XOFF once 500
    cells wait unread, XON once the reader has taken them all."""
    cells = 1500
    xoff_seen = asyncio.Event()  # an XOFF is outstanding
    resumed = asyncio.Event()  # an XON came after it

    async def relay(end: RelayEnd) -> None:
        await end.build()
        sid = await end.accept_begin()
        assert end.path is not None
        path = end.path
        data = [
            RelayCell(RelayCommand.DATA, sid, bytes([n % 256]) * MAX_RELAY_DATA)
            for n in range(cells)
        ]
        send(end.writer, *(path.send(2, message) for message in data))
        sendmes = 0
        while sendmes < cells // 31 or xoff_seen.is_set() or not resumed.is_set():
            message = (await end.relay()).message
            if message.command == RelayCommand.SENDME:
                assert message.stream_id == 0 and len(message.data) == 23  # v1, circuit
                sendmes += 1
            elif message.command == RelayCommand.XOFF:
                assert message == RelayCell(RelayCommand.XOFF, sid, b"\x00")
                assert not xoff_seen.is_set(), "two XOFFs without an XON"
                xoff_seen.set()
            else:  # XON: the reader emptied the buffer, or its rate changed (advice only)
                assert message.command == RelayCommand.XON and message.stream_id == sid
                assert len(message.data) == 5
                if xoff_seen.is_set():
                    xoff_seen.clear()
                    resumed.set()
        end.reply(RelayCell(RelayCommand.END, sid, bytes([EndReason.DONE])))
        await end.rest()

    async def client(channel: Channel, live: LiveCircuit) -> None:
        await build(live)
        live.enable_congestion_control(31)
        assert live.handle.inbox.limit == 10_000 and live.congestion_control is not None
        _, reader, writer = await open_stream(live)
        assert writer.get_extra_info("tor_congestion_control") is True
        await xoff_seen.wait()  # nothing read yet: 500 cells unread made us send XOFF
        received = bytearray()
        while chunk := await reader.read(65536):
            received += chunk
        assert len(received) == cells * MAX_RELAY_DATA
        assert received[-1] == (cells - 1) % 256
        assert resumed.is_set()

    scenario(tmp_path, relay, client)
