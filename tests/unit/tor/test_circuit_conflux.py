"""tor.circuit in a conflux set (prop 329), against scripted cells: CONFLUX_LINK byte-exact to
the exit, LINKED checked and answered with LINKED_ACK, two legs joined to one sequencer, the
exit's stream messages on either leg delivered to the owner's stream in order, circuit SENDMEs
on the leg that carried the DATA whatever the order, and every violation destroying the leg
that received it (tor-spec "Conflux"; prop 329 §2.2, §2.6, §4.2.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

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
)
from webtunnel_pt.tor.circuit_events import CircuitEvent, ConfluxLinked
from webtunnel_pt.tor.conflux import ConfluxSequencer, ConfluxUx, encode_switch
from webtunnel_pt.tor.conflux_leg import LegState

from .test_circuit import assert_violation
from .test_circuit_cc import INC, cc_circuit
from .test_circuit_streams import CONNECTED_V4, sent

EXIT = 2
NONCE = bytes(range(0x40, 0x60))
LINK = RelayCommand.CONFLUX_LINK
LINKED = RelayCommand.CONFLUX_LINKED
LINKED_ACK = RelayCommand.CONFLUX_LINKED_ACK
SWITCH = RelayCommand.CONFLUX_SWITCH
DATA = RelayCommand.DATA


def linked_body(
    nonce: bytes = NONCE, sent_seq: int = 0, recv_seq: int = 0, ux: int = 3, version: int = 1
) -> bytes:
    return bytes([version]) + nonce + struct.pack(">QQ", sent_seq, recv_seq) + bytes([ux])


def from_exit(
    circuit: Circuit, path: FakePath, message: RelayCell, hop: int = EXIT
) -> list[CircuitEvent]:
    return circuit.receive_cell(path.send(hop, message))


def linking_leg(circ_id: int = 0x80000010) -> tuple[Circuit, FakePath]:
    """A CC circuit that sent CONFLUX_LINK (checked here, byte-exact) and awaits LINKED."""
    circuit, path, _clock = cc_circuit(circ_id=circ_id)
    circuit.conflux_link(NONCE)
    (link,) = [path.receive(c) for c in circuit.cells_to_send()]
    assert link.hop == EXIT
    assert link.message == RelayCell(LINK, 0, b"\x01" + NONCE + bytes(16) + b"\x03")
    assert circuit.conflux is not None and circuit.conflux.state is LegState.LINKING
    return circuit, path


def linked_leg(circ_id: int = 0x80000010) -> tuple[Circuit, FakePath]:
    circuit, path = linking_leg(circ_id)
    assert from_exit(circuit, path, RelayCell(LINKED, 0, linked_body())) == [
        ConfluxLinked(ConfluxUx.HIGH_THROUGHPUT)
    ]
    assert sent(circuit, path) == [RelayCell(LINKED_ACK, 0)]
    return circuit, path


@dataclass
class LinkedSet:
    """Two joined legs: ``a`` (leg 0) keeps the streams, ``b`` is leg 1."""

    a: Circuit
    a_path: FakePath
    b: Circuit
    b_path: FakePath
    sequencer: ConfluxSequencer[RelayCell]
    stream: int


def linked_set() -> LinkedSet:
    """Both legs linked and joined, a stream open on ``a``: its CONNECTED is message 1."""
    a, a_path = linked_leg(0x80000010)
    b, b_path = linked_leg(0x80000020)
    sequencer: ConfluxSequencer[RelayCell] = ConfluxSequencer(2)
    assert a.conflux is not None and b.conflux is not None
    a.conflux.join(sequencer, 0, a)
    b.conflux.join(sequencer, 1, a)
    assert a.conflux.state is b.conflux.state is LegState.JOINED
    stream = a.begin("example.com", 443)
    assert [m.command for m in sent(a, a_path)] == [RelayCommand.BEGIN]
    connected = RelayCell(RelayCommand.CONNECTED, stream, CONNECTED_V4)
    assert from_exit(a, a_path, connected) == [StreamConnected(stream, "192.0.2.7", 3600)]
    assert sequencer.last_seq_delivered == 1 and sequencer.received == [1, 0]
    return LinkedSet(a, a_path, b, b_path, sequencer, stream)


# ---- linking -----------------------------------------------------------------------------------


def test_link_linked_and_ack() -> None:
    circuit, path = linking_leg()
    events = from_exit(circuit, path, RelayCell(LINKED, 0, linked_body(ux=ConfluxUx.MIN_LATENCY)))
    assert events == [ConfluxLinked(ConfluxUx.MIN_LATENCY)]
    (ack,) = [path.receive(c) for c in circuit.cells_to_send()]
    assert ack.hop == EXIT and ack.message == RelayCell(LINKED_ACK, 0, b"")
    assert circuit.conflux is not None and circuit.conflux.state is LegState.LINKED
    assert circuit.conflux.linked is not None
    assert circuit.conflux.linked.desired_ux == ConfluxUx.MIN_LATENCY
    assert circuit.state is CircuitState.OPEN


def test_linked_with_trailing_bytes_is_accepted() -> None:
    circuit, path = linking_leg()
    events = from_exit(circuit, path, RelayCell(LINKED, 0, linked_body() + b"later"))
    assert events == [ConfluxLinked(ConfluxUx.HIGH_THROUGHPUT)]


def test_conflux_link_needs_congestion_control() -> None:
    circuit, _path = build_circuit()
    with pytest.raises(LocalProtocolError, match="congestion control"):
        circuit.conflux_link(NONCE)
    assert circuit.conflux is None and circuit.cells_to_send() == []


def test_conflux_link_twice_is_refused() -> None:
    circuit, _path = linking_leg()
    with pytest.raises(LocalProtocolError, match="unlinked circuit"):
        circuit.conflux_link(NONCE)
    assert circuit.cells_to_send() == []


def test_conflux_link_after_a_stream_was_opened_is_refused() -> None:
    circuit, path, _clock = cc_circuit()
    circuit.begin("example.com", 443)
    sent(circuit, path)
    with pytest.raises(LocalProtocolError, match="carried streams"):
        circuit.conflux_link(NONCE)
    assert circuit.conflux is None and circuit.cells_to_send() == []


def test_conflux_link_after_we_ended_a_stream_is_refused() -> None:
    circuit, path, _clock = cc_circuit()
    stream = circuit.begin("example.com", 443)
    circuit.end_stream(stream)
    sent(circuit, path)
    with pytest.raises(LocalProtocolError, match="carried streams"):
        circuit.conflux_link(NONCE)


def test_conflux_link_after_the_exit_ended_a_stream_is_refused() -> None:
    circuit, path, _clock = cc_circuit()
    stream = circuit.begin("example.com", 443)
    sent(circuit, path)
    end = RelayCell(RelayCommand.END, stream, bytes([EndReason.DONE]))
    assert from_exit(circuit, path, end) == [StreamClosed(stream, EndReason.DONE)]
    with pytest.raises(LocalProtocolError, match="carried streams"):
        circuit.conflux_link(NONCE)


def test_a_refused_nonce_leaves_the_circuit_unlinked() -> None:
    circuit, path, _clock = cc_circuit()
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        circuit.conflux_link(NONCE[:16])
    assert circuit.conflux is None and circuit.cells_to_send() == []
    stream = circuit.begin("example.com", 443)
    sent(circuit, path)
    connected = RelayCell(RelayCommand.CONNECTED, stream, CONNECTED_V4)
    assert from_exit(circuit, path, connected) == [StreamConnected(stream, "192.0.2.7", 3600)]


def test_join_before_linked_is_refused() -> None:
    circuit, _path = linking_leg()
    assert circuit.conflux is not None
    with pytest.raises(LocalProtocolError, match="state linking cannot join"):
        circuit.conflux.join(ConfluxSequencer(2), 0, circuit)


# ---- the joined set ----------------------------------------------------------------------------


def test_data_after_a_switch_on_the_other_leg_reaches_the_owner() -> None:
    s = linked_set()
    assert from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, encode_switch(1))) == []
    events = from_exit(s.b, s.b_path, RelayCell(DATA, s.stream, b"via b"))
    assert events == [StreamData(s.stream, b"via b")]
    events = from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"stale"))  # number 2 again
    assert_violation(events, s.a, "already delivered")
    assert s.b.state is CircuitState.OPEN


def test_out_of_order_legs_are_put_back_in_order() -> None:
    """The exit sends 2-4 on A, then SWITCH 4 and 5-6 on B; B's arrive first and wait."""
    s = linked_set()
    assert from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, encode_switch(4))) == []
    for text in (b"b5", b"b6"):
        assert from_exit(s.b, s.b_path, RelayCell(DATA, s.stream, text)) == []
    assert s.sequencer.queued == 2
    assert from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"a2")) == [
        StreamData(s.stream, b"a2")
    ]
    assert from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"a3")) == [
        StreamData(s.stream, b"a3")
    ]
    events = from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"a4"))
    assert events == [StreamData(s.stream, t) for t in (b"a4", b"b5", b"b6")]
    assert s.sequencer.queued == 0 and s.sequencer.switches == [0, 1]
    assert s.sequencer.received == [4, 2]


