"""Congestion control towards a hop that negotiated it: tor's TOR_VEGAS window for what we send,
and the SENDME cadence for what we receive (prop 324; tor-spec "Congestion control", "SENDME
flow control" with CC on; tor 0.4.8's congestion_control_common.c and _vegas.c).

    params = CongestionParams.from_consensus(view.param)        # tor's defaults when absent
    window = CongestionWindow(sendme_inc=31, params=params)     # sendme_inc: the exit's answer
    if window.delivered(hop):             # a DATA cell came: every sendme_inc-th one calls for
        send SENDME v1 (digest of that cell)   # an authenticated circuit SENDME, sent at once
    window.package                        # cells we may send now: cwnd - inflight (or 0)
    window.packaged(lambda: forward_digest)            # we sent a DATA cell
    reopened = window.sendme_received(sendme, accept_version, hop)   # Vegas runs here

Receiving: no deliver window; the exit's own congestion window and our XOFFs
(:mod:`~webtunnel_pt.tor.flow_control`) bound what arrives, and :func:`overshoot_cap_cells`
bounds what a relay may send past them. Sending: the exit acknowledges every ``sendme_inc``
cells with a SENDME carrying the digest recorded when we sent the last of them; each SENDME's
round trip (timed from that cell) feeds the RTT estimates, the Vegas BDP estimate
(``cwnd * min_rtt / ewma_rtt``) and the window update: limited slow start (RFC 3742) until the
queue estimate reaches gamma, then once per window: above delta drop to BDP + delta, above beta
shrink, below alpha (window full) grow. Times are integer microseconds, as in tor; the clock is
injected. Sans-I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields

from webtunnel_pt.errors import CircuitProtocolError
from webtunnel_pt.tor.circuit_flow import check_circuit_sendme
from webtunnel_pt.tor.relay_msgs import Sendme

__all__ = [
    "CC_ALG_VEGAS",
    "CongestionParams",
    "CongestionWindow",
    "check_sendme_inc",
    "n_count_ewma",
    "overshoot_cap_cells",
]

#: cc_alg values (prop 324 §6.5.1): 0 is the fixed windows, 2 Vegas (tor's only one left).
CC_ALG_FIXED = 0
CC_ALG_VEGAS = 2
#: tor accepts an exit's sendme_inc only within this factor of the consensus value.
SENDME_INC_NEGOTIATE_FACTOR = 2
#: An RTT this many times off the EWMA means the monotonic clock jumped (tor's heuristic).
CLOCK_DISCREPANCY_RATIO = 5000
#: Microseconds per second.
USEC = 1_000_000


@dataclass(frozen=True)
class CongestionParams:
    """The consensus parameters of congestion and flow control, with tor's defaults; the
    names are the consensus names without ``cc_`` (exit-path Vegas values)."""

    sendme_inc: int = 31
    cwnd_init: int = 124
    cwnd_min: int = 124
    cwnd_max: int = 0x7FFFFFFF
    cwnd_inc: int = 1
    cwnd_inc_pct_ss: int = 100
    cwnd_inc_rate: int = 31
    ewma_cwnd_pct: int = 50
    ewma_max: int = 10
    ewma_ss: int = 2
    rtt_reset_pct: int = 100
    vegas_alpha_exit: int = 186
    vegas_beta_exit: int = 248
    vegas_gamma_exit: int = 186
    vegas_delta_exit: int = 310
    sscap_exit: int = 600
    ss_max: int = 5000
    cwnd_full_gap: int = 4
    cwnd_full_minpct: int = 25
    cwnd_full_per_cwnd: int = 1
    xoff_client: int = 500
    xon_rate: int = 500
    xon_change_pct: int = 25
    xon_ewma_cnt: int = 2

    @classmethod
    def from_consensus(cls, param: Callable[[str], int]) -> CongestionParams:
        """Read every field as ``cc_<name>`` through ``param`` (``NetworkView.param``: the
        default when absent, clamped into tor's bounds)."""
        return cls(**{f.name: param(f"cc_{f.name}") for f in fields(cls)})


def check_sendme_inc(sendme_inc: int, consensus_sendme_inc: int) -> None:
    """The exit's sendme_inc must be non-zero and within a factor of 2 of the consensus's
    (tor's congestion_control_validate_sendme_increment); otherwise the circuit is unusable."""
    factor = SENDME_INC_NEGOTIATE_FACTOR
    if not (
        0 < sendme_inc
        and consensus_sendme_inc // factor <= sendme_inc <= factor * consensus_sendme_inc
    ):
        raise CircuitProtocolError(
            f"exit offered sendme_inc {sendme_inc}; the consensus says {consensus_sendme_inc}"
        )


def overshoot_cap_cells(params: CongestionParams) -> int:
    """Cells a relay may queue for us beyond what flow control asked for: twice the slow-start
    ceiling of its window (``cc_ss_max``). Past this, on a circuit's inbox or on the streams it
    was told to stop (XOFF), the relay is flooding and the circuit is destroyed."""
    return 2 * params.ss_max


def n_count_ewma(current: int, previous: int, n: int) -> int:
    """tor's N-count EWMA: ``(2 * current + (N - 1) * previous) / (N + 1)``; the first value
    is taken as it is."""
    if previous == 0:
        return current
    return (2 * current + (n - 1) * previous) // (n + 1)


def _percent_max_mix(a: int, b: int, pct_max: int) -> int:
    high, low = max(a, b), min(a, b)
    return pct_max * high // 100 + (100 - pct_max) * low // 100


class CongestionWindow:
    """Congestion control towards one hop (the exit): the Vegas window for sending and the
    SENDME cadence for receiving. Same interface as
    :class:`~webtunnel_pt.tor.circuit_flow.HopWindows`."""

    #: Streams at this hop use XON/XOFF instead of stream windows (prop 344).
    flow_control = True

    def __init__(
        self,
        sendme_inc: int,
        params: CongestionParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.params = params if params is not None else CongestionParams()
        check_sendme_inc(sendme_inc, self.params.sendme_inc)
        self.sendme_inc = sendme_inc
        self.clock = clock
        self.cwnd = self.params.cwnd_init
        self.inflight = 0
        self.in_slow_start = True
        self.cwnd_full = False
        self.min_rtt_usec = 0
        self.ewma_rtt_usec = 0
        self.max_rtt_usec = 0
        self.bdp = 0
        self.next_cc_event = self._cwnd_update_rate()
        self.next_cwnd_event = 0
        self.clock_broken = False
        self._received = 0
        self._sent_at: deque[int] = deque()
        self.expected_digests: deque[bytes] = deque()

    def now_usec(self) -> int:
        return round(self.clock() * USEC)

    # ---- receiving ---------------------------------------------------------------------------

    def delivered(self, hop: int) -> bool:
        """Count one received DATA cell; True when it is the ``sendme_inc``-th since the last
        SENDME, which goes out now with that cell's digest (tor-spec: sent on receipt, so the
        exit can time it). ``hop`` is unused: nothing here can be overrun."""
        del hop
        self._received += 1
        if self._received < self.sendme_inc:
            return False
        self._received = 0
        return True

    # ---- sending -----------------------------------------------------------------------------

    @property
    def package(self) -> int:
        """DATA cells that may be sent now (the window may have shrunk below inflight)."""
        return max(0, self.cwnd - self.inflight)

    def packaged(self, digest: Callable[[], bytes]) -> None:
        """Count one sent DATA cell. When it is the one the exit's next SENDME will answer
        (inflight becomes a multiple of sendme_inc), record ``digest()`` and the time."""
        if self.inflight and (self.inflight + 1) % self.sendme_inc == 0:
            self.expected_digests.append(digest())
            self._sent_at.append(self.now_usec())
        self.inflight += 1

    def sendme_received(self, sendme: Sendme, accept_version: int, hop: int) -> bool:
        """Check a circuit SENDME (version, digest), run Vegas and take ``sendme_inc`` cells
        off inflight; True if the window was closed and is open now."""
        check_circuit_sendme(sendme, accept_version, self.expected_digests, hop)
        was_closed = self.package == 0
        self._on_ack(self._sent_at.popleft())
        self.cwnd = min(self.cwnd, self.params.cwnd_max)
        return was_closed and self.package > 0

    # ---- Vegas (congestion_control_vegas_process_sendme) -------------------------------------

    def _on_ack(self, sent_at: int) -> None:
        if self.next_cc_event:
            self.next_cc_event -= 1
        if self.next_cwnd_event:
            self.next_cwnd_event -= 1
        if self._update_estimates(sent_at):
            self._vegas()
        self.inflight = max(0, self.inflight - self.sendme_inc)

    def _vegas(self) -> None:
        p = self.params
        queue_use = max(0, self.cwnd - self.bdp)
        if self.inflight + p.cwnd_full_gap * self.sendme_inc >= self.cwnd:
            self.cwnd_full = True
        elif 100 * self.inflight < p.cwnd_full_minpct * self.cwnd:
            self.cwnd_full = False
        if self.in_slow_start:
            if queue_use < p.vegas_gamma_exit:
                if self.cwnd_full:
                    inc = self._ss_inc()
                    self.cwnd += inc
                    if inc * self._sendme_per_cwnd() <= p.cwnd_inc * p.cwnd_inc_rate:
                        self.in_slow_start = False
            else:
                self.cwnd = self.bdp + p.vegas_gamma_exit
                self.in_slow_start = False
            if self.cwnd >= p.ss_max:
                self.cwnd = p.ss_max
                self.in_slow_start = False
        elif self.next_cc_event == 0:
            if queue_use > p.vegas_delta_exit:
                self.cwnd = self.bdp + p.vegas_delta_exit - p.cwnd_inc
            elif queue_use > p.vegas_beta_exit:
                self.cwnd -= p.cwnd_inc
            elif self.cwnd_full and queue_use < p.vegas_alpha_exit:
                self.cwnd += p.cwnd_inc
            self.cwnd = max(self.cwnd, p.cwnd_min)
        if self.next_cwnd_event == 0:
            self.next_cwnd_event = self._sendme_per_cwnd()
        if self.next_cc_event == 0:
            self.next_cc_event = self._cwnd_update_rate()
        if p.cwnd_full_per_cwnd:
            reset = self.next_cwnd_event == self._sendme_per_cwnd()
        else:
            reset = self.next_cc_event == self._cwnd_update_rate()
        if reset:
            self.cwnd_full = False

    def _ss_inc(self) -> int:
        """RFC 3742 limited slow start: ``cwnd_inc_pct_ss`` % of sendme_inc below the cap,
        then ``sendme_inc * sscap / (2 * cwnd)`` (at least 1)."""
        p = self.params
        if self.cwnd <= p.sscap_exit:
            return (p.cwnd_inc_pct_ss * self.sendme_inc + 50) // 100
        return max((self.sendme_inc * p.sscap_exit + self.cwnd) // (2 * self.cwnd), 1)

    def _sendme_per_cwnd(self) -> int:
        return (self.cwnd + self.sendme_inc // 2) // self.sendme_inc

    def _cwnd_update_rate(self) -> int:
        if self.in_slow_start:
            return 1
        step = self.params.cwnd_inc_rate * self.sendme_inc
        return (self.cwnd + step // 2) // step

    def _ewma_count(self) -> int:
        p = self.params
        if self.in_slow_start:
            count = p.ewma_ss
        else:
            count = min(self._cwnd_update_rate() * p.ewma_cwnd_pct // 100, p.ewma_max)
        return max(count, 2)

    # ---- RTT and BDP (congestion_control_update_circuit_estimates) ---------------------------

    def _update_estimates(self, sent_at: int) -> bool:
        """Update RTT then BDP; False when no RTT could be measured (Vegas skips this ack)."""
        rtt = self._update_rtt(self.now_usec() - sent_at)
        if not self.ewma_rtt_usec:
            self.bdp = self.cwnd  # the clock never worked on this circuit
            return False
        self.bdp = self.cwnd * self.min_rtt_usec // self.ewma_rtt_usec
        return rtt != 0

    def _update_rtt(self, rtt: int) -> int:
        if self._clock_stalled_or_jumped(self.ewma_rtt_usec, rtt):
            return 0
        self.ewma_rtt_usec = n_count_ewma(rtt, self.ewma_rtt_usec, self._ewma_count())
        self.max_rtt_usec = max(self.max_rtt_usec, rtt)
        if self.min_rtt_usec == 0:
            self.min_rtt_usec = self.ewma_rtt_usec
        elif self.cwnd == self.params.cwnd_min and not self.in_slow_start:
            # Out of a wedge: the window sits at its minimum, perhaps for a too-low min RTT.
            self.min_rtt_usec = _percent_max_mix(
                self.ewma_rtt_usec, self.min_rtt_usec, self.params.rtt_reset_pct
            )
        elif self.ewma_rtt_usec < self.min_rtt_usec:
            self.min_rtt_usec = self.ewma_rtt_usec
        return rtt

    def _clock_stalled_or_jumped(self, old: int, new: int) -> bool:
        if new <= 0:
            self.clock_broken = True
            return True
        if self.in_slow_start or not self.ewma_rtt_usec:
            return False  # too few samples for the heuristics
        if old > new * CLOCK_DISCREPANCY_RATIO:
            return self.clock_broken
        if new > old * CLOCK_DISCREPANCY_RATIO:
            return True
        self.clock_broken = False
        return False
