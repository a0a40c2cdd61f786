"""tor.circuit streams on a 3-hop circuit: BEGIN / CONNECTED / DATA / END, RESOLVE / RESOLVED,
many streams, ids, and flow control: stream windows driven by consumption, circuit windows per
hop, authenticated SENDMEs both ways (tor-spec §6, §7.3, §7.4; prop 289)."""

from __future__ import annotations

import struct

import pytest

from tests.support.scripted_relay import FakePath, build_circuit
from webtunnel_pt.errors import LocalProtocolError
from webtunnel_pt.tor.cells import EndReason, RelayCell, RelayCommand
from webtunnel_pt.tor.circuit import (
    Circuit,
    CircuitState,
    StreamClosed,
    StreamConnected,
    StreamData,
    StreamResolved,
    StreamWritable,
)
from webtunnel_pt.tor.circuit_streams import MAX_HALF_CLOSED
from webtunnel_pt.tor.relay_msgs import ResolvedAnswer

from .test_circuit import assert_violation

EXIT = 2
CONNECTED_V4 = bytes.fromhex("c000020700000e10")


def open_stream(
    circuit: Circuit, path: FakePath, host: str = "example.com", port: int = 443
) -> int:
    stream = circuit.begin(host, port)
    (cell,) = circuit.cells_to_send()
    assert path.receive(cell).message.command == RelayCommand.BEGIN
    events = circuit.receive_cell(
        path.send(EXIT, RelayCell(RelayCommand.CONNECTED, stream, CONNECTED_V4))
    )
    assert events == [StreamConnected(stream, "192.0.2.7", 3600)]
    return stream


def data_from_exit(circuit: Circuit, path: FakePath, stream: int, data: bytes = b"d") -> list:
    return circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.DATA, stream, data)))


def sent(circuit: Circuit, path: FakePath) -> list[RelayCell]:
    return [path.receive(c).message for c in circuit.cells_to_send()]


def test_begin_connected_data_end() -> None:
    circuit, path = build_circuit()
    stream = circuit.begin("2001:db8::1", 80, flags=1)
    received = path.receive(circuit.cells_to_send()[0])
    assert received.hop == EXIT
    assert received.message == RelayCell(
        RelayCommand.BEGIN, stream, b"[2001:db8::1]:80\0\0\0\0\x01"
    )
    v6 = bytes(4) + b"\x06" + bytes.fromhex("20010db8000000000000000000000001") + b"\0\0\0\x3c"
    events = circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.CONNECTED, stream, v6)))
    assert events == [StreamConnected(stream, "2001:db8::1", 60)]
    assert circuit.send_data(stream, bytes(1000)) == 1000
    assert [(m.command, len(m.data)) for m in sent(circuit, path)] == [
        (RelayCommand.DATA, 498),
        (RelayCommand.DATA, 498),
        (RelayCommand.DATA, 4),
    ]
    assert data_from_exit(circuit, path, stream, b"reply") == [StreamData(stream, b"reply")]
    end = path.send(EXIT, RelayCell(RelayCommand.END, stream, bytes([EndReason.CONNRESET])))
    assert circuit.receive_cell(end) == [StreamClosed(stream, EndReason.CONNRESET)]
    assert circuit.stream_count == 0 and circuit.sendable(stream) == 0
    circuit.end_stream(stream)  # no END in reply to END
    assert circuit.cells_to_send() == []
    with pytest.raises(LocalProtocolError, match="not open"):
        circuit.send_data(stream, b"late")
    # tor-spec §6.3: nothing may follow END; a late DATA breaks the protocol.
    assert_violation(data_from_exit(circuit, path, stream), circuit, "unknown stream")


def test_begin_refused_by_the_exit() -> None:
    circuit, path = build_circuit()
    stream = circuit.begin("nowhere.invalid", 80)
    sent(circuit, path)
    end = path.send(EXIT, RelayCell(RelayCommand.END, stream, bytes([EndReason.RESOLVEFAILED])))
    assert circuit.receive_cell(end) == [StreamClosed(stream, EndReason.RESOLVEFAILED)]


