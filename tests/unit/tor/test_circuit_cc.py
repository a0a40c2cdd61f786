"""tor.circuit with congestion control negotiated at the exit, against scripted cells: circuit
SENDMEs every sendme_inc cells (v1, on receipt), no stream SENDMEs either way, XOFF / XON both
ways (byte-exact), the Vegas window on upload, and the bound on what a flooding exit can make
us hold (prop 324, prop 344; tor-spec "Congestion control", "Flow control")."""

from __future__ import annotations

import struct

import pytest

from tests.support.scripted_relay import FakePath, build_circuit
from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import EndReason, RelayCell, RelayCommand
from webtunnel_pt.tor.circuit import Circuit, CircuitState, StreamData, StreamWritable
from webtunnel_pt.tor.congestion import CongestionParams, CongestionWindow
from webtunnel_pt.tor.relay_msgs import xon_body

from .test_circuit import assert_violation
from .test_circuit_streams import data_from_exit, open_stream, sendme_v1, sent, upload

EXIT = 2
INC = 31
LIMIT_CELLS = 500  # cc_xoff_client
XOFF = RelayCommand.XOFF
XON = RelayCommand.XON


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def cc_circuit(
    sendme_inc: int = INC, params: CongestionParams | None = None, **kwargs: int
) -> tuple[Circuit, FakePath, Clock]:
    circuit, path = build_circuit(**kwargs)
    clock = Clock()
    circuit.enable_congestion_control(-1, sendme_inc, params=params, clock=clock)
    return circuit, path, clock


def test_enabled_at_the_last_hop_only() -> None:
    circuit, _path, _clock = cc_circuit()
    window = circuit.congestion_control(-1)
    assert isinstance(window, CongestionWindow) and window.sendme_inc == INC
    assert circuit.congestion_control(0) is None and circuit.congestion_control(1) is None


def test_without_cc_there_is_no_window() -> None:
    circuit, _path = build_circuit()
    assert circuit.congestion_control() is None


def test_an_increment_tor_would_refuse() -> None:
    circuit, _path = build_circuit()
    with pytest.raises(CircuitProtocolError, match="sendme_inc 100"):
        circuit.enable_congestion_control(-1, 100)
    assert circuit.congestion_control() is None


def test_enabling_after_streams_is_refused() -> None:
    circuit, _path = build_circuit()
    circuit.begin("example.com", 443)
    with pytest.raises(LocalProtocolError, match="already carried streams"):
        circuit.enable_congestion_control(-1, INC)


def test_enabling_twice_is_refused() -> None:
    circuit, _path, _clock = cc_circuit()
    with pytest.raises(LocalProtocolError, match="uses CC"):
        circuit.enable_congestion_control(-1, INC)


# ---- download: SENDMEs every sendme_inc cells, on receipt --------------------------------------


def test_circuit_sendme_v1_every_inc_cells_with_that_cells_digest() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    for n in range(1, 3 * INC + 1):
        events = data_from_exit(circuit, path, stream, b"d" * 498)
        assert events == [StreamData(stream, b"d" * 498)]
        digest = path.backward_digest(EXIT)
        messages = sent(circuit, path)
        if n % INC:
            assert messages == []
        else:  # sent at once: 01 | 0014 | the digest right after the inc-th cell
            assert messages == [RelayCell(RelayCommand.SENDME, 0, bytes.fromhex("010014") + digest)]


def test_another_negotiated_increment_is_used() -> None:
    circuit, path, _clock = cc_circuit(sendme_inc=20)
    stream = open_stream(circuit, path)
    counts = []
    for n in range(1, 61):
        data_from_exit(circuit, path, stream)
        counts += [n] * len(sent(circuit, path))
    assert counts == [20, 40, 60]


def test_no_stream_sendmes_and_no_deliver_window() -> None:
    """2000 cells on one stream, all read at once: no stream SENDME, no 500-cell limit."""
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    commands = set()
    for _ in range(2000):
        data_from_exit(circuit, path, stream, b"x")
        circuit.consumed(stream, 1)
        commands |= {(m.command, m.stream_id) for m in sent(circuit, path)}
    assert commands == {(RelayCommand.SENDME, 0)}
    assert circuit.state is CircuitState.OPEN


