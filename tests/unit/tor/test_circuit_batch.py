"""tor.circuit's receive_cells, what the channel calls with one read's cells for a circuit:
the same events, the same cells sent back and the same end as receive_cell cell by cell,
with the relay cells decrypted together and a stream's consecutive DATA delivered as one
StreamData (the same bytes, in order)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.scripted_relay import FakePath, build_circuit
from webtunnel_pt.tor.cells import Cell, CellCommand, RelayCell, RelayCommand, destroy_cell
from webtunnel_pt.tor.circuit import Circuit, CircuitClosed, CircuitState, StreamData

from .test_circuit_streams import open_stream, sent

EXIT = 2
Script = Callable[[FakePath, int], list[Cell]]


def _data(path: FakePath, stream: int, count: int, hop: int = EXIT) -> list[Cell]:
    return [
        path.send(hop, RelayCell(RelayCommand.DATA, stream, f"data {n}".encode()))
        for n in range(count)
    ]


def _cc_pair() -> list[tuple[Circuit, FakePath, int]]:
    """Two circuits in the same state: one for cell by cell, one for the batch."""
    pair = []
    for _ in range(2):
        circuit, path = build_circuit()
        circuit.enable_congestion_control(-1, 31)
        pair.append((circuit, path, open_stream(circuit, path)))
    return pair


def _joined(events: list) -> list:
    """Consecutive StreamData of one stream as one, as receive_cells hands them out."""
    out: list = []
    for event in events:
        last = out[-1] if out else None
        if (
            isinstance(event, StreamData)
            and isinstance(last, StreamData)
            and last.stream_id == event.stream_id
        ):
            out[-1] = StreamData(event.stream_id, last.data + event.data)
        else:
            out.append(event)
    return out


def _both(script: Script) -> tuple[tuple[list, list, CircuitState], ...]:
    outcomes = []
    for batched, (circuit, path, stream) in zip((False, True), _cc_pair(), strict=True):
        cells = script(path, stream)
        if batched:
            events = circuit.receive_cells(cells)
        else:
            events = _joined([event for cell in cells for event in circuit.receive_cell(cell)])
        messages = sent(circuit, path) if circuit.state is CircuitState.OPEN else []
        outcomes.append((events, messages, circuit.state))
    return tuple(outcomes)


def test_data_and_sendmes_as_one_by_one() -> None:
    """100 DATA cells: their data in order, in one StreamData, and the same 3 circuit
    SENDMEs."""
    one, batch = _both(lambda path, stream: _data(path, stream, 100))
    assert batch == one
    events, messages, _state = batch
    (event,) = events
    assert isinstance(event, StreamData)
    assert event.data == b"".join(f"data {n}".encode() for n in range(100))
    assert [m.command for m in messages] == [RelayCommand.SENDME] * 3


def test_cells_from_the_middle_among_the_exits() -> None:
    """A DROP from hop 2 in the batch stops there; the exit's cells around it still decrypt."""

    def script(path: FakePath, stream: int) -> list[Cell]:
        return [
            *_data(path, stream, 3),
            path.send(1, RelayCell(RelayCommand.DROP, 0)),
            *_data(path, stream, 3),
        ]

    one, batch = _both(script)
    assert batch == one and len(batch[0]) == 1  # the DROP makes no event


@pytest.mark.parametrize("where", [0, 5, 9])
def test_a_violation_ends_the_batch_as_it_ends_the_circuit(where: int) -> None:
    """DATA for a stream that does not exist destroys the circuit; what came before it was
    delivered, what came after is dropped."""

    def script(path: FakePath, stream: int) -> list[Cell]:
        return [
            path.send(EXIT, RelayCell(RelayCommand.DATA, stream + 40 * (n == where), b"x"))
            for n in range(10)
        ]

    one, batch = _both(script)
    assert batch[2] is one[2] is CircuitState.DESTROYED
    assert batch[0] == one[0] and len(batch[0]) == (2 if where else 1)
    if where:
        assert batch[0][0] == StreamData(batch[0][0].stream_id, b"x" * where)
    closed = batch[0][-1]
    assert isinstance(closed, CircuitClosed) and "unknown stream" in closed.message


def test_an_unrecognized_cell_ends_the_batch() -> None:
    def script(path: FakePath, stream: int) -> list[Cell]:
        cells = _data(path, stream, 6)
        bad = bytearray(cells[3].payload)
        bad[300] ^= 0x40
        cells[3] = Cell(cells[3].circ_id, cells[3].command, bytes(bad))
        return cells

    one, batch = _both(script)
    assert batch[2] is one[2] is CircuitState.DESTROYED
    assert batch[0] == one[0] and len(batch[0]) == 2
    assert batch[0][0].data == b"data 0data 1data 2"
    assert isinstance(batch[0][1], CircuitClosed) and "not recognized" in batch[0][1].message


def test_a_destroy_in_the_batch_is_taken_in_order() -> None:
    """A batch with another command than RELAY goes cell by cell: DATA, then DESTROY."""

    def script(path: FakePath, stream: int) -> list[Cell]:
        return [*_data(path, stream, 2), destroy_cell(path.circ_id, 3), *_data(path, stream, 1)]

    one, batch = _both(script)
    assert batch == one
    assert isinstance(batch[0][-1], CircuitClosed) and batch[2] is CircuitState.DESTROYED


def test_a_destroyed_circuit_takes_no_batch() -> None:
    (circuit, path, stream), _ = _cc_pair()
    circuit.destroy()
    circuit.cells_to_send()
    assert circuit.receive_cells(_data(path, stream, 3)) == []
    assert circuit.receive_cells([Cell(path.circ_id, CellCommand.RELAY, bytes(509))] * 2) == []
