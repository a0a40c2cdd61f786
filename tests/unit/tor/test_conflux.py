"""tor.conflux, the sans-I/O core of prop 329: the LINK / LINKED body (version 1, byte-exact),
the SWITCH body, and the receive-side sequencer (per-leg absolute sequence numbers, in-order
delivery across legs, the bounded out-of-order queue, the strict checks), with a Hypothesis
property: whatever a spec-following sender does over 2-3 legs and however the legs interleave
on arrival, the messages come out exactly once and in order (prop 329 §2.2, §2.6)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.conflux import (
    MAX_OUT_OF_ORDER_CELLS,
    ConfluxSequencer,
    ConfluxUx,
    LinkBody,
    decode_switch,
    encode_switch,
)

NONCE = bytes(range(0xA0, 0xC0))
MAX_SEQ = 2**64 - 1

# ---- LINK / LINKED -----------------------------------------------------------------------------


def link_bytes(version: int, nonce: bytes, sent: int, recv: int, ux: int) -> bytes:
    """The 50-byte layout written out by hand: u8 version | nonce[32] | u64 | u64 | u8."""
    return (
        bytes([version]) + nonce + sent.to_bytes(8, "big") + recv.to_bytes(8, "big") + bytes([ux])
    )


def test_link_body_is_byte_exact() -> None:
    body = LinkBody(NONCE, 0x0102030405060708, 0x1112131415161718, ConfluxUx.LOW_MEM_LATENCY)
    wire = body.encode()
    assert len(wire) == 50
    assert wire == (
        b"\x01"
        + NONCE
        + bytes.fromhex("0102030405060708")
        + bytes.fromhex("1112131415161718")
        + b"\x02"
    )


def test_a_fresh_link_asks_for_throughput() -> None:
    """What the client sends: version 1, zero sequence numbers, HIGH_THROUGHPUT (3)."""
    assert LinkBody(NONCE).encode() == b"\x01" + NONCE + bytes(16) + b"\x03"


@pytest.mark.parametrize("size", [0, 31, 33])
def test_a_nonce_of_another_length_is_refused_locally(size: int) -> None:
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        LinkBody(bytes(size)).encode()


@pytest.mark.parametrize(
    "body", [LinkBody(NONCE, last_seqno_sent=2**64), LinkBody(NONCE, desired_ux=256)]
)
def test_out_of_range_link_fields_are_refused_locally(body: LinkBody) -> None:
    with pytest.raises(LocalProtocolError):
        body.encode()


@pytest.mark.parametrize("ux", range(5))
def test_linked_decodes(ux: int) -> None:
    wire = link_bytes(1, NONCE, MAX_SEQ, 0x0102, ux)
    assert LinkBody.decode(wire) == LinkBody(NONCE, MAX_SEQ, 0x0102, ux)


def test_link_round_trips() -> None:
    body = LinkBody(NONCE, 7, 9, ConfluxUx.MIN_LATENCY)
    assert LinkBody.decode(body.encode()) == body


def test_linked_with_trailing_bytes_is_accepted() -> None:
    """A newer version may append fields: the first 50 bytes are what we read."""
    wire = link_bytes(1, NONCE, 3, 4, ConfluxUx.NO_OPINION) + b"\xff" * 20
    assert LinkBody.decode(wire) == LinkBody(NONCE, 3, 4, ConfluxUx.NO_OPINION)


@pytest.mark.parametrize("size", [0, 1, 33, 49])
def test_a_short_linked_is_a_protocol_error(size: int) -> None:
    wire = link_bytes(1, NONCE, 0, 0, 3)[:size]
    with pytest.raises(CircuitProtocolError, match=f"LINKED of {size} bytes, need 50"):
        LinkBody.decode(wire)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_linked_of_another_version_is_a_protocol_error(version: int) -> None:
    with pytest.raises(CircuitProtocolError, match=f"version {version}"):
        LinkBody.decode(link_bytes(version, NONCE, 0, 0, 3))


@pytest.mark.parametrize("ux", [5, 6, 255])
def test_linked_with_an_unknown_ux_is_a_protocol_error(ux: int) -> None:
    with pytest.raises(CircuitProtocolError, match=f"unknown UX {ux}"):
        LinkBody.decode(link_bytes(1, NONCE, 0, 0, ux))


# ---- SWITCH ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "wire"),
    [(0, "00000000"), (21, "00000015"), (0x01020304, "01020304"), (2**32 - 1, "ffffffff")],
)
def test_switch_is_byte_exact(relative: int, wire: str) -> None:
    assert encode_switch(relative) == bytes.fromhex(wire)
    assert decode_switch(bytes.fromhex(wire)) == relative


@pytest.mark.parametrize("relative", [-1, 2**32, 2**63])
def test_a_switch_past_32_bits_is_refused_locally(relative: int) -> None:
    with pytest.raises(LocalProtocolError, match="32 bits"):
        encode_switch(relative)


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_short_switch_is_a_protocol_error(size: int) -> None:
    with pytest.raises(CircuitProtocolError, match=f"SWITCH of {size} bytes, need 4"):
        decode_switch(bytes(size))


# ---- the sequencer -----------------------------------------------------------------------------

#: One leg's events as the exit sends them: a SWITCH (its relative number) or a message.
Event = tuple[str, int]


def feed(seq: ConfluxSequencer[int], legs: list[list[Event]], order: list[int]) -> list[int]:
    """Deliver each leg's events in its own order, the legs interleaved as ``order`` says
    (one leg index per event); what the sequencer delivered, in delivery order."""
    cursors = [0] * len(legs)
    out: list[int] = []
    for leg in order:
        kind, value = legs[leg][cursors[leg]]
        cursors[leg] += 1
        if kind == "switch":
            seq.switch(leg, value)
        else:
            out += seq.arrive(leg, value)
    assert cursors == [len(events) for events in legs]
    return out


def test_at_least_one_leg() -> None:
    with pytest.raises(LocalProtocolError, match="at least one leg"):
        ConfluxSequencer(0)


def test_in_order_on_one_leg() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    for n in range(1, 6):
        assert seq.arrive(0, f"m{n}") == [f"m{n}"]
        assert seq.last_seq_delivered == n and seq.last_seq_recv == [n, 0]
        assert seq.queued == 0
    assert seq.received == [5, 0] and seq.switches == [0, 0]


def spec_example() -> list[list[Event]]:
    """prop 329 §2.6: 10 cells on A (1-10); SWITCH 10 on B, 21 cells on B (11-31); SWITCH 21
    back on A (10 + 21 = 31), 9 cells on A (32-40); SWITCH 9 on B (31 + 9 = 40), 5 cells on B
    (41-45). Each message is its absolute sequence number."""
    a: list[Event] = [("msg", n) for n in range(1, 11)]
    b: list[Event] = [("switch", 10)] + [("msg", n) for n in range(11, 32)]
    a += [("switch", 21)] + [("msg", n) for n in range(32, 41)]
    b += [("switch", 9)] + [("msg", n) for n in range(41, 46)]
    return [a, b]


def alternate(first: int, counts: list[int]) -> list[int]:
    """Legs taking turns, starting with ``first``, until each has had its ``counts``."""
    left, order, leg = list(counts), [], first
    while any(left):
        if left[leg]:
            order.append(leg)
            left[leg] -= 1
        leg = 1 - leg
    return order


def _orders() -> dict[str, list[int]]:
    counts = [len(events) for events in spec_example()]  # 20 on A, 28 on B
    return {
        "a-then-b": [0] * counts[0] + [1] * counts[1],
        "b-then-a": [1] * counts[1] + [0] * counts[0],
        "alternating": alternate(0, counts),
        "b-alternating": alternate(1, counts),
        "as-sent": [0] * 10 + [1] * 22 + [0] * 10 + [1] * 6,
    }


@pytest.mark.parametrize("order", _orders().values(), ids=list(_orders()))
def test_the_spec_example_in_any_interleaving(order: list[int]) -> None:
    seq: ConfluxSequencer[int] = ConfluxSequencer(2)
    assert feed(seq, spec_example(), order) == list(range(1, 46))
    assert seq.last_seq_recv == [40, 45] and seq.last_seq_delivered == 45
    assert seq.queued == 0
    assert seq.received == [19, 26] and seq.switches == [1, 2]


def test_out_of_order_messages_wait_then_come_out_in_order() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    seq.switch(1, 2)  # leg 2's next message is number 3
    assert seq.arrive(1, "c") == [] and seq.arrive(1, "d") == []
    assert seq.queued == 2 and seq.last_seq_delivered == 0
    assert seq.arrive(0, "a") == ["a"] and seq.queued == 2
    assert seq.arrive(0, "b") == ["b", "c", "d"]
    assert seq.queued == 0 and seq.last_seq_delivered == 4
    # A gap further on: leg 2 jumps past 5 and 6.
    seq.switch(1, 2)
    assert seq.arrive(1, "g") == [] and seq.queued == 1
    seq.switch(0, 2)  # leg 1: 2 -> 4
    assert seq.arrive(0, "e") == ["e"] and seq.arrive(0, "f") == ["f", "g"]
    assert seq.queued == 0 and seq.last_seq_delivered == 7


def test_a_message_numbered_at_or_below_what_was_delivered() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    assert seq.arrive(0, "a") == ["a"] and seq.arrive(0, "b") == ["b"]
    seq.switch(1, 1)  # leg 2's next would be number 2, already delivered
    with pytest.raises(CircuitProtocolError, match="numbered 2 on leg 2, but 2 were already"):
        seq.arrive(1, "replay")


def test_a_message_numbered_zero_after_nothing_was_delivered_is_fine() -> None:
    """The boundary of the check above: number 1 with nothing delivered is next."""
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    assert seq.arrive(1, "first") == ["first"]


def test_two_messages_with_one_sequence_number() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(3)
    seq.switch(1, 1)
    seq.switch(2, 1)
    assert seq.arrive(1, "x") == [] and seq.arrive(2, "y") == []  # both number 2
    with pytest.raises(CircuitProtocolError, match="two conflux messages with one sequence"):
        seq.arrive(0, "a")


def test_the_out_of_order_queue_is_bounded() -> None:
    seq: ConfluxSequencer[int] = ConfluxSequencer(2, max_queued=3)
    seq.switch(1, 1)
    for n in range(3):
        assert seq.arrive(1, n) == []
    with pytest.raises(CircuitProtocolError, match="more than 3 conflux messages out of order"):
        seq.arrive(1, 3)
    assert seq.queued == 3


def test_the_default_bound() -> None:
    assert MAX_OUT_OF_ORDER_CELLS == 8192
    seq: ConfluxSequencer[int] = ConfluxSequencer(2)
    assert seq.max_queued == MAX_OUT_OF_ORDER_CELLS
    seq.switch(1, 1)
    for n in range(MAX_OUT_OF_ORDER_CELLS):
        seq.arrive(1, n)
    with pytest.raises(CircuitProtocolError, match="more than 8192"):
        seq.arrive(1, -1)
    assert seq.queued == MAX_OUT_OF_ORDER_CELLS
    # The missing first message releases them all, in order.
    assert seq.arrive(0, -2) == [-2, *range(MAX_OUT_OF_ORDER_CELLS)]


def test_a_switch_may_reach_the_last_sequence_number_but_not_pass_it() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    seq.arrive(0, "a")
    seq.switch(0, MAX_SEQ - 1)
    assert seq.last_seq_recv[0] == MAX_SEQ and seq.switches == [1, 0]
    with pytest.raises(CircuitProtocolError, match="overflows"):
        seq.switch(0, 1)
    assert seq.last_seq_recv[0] == MAX_SEQ and seq.switches == [1, 0]
    with pytest.raises(CircuitProtocolError, match="overflow"):
        seq.arrive(0, "past the end")


def test_the_last_sequence_number_itself_is_usable() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(2)
    seq.switch(1, MAX_SEQ - 1)
    assert seq.arrive(1, "last") == [] and seq.queued == 1
    assert seq.last_seq_recv[1] == MAX_SEQ


def test_counters() -> None:
    seq: ConfluxSequencer[str] = ConfluxSequencer(3)
    seq.arrive(0, "a")
    seq.switch(2, 1)
    seq.switch(2, 0)
    seq.arrive(2, "b")
    seq.arrive(2, "c")
    seq.switch(1, 3)
    seq.arrive(1, "d")
    assert seq.received == [1, 1, 2] and seq.switches == [0, 1, 2]
    assert seq.last_seq_recv == [1, 4, 3] and seq.last_seq_delivered == 4


# ---- property: a spec-following sender, any arrival interleaving -----------------------------


def sender(legs: int, choice: list[int]) -> list[list[Event]]:
    """What each leg carries when message ``n + 1`` (numbered from 1) goes on leg
    ``choice[n]``, as prop 329 §2.6's sender does: on changing legs, a SWITCH on the new leg
    with the absolute number last sent minus the new leg's last number, before the message."""
    out: list[list[Event]] = [[] for _ in range(legs)]
    last_sent = [0] * legs
    previous: int | None = None
    for n, leg in enumerate(choice):
        if previous is not None and leg != previous:
            relative = n - last_sent[leg]
            assert relative > 0
            out[leg].append(("switch", relative))
            last_sent[leg] = n
        out[leg].append(("msg", n + 1))
        last_sent[leg] += 1
        previous = leg
    return out


@st.composite
def split_and_arrival(draw: st.DrawFn) -> tuple[list[list[Event]], list[int]]:
    legs = draw(st.integers(2, 3))
    choice = draw(st.lists(st.integers(0, legs - 1), min_size=1, max_size=120))
    per_leg = sender(legs, choice)
    labels = [leg for leg, events in enumerate(per_leg) for _ in events]
    return per_leg, draw(st.permutations(labels))


@settings(max_examples=200, deadline=None)
@given(split_and_arrival())
def test_any_split_and_interleaving_delivers_in_order(
    case: tuple[list[list[Event]], list[int]],
) -> None:
    per_leg, order = case
    total = sum(kind == "msg" for events in per_leg for kind, _ in events)
    seq: ConfluxSequencer[int] = ConfluxSequencer(len(per_leg))
    assert feed(seq, per_leg, order) == list(range(1, total + 1))
    assert seq.queued == 0 and seq.last_seq_delivered == total
    assert seq.received == [sum(k == "msg" for k, _ in events) for events in per_leg]
    assert seq.switches == [sum(k == "switch" for k, _ in events) for events in per_leg]
