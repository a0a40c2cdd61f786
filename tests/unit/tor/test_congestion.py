"""tor.congestion: the consensus parameters (tor's defaults), the SENDME cadence with congestion
control, and the TOR_VEGAS state machine step by step with a scripted clock (prop 324;
tor 0.4.8's congestion_control_vegas.c)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from webtunnel_pt.errors import CircuitProtocolError
from webtunnel_pt.tor.congestion import (
    CongestionParams,
    CongestionWindow,
    check_sendme_inc,
    n_count_ewma,
    overshoot_cap_cells,
)
from webtunnel_pt.tor.netview import PARAM_BOUNDS
from webtunnel_pt.tor.relay_msgs import Sendme

INC = 31


class Clock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000


def digest_of(n: int) -> bytes:
    return n.to_bytes(20, "big")


class Sender:
    """A CongestionWindow we send through, with the digests it recorded per cell number."""

    def __init__(self, params: CongestionParams | None = None) -> None:
        self.clock = Clock()
        self.window = CongestionWindow(INC, params, self.clock)
        self.sent = 0

    def send(self, cells: int) -> None:
        for _ in range(cells):
            self.sent += 1
            self.window.packaged(lambda n=self.sent: digest_of(n))

    def fill(self) -> None:
        self.send(self.window.package)

    def ack(self, rtt_ms: float) -> bool:
        """The exit's SENDME for the oldest 31 cells, ``rtt_ms`` after the 31st was sent
        (the clock only moves forward: sent-at times are all 'now' in these tests)."""
        self.clock.advance_ms(rtt_ms)
        expected = self.window.expected_digests[0]
        reopened = self.window.sendme_received(Sendme(1, expected), 1, 2)
        self.clock.advance_ms(-rtt_ms)  # keep later sends at the same instant
        return reopened


# ---- parameters ---------------------------------------------------------------------------------


def test_defaults_are_the_consensus_defaults() -> None:
    """The dataclass defaults are PARAM_BOUNDS' (tor's), and every field has a consensus name."""
    params = CongestionParams.from_consensus(lambda name: PARAM_BOUNDS[name][0])
    assert params == CongestionParams()
    for f in fields(CongestionParams):
        default, low, high = PARAM_BOUNDS[f"cc_{f.name}"]
        assert low <= default <= high


def test_tor_defaults() -> None:
    """tor 0.4.8+: Vegas with sendme_inc 31, cwnd 124..INT32_MAX, exit alpha/beta/gamma/delta
    186/248/186/310, slow start capped at 600 (RFC 3742) and ended at 5000."""
    p = CongestionParams()
    assert (p.sendme_inc, p.cwnd_init, p.cwnd_min, p.cwnd_inc, p.cwnd_inc_rate) == (
        31, 124, 124, 1, 31,
    )  # fmt: skip
    assert (p.vegas_alpha_exit, p.vegas_beta_exit, p.vegas_gamma_exit, p.vegas_delta_exit) == (
        186, 248, 186, 310,
    )  # fmt: skip
    assert (p.sscap_exit, p.ss_max, p.cwnd_full_gap, p.cwnd_full_minpct) == (600, 5000, 4, 25)
    assert (p.xoff_client, p.xon_rate, p.xon_change_pct, p.xon_ewma_cnt) == (500, 500, 25, 2)
    assert PARAM_BOUNDS["cc_alg"] == (2, 0, 3)
    assert overshoot_cap_cells(p) == 10_000


def test_from_consensus_reads_cc_names() -> None:
    values = {"cc_cwnd_init": 500, "cc_sendme_inc": 33, "cc_xoff_client": 250}
    params = CongestionParams.from_consensus(lambda n: values.get(n, PARAM_BOUNDS[n][0]))
    assert (params.cwnd_init, params.sendme_inc, params.xoff_client) == (500, 33, 250)


@pytest.mark.parametrize("inc", [15, 31, 62])
def test_sendme_inc_within_a_factor_of_two(inc: int) -> None:
    check_sendme_inc(inc, 31)
    assert CongestionWindow(inc).sendme_inc == inc


@pytest.mark.parametrize("inc", [0, 14, 63, 255])
def test_sendme_inc_out_of_range_is_refused(inc: int) -> None:
    with pytest.raises(CircuitProtocolError, match="sendme_inc"):
        CongestionWindow(inc)


def test_n_count_ewma() -> None:
    assert n_count_ewma(100, 0, 2) == 100  # the first sample is taken as it is
    assert n_count_ewma(100, 40, 2) == (200 + 40) // 3
    assert n_count_ewma(10, 100, 10) == (20 + 900) // 11


# ---- receiving: a SENDME every sendme_inc cells -----------------------------------------------------


def test_delivered_calls_for_a_sendme_every_inc_cells() -> None:
    window = CongestionWindow(INC)
    due = [n for n in range(1, 1001) if window.delivered(2)]
    assert due == list(range(INC, 1001, INC))  # no deliver window: never overrun


# ---- sending: inflight, digests, checks --------------------------------------------------------------


def test_initial_window_and_recorded_digests() -> None:
    sender = Sender()
    assert sender.window.package == 124
    sender.fill()
    assert sender.window.package == 0 and sender.window.inflight == 124
    # The exit answers the 31st, 62nd, ... cell: those digests are expected, in order.
    assert list(sender.window.expected_digests) == [digest_of(n) for n in (31, 62, 93, 124)]


def test_sendme_for_nothing_sent_is_a_violation() -> None:
    window = CongestionWindow(INC)
    window.packaged(lambda: digest_of(1))
    with pytest.raises(CircuitProtocolError, match="never sent"):
        window.sendme_received(Sendme(1, digest_of(1)), 1, 2)


def test_sendme_with_the_wrong_digest_is_a_violation() -> None:
    sender = Sender()
    sender.send(31)
    with pytest.raises(CircuitProtocolError, match="wrong digest"):
        sender.window.sendme_received(Sendme(1, digest_of(30)), 1, 2)


def test_sendme_v0_refused_when_v1_is_required() -> None:
    sender = Sender()
    sender.send(31)
    with pytest.raises(CircuitProtocolError, match="version 0"):
        sender.window.sendme_received(Sendme(0), 1, 2)
    assert sender.window.sendme_received(Sendme(0), 0, 2) is False  # accepted when allowed


def test_sendme_reopens_a_closed_window() -> None:
    sender = Sender()
    sender.fill()
    assert sender.ack(10) is True
    assert sender.window.package > 0
    assert sender.ack(10) is False  # it was open already


# ---- Vegas ------------------------------------------------------------------------------------------


def test_slow_start_grows_by_sendme_inc_per_ack_while_the_window_is_full() -> None:
    sender = Sender()
    sender.fill()
    sender.ack(10)
    w = sender.window
    assert (w.cwnd, w.inflight, w.in_slow_start) == (124 + 31, 93, True)
    assert w.min_rtt_usec == w.ewma_rtt_usec == 10_000 and w.bdp == 124  # cwnd * min / ewma


def test_slow_start_does_not_grow_an_idle_window() -> None:
    """Less than a quarter of the window in flight (and more than cc_cwnd_full_gap sendme_incs
    short of it): not full, no growth."""
    sender = Sender(CongestionParams(cwnd_init=1000))
    sender.send(62)
    sender.ack(10)
    sender.ack(10)
    assert sender.window.cwnd == 1000 and sender.window.inflight == 0


def test_slow_start_past_sscap_grows_slower() -> None:
    """RFC 3742: above cc_sscap_exit the increment is sendme_inc * sscap / (2 * cwnd)."""
    sender = Sender(CongestionParams(cwnd_init=1200))
    sender.fill()
    sender.ack(10)
    assert sender.window.cwnd == 1200 + (31 * 600 + 1200) // 2400


def test_a_queue_below_gamma_keeps_slow_start_growing() -> None:
    sender = Sender()
    sender.fill()
    sender.ack(10)  # min RTT 10 ms; cwnd 155
    sender.fill()
    sender.ack(40)  # ewma (2*40 + 10) / 3 = 30 ms: bdp = 155 * 10 / 30 = 51, queue 104
    w = sender.window
    assert (w.ewma_rtt_usec, w.min_rtt_usec, w.bdp) == (30_000, 10_000, 51)
    assert w.in_slow_start and w.cwnd == 155 + 31  # 104 < gamma 186: still growing


def test_a_queue_past_gamma_ends_slow_start_at_bdp_plus_gamma() -> None:
    sender = Sender(CongestionParams(cwnd_init=400))
    sender.fill()
    sender.ack(10)  # cwnd 431
    sender.fill()
    sender.ack(100)  # ewma (200 + 10) / 3 = 70 ms: bdp = 431 * 10 / 70 = 61, queue 370
    w = sender.window
    assert not w.in_slow_start and w.bdp == 61 and w.cwnd == 61 + 186


def test_slow_start_ends_at_ss_max() -> None:
    sender = Sender(CongestionParams(ss_max=600, cwnd_init=590))
    sender.fill()
    sender.ack(10)
    assert sender.window.cwnd == 600 and not sender.window.in_slow_start


def steady(cwnd: int = 620, **params: int) -> Sender:
    """Out of slow start (ss_max = cwnd), min RTT 10 ms."""
    sender = Sender(CongestionParams(ss_max=cwnd, cwnd_init=cwnd - 1, **params))
    sender.fill()
    sender.ack(10)
    assert not sender.window.in_slow_start and sender.window.cwnd == cwnd
    return sender


def acks_until_update(sender: Sender, rtt_ms: float) -> int:
    """Ack (keeping the window full) until Vegas touches cwnd; how many acks it took."""
    w = sender.window
    before = w.cwnd
    for n in range(1, 100):
        sender.fill()
        sender.ack(rtt_ms)
        if w.cwnd != before:
            return n
    raise AssertionError("cwnd never changed")


def test_steady_state_grows_by_cwnd_inc_once_per_window_below_alpha() -> None:
    sender = steady()
    w = sender.window
    # cwnd_update_rate = (620 + 31 * 31 / 2) / (31 * 31) = 1: every ack may update.
    assert w.next_cc_event == 1
    acks_until_update(sender, 10)
    assert w.cwnd == 621  # queue 0 < alpha, window full: + cc_cwnd_inc (1)


def test_steady_state_shrinks_above_beta_and_drops_above_delta() -> None:
    sender = steady(1000)
    w = sender.window
    # ewma (2 * 15 + 10) / 3 = 13.3 ms: bdp = 1000 * 10 / 13.3 = 750, queue 250 > beta 248: - 1
    sender.fill()
    sender.ack(15)
    assert w.cwnd == 999
    # A long queue: past delta, down to bdp + delta - inc.
    sender.fill()
    sender.ack(100)
    assert w.cwnd == w.bdp + 310 - 1


def test_cwnd_never_below_cwnd_min() -> None:
    sender = steady(400, vegas_delta_exit=50)
    sender.fill()
    sender.ack(1000)  # bdp 5, queue 395 > delta: 5 + 50 - 1, raised to cwnd_min
    assert sender.window.cwnd == 124


def test_cwnd_max_caps_the_window() -> None:
    sender = Sender(CongestionParams(cwnd_max=500, cwnd_init=480))
    sender.fill()
    sender.ack(10)
    assert sender.window.cwnd == 500


def test_a_stalled_clock_skips_vegas_but_still_acks() -> None:
    sender = Sender()
    sender.fill()
    sender.ack(0)
    w = sender.window
    assert w.cwnd == 124 and w.inflight == 93 and w.clock_broken and w.bdp == 124


def test_params_are_validated_by_the_caller_not_here() -> None:
    """The window takes what the consensus says; only sendme_inc is checked."""
    with pytest.raises(CircuitProtocolError):
        CongestionWindow(100, CongestionParams(sendme_inc=31))
    assert CongestionWindow(100, CongestionParams(sendme_inc=100)).sendme_inc == 100