def test_we_end_a_stream_and_late_cells_are_absorbed() -> None:
    """After our END the exit may still send what it had in flight: CONNECTED, DATA within the
    deliver window, an END. They are dropped without events; more than the window is a
    violation."""
    circuit, path = build_circuit()
    stream = circuit.begin("example.com", 80)
    sent(circuit, path)
    circuit.end_stream(stream, EndReason.TIMEOUT)  # the wire says MISC all the same (prop 148)
    assert sent(circuit, path) == [RelayCell(RelayCommand.END, stream, bytes([EndReason.MISC]))]
    connected = RelayCell(RelayCommand.CONNECTED, stream, CONNECTED_V4)
    assert circuit.receive_cell(path.send(EXIT, connected)) == []
    for _ in range(500):
        assert data_from_exit(circuit, path, stream) == []
    sent(circuit, path)  # circuit SENDMEs
    assert_violation(data_from_exit(circuit, path, stream), circuit, "ended stream")


def test_second_connected_on_an_ended_stream_is_a_violation() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    circuit.end_stream(stream)
    sent(circuit, path)
    connected = RelayCell(RelayCommand.CONNECTED, stream, CONNECTED_V4)
    assert_violation(circuit.receive_cell(path.send(EXIT, connected)), circuit, "ended stream")


def test_end_after_our_end_forgets_the_stream() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    circuit.end_stream(stream)
    sent(circuit, path)
    end = path.send(EXIT, RelayCell(RelayCommand.END, stream, bytes([EndReason.DONE])))
    assert circuit.receive_cell(end) == []
    assert_violation(data_from_exit(circuit, path, stream), circuit, "unknown stream")


def test_resolve() -> None:
    circuit, path = build_circuit()
    stream = circuit.resolve("Example.com")
    assert sent(circuit, path) == [RelayCell(RelayCommand.RESOLVE, stream, b"example.com\0")]
    answers = bytes.fromhex("0404c00002070000012c") + b"\xf0\x00\x00\x00\x00\x00"
    events = circuit.receive_cell(
        path.send(EXIT, RelayCell(RelayCommand.RESOLVED, stream, answers))
    )
    assert events == [
        StreamResolved(
            stream,
            [ResolvedAnswer("ipv4", "192.0.2.7", 300), ResolvedAnswer("error", "transient", 0)],
        )
    ]
    assert circuit.stream_count == 0
    with pytest.raises(LocalProtocolError, match="not open"):
        circuit.send_data(stream, b"x")


def test_abandoned_resolve_absorbs_its_answer_once() -> None:
    circuit, path = build_circuit()
    stream = circuit.resolve("example.com")
    sent(circuit, path)
    circuit.end_stream(stream)
    assert circuit.cells_to_send() == []  # no END: the exit holds no stream for a RESOLVE
    resolved = RelayCell(RelayCommand.RESOLVED, stream, b"")
    assert circuit.receive_cell(path.send(EXIT, resolved)) == []
    assert_violation(circuit.receive_cell(path.send(EXIT, resolved)), circuit, "unknown stream")


def test_many_streams_are_routed_by_id() -> None:
    circuit, path = build_circuit()
    streams = [open_stream(circuit, path, f"host{i}.example", 80 + i) for i in range(100)]
    assert streams == list(range(1, 101))
    for stream in reversed(streams):
        assert data_from_exit(circuit, path, stream, b"%d" % stream) == [
            StreamData(stream, b"%d" % stream)
        ]
    assert circuit.stream_count == 100


