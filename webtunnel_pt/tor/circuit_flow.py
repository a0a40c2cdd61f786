"""Circuit-level flow control towards one hop: package and deliver windows of 1000 DATA cells,
SENDMEs per 100, authenticated SENDME v1 (tor-link.md §8.4; tor-spec §7.3, §7.3.1; prop 289).

    windows = HopWindows()
    if windows.delivered(hop):                  # a DATA cell came from the hop
        send SENDME(sendme_body(emit_version, digest_of_that_cell))
    windows.packaged(lambda: forward_digest)    # we sent a DATA cell to the hop
    reopened = windows.sendme_received(decode_sendme(body), accept_version, hop)

The digest a SENDME v1 carries is the running relay digest right after the DATA cell that
brought the sender's window to a multiple of 100 (tor records it when the package window,
decremented, is divisible by the increment); received SENDMEs must match the recorded ones in
order, and one with nothing to acknowledge breaks the protocol, as in tor's sendme.c. At most
10 digests are held (1000 / 100). Sans-I/O.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from webtunnel_pt.errors import CircuitProtocolError
from webtunnel_pt.tor.relay_msgs import Sendme

#: Circuit-level windows (tor-spec §7.3): start, SENDME increment.
CIRCUIT_WINDOW = 1000
CIRCUIT_SENDME_INCREMENT = 100
#: The SENDME versions we can emit and understand (prop 289).
MAX_SENDME_VERSION = 1


@dataclass
class HopWindows:
    """Circuit-level windows towards one hop, and the digests its SENDMEs must carry."""

    deliver: int = CIRCUIT_WINDOW
    package: int = CIRCUIT_WINDOW
    expected_digests: deque[bytes] = field(default_factory=deque)
    #: Streams at this hop use XON/XOFF (only with congestion control).
    flow_control = False

    def delivered(self, hop: int) -> bool:
        """Count one received DATA cell; True when a SENDME is due now (the window is then
        already refilled by the increment)."""
        self.deliver -= 1
        if self.deliver < 0:
            raise CircuitProtocolError(f"hop {hop + 1} overran the circuit deliver window")
        if self.deliver > CIRCUIT_WINDOW - CIRCUIT_SENDME_INCREMENT:
            return False
        self.deliver += CIRCUIT_SENDME_INCREMENT
        return True

    def packaged(self, digest: Callable[[], bytes]) -> None:
        """Count one sent DATA cell; record ``digest()`` when its SENDME will be due."""
        self.package -= 1
        if self.package % CIRCUIT_SENDME_INCREMENT == 0:
            self.expected_digests.append(digest())

    def sendme_received(self, sendme: Sendme, accept_version: int, hop: int) -> bool:
        """Check a circuit SENDME and refill the package window; True if it was closed."""
        check_circuit_sendme(sendme, accept_version, self.expected_digests, hop)
        if self.package + CIRCUIT_SENDME_INCREMENT > CIRCUIT_WINDOW:  # pragma: no cover
            raise CircuitProtocolError("circuit SENDME would overfill the package window")
        reopened = self.package == 0
        self.package += CIRCUIT_SENDME_INCREMENT
        return reopened


def check_circuit_sendme(
    sendme: Sendme, accept_version: int, expected_digests: deque[bytes], hop: int
) -> None:
    """A circuit SENDME from ``hop`` must be of an accepted version, acknowledge DATA we sent,
    and (v1) carry the digest recorded for it, which is taken off ``expected_digests``; any
    other is a :class:`CircuitProtocolError` (tor's sendme.c). Shared by the fixed windows and
    congestion control."""
    if sendme.version < accept_version:
        raise CircuitProtocolError(
            f"SENDME version {sendme.version} from hop {hop + 1}; "
            f"the consensus wants at least {accept_version}"
        )
    if not expected_digests:
        raise CircuitProtocolError(f"hop {hop + 1} sent a SENDME for DATA we never sent")
    expected = expected_digests.popleft()
    if sendme.digest is not None and not hmac.compare_digest(sendme.digest, expected):
        raise CircuitProtocolError(f"hop {hop + 1} sent a SENDME v1 with the wrong digest")
