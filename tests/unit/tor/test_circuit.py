"""link.circuit: circuit ids, CREATE_FAST, BEGIN_DIR, DATA, END, SENDME, DESTROY (tor-link.md
§4.5, §5, §8, §9), against a relay side written here from the spec."""

from __future__ import annotations

import struct

import pytest

from tests.support.scripted_relay import FakeRelay
from webtunnel_pt.errors import (
    CircuitHandshakeError,
    CircuitProtocolError,
    LinkProtocolError,
    LocalProtocolError,
)
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    DestroyReason,
    EndReason,
    RelayCell,
    RelayCommand,
    destroy_cell,
)
from webtunnel_pt.tor.circuit import (
    CIRC_ID_HIGH_BIT,
    Circuit,
    CircuitClosed,
    CircuitEvent,
    CircuitOpen,
    CircuitState,
    StreamClosed,
    StreamConnected,
    StreamData,
    StreamWritable,
    allocate_circ_id,
)


def open_circuit() -> tuple[Circuit, FakeRelay]:
    circuit = Circuit(0x80000001, 5)
    circuit.create_fast()
    (create,) = circuit.cells_to_send()
    assert create.command == CellCommand.CREATE_FAST and len(create.payload) == 20
    relay = FakeRelay(create)
    assert circuit.receive_cell(relay.created) == [CircuitOpen()]
    assert circuit.state is CircuitState.OPEN
    return circuit, relay


def test_circuit_ids_have_the_high_bit_from_link_4() -> None:
    values = iter([0, 5, 5, 6])
    assert allocate_circ_id(set(), 4, lambda bits: next(values)) == CIRC_ID_HIGH_BIT
    assert (
        allocate_circ_id({CIRC_ID_HIGH_BIT | 5}, 5, lambda bits: next(values))
        == CIRC_ID_HIGH_BIT | 6
    )
    for _ in range(100):
        assert allocate_circ_id(set(), 5) & CIRC_ID_HIGH_BIT
        assert 0 < allocate_circ_id(set(), 3) < 0x10000


def test_circuit_ids_avoid_zero_and_used_on_link_3() -> None:
    values = iter([0, 7, 8])
    assert allocate_circ_id({7}, 3, lambda bits: next(values)) == 8
    with pytest.raises(LocalProtocolError):
        allocate_circ_id({1}, 3, lambda bits: 1)


def test_begin_dir_request_response() -> None:
    circuit, relay = open_circuit()
    stream = circuit.begin_dir()
    (begin,) = circuit.cells_to_send()
    assert relay.receive(begin) == RelayCell(RelayCommand.BEGIN_DIR, stream, b"")
    assert circuit.receive_cell(relay.send(RelayCell(RelayCommand.CONNECTED, stream))) == [
        StreamConnected(stream)
    ]
    assert circuit.send_data(stream, b"G" * 600) == 600  # two DATA cells
    sent = [relay.receive(c) for c in circuit.cells_to_send()]
    assert [len(m.data) for m in sent] == [498, 102]
    events = circuit.receive_cell(relay.send(RelayCell(RelayCommand.DATA, stream, b"HTTP/1.0 200")))
    assert events == [StreamData(stream, b"HTTP/1.0 200")]
    done = relay.send(RelayCell(RelayCommand.END, stream, bytes([EndReason.DONE])))
    assert circuit.receive_cell(done) == [StreamClosed(stream, EndReason.DONE)]
    circuit.end_stream(stream)  # no END in reply to END
    assert circuit.cells_to_send() == []
    with pytest.raises(LocalProtocolError):
        circuit.send_data(stream, b"late")


def test_empty_end_means_misc_and_unknown_commands_are_dropped() -> None:
    circuit, relay = open_circuit()
    stream = circuit.begin_dir()
    circuit.cells_to_send()
    assert circuit.receive_cell(relay.send(RelayCell(RelayCommand.DROP, 0))) == []
    assert circuit.receive_cell(relay.send(RelayCell(99, stream, b"?"))) == []
    assert circuit.receive_cell(relay.send(RelayCell(RelayCommand.END, stream))) == [
        StreamClosed(stream, EndReason.MISC)
    ]