def test_a_stream_sendme_from_the_exit_breaks_the_protocol() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    upload(circuit, path, stream, 50)
    sendme = path.send(EXIT, RelayCell(RelayCommand.SENDME, stream))
    assert_violation(circuit.receive_cell(sendme), circuit, "congestion control")


# ---- download: XOFF / XON for a slow reader ---------------------------------------------------------


def fill(circuit: Circuit, path: FakePath, stream: int, cells: int) -> list[RelayCell]:
    """``cells`` full DATA cells from the exit; the stream-level messages we sent back."""
    out = []
    for _ in range(cells):
        data_from_exit(circuit, path, stream, bytes(498))
        out += [m for m in sent(circuit, path) if m.stream_id]
    return out


def test_slow_reader_xoff_then_xon() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    # 500 cells unread is the limit itself; the 501st passes it.
    assert fill(circuit, path, stream, LIMIT_CELLS) == []
    assert fill(circuit, path, stream, 1) == [RelayCell(XOFF, stream, b"\x00")]
    # The exit's cells in flight still arrive, without a second XOFF.
    assert fill(circuit, path, stream, 100) == []
    # The reader takes half: nothing yet; the rest: XON (no rate measured yet: 0).
    circuit.consumed(stream, 300 * 498)
    assert sent(circuit, path) == []
    circuit.consumed(stream, 301 * 498)
    assert sent(circuit, path) == [RelayCell(XON, stream, bytes(5))]
    # Past the limit again: a new XOFF.
    assert fill(circuit, path, stream, LIMIT_CELLS + 1)[-1] == RelayCell(XOFF, stream, b"\x00")


def test_xon_advises_the_readers_rate() -> None:
    circuit, path, clock = cc_circuit()
    stream = open_stream(circuit, path)
    fill(circuit, path, stream, 1200)  # XOFF at 501
    # The drain clock started when 32 cells waited unread (at 50.0 s).
    circuit.consumed(stream, 498)
    clock.now += 0.1
    circuit.consumed(stream, 600 * 498)  # 299 298 bytes in 100 ms: 2992 kB/s
    assert sent(circuit, path) == []
    clock.now += 0.1
    circuit.consumed(stream, 599 * 498)
    assert sent(circuit, path) == [RelayCell(XON, stream, xon_body(2992))]


def test_a_flooding_exit_is_cut_off() -> None:
    """After XOFF the exit may still send what its window had in flight; past twice its
    slow-start ceiling (cc_ss_max, here 500: 1000 cells) it is flooding."""
    circuit, path, _clock = cc_circuit(params=CongestionParams(ss_max=500))
    stream = open_stream(circuit, path)
    fill(circuit, path, stream, LIMIT_CELLS + 1000)
    assert circuit.state is CircuitState.OPEN
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, stream, bytes(498)))
    assert_violation(circuit.receive_cell(cell), circuit, "past our XOFFs (flooding)")


def test_the_flood_bound_counts_every_stream_of_the_circuit() -> None:
    circuit, path, _clock = cc_circuit(params=CongestionParams(ss_max=500))
    first, second = open_stream(circuit, path), open_stream(circuit, path)
    fill(circuit, path, first, LIMIT_CELLS + 600)
    fill(circuit, path, second, LIMIT_CELLS + 400)
    assert circuit.state is CircuitState.OPEN
    cell = path.send(EXIT, RelayCell(RelayCommand.DATA, second, bytes(498)))
    assert_violation(circuit.receive_cell(cell), circuit, "flooding")


def test_data_on_a_stream_we_ended_is_dropped_without_windows() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    circuit.end_stream(stream, EndReason.DONE)
    sent(circuit, path)
    for _ in range(600):  # more than a stream window: fine without one
        assert data_from_exit(circuit, path, stream) == []
    assert circuit.state is CircuitState.OPEN


# ---- upload: the congestion window, XOFF / XON from the exit ------------------------------------------


def test_upload_is_bound_by_the_congestion_window() -> None:
    circuit, path, clock = cc_circuit(sendme_accept_version=1)
    stream = open_stream(circuit, path)
    assert circuit.sendable(stream) == 124 * 498  # cc_cwnd_init, no 500-cell stream window
    digests = upload(circuit, path, stream, 124)
    assert circuit.sendable(stream) == 0
    clock.now += 0.01
    events = circuit.receive_cell(path.send(EXIT, sendme_v1(digests[INC - 1])))
    assert events == [StreamWritable(stream)]
    window = circuit.congestion_control()
    assert window is not None and window.cwnd == 155 and window.inflight == 93
    assert circuit.sendable(stream) == (155 - 93) * 498
    assert window.min_rtt_usec == 10_000


