"""tor.circuit: CREATE2 / CREATED2, EXTEND2 in RELAY_EARLY / EXTENDED2, layered relay crypto over
three hops, TRUNCATED and DESTROY (tor-spec §5.1, §5.1.2, §5.4, §5.5, §5.6), against relay ends
written here (tests.support.scripted_relay.FakePath)."""

from __future__ import annotations

import pytest

from tests.support.scripted_relay import (
    TEST_LINK_SPECIFIERS,
    FakeHandshake,
    FakePath,
    build_circuit,
    extended2,
    fake_server_reply,
)
from webtunnel_pt.errors import CircuitHandshakeError, LocalProtocolError
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    DestroyReason,
    RelayCell,
    RelayCommand,
    destroy_cell,
)
from webtunnel_pt.tor.circuit import (
    Circuit,
    CircuitClosed,
    CircuitExtended,
    CircuitOpen,
    CircuitState,
)
from webtunnel_pt.tor.relay_msgs import extend2_body

from .test_circuit import assert_violation


def test_create2_cell_is_byte_exact() -> None:
    circuit = Circuit(0x80000010, 5)
    handshake = FakeHandshake(0)
    circuit.create(handshake)
    (cell,) = circuit.cells_to_send()
    assert cell == Cell(
        0x80000010, CellCommand.CREATE2, bytes.fromhex("00020054") + handshake.onionskin
    )
    assert circuit.state is CircuitState.CREATING
    with pytest.raises(LocalProtocolError, match="already"):
        circuit.create(handshake)


def test_created2_opens_the_first_hop() -> None:
    circuit = Circuit(0x80000010, 5)
    handshake = FakeHandshake(0)
    circuit.create(handshake)
    path = FakePath(0x80000010)
    created = path.created2(circuit.cells_to_send()[0])
    assert created.payload[:2] == b"\x00\x40"
    assert circuit.receive_cell(created) == [CircuitOpen(1)]
    assert handshake.completed == [created.payload[2:66]]  # HDATA exactly, no padding
    assert circuit.hops == 1 and circuit.state is CircuitState.OPEN


def test_three_hops_with_layered_crypto() -> None:
    """Each EXTEND2 goes to the current last hop in RELAY_EARLY; its body is the link
    specifiers and the new hop's handshake; the answer comes back through the earlier hops."""
    circuit, path = build_circuit(1)
    hs = FakeHandshake(1)
    circuit.extend(TEST_LINK_SPECIFIERS, hs)
    (cell,) = circuit.cells_to_send()
    assert cell.command == CellCommand.RELAY_EARLY
    received = path.receive(cell)
    assert received.hop == 0 and received.message == RelayCell(
        RelayCommand.EXTEND2, 0, extend2_body(TEST_LINK_SPECIFIERS, 2, hs.onionskin)
    )
    with pytest.raises(LocalProtocolError, match="being extended"):
        circuit.begin("example.com", 80)
    assert circuit.receive_cell(extended2(path, 0, received)) == [CircuitExtended(2)]
    circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(2))
    (cell,) = circuit.cells_to_send()
    received = path.receive(cell)
    assert received.hop == 1 and received.early
    assert circuit.receive_cell(extended2(path, 1, received)) == [CircuitExtended(3)]
    assert circuit.hops == 3
    # A stream at the exit: the cell passes two hops unrecognized.
    stream = circuit.begin("example.com", 80)
    received = path.receive(circuit.cells_to_send()[0])
    assert received.hop == 2
    assert received.message == RelayCell(RelayCommand.BEGIN, stream, b"example.com:80\0")
    # And a cell from the middle hop is recognized as the middle's.
    assert circuit.receive_cell(path.send(1, RelayCell(RelayCommand.DROP, 0))) == []
    assert circuit.state is CircuitState.OPEN


def test_relay_early_budget_is_eight() -> None:
    """tor-spec §5.6: cells beyond the first hop go as RELAY_EARLY while 8 last (as tor does),
    then as RELAY; an EXTEND2 with none left is refused before anything is sent."""
    circuit, path = build_circuit(3)  # 2 EXTEND2s used 2
    commands = []
    for _ in range(8):
        stream = circuit.begin("example.com", 443)
        (cell,) = circuit.cells_to_send()
        assert path.receive(cell).message.stream_id == stream
        commands.append(cell.command)
    assert commands == [CellCommand.RELAY_EARLY] * 6 + [CellCommand.RELAY] * 2
    with pytest.raises(LocalProtocolError, match="RELAY_EARLY"):
        circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(9))
    assert circuit.cells_to_send() == []


