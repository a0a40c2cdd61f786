"""tor.circuit against a hostile relay: every violation destroys the circuit (DESTROY PROTOCOL
queued) and is reported once as CircuitClosed with the error; nothing raises, hangs or
buffers without bound. Unknown relay commands are dropped (tor-spec §6.1)."""

from __future__ import annotations

import struct

import pytest

from tests.support.scripted_relay import FakePath, build_circuit
from webtunnel_pt.tor.cells import RelayCell, RelayCommand
from webtunnel_pt.tor.circuit import Circuit, CircuitState, StreamConnected

from .test_circuit import assert_violation

EXIT = 2


def with_stream(connected: bool = True) -> tuple[Circuit, FakePath, int]:
    circuit, path = build_circuit()
    stream = circuit.begin("example.com", 443)
    path.receive(circuit.cells_to_send()[0])
    if connected:
        cell = path.send(EXIT, RelayCell(RelayCommand.CONNECTED, stream))
        assert circuit.receive_cell(cell) == [StreamConnected(stream)]
    return circuit, path, stream


def test_data_for_a_stream_never_opened() -> None:
    circuit, path, _stream = with_stream()
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, 77, b"x"))
    assert_violation(circuit.receive_cell(cell), circuit, "unknown stream 77")


def test_data_on_stream_zero() -> None:
    circuit, path, _stream = with_stream()
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, 0, b"x"))
    assert_violation(circuit.receive_cell(cell), circuit, "unknown stream 0")


def test_data_from_the_wrong_hop() -> None:
    circuit, path, stream = with_stream()
    cell = path.send(1, RelayCell(RelayCommand.DATA, stream, b"x"))
    assert_violation(
        circuit.receive_cell(cell), circuit, "hop 2 sent DATA (2) for a stream at hop 3"
    )


def test_data_before_connected() -> None:
    circuit, path, stream = with_stream(connected=False)
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, stream, b"x"))
    assert_violation(circuit.receive_cell(cell), circuit, "before CONNECTED")


def test_data_on_a_resolve() -> None:
    circuit, path = build_circuit()
    stream = circuit.resolve("example.com")
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, stream, b"x"))
    assert_violation(circuit.receive_cell(cell), circuit, "before CONNECTED")


def test_connected_twice() -> None:
    circuit, path, stream = with_stream()
    cell = path.send(EXIT, RelayCell(RelayCommand.CONNECTED, stream))
    assert_violation(circuit.receive_cell(cell), circuit, "unexpected CONNECTED")


def test_malformed_connected() -> None:
    circuit, path, stream = with_stream(connected=False)
    cell = path.send(EXIT, RelayCell(RelayCommand.CONNECTED, stream, b"\x01\x02"))
    assert_violation(circuit.receive_cell(cell), circuit, "CONNECTED")


def test_resolved_on_a_data_stream() -> None:
    circuit, path, stream = with_stream()
    cell = path.send(EXIT, RelayCell(RelayCommand.RESOLVED, stream, b""))
    assert_violation(circuit.receive_cell(cell), circuit, "not a RESOLVE")


def test_malformed_resolved() -> None:
    circuit, path = build_circuit()
    stream = circuit.resolve("example.com")
    cell = path.send(EXIT, RelayCell(RelayCommand.RESOLVED, stream, b"\x04\x04\x01"))
    assert_violation(circuit.receive_cell(cell), circuit, "RESOLVED")


@pytest.mark.parametrize(
    "command",
    [
        RelayCommand.BEGIN,
        RelayCommand.BEGIN_DIR,
        RelayCommand.RESOLVE,
        RelayCommand.EXTEND,
        RelayCommand.EXTEND2,
        RelayCommand.TRUNCATE,
        RelayCommand.EXTENDED,
    ],
)
def test_commands_a_relay_never_sends(command: RelayCommand) -> None:
    circuit, path, stream = with_stream()
    cell = path.send(EXIT, RelayCell(command, stream, b"x"))
    assert_violation(circuit.receive_cell(cell), circuit, command.name)


@pytest.mark.parametrize("command", [99, 41, 42, 43, 44, 255])
def test_unknown_commands_are_dropped(command: int) -> None:
    circuit, path, stream = with_stream()
    assert circuit.receive_cell(path.send(EXIT, RelayCell(command, stream, b"?"))) == []
    assert circuit.receive_cell(path.send(1, RelayCell(RelayCommand.DROP, 0, b"pad"))) == []
    assert circuit.state is CircuitState.OPEN


def test_relay_length_beyond_498() -> None:
    circuit, path, stream = with_stream()
    payload = struct.pack(">BHHIH", RelayCommand.DATA, 0, stream, 0, 499) + bytes(498)
    cell = path.send_payload(EXIT, payload)
    assert_violation(circuit.receive_cell(cell), circuit, "exceeds 498")


def test_a_tampered_cell_is_not_recognized() -> None:
    circuit, path, stream = with_stream()
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, stream, b"x"))
    flipped = cell.payload[:100] + bytes([cell.payload[100] ^ 1]) + cell.payload[101:]
    bad = type(cell)(cell.circ_id, cell.command, flipped)
    assert_violation(circuit.receive_cell(bad), circuit, "not recognized")


def test_a_flood_past_the_stream_window_is_stopped_at_501_cells() -> None:
    """The relay ignores the window: the circuit holds at most 500 cells' worth of data for the
    stream (the caller's buffer) and the 501st ends the circuit."""
    circuit, path, stream = with_stream()
    delivered = 0
    for n in range(1000):
        events = circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.DATA, stream, b"f")))
        if circuit.state is CircuitState.DESTROYED:
            assert n == 500
            assert_violation(events, circuit, "deliver window")
            break
        delivered += len(events)
        circuit.cells_to_send()
    assert delivered == 500


def test_nothing_after_a_violation() -> None:
    circuit, path, stream = with_stream()
    circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.DATA, 9, b"x")))
    circuit.cells_to_send()
    assert circuit.receive_cell(path.send(EXIT, RelayCell(RelayCommand.DATA, stream, b"x"))) == []
    assert circuit.cells_to_send() == []
    assert circuit.sendable(stream) == 0
    circuit.end_stream(stream)
    circuit.consumed(stream, 0)
    assert circuit.cells_to_send() == []
