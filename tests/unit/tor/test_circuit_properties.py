"""Hypothesis properties of the circuit layer: relay message decoders raise only the package's
errors, RESOLVED answers round-trip, and a circuit fed any sequence of validly encrypted relay
messages from its exit never raises, reports its end once, delivers at most a stream window
of data to a reader that consumes nothing, and stays silent after its end."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.scripted_relay import build_circuit
from webtunnel_pt.errors import WebtunnelError
from webtunnel_pt.tor.cells import MAX_RELAY_DATA, RelayCell, RelayCommand
from webtunnel_pt.tor.circuit import CircuitClosed, CircuitState, StreamData
from webtunnel_pt.tor.circuit_streams import STREAM_WINDOW
from webtunnel_pt.tor.relay_msgs import (
    ResolvedAnswer,
    created2_hdata,
    decode_connected,
    decode_resolved,
    decode_sendme,
    extended2_hdata,
)

BODIES = st.binary(max_size=MAX_RELAY_DATA)


@given(BODIES)
def test_decoders_raise_only_package_errors(body: bytes) -> None:
    for decode in (
        created2_hdata,
        extended2_hdata,
        decode_connected,
        decode_resolved,
        decode_sendme,
    ):
        try:
            decode(body)
        except WebtunnelError:
            pass


ANSWERS = st.one_of(
    st.builds(
        lambda a, t: ResolvedAnswer("ipv4", str(ipaddress.IPv4Address(a)), t),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        lambda a, t: ResolvedAnswer("ipv6", str(ipaddress.IPv6Address(a)), t),
        st.integers(0, 2**128 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        lambda h, t: ResolvedAnswer("hostname", h, t),
        st.text("abcxyz.-0123456789", min_size=1, max_size=40),
        st.integers(0, 2**32 - 1),
    ),
)


def encode_answer(answer: ResolvedAnswer) -> bytes:
    if answer.kind == "hostname":
        atype, value = 0, answer.value.encode()
    else:
        address = ipaddress.ip_address(answer.value)
        atype, value = (4 if address.version == 4 else 6), address.packed
    return bytes([atype, len(value)]) + value + struct.pack(">I", answer.ttl)


@given(st.lists(ANSWERS, max_size=8))
def test_resolved_answers_round_trip(answers: list[ResolvedAnswer]) -> None:
    assert decode_resolved(b"".join(encode_answer(a) for a in answers)) == answers


COMMANDS = st.sampled_from(
    [
        RelayCommand.DATA,
        RelayCommand.DATA,
        RelayCommand.DATA,
        RelayCommand.END,
        RelayCommand.CONNECTED,
        RelayCommand.SENDME,
        RelayCommand.RESOLVED,
        RelayCommand.EXTENDED2,
        RelayCommand.TRUNCATED,
        RelayCommand.DROP,
        RelayCommand.BEGIN,
        77,
    ]
)
MESSAGES = st.lists(
    st.tuples(st.integers(0, 2), COMMANDS, st.integers(0, 4), st.binary(max_size=40)),
    max_size=60,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(MESSAGES, st.integers(0, 1))
def test_a_circuit_survives_any_relay_messages(
    messages: list[tuple[int, int, int, bytes]], accept: int
) -> None:
    circuit, path = build_circuit(sendme_accept_version=accept)
    circuit.begin("example.com", 80)
    circuit.resolve("example.com")
    circuit.begin("example.org", 443)
    closed = 0
    delivered: dict[int, int] = {}
    for hop, command, stream, data in messages:
        events = circuit.receive_cell(path.send(hop, RelayCell(command, stream, data)))
        if closed:
            assert events == []
        closed += sum(isinstance(e, CircuitClosed) for e in events)
        for event in events:
            if isinstance(event, StreamData):
                delivered[event.stream_id] = delivered.get(event.stream_id, 0) + 1
        circuit.cells_to_send()
    assert closed <= 1
    assert (circuit.state is CircuitState.DESTROYED) == bool(closed)
    assert all(n <= STREAM_WINDOW for n in delivered.values())
