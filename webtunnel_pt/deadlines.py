"""Every deadline of webtunnel-pt, in one place, and the budget a wait takes its share from.

Sans-I/O. A caller with a budget hands a :class:`Deadline` down; each step waits for what is left
of it (:meth:`Deadline.remaining`), optionally capped by the step's own limit
(:meth:`Deadline.cap`), so no inner step can outlive the budget its caller was given.

Defaults, by where they apply::

    PT listener   SOCKS_HANDSHAKE_TIMEOUT_S   tor's SOCKS request, from accept to the request
                  SHUTDOWN_GRACE_S            polite close of live connections at a stop
    bridge dial   DIAL_TIMEOUT_S              DNS + TCP (or proxy) + outer TLS + upgrade
                  CONNECT_TIMEOUT_S           one TCP attempt (one address) inside the dial
    relay         HALF_CLOSED_IDLE_S          silence tolerated after one side has ended
                  CLOSE_TIMEOUT_S             flushing a closing transport
    Tor link      INNER_TLS_TIMEOUT_S         TLS with the relay inside the tunnel
                  LINK_HANDSHAKE_TIMEOUT_S    VERSIONS .. NETINFO
                  CIRCUIT_TIMEOUT_S           CREATE_FAST .. CREATED_FAST, one request/answer
                  CHANNEL_CLOSE_TIMEOUT_S     closing the inner TLS politely
    probe         PROBE_TIMEOUT_S             every layer of ``webtunnel-pt probe`` up to the
                                              descriptor (``--timeout``)
                  PROBE_CONSENSUS_TIMEOUT_S   its consensus layer, a budget of its own that
                                              starts with the layer (``--consensus-timeout``)
                  PROBE_BACKSTOP_GRACE_S      the backstop behind the per-layer deadlines
    fronts        FRONT_BOOTSTRAP_TIMEOUT_S   ``socks`` / ``fetch``: the built-in client's bootstrap
                  FRONT_STREAM_TIMEOUT_S      opening one stream (or a RESOLVE) through the exit
                  FETCH_TLS_TIMEOUT_S         ``fetch``: TLS with the destination, over 3 hops
                  FETCH_READ_IDLE_S           ``fetch``: silence between two reads of the response
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

#: tor answers each SOCKS step at once; goptlib allows 5 s for the whole handshake.
SOCKS_HANDSHAKE_TIMEOUT_S: Final = 10.0
#: At shutdown, connections get this long to close politely before they are aborted.
SHUTDOWN_GRACE_S: Final = 0.3
#: Whole dial (DNS, TCP, TLS, upgrade): a slow bridge is better retried by tor than waited for.
DIAL_TIMEOUT_S: Final = 30.0
#: One TCP connect attempt; the next address gets its chance after this.
CONNECT_TIMEOUT_S: Final = 10.0
#: After one side of a tunnel ended, a peer that never closes must not pin the connection.
HALF_CLOSED_IDLE_S: Final = 10.0
#: A closing transport gets this long to flush before it is aborted.
CLOSE_TIMEOUT_S: Final = 2.0
#: Inner TLS handshake with the relay: a relay answers in a few round trips.
INNER_TLS_TIMEOUT_S: Final = 20.0
#: VERSIONS .. NETINFO: a relay answers at once; the bridge may be far away.
LINK_HANDSHAKE_TIMEOUT_S: Final = 20.0
#: One circuit request and its answer (CREATE_FAST, BEGIN_DIR, a directory fetch step).
CIRCUIT_TIMEOUT_S: Final = 20.0
#: Closing the channel's inner TLS politely before the transport is aborted.
CHANNEL_CLOSE_TIMEOUT_S: Final = 2.0
#: Whole probe up to the descriptor: enough for a slow bridge, short enough for a human waiting.
PROBE_TIMEOUT_S: Final = 30.0
#: The probe's consensus layer: the live network's directory is ~0.6 MiB of compressed
#: consensus and ~4 MiB of microdescriptors (a cold cache), which a bridge doing 200 KB/s
#: serves in ~25 s; twice that, and still well under the fetcher's own 120 s.
PROBE_CONSENSUS_TIMEOUT_S: Final = 60.0
#: The probe's enclosing deadline is only a backstop for a step without one, so it fires this
#: much later than the per-layer deadlines.
PROBE_BACKSTOP_GRACE_S: Final = 1.0
#: Bootstrap of the built-in client behind ``socks`` and ``fetch``: connect, directory
#: (consensus + microdescriptors) and the first circuit. tor has no overall limit; on a slow
#: bridge a cold start takes a minute.
FRONT_BOOTSTRAP_TIMEOUT_S: Final = 300.0
#: Opening a stream (circuit, BEGIN, CONNECTED) or a RESOLVE for a front: tor's SocksTimeout.
FRONT_STREAM_TIMEOUT_S: Final = 120.0
#: ``fetch``: the TLS handshake with the destination, over three hops.
FETCH_TLS_TIMEOUT_S: Final = 60.0
#: ``fetch``: silence tolerated between two reads (or a write) of the HTTP exchange.
FETCH_READ_IDLE_S: Final = 120.0


class Deadline:
    """A point in monotonic time; waits ask it how long they may still take."""

    __slots__ = ("_clock", "when")

    def __init__(self, when: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.when = when
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.when - self._clock())

    def cap(self, seconds: float) -> float:
        """A step's own limit, cut to what is left of this deadline."""
        return min(seconds, self.remaining())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.when