def test_sendme_after_100_data_cells() -> None:
    """Circuit SENDME v1 with the backward digest after the 100th DATA cell; stream SENDMEs
    every 50 cells (§8.4)."""
    circuit, relay = open_circuit()
    stream = circuit.begin_dir()
    relay.receive(circuit.cells_to_send()[0])
    circuit.receive_cell(relay.send(RelayCell(RelayCommand.CONNECTED, stream)))
    sendmes: list[RelayCell] = []
    for n in range(1, 101):
        circuit.receive_cell(relay.send(RelayCell(RelayCommand.DATA, stream, b"d")))
        digest_after = relay.bd.digest()
        for cell in circuit.cells_to_send():
            message = relay.receive(cell)
            assert message.command == RelayCommand.SENDME
            sendmes.append(message)
            if message.stream_id == 0:
                assert n == 100
                assert message.data == struct.pack(">BH", 1, 20) + digest_after
    assert [m.stream_id for m in sendmes] == [stream, 0, stream]
    assert sendmes[0].data == b""


def test_package_window_takes_only_what_fits() -> None:
    circuit, relay = open_circuit()
    stream = circuit.begin_dir()
    circuit.cells_to_send()
    assert circuit.sendable(stream) == 498 * 500
    assert circuit.send_data(stream, bytes(498 * 500 + 7)) == 498 * 500
    assert len(circuit.cells_to_send()) == 500
    assert circuit.sendable(stream) == 0
    assert circuit.send_data(stream, b"x") == 0
    assert circuit.cells_to_send() == []
    events = circuit.receive_cell(relay.send(RelayCell(RelayCommand.SENDME, stream)))
    assert events == [StreamWritable(stream)]
    assert circuit.send_data(stream, b"x") == 1


def test_destroy_from_relay() -> None:
    circuit, _relay = open_circuit()
    assert circuit.receive_cell(destroy_cell(circuit.circ_id, DestroyReason.FINISHED)) == [
        CircuitClosed(DestroyReason.FINISHED, False, "relay destroyed the circuit: FINISHED (9)")
    ]
    assert circuit.state is CircuitState.DESTROYED
    assert circuit.receive_cell(destroy_cell(circuit.circ_id, 1)) == []  # dropped after
    with pytest.raises(LocalProtocolError):
        circuit.begin_dir()


def test_destroy_by_us() -> None:
    circuit, _relay = open_circuit()
    circuit.destroy()
    assert circuit.cells_to_send() == [destroy_cell(circuit.circ_id, DestroyReason.NONE)]
    circuit.destroy()
    assert circuit.cells_to_send() == []


def assert_violation(events: list[CircuitEvent], circuit: Circuit, match: str) -> None:
    """The circuit destroyed itself: DESTROY queued (reason NONE on the wire, as tor's client),
    CircuitClosed (PROTOCOL) with the error."""
    (closed,) = events
    assert isinstance(closed, CircuitClosed) and closed.reason == DestroyReason.PROTOCOL
    assert not closed.truncated and match in closed.message
    assert isinstance(closed.error, LinkProtocolError) and str(closed.error) == closed.message
    assert circuit.state is CircuitState.DESTROYED
    assert circuit.cells_to_send()[-1] == destroy_cell(circuit.circ_id, DestroyReason.NONE)
    assert circuit.receive_cell(destroy_cell(circuit.circ_id, 1)) == []


def test_bad_created_fast() -> None:
    circuit = Circuit(0x80000002, 5)
    circuit.create_fast()
    circuit.cells_to_send()
    events = circuit.receive_cell(Cell(circuit.circ_id, CellCommand.CREATED_FAST, bytes(40)))
    assert_violation(events, circuit, "key hash")
    assert isinstance(events[0], CircuitClosed)
    assert isinstance(events[0].error, CircuitHandshakeError)


def test_unrecognized_relay_cell_is_a_protocol_error() -> None:
    circuit, _relay = open_circuit()
    events = circuit.receive_cell(Cell(circuit.circ_id, CellCommand.RELAY, bytes(509)))
    assert_violation(events, circuit, "not recognized")
    assert isinstance(events[0], CircuitClosed)
    assert isinstance(events[0].error, CircuitProtocolError)


def test_inbound_relay_early_is_refused() -> None:
    """tor-spec §5.6: an inbound RELAY_EARLY MUST close the circuit."""
    circuit, relay = open_circuit()
    cell = relay.send(RelayCell(RelayCommand.DROP, 0))
    events = circuit.receive_cell(Cell(cell.circ_id, CellCommand.RELAY_EARLY, cell.payload))
    assert_violation(events, circuit, "RELAY_EARLY")


def test_relay_cells_before_created_fast() -> None:
    circuit = Circuit(0x80000003, 5)
    circuit.create_fast()
    events = circuit.receive_cell(Cell(circuit.circ_id, CellCommand.RELAY, bytes(509)))
    assert_violation(events, circuit, "not open")