def test_stream_ids_wrap_and_skip_ids_in_use() -> None:
    circuit, _path = build_circuit()
    first = circuit.begin("example.com", 80)
    circuit._streams._next_id = 0xFFFF
    assert circuit.begin("example.com", 80) == 0xFFFF
    assert circuit.begin("example.com", 80) == first + 1  # wrapped, 0 and 1 skipped
    circuit.end_stream(first)  # half-closed: still not reusable
    circuit._streams._next_id = first
    assert circuit.begin("example.com", 80) == first + 2


def test_half_closed_records_are_bounded() -> None:
    circuit, path = build_circuit()
    assert path.hops
    for _ in range(MAX_HALF_CLOSED + 10):
        circuit.end_stream(circuit.begin("example.com", 80))
    sent(circuit, path)
    assert len(circuit._streams.half_closed) == MAX_HALF_CLOSED
    assert min(circuit._streams.half_closed) == 11


# ---- stream windows ---------------------------------------------------------------------------


def test_slow_reader_stops_stream_sendmes() -> None:
    """Without consumption no stream SENDME leaves: after 500 DATA cells the exit may send no
    more, and a 501st destroys the circuit. Circuit SENDMEs still go out."""
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    for _ in range(500):
        assert data_from_exit(circuit, path, stream, b"x" * 498) == [StreamData(stream, b"x" * 498)]
    messages = sent(circuit, path)
    assert [m.stream_id for m in messages] == [0] * 5  # circuit SENDMEs only
    assert_violation(data_from_exit(circuit, path, stream), circuit, "deliver window")


def test_consumption_sends_stream_sendmes() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    for _ in range(60):
        data_from_exit(circuit, path, stream, b"y" * 100)
    assert sent(circuit, path) == []
    circuit.consumed(stream, 100 * 10)  # 5000 unconsumed bytes: still >= 10 cells' worth
    assert sent(circuit, path) == []
    circuit.consumed(stream, 100 * 11)  # 3900 left, under 4980
    assert sent(circuit, path) == [RelayCell(RelayCommand.SENDME, stream)]
    circuit.consumed(stream, 3900)
    assert sent(circuit, path) == []  # window 490: above 450
    with pytest.raises(LocalProtocolError, match="only 0 delivered"):
        circuit.consumed(stream, 1)
    with pytest.raises(LocalProtocolError):
        circuit.consumed(stream, -1)
    circuit.consumed(999, 5)  # an unknown or ended stream: nothing to do


def test_a_late_consumer_catches_up_with_several_sendmes() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    for _ in range(500):
        data_from_exit(circuit, path, stream, b"z")
    sent(circuit, path)
    circuit.consumed(stream, 500)
    assert sent(circuit, path) == [RelayCell(RelayCommand.SENDME, stream)] * 10
    for _ in range(500):
        data_from_exit(circuit, path, stream, b"z")
    assert circuit.state is CircuitState.OPEN


def test_stream_package_window_and_writable() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    assert circuit.send_data(stream, bytes(498 * 500 + 1)) == 498 * 500
    assert circuit.sendable(stream) == 0
    assert len(circuit.cells_to_send()) == 500
    sendme = RelayCell(RelayCommand.SENDME, stream)
    assert circuit.receive_cell(path.send(EXIT, sendme)) == [StreamWritable(stream)]
    assert circuit.sendable(stream) == 498 * 50
    assert circuit.receive_cell(path.send(EXIT, sendme)) == []  # was not closed


def test_stream_sendme_beyond_the_window_is_a_violation() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    circuit.send_data(stream, bytes(498 * 49))
    sent(circuit, path)
    sendme = path.send(EXIT, RelayCell(RelayCommand.SENDME, stream))
    assert_violation(circuit.receive_cell(sendme), circuit, "overfill")


def test_begin_dir_streams_count_data_as_consumed_on_delivery() -> None:
    circuit, path = build_circuit(1)
    stream = circuit.begin_dir()
    sent(circuit, path)
    circuit.receive_cell(path.send(0, RelayCell(RelayCommand.CONNECTED, stream, b"ignored")))
    for _ in range(50):
        circuit.receive_cell(path.send(0, RelayCell(RelayCommand.DATA, stream, b"q" * 498)))
    messages = [path.receive(c).message for c in circuit.cells_to_send()]
    assert messages == [RelayCell(RelayCommand.SENDME, stream)]