def test_end_on_the_other_leg_closes_the_owners_stream_in_order() -> None:
    s = linked_set()
    from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, encode_switch(2)))
    end = RelayCell(RelayCommand.END, s.stream, bytes([EndReason.DONE]))
    assert from_exit(s.b, s.b_path, end) == []  # number 3: waits for 2
    events = from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"last"))
    assert events == [StreamData(s.stream, b"last"), StreamClosed(s.stream, EndReason.DONE)]
    assert s.a.stream_count == 0


def sendme_on(circuit: Circuit, path: FakePath) -> list[RelayCell]:
    return [m for m in sent(circuit, path) if m.command == RelayCommand.SENDME]


def test_circuit_sendmes_go_on_the_leg_that_received_the_data() -> None:
    """The exit sends 2-32 on A and 33-63 on B (SWITCH 32); B's arrive first, all queued,
    yet B's window counts them: its SENDME (v1, its own digest) at B's 31st DATA."""
    s = linked_set()
    from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, encode_switch(INC + 1)))
    for n in range(1, INC + 1):
        assert from_exit(s.b, s.b_path, RelayCell(DATA, s.stream, b"b")) == []
        digest = s.b_path.backward_digest(EXIT)
        want = [RelayCell(RelayCommand.SENDME, 0, bytes.fromhex("010014") + digest)]
        assert sendme_on(s.b, s.b_path) == ([] if n < INC else want)
        assert sent(s.a, s.a_path) == []
    assert s.sequencer.queued == INC
    for n in range(1, INC + 1):
        events = from_exit(s.a, s.a_path, RelayCell(DATA, s.stream, b"a"))
        digest = s.a_path.backward_digest(EXIT)
        want = [RelayCell(RelayCommand.SENDME, 0, bytes.fromhex("010014") + digest)]
        assert sendme_on(s.a, s.a_path) == ([] if n < INC else want)
        assert sent(s.b, s.b_path) == []
        data: list[CircuitEvent] = [StreamData(s.stream, b"a")]
        assert events == (data if n < INC else data + [StreamData(s.stream, b"b")] * INC)
    assert s.sequencer.queued == 0


