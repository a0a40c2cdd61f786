"""Conflux (prop 329; tor-spec "Conflux"): one exit reached over two circuits ("legs") that the
exit links by a shared nonce, so it can send a stream's data on whichever leg has room in its
congestion window. The client's side of it, sans-I/O:

- the LINK / LINKED bodies (version 1: nonce, last sequence numbers sent and received, desired
  UX) and the SWITCH body (a relative sequence number);
- :class:`ConfluxSequencer`: the receive side. Multiplexed relay messages (BEGIN, DATA, END,
  CONNECTED, RESOLVE, RESOLVED, XOFF, XON: :data:`MULTIPLEXED_COMMANDS`) carry an implicit
  absolute sequence number per leg (one more than the leg's last; a SWITCH on a leg adds its
  relative number first). A message that is next in the set's order is delivered at once,
  the others wait in a bounded out-of-order queue.

Each leg keeps its own congestion control (a SENDME per ``sendme_inc`` DATA cells received on
it, whatever their order), so the windows are counted before the sequencer, as tor does.

Where tor leaves room, this client is strict: a LINKED whose nonce, version or sequence numbers
are not those of a fresh set, a SWITCH that would overflow the 64-bit sequence, a message
numbered at or below what was delivered, and an out-of-order queue over
:data:`MAX_OUT_OF_ORDER_CELLS` are protocol violations (the whole set is destroyed).

Sans-I/O.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import RelayCommand

__all__ = [
    "CONFLUX_VERSION",
    "MAX_OUT_OF_ORDER_CELLS",
    "MULTIPLEXED_COMMANDS",
    "NONCE_LEN",
    "ConfluxSequencer",
    "ConfluxUx",
    "LinkBody",
    "decode_switch",
    "encode_switch",
]

#: The only linking version there is (prop 329 §2.2).
CONFLUX_VERSION = 1
NONCE_LEN = 32
#: Relay commands whose order matters across legs: they count in the sequence (tor's
#: ``conflux_should_multiplex``). SENDME, EXTEND2, the conflux commands and the rest are
#: per-leg and never queued.
MULTIPLEXED_COMMANDS = frozenset(
    {
        RelayCommand.BEGIN,
        RelayCommand.DATA,
        RelayCommand.END,
        RelayCommand.CONNECTED,
        RelayCommand.RESOLVE,
        RelayCommand.RESOLVED,
        RelayCommand.XOFF,
        RelayCommand.XON,
    }
)
#: Messages held back waiting for an earlier one from the other leg: about 4 MiB of DATA.
#: tor bounds its queue only by its OOM handler; a client needs a fixed bound.
MAX_OUT_OF_ORDER_CELLS = 8192
_MAX_SEQ = (1 << 64) - 1
_LINK = struct.Struct("!B32sQQB")


class ConfluxUx:
    """DESIRED_UX values (prop 329 §2.2): what the sender of LINK asks the other end to
    optimise when it sends."""

    NO_OPINION = 0
    MIN_LATENCY = 1
    LOW_MEM_LATENCY = 2
    HIGH_THROUGHPUT = 3
    LOW_MEM_THROUGHPUT = 4


@dataclass(frozen=True)
class LinkBody:
    """The body of CONFLUX_LINK and CONFLUX_LINKED (version 1)."""

    nonce: bytes
    last_seqno_sent: int = 0
    last_seqno_recv: int = 0
    desired_ux: int = ConfluxUx.HIGH_THROUGHPUT

    def encode(self) -> bytes:
        if len(self.nonce) != NONCE_LEN:
            raise LocalProtocolError(f"a conflux nonce is {NONCE_LEN} bytes")
        if not (0 <= self.last_seqno_sent <= _MAX_SEQ and 0 <= self.last_seqno_recv <= _MAX_SEQ):
            raise LocalProtocolError("conflux sequence numbers are 64-bit")
        if not 0 <= self.desired_ux <= ConfluxUx.LOW_MEM_THROUGHPUT:
            raise LocalProtocolError(f"unknown conflux UX {self.desired_ux}")
        return _LINK.pack(
            CONFLUX_VERSION,
            self.nonce,
            self.last_seqno_sent,
            self.last_seqno_recv,
            self.desired_ux,
        )

    @classmethod
    def decode(cls, body: bytes) -> LinkBody:
        """Parse a LINKED; extra bytes after the fields are allowed (newer versions may add)."""
        if len(body) < _LINK.size:
            raise CircuitProtocolError(f"conflux LINKED of {len(body)} bytes, need {_LINK.size}")
        version, nonce, sent, recv, ux = _LINK.unpack_from(body)
        if version != CONFLUX_VERSION:
            raise CircuitProtocolError(f"conflux LINKED of version {version}, we sent 1")
        if ux > ConfluxUx.LOW_MEM_THROUGHPUT:
            raise CircuitProtocolError(f"conflux LINKED asks for unknown UX {ux}")
        return cls(nonce, sent, recv, ux)


def encode_switch(relative_seq: int) -> bytes:
    if not 0 <= relative_seq < 1 << 32:
        raise LocalProtocolError(f"relative sequence {relative_seq} does not fit 32 bits")
    return struct.pack("!I", relative_seq)


def decode_switch(body: bytes) -> int:
    if len(body) < 4:
        raise CircuitProtocolError(f"conflux SWITCH of {len(body)} bytes, need 4")
    return int(struct.unpack_from("!I", body)[0])


_Item = TypeVar("_Item")


class ConfluxSequencer(Generic[_Item]):
    """The receive side of a linked set: per-leg sequence numbers, delivery in order.

    seq = ConfluxSequencer(legs=2)
    seq.switch(1, 31)                 # a SWITCH on leg 1
    ready = seq.arrive(0, message)    # messages now deliverable, in order (maybe none)
    """

    def __init__(self, legs: int, *, max_queued: int = MAX_OUT_OF_ORDER_CELLS) -> None:
        if legs < 1:
            raise LocalProtocolError("a conflux set has at least one leg")
        self.last_seq_recv = [0] * legs
        self.last_seq_delivered = 0
        #: Multiplexed messages and SWITCHes received per leg (what a test or a log reads).
        self.received = [0] * legs
        self.switches = [0] * legs
        self.max_queued = max_queued
        self._queue: list[tuple[int, int, _Item]] = []
        self._order = itertools.count()  # ties never happen; keeps items uncompared

    @property
    def queued(self) -> int:
        """Messages waiting for an earlier one."""
        return len(self._queue)

    def switch(self, leg: int, relative_seq: int) -> None:
        """A SWITCH on ``leg``: its next message is numbered ``relative_seq`` later."""
        value = self.last_seq_recv[leg] + relative_seq
        if value > _MAX_SEQ:
            raise CircuitProtocolError("conflux SWITCH overflows the sequence number")
        self.last_seq_recv[leg] = value
        self.switches[leg] += 1

    def arrive(self, leg: int, item: _Item) -> list[_Item]:
        """A multiplexed message on ``leg``: what can be delivered now, in order."""
        seq = self.last_seq_recv[leg] + 1
        if seq == self.last_seq_delivered + 1 and not self._queue:  # the usual case
            self.last_seq_recv[leg] = self.last_seq_delivered = seq
            self.received[leg] += 1
            return [item]
        if seq > _MAX_SEQ:
            raise CircuitProtocolError("conflux sequence number overflow")
        self.last_seq_recv[leg] = seq
        self.received[leg] += 1
        if seq <= self.last_seq_delivered:
            raise CircuitProtocolError(
                f"conflux message numbered {seq} on leg {leg + 1}, but "
                f"{self.last_seq_delivered} were already delivered"
            )
        if seq != self.last_seq_delivered + 1:
            if len(self._queue) >= self.max_queued:
                raise CircuitProtocolError(
                    f"more than {self.max_queued} conflux messages out of order"
                )
            heapq.heappush(self._queue, (seq, next(self._order), item))
            return []
        self.last_seq_delivered = seq
        ready = [item]
        queue = self._queue
        while queue and queue[0][0] == self.last_seq_delivered + 1:
            self.last_seq_delivered += 1
            ready.append(heapq.heappop(queue)[2])
        if queue and queue[0][0] <= self.last_seq_delivered:
            raise CircuitProtocolError("two conflux messages with one sequence number")
        return ready
