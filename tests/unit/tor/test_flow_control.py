"""tor.flow_control and the XON/XOFF bodies: byte-exact messages (prop 344's trunnel layout),
when a reader sends XOFF and XON with which rate, and the sender's side (tor 0.4.8's
congestion_control_flow.c, client side)."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.congestion import CongestionParams
from webtunnel_pt.tor.flow_control import StreamFlow
from webtunnel_pt.tor.relay_msgs import decode_xoff, decode_xon, xoff_body, xon_body

LIMIT = 500 * 498  # cc_xoff_client cells of 498 bytes
MS = 1000  # microseconds


def test_xoff_body() -> None:
    assert xoff_body() == b"\x00"
    decode_xoff(b"\x00")
    decode_xoff(b"\x00" + bytes(497))  # the cell's padding: ignored, as tor's parser does


def test_xon_body() -> None:
    assert xon_body(0) == bytes(5)
    assert xon_body(0x01020304) == bytes.fromhex("00 01020304")
    assert decode_xon(bytes.fromhex("00 00000bb8") + bytes(10)) == 3000


@pytest.mark.parametrize(
    ("body", "match"),
    [(b"", "empty"), (b"\x01", "version 1"), (b"\x00\x00\x00\x01", "truncated")],
)
def test_malformed_xon(body: bytes, match: str) -> None:
    with pytest.raises(CircuitProtocolError, match=match):
        decode_xon(body)


@pytest.mark.parametrize("body", [b"", b"\x02"])
def test_malformed_xoff(body: bytes) -> None:
    with pytest.raises(CircuitProtocolError, match="XOFF"):
        decode_xoff(body)


@pytest.mark.parametrize("rate", [-1, 1 << 32])
def test_xon_rate_must_fit(rate: int) -> None:
    with pytest.raises(LocalProtocolError):
        xon_body(rate)


# ---- the reader's side ------------------------------------------------------------------------


def test_no_xoff_up_to_the_limit() -> None:
    flow = StreamFlow()
    assert flow.xoff_limit == LIMIT
    for buffered in range(498, LIMIT + 1, 498):
        assert flow.delivered(buffered, 0) is None
    assert not flow.xoff_sent


def test_xoff_once_past_the_limit() -> None:
    flow = StreamFlow()
    assert flow.delivered(LIMIT + 1, 0) == b"\x00"
    assert flow.xoff_sent
    assert flow.delivered(LIMIT + 499, 0) is None  # what was in flight still arrives
    assert flow.over_limit(LIMIT + 499) == 499


def test_the_xoff_hook_hears_each_xoff_once() -> None:
    flow = StreamFlow()
    heard: list[int] = []
    flow.on_xoff_sent = lambda: heard.append(flow.xoffs_sent)
    for buffered in range(498, LIMIT + 1, 498):
        flow.delivered(buffered, 0)
    assert heard == []
    flow.delivered(LIMIT + 1, 0)
    flow.delivered(LIMIT + 499, 0)
    assert heard == [1]  # counted before the hook runs; no second XOFF while paused


def test_xoff_limit_is_the_consensus_param() -> None:
    flow = StreamFlow(CongestionParams(xoff_client=10))
    assert flow.delivered(4980, 0) is None
    assert flow.delivered(4981, 0) == b"\x00"


def test_xon_without_rate_once_drained() -> None:
    """Drained before xon_rate cells' worth was read: XON with no advice (rate 0)."""
    flow = StreamFlow()
    flow.delivered(LIMIT + 1, 0)
    assert flow.drained(100_000, LIMIT + 1 - 100_000, 100 * MS) is None  # still buffered
    assert flow.drained(LIMIT + 1 - 100_000, 0, 200 * MS) == bytes(5)
    assert not flow.xoff_sent


def test_xon_carries_the_drain_rate() -> None:
    flow = StreamFlow()
    flow.delivered(LIMIT + 1, 0)
    assert flow.drained(1, 599_999, 1000 * MS) is None  # the drain clock starts
    # 300 000 bytes in 100 ms: 3000 kB/s (bytes per microsecond * 1000).
    assert flow.drained(300_000, 299_999, 1100 * MS) is None
    assert flow.ewma_drain_rate == 3000
    assert flow.drained(299_999, 0, 1200 * MS) == xon_body(3000)
    # Empty after a rate's worth of reading: tor doubles the rate it advertises...
    assert flow.ewma_drain_rate == 6000
    # ... and, with no XOFF outstanding, a rate off by more than 25 % goes out as an XON.
    assert flow.drained(0, 0, 1300 * MS) == xon_body(6000)
    assert flow.drained(0, 0, 1400 * MS) is None  # unchanged since


def test_xoff_clears_the_rate() -> None:
    flow = StreamFlow()
    flow.ewma_drain_rate = 1234
    flow.delivered(LIMIT + 1, 0)
    assert flow.ewma_drain_rate == 0


# ---- the sender's side --------------------------------------------------------------------------


def test_xoff_then_xon() -> None:
    flow = StreamFlow()
    flow.on_xoff(b"\x00", 1)
    assert flow.xoff_received
    assert flow.on_xon(xon_body(100)) is True
    assert not flow.xoff_received
    assert flow.on_xon(xon_body(100)) is False  # nothing was stopped


def test_two_xoffs_without_xon_break_the_protocol() -> None:
    flow = StreamFlow()
    flow.on_xoff(b"\x00", 7)
    with pytest.raises(CircuitProtocolError, match="two XOFFs"):
        flow.on_xoff(b"\x00", 7)
