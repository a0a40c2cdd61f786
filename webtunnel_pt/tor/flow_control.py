"""Per-stream flow control on a circuit with congestion control: XOFF / XON instead of stream
SENDMEs (prop 344; tor-spec "Flow control"; tor 0.4.8's congestion_control_flow.c, client side).

    flow = StreamFlow(params)                       # CongestionParams: xoff_client, xon_* ...
    # receiving: the exit sends, the application reads from our buffer
    body = flow.delivered(buffered, now_usec)       # after DATA: XOFF body (or None)
    body = flow.drained(nbytes, buffered, now_usec) # after a read: XON body (or None)
    # sending: the exit reads what we send
    flow.on_xoff(body, stream_id); flow.on_xon(body)   # stop / resume packaging

Receiving: once a stream's unread data passes ``cc_xoff_client`` cells' worth (of 498 bytes)
we send XOFF; the exit stops reading its side, and what it already sent still arrives (the
circuit bounds that: :func:`~webtunnel_pt.tor.congestion.overshoot_cap_cells`). Once the
application has drained the buffer we send XON carrying our drain rate (kB/s, an EWMA over
``cc_xon_rate`` cells' worth of reads); while no XOFF is outstanding, an XON also goes out
when that rate moves by more than ``cc_xon_change_pct`` percent. Sending: XOFF from the exit
stops our packaging on that stream until its XON (whose rate advice we do not enforce: we
never send faster than the windows allow anyway). Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from webtunnel_pt.errors import CircuitProtocolError
from webtunnel_pt.tor.cells import MAX_RELAY_DATA
from webtunnel_pt.tor.congestion import CongestionParams, n_count_ewma
from webtunnel_pt.tor.relay_msgs import decode_xoff, decode_xon, xoff_body, xon_body

__all__ = ["MAX_EXPECTED_CELL_BURST", "StreamFlow"]

#: Cells that may arrive in one burst before we look at the rate again (tor's constant).
MAX_EXPECTED_CELL_BURST = 32
#: Rates and byte counts are kept in 32 bits, as in tor.
UINT32_MAX = 0xFFFFFFFF
INT32_MAX = 0x7FFFFFFF


class StreamFlow:
    """XON/XOFF state of one stream, both directions."""

    def __init__(self, params: CongestionParams | None = None) -> None:
        p = params if params is not None else CongestionParams()
        self.xoff_limit = p.xoff_client * MAX_RELAY_DATA
        self.xon_rate_bytes = p.xon_rate * MAX_RELAY_DATA
        self.xon_change_pct = p.xon_change_pct
        self.xon_ewma_cnt = p.xon_ewma_cnt
        #: Unread bytes up to which :meth:`delivered` has nothing to do.
        self.quiet_bytes = min(self.xoff_limit, MAX_EXPECTED_CELL_BURST * MAX_RELAY_DATA)
        #: XOFFs and XONs we sent (what a test or a log can look at).
        self.xoffs_sent = 0
        self.xons_sent = 0
        #: Called when an XOFF is decided (its body about to be sent), for whoever waits for it.
        self.on_xoff_sent: Callable[[], None] | None = None
        # receiving
        self.xoff_sent = False
        self.ewma_drain_rate = 0  # kB/s
        self.ewma_rate_last_sent = 0
        self.drain_start_usec = 0
        self.drained_bytes = 0
        self.prev_drained_bytes = 0
        # sending
        self.xoff_received = False

    # ---- receiving -------------------------------------------------------------------------

    def delivered(self, buffered: int, now_usec: int) -> bytes | None:
        """A DATA cell was added: ``buffered`` bytes now wait unread. The XOFF (or XON rate
        update) body to send, if any (tor's flow_control_decide_xoff)."""
        if buffered > self.xoff_limit and not self.xoff_sent:
            self.xoff_sent = True
            self.xoffs_sent += 1
            self.ewma_drain_rate = 0  # the rate so far says nothing about a blocked reader
            if self.on_xoff_sent is not None:
                self.on_xoff_sent()
            return xoff_body()
        if buffered > MAX_EXPECTED_CELL_BURST * MAX_RELAY_DATA:
            return self.drained(0, buffered, now_usec)
        return None

    def over_limit(self, buffered: int) -> int:
        """Bytes of ``buffered`` past the XOFF limit (what the exit sent after being told)."""
        return max(0, buffered - self.xoff_limit)

    def drained(self, nbytes: int, buffered: int, now_usec: int) -> bytes | None:
        """The application read ``nbytes``; ``buffered`` bytes are left. The XON body to send,
        if any (tor's flow_control_decide_xon)."""
        if self.drained_bytes >= UINT32_MAX - nbytes:
            self.drained_bytes //= 2
            if self.drain_start_usec:
                self.drain_start_usec = now_usec - (now_usec - self.drain_start_usec) // 2
        self.drained_bytes += nbytes
        if not self.drain_start_usec and buffered > 0:
            self.drain_start_usec = now_usec
            self.drained_bytes = 0
        if self.drain_start_usec and self.drained_bytes > self.xon_rate_bytes:
            self._update_rate(now_usec)
        body = None
        if not self.xoff_sent:
            if self._rate_changed():
                body = self._xon()
        elif buffered == 0:
            body = self._xon()
        if buffered == 0:
            self.drain_start_usec = 0
            if self.drained_bytes >= self.xon_rate_bytes and self.ewma_rate_last_sent:
                self.ewma_drain_rate = min(INT32_MAX, 2 * self.ewma_drain_rate)
                self.prev_drained_bytes = self.drained_bytes
                self.drained_bytes = 0
        return body

    def _update_rate(self, now_usec: int) -> None:
        if self.prev_drained_bytes == 0:
            self.prev_drained_bytes = self.drained_bytes
        rate = self._drain_rate(now_usec)
        self.prev_drained_bytes = self.drained_bytes
        if rate:
            self.ewma_drain_rate = n_count_ewma(rate, self.ewma_drain_rate, self.xon_ewma_cnt)
            self.drained_bytes = 0
            self.drain_start_usec = 0

    def _drain_rate(self, now_usec: int) -> int:
        """kB/s (bytes per microsecond * 1000) since the drain started; 0 if no time passed."""
        delta = now_usec - self.drain_start_usec
        if delta <= 0:
            return 0
        return min(INT32_MAX, max(1, self.prev_drained_bytes * 1000 // delta))

    def _rate_changed(self) -> bool:
        last = self.ewma_rate_last_sent
        if not last:
            return False
        pct = self.xon_change_pct
        rate = self.ewma_drain_rate
        return rate > (100 + pct) * last // 100 or rate < (100 - pct) * last // 100

    def _xon(self) -> bytes:
        self.ewma_rate_last_sent = self.ewma_drain_rate
        self.xoff_sent = False
        self.xons_sent += 1
        return xon_body(self.ewma_drain_rate)

    # ---- sending ---------------------------------------------------------------------------

    def on_xoff(self, body: bytes, stream_id: int) -> None:
        """The exit's XOFF: stop packaging. A second one before XON breaks the protocol."""
        decode_xoff(body)
        if self.xoff_received:
            raise CircuitProtocolError(f"two XOFFs without an XON on stream {stream_id}")
        self.xoff_received = True

    def on_xon(self, body: bytes) -> bool:
        """The exit's XON (the rate advice is not used): resume; True if we were stopped."""
        decode_xon(body)
        stopped = self.xoff_received
        self.xoff_received = False
        return stopped