# ---- violations: each destroys the leg that received it --------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (linked_body(nonce=bytes(32)), "another nonce"),
        (linked_body(sent_seq=1), "non-zero sequence numbers"),
        (linked_body(recv_seq=1), "non-zero sequence numbers"),
        (linked_body(version=2), "version 2"),
        (linked_body(ux=5), "unknown UX 5"),
        (linked_body()[:49], "need 50"),
    ],
)
def test_a_bad_linked(body: bytes, match: str) -> None:
    circuit, path = linking_leg()
    assert_violation(from_exit(circuit, path, RelayCell(LINKED, 0, body)), circuit, match)


def test_linked_twice() -> None:
    circuit, path = linked_leg()
    events = from_exit(circuit, path, RelayCell(LINKED, 0, linked_body()))
    assert_violation(events, circuit, "a second conflux LINKED")


def test_linked_on_a_joined_leg() -> None:
    s = linked_set()
    events = from_exit(s.b, s.b_path, RelayCell(LINKED, 0, linked_body()))
    assert_violation(events, s.b, "a second conflux LINKED")


@pytest.mark.parametrize("hop", [0, 1])
def test_linked_from_a_hop_before_the_exit(hop: int) -> None:
    circuit, path = linking_leg()
    events = from_exit(circuit, path, RelayCell(LINKED, 0, linked_body()), hop)
    assert_violation(events, circuit, f"from hop {hop + 1}, not the exit")