def test_first_hop_cells_are_plain_relay() -> None:
    circuit, path = build_circuit(1)
    circuit.begin_dir()
    (cell,) = circuit.cells_to_send()
    assert cell.command == CellCommand.RELAY and path.receive(cell).hop == 0


def test_bad_created2_auth_destroys_the_circuit() -> None:
    circuit = Circuit(0x80000011, 5)
    circuit.create(FakeHandshake(0))
    circuit.cells_to_send()
    hdata, _keys = fake_server_reply(FakeHandshake(0).onionskin)
    bad = hdata[:-1] + bytes([hdata[-1] ^ 1])
    events = circuit.receive_cell(Cell(circuit.circ_id, CellCommand.CREATED2, b"\x00\x40" + bad))
    assert_violation(events, circuit, "AUTH")
    assert isinstance(events[0], CircuitClosed)
    assert isinstance(events[0].error, CircuitHandshakeError)


def test_bad_extended2_auth_destroys_the_circuit() -> None:
    circuit, path = build_circuit(2)
    circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(5))
    circuit.cells_to_send()
    hdata, _keys = fake_server_reply(FakeHandshake(6).onionskin)  # another client's answer
    reply = path.send(1, RelayCell(RelayCommand.EXTENDED2, 0, b"\x00\x40" + hdata))
    events = circuit.receive_cell(reply)
    assert_violation(events, circuit, "AUTH")
    assert isinstance(events[0], CircuitClosed)
    assert isinstance(events[0].error, CircuitHandshakeError)
    assert circuit.hops == 2


@pytest.mark.parametrize(
    ("hop", "data"),
    [
        (0, b"\x00\x40" + bytes(64)),  # from the first hop, not the last
        (1, b"\x01\x00" + bytes(64)),  # HLEN beyond the body
        (1, b"\x00"),  # truncated
    ],
)
def test_misplaced_or_malformed_extended2(hop: int, data: bytes) -> None:
    circuit, path = build_circuit(2)
    circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(5))
    circuit.cells_to_send()
    events = circuit.receive_cell(path.send(hop, RelayCell(RelayCommand.EXTENDED2, 0, data)))
    assert_violation(events, circuit, "EXTENDED2")


def test_unsolicited_extended2_and_created() -> None:
    circuit, path = build_circuit(2)
    cell = path.send(1, RelayCell(RelayCommand.EXTENDED2, 0, b"\x00\x00"))
    assert_violation(circuit.receive_cell(cell), circuit, "unexpected EXTENDED2")
    circuit = Circuit(0x80000012, 5)
    circuit.create_fast()
    circuit.cells_to_send()
    created2 = Cell(circuit.circ_id, CellCommand.CREATED2, b"\x00\x40" + bytes(64))
    assert_violation(circuit.receive_cell(created2), circuit, "unexpected CREATED2")


def test_truncated_ends_the_circuit() -> None:
    """tor-spec §5.4: the client tears a truncated circuit down (DESTROY, reason NONE)."""
    circuit, path = build_circuit(3)
    cell = path.send(1, RelayCell(RelayCommand.TRUNCATED, 0, bytes([DestroyReason.CONNECTFAILED])))
    assert circuit.receive_cell(cell) == [
        CircuitClosed(
            DestroyReason.CONNECTFAILED, True, "hop 2 truncated the circuit: CONNECTFAILED (6)"
        )
    ]
    assert circuit.cells_to_send() == [destroy_cell(circuit.circ_id, DestroyReason.NONE)]
    assert circuit.state is CircuitState.DESTROYED
    assert circuit.destroy_reason == DestroyReason.CONNECTFAILED


def test_destroy_during_extend() -> None:
    circuit, _path = build_circuit(2)
    circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(5))
    circuit.cells_to_send()
    events = circuit.receive_cell(destroy_cell(circuit.circ_id, DestroyReason.OR_IDENTITY))
    assert events == [
        CircuitClosed(
            DestroyReason.OR_IDENTITY, False, "relay destroyed the circuit: OR_IDENTITY (7)"
        )
    ]
    assert circuit.cells_to_send() == []  # no DESTROY in reply to DESTROY
    with pytest.raises(LocalProtocolError):
        circuit.begin("example.com", 80)


def test_unknown_destroy_reason_is_named_by_number() -> None:
    circuit, _path = build_circuit(1)
    (event,) = circuit.receive_cell(destroy_cell(circuit.circ_id, 200))
    assert event == CircuitClosed(200, False, "relay destroyed the circuit: 200")


def test_sendme_versions_outside_what_we_know_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="sendme_accept_version 2"):
        Circuit(1, 5, sendme_accept_version=2)
    with pytest.raises(LocalProtocolError, match="sendme_emit_version"):
        Circuit(1, 5, sendme_emit_version=-1)