# ---- circuit windows and authenticated SENDMEs --------------------------------------------------


def test_circuit_sendme_v1_carries_the_digest_of_the_100th_cell() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    digests = []
    for n in range(1, 201):
        data_from_exit(circuit, path, stream)
        digests.append(path.backward_digest(EXIT))
        for message in sent(circuit, path):
            assert message.command == RelayCommand.SENDME and message.stream_id == 0
            assert n in (100, 200)
            assert message.data == struct.pack(">BH", 1, 20) + digests[n - 1]


def test_circuit_sendme_v0_when_the_consensus_says_so() -> None:
    circuit, path = build_circuit(sendme_emit_version=0)
    stream = open_stream(circuit, path)
    for _ in range(100):
        data_from_exit(circuit, path, stream)
    assert sent(circuit, path) == [RelayCell(RelayCommand.SENDME, 0)]


def upload(circuit: Circuit, path: FakePath, stream: int, cells: int) -> list[bytes]:
    """Send ``cells`` DATA cells; the exit's running digest after each."""
    assert circuit.send_data(stream, bytes(498 * cells)) == 498 * cells
    return [path.receive(c).digest for c in circuit.cells_to_send()]


def sendme_v1(digest: bytes) -> RelayCell:
    return RelayCell(RelayCommand.SENDME, 0, struct.pack(">BH", 1, 20) + digest)


def test_circuit_sendme_v1_from_the_exit_is_checked() -> None:
    circuit, path = build_circuit(sendme_accept_version=1)
    streams = [open_stream(circuit, path) for _ in range(3)]
    digests: list[bytes] = []
    for stream in streams:
        digests += upload(circuit, path, stream, 300)
    digests += upload(circuit, path, streams[0], 100)
    assert len(digests) == 1000 and all(circuit.sendable(s) == 0 for s in streams)
    events = circuit.receive_cell(path.send(EXIT, sendme_v1(digests[99])))
    # The circuit window reopened: every stream with stream window left may write.
    assert events == [StreamWritable(s) for s in streams]
    assert circuit.receive_cell(path.send(EXIT, sendme_v1(digests[199]))) == []
    wrong = path.send(EXIT, sendme_v1(digests[399]))  # the 300th is next
    assert_violation(circuit.receive_cell(wrong), circuit, "wrong digest")


def test_circuit_sendme_v0_refused_when_v1_is_required() -> None:
    circuit, path = build_circuit(sendme_accept_version=1)
    upload(circuit, path, open_stream(circuit, path), 100)
    sendme = path.send(EXIT, RelayCell(RelayCommand.SENDME, 0))
    assert_violation(circuit.receive_cell(sendme), circuit, "version 0")


def test_circuit_sendme_v0_accepted_by_default() -> None:
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    upload(circuit, path, stream, 100)
    assert circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.SENDME, 0))) == []
    assert circuit.state is CircuitState.OPEN


def test_circuit_sendme_with_nothing_to_acknowledge_is_a_violation() -> None:
    circuit, path = build_circuit()
    upload(circuit, path, open_stream(circuit, path), 99)
    sendme = path.send(EXIT, RelayCell(RelayCommand.SENDME, 0))
    assert_violation(circuit.receive_cell(sendme), circuit, "never sent")


def test_circuit_windows_are_per_hop() -> None:
    """A SENDME from the middle hop says nothing about the exit's window."""
    circuit, path = build_circuit()
    digests = upload(circuit, path, open_stream(circuit, path), 100)
    sendme = path.send(1, sendme_v1(digests[99]))
    assert_violation(circuit.receive_cell(sendme), circuit, "hop 2")