@pytest.mark.parametrize("hop", [0, 1])
@pytest.mark.parametrize("command", [SWITCH, DATA])
def test_switch_or_data_from_a_hop_before_the_exit(hop: int, command: RelayCommand) -> None:
    s = linked_set()
    body = encode_switch(1) if command == SWITCH else b"d"
    stream = 0 if command == SWITCH else s.stream
    events = from_exit(s.b, s.b_path, RelayCell(command, stream, body), hop)
    assert_violation(events, s.b, f"{command.name} from hop {hop + 1}, not the exit")


@pytest.mark.parametrize("joined", [False, True], ids=["linking", "linked"])
@pytest.mark.parametrize("command", [SWITCH, DATA, RelayCommand.CONNECTED])
def test_a_leg_not_yet_joined(joined: bool, command: RelayCommand) -> None:
    circuit, path = linked_leg() if joined else linking_leg()
    body = encode_switch(1) if command == SWITCH else CONNECTED_V4
    events = from_exit(circuit, path, RelayCell(command, 0 if command == SWITCH else 1, body))
    assert_violation(events, circuit, f"{command.name} on a conflux leg not yet in its set")


@pytest.mark.parametrize("command", [LINK, LINKED_ACK])
@pytest.mark.parametrize("state", ["linking", "linked", "joined"])
def test_relay_sends_a_clients_conflux_command(command: RelayCommand, state: str) -> None:
    if state == "joined":
        s = linked_set()
        circuit, path = s.b, s.b_path
    else:
        circuit, path = linking_leg() if state == "linking" else linked_leg()
    body = linked_body() if command == LINK else b""
    events = from_exit(circuit, path, RelayCell(command, 0, body))
    assert_violation(events, circuit, f"relay sent {command.name}, a client's")


@pytest.mark.parametrize("command", [LINK, LINKED, LINKED_ACK, SWITCH])
def test_conflux_command_on_a_circuit_never_linked(command: RelayCommand) -> None:
    circuit, path, _clock = cc_circuit()
    body = encode_switch(1) if command == SWITCH else linked_body()
    events = from_exit(circuit, path, RelayCell(command, 0, body))
    assert_violation(events, circuit, f"relay sent {command.name} on a circuit we never linked")


def test_a_short_switch_destroys_the_leg() -> None:
    s = linked_set()
    events = from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, b"\0\0\1"))
    assert_violation(events, s.b, "SWITCH of 3 bytes, need 4")


def test_a_switch_overflowing_the_sequence_destroys_the_leg() -> None:
    s = linked_set()
    s.sequencer.last_seq_recv[1] = 2**64 - 2**31  # as if ~2**64 messages had gone by
    events = from_exit(s.b, s.b_path, RelayCell(SWITCH, 0, encode_switch(2**31)))
    assert_violation(events, s.b, "overflows the sequence number")