def test_upload_past_500_cells_needs_no_stream_sendme() -> None:
    circuit, path, clock = cc_circuit(sendme_accept_version=1)
    stream = open_stream(circuit, path)
    digests: list[bytes] = []
    acked = 0
    for _ in range(10):
        digests += upload(circuit, path, stream, circuit.sendable(stream) // 498)
        # The exit answers every 31st cell it received, counted over the whole circuit.
        while acked + INC <= len(digests):
            acked += INC
            clock.now += 0.001
            assert circuit.receive_cell(path.send(EXIT, sendme_v1(digests[acked - 1]))) in (
                [],
                [StreamWritable(stream)],
            )
    assert circuit.state is CircuitState.OPEN and len(digests) > 1000


def test_a_wrong_sendme_digest_is_a_violation() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    digests = upload(circuit, path, stream, 62)
    bad = path.send(EXIT, sendme_v1(digests[2 * INC - 1]))  # the 31st is next
    assert_violation(circuit.receive_cell(bad), circuit, "wrong digest")


def test_exit_xoff_stops_the_stream_and_xon_resumes_it() -> None:
    circuit, path, _clock = cc_circuit()
    first, second = open_stream(circuit, path), open_stream(circuit, path)
    assert circuit.receive_cell(path.send(EXIT, RelayCell(XOFF, first, b"\x00"))) == []
    assert circuit.sendable(first) == 0 and circuit.send_data(first, b"x") == 0
    assert circuit.sendable(second) == 124 * 498  # only that stream stopped
    xon = path.send(EXIT, RelayCell(XON, first, xon_body(1000)))
    assert circuit.receive_cell(xon) == [StreamWritable(first)]
    assert circuit.sendable(first) == 124 * 498


def test_exit_xon_without_xoff_changes_nothing() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    assert circuit.receive_cell(path.send(EXIT, RelayCell(XON, stream, xon_body(0)))) == []
    assert circuit.sendable(stream) == 124 * 498


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (RelayCell(XOFF, 1, b"\x01"), "XOFF version 1"),
        (RelayCell(XON, 1, b"\x00\x00"), "truncated"),
        (RelayCell(XOFF, 9, b"\x00"), "unknown stream 9"),
    ],
)
def test_malformed_flow_control(message: RelayCell, match: str) -> None:
    circuit, path, _clock = cc_circuit()
    assert open_stream(circuit, path) == 1
    assert_violation(circuit.receive_cell(path.send(EXIT, message)), circuit, match)


def test_two_xoffs_break_the_protocol() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    circuit.receive_cell(path.send(EXIT, RelayCell(XOFF, stream, b"\x00")))
    again = path.send(EXIT, RelayCell(XOFF, stream, b"\x00"))
    assert_violation(circuit.receive_cell(again), circuit, "two XOFFs")


def test_flow_control_on_an_ended_stream_is_dropped() -> None:
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    circuit.end_stream(stream, EndReason.DONE)
    assert circuit.receive_cell(path.send(EXIT, RelayCell(XOFF, stream, b"\x00"))) == []
    assert circuit.state is CircuitState.OPEN


def test_without_cc_xon_xoff_are_unknown_commands() -> None:
    """Exactly as before congestion control: dropped, whatever the stream id."""
    circuit, path = build_circuit()
    stream = open_stream(circuit, path)
    for message in (RelayCell(XOFF, stream, b"\x00"), RelayCell(XON, 0, b"junk")):
        assert circuit.receive_cell(path.send(EXIT, message)) == []
    assert circuit.sendable(stream) == 500 * 498  # the stream window, as before


def test_sendme_v1_body_layout() -> None:
    """tor-spec §7.3.1: VERSION 1, DATA_LEN 20, the digest."""
    circuit, path, _clock = cc_circuit()
    stream = open_stream(circuit, path)
    for _ in range(INC):
        data_from_exit(circuit, path, stream)
    (sendme,) = sent(circuit, path)
    version, length = struct.unpack_from(">BH", sendme.data)
    assert (version, length, len(sendme.data)) == (1, 20, 23)
