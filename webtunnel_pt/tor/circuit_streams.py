"""The streams of one circuit: ids, state and stream-level windows (tor-link.md §8, §8.4;
tor-spec §6.2, §6.3, §7.4).

    table = StreamTable()
    stream = table.open(StreamKind.EXIT, hop=2)        # a fresh non-zero id
    stream.deliver_window / package_window / unconsumed
    table.end_by_us(stream.stream_id)                   # remembered as half-closed
    table.lookup(stream_id)                             # Stream | HalfClosed | None
    events = table.reply(hop, message)                  # CONNECTED, END, RESOLVED from hop

Ids are 1..65535, handed out in turn (wrapping) and never reused while a stream or a
half-closed record holds them. A stream closed by us stays as a small :class:`HalfClosed`
record that counts what the relay may still send on it (tor-spec §6.3: "remember how many
cells of which types it would have accepted"); at most :data:`MAX_HALF_CLOSED` are kept, the
oldest forgotten first. A stream the relay ended is forgotten at once: tor-spec §6.3 lets the
recipient treat later cells as a violation. Each stream holds counters only; its data is the
caller's, bounded by the deliver window (500 cells); on a hop with congestion control a stream
has no windows but a :class:`~webtunnel_pt.tor.flow_control.StreamFlow` (XON/XOFF), and a stream
SENDME on it breaks the protocol (tor closes such circuits too).

Decisions where tor-spec leaves room:

- cells for a stream id we never opened, or one the relay already ended, destroy the circuit
  (tor drops such DATA, but dropped cells are a known side channel, and tor-spec §6.3 allows
  treating them as a violation); cells on a stream *we* ended are dropped within that
  stream's windows, beyond them they destroy the circuit;
- no half-close: tor-spec §6.3's RELAY_FIN is "unimplemented functionality" in tor, so a
  stream is open both ways until END, sent or received;
- DATA before CONNECTED breaks the protocol (exits send CONNECTED first).

Sans-I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum, auto

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import MAX_RELAY_DATA, RelayCell, RelayCommand, reason_name
from webtunnel_pt.tor.circuit_events import (
    CircuitEvent,
    StreamClosed,
    StreamConnected,
    StreamResolved,
    StreamWritable,
)
from webtunnel_pt.tor.circuit_flow import HopWindows
from webtunnel_pt.tor.congestion import CongestionWindow, overshoot_cap_cells
from webtunnel_pt.tor.flow_control import StreamFlow
from webtunnel_pt.tor.relay_msgs import decode_connected, decode_end_reason, decode_resolved

#: Stream-level windows (tor-spec §7.4): start, SENDME increment.
STREAM_WINDOW = 500
STREAM_SENDME_INCREMENT = 50
#: A stream SENDME goes out only while fewer than this many cells' worth of delivered data
#: wait unconsumed (tor-spec §7.4: "less than ten cell payloads remaining to be flushed").
SENDME_MAX_UNCONSUMED = 10 * MAX_RELAY_DATA
#: Stream ids are 2 bytes; 0 means "the circuit".
MAX_STREAM_ID = 0xFFFF
#: Half-closed stream records kept per circuit.
MAX_HALF_CLOSED = 256
#: What a stream without windows (flow control) may still bring after our END, in cells: tor
#: accepts any amount there; we allow what the exit's slow start can have in flight.
HALF_CLOSED_FLOW_CELLS = 10_000
#: ``package_room`` of a stream under flow control that was not told XOFF.
UNLIMITED = 1 << 30


class StreamKind(Enum):
    DIR = auto()  # BEGIN_DIR
    EXIT = auto()  # BEGIN
    RESOLVE = auto()  # RESOLVE (no stream exists at the exit)


@dataclass
class Stream:
    """An open (or opening) stream at hop ``hop``; windows count DATA cells."""

    stream_id: int
    kind: StreamKind
    hop: int
    connected: bool = False
    deliver_window: int = STREAM_WINDOW
    package_window: int = STREAM_WINDOW
    #: Bytes delivered to the application (StreamData) and not yet reported consumed.
    unconsumed: int = 0
    #: BEGIN_DIR streams read by channel_circuit: delivered data counts as consumed at once.
    consume_on_delivery: bool = False
    #: XON/XOFF state on a hop with congestion control (then the windows are not used).
    flow: StreamFlow | None = None

    def package_room(self) -> int:
        """DATA cells the stream itself lets us send now (the hop's window aside)."""
        if self.flow is not None:
            return 0 if self.flow.xoff_received else UNLIMITED
        return self.package_window

    def packaged(self) -> None:
        if self.flow is None:
            self.package_window -= 1

    def delivered(self, nbytes: int) -> None:
        """Count one DATA cell of ``nbytes`` against the deliver window (tor-spec §7.4)."""
        if self.kind is StreamKind.RESOLVE or not self.connected:
            raise CircuitProtocolError(f"DATA on stream {self.stream_id} before CONNECTED")
        if self.flow is None:
            self.deliver_window -= 1
        if self.deliver_window < 0:
            raise CircuitProtocolError(
                f"relay overran the deliver window of stream {self.stream_id}"
            )
        if not self.consume_on_delivery:
            self.unconsumed += nbytes

    def sendme_received(self) -> bool:
        """A stream SENDME; True if it reopened a closed package window. One that would lift
        the window above 500 breaks the protocol, as in tor."""
        if self.flow is not None:
            raise CircuitProtocolError(
                f"stream SENDME on stream {self.stream_id}, which uses congestion control"
            )
        if (
            self.kind is StreamKind.RESOLVE
            or self.package_window + STREAM_SENDME_INCREMENT > STREAM_WINDOW
        ):
            raise CircuitProtocolError(
                f"stream SENDME would overfill the window of stream {self.stream_id}"
            )
        reopened = self.package_window == 0
        self.package_window += STREAM_SENDME_INCREMENT
        return reopened

    def sendmes_due(self) -> int:
        """Stream SENDMEs to send now (and add to the deliver window): while the window is at
        most 450 and the application has consumed all but a little (tor-spec §7.4); never
        under flow control."""
        if self.unconsumed >= SENDME_MAX_UNCONSUMED or self.flow is not None:
            return 0
        due = 0
        while self.deliver_window + due * STREAM_SENDME_INCREMENT <= (
            STREAM_WINDOW - STREAM_SENDME_INCREMENT
        ):
            due += 1
        return due


@dataclass
class HalfClosed:
    """A stream we ended: what the relay may still send before it sees our END."""

    stream_id: int
    hop: int
    data_left: int
    sendmes_left: int
    connected_pending: bool
    resolved_pending: bool

    def delivered(self) -> None:
        self.data_left -= 1
        if self.data_left < 0:
            raise CircuitProtocolError(f"DATA past the window of ended stream {self.stream_id}")

    def sendme_received(self) -> None:
        self.sendmes_left -= 1
        if self.sendmes_left < 0:
            raise CircuitProtocolError(f"SENDME past the window of ended stream {self.stream_id}")


class StreamTable:
    """Open streams and half-closed records of one circuit."""

    def __init__(self) -> None:
        self.streams: dict[int, Stream] = {}
        self.half_closed: OrderedDict[int, HalfClosed] = OrderedDict()
        self._next_id = 1
        #: Streams ever opened here (ended ones too).
        self.opened = 0

    def __len__(self) -> int:
        return len(self.streams)

    def open(
        self,
        kind: StreamKind,
        hop: int,
        *,
        consume_on_delivery: bool = False,
        window: HopWindows | CongestionWindow | None = None,
    ) -> Stream:
        """A new stream at ``hop``; under flow control (XON/XOFF) if ``window``, the hop's,
        is a :class:`CongestionWindow`."""
        flow = StreamFlow(window.params) if isinstance(window, CongestionWindow) else None
        stream = Stream(
            self._allocate(), kind, hop, consume_on_delivery=consume_on_delivery, flow=flow
        )
        self.streams[stream.stream_id] = stream
        self.opened += 1
        return stream

    def _allocate(self) -> int:
        for _ in range(MAX_STREAM_ID):
            candidate = self._next_id
            self._next_id = candidate % MAX_STREAM_ID + 1
            if candidate not in self.streams and candidate not in self.half_closed:
                return candidate
        raise LocalProtocolError("no free stream id on this circuit")

    def lookup(self, stream_id: int) -> Stream | HalfClosed | None:
        return self.streams.get(stream_id) or self.half_closed.get(stream_id)

    def get_open(self, stream_id: int) -> Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        return stream

    def forget(self, stream_id: int) -> None:
        """The relay ended the stream (END, RESOLVED): nothing more may arrive on it."""
        self.streams.pop(stream_id, None)
        self.half_closed.pop(stream_id, None)

    def end_by_us(self, stream_id: int) -> Stream | None:
        """We end an open stream; keep what the relay may still send on it."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return None
        sendmes = (STREAM_WINDOW - stream.package_window) // STREAM_SENDME_INCREMENT
        data_left = stream.deliver_window
        if stream.flow is not None:
            sendmes, data_left = 0, HALF_CLOSED_FLOW_CELLS
        self.half_closed[stream_id] = HalfClosed(
            stream_id,
            stream.hop,
            data_left=data_left,
            sendmes_left=sendmes,
            connected_pending=stream.kind is not StreamKind.RESOLVE and not stream.connected,
            resolved_pending=stream.kind is StreamKind.RESOLVE,
        )
        while len(self.half_closed) > MAX_HALF_CLOSED:
            self.half_closed.popitem(last=False)
        return stream

    def target(self, hop: int, message: RelayCell) -> Stream | HalfClosed:
        """The stream a stream-level cell is for; anything else breaks the protocol."""
        stream_id = message.stream_id
        target = self.lookup(stream_id) if stream_id else None
        if target is not None and target.hop == hop:
            return target  # the DATA path: no name formatted unless it is needed
        name = reason_name(RelayCommand, message.command)
        if target is None:
            raise CircuitProtocolError(f"relay sent {name} for unknown stream {stream_id}")
        raise CircuitProtocolError(
            f"hop {hop + 1} sent {name} for a stream at hop {target.hop + 1}"
        )

    def reply(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        """CONNECTED, END, RESOLVED (tor-spec §6.2-§6.4)."""
        target = self.target(hop, message)
        command = message.command
        if command == RelayCommand.END:
            self.forget(target.stream_id)
            if isinstance(target, HalfClosed):
                return []
            return [StreamClosed(target.stream_id, decode_end_reason(message.data))]
        if isinstance(target, HalfClosed):
            if command == RelayCommand.CONNECTED and target.connected_pending:
                target.connected_pending = False
            elif command == RelayCommand.RESOLVED and target.resolved_pending:
                self.forget(target.stream_id)
            else:
                raise CircuitProtocolError(
                    f"unexpected {RelayCommand(command).name} on ended stream"
                )
            return []
        if command == RelayCommand.CONNECTED:
            if target.connected or target.kind is StreamKind.RESOLVE:
                raise CircuitProtocolError(f"unexpected CONNECTED on stream {target.stream_id}")
            target.connected = True
            if target.kind is StreamKind.DIR:  # "clients MUST ignore the payload" (§6.2.1)
                return [StreamConnected(target.stream_id)]
            connected = decode_connected(message.data)
            return [StreamConnected(target.stream_id, connected.address, connected.ttl)]
        if target.kind is not StreamKind.RESOLVE:
            raise CircuitProtocolError(f"RESOLVED on stream {target.stream_id}, not a RESOLVE")
        answers = decode_resolved(message.data)
        self.forget(target.stream_id)
        return [StreamResolved(target.stream_id, answers)]

    def flow_delivered(self, stream: Stream, window: HopWindows | CongestionWindow) -> bytes | None:
        """After DATA on a stream under flow control (``window``: its hop's
        :class:`CongestionWindow`): the XOFF (or XON update) to send. Data past the XOFF
        limits of the hop's streams beyond :func:`overshoot_cap_cells` is a flood."""
        flow = stream.flow
        assert flow is not None and isinstance(window, CongestionWindow)
        if stream.unconsumed <= flow.quiet_bytes:
            return None  # the common case: a reader that keeps up, nothing to decide
        if flow.over_limit(stream.unconsumed):
            over = sum(s.flow.over_limit(s.unconsumed) for s in self.on_hop(stream.hop) if s.flow)
            if over > overshoot_cap_cells(window.params) * MAX_RELAY_DATA:
                raise CircuitProtocolError(
                    f"hop {stream.hop + 1} sent {over} bytes past our XOFFs (flooding)"
                )
        return flow.delivered(stream.unconsumed, window.now_usec())

    def flow_message(self, hop: int, message: RelayCell, hop_open: bool) -> list[CircuitEvent]:
        """XOFF / XON from the hop on a stream we send on (prop 344); an XON that lets a
        stopped stream go on (and the hop's window is open) makes it writable. Unknown
        streams break the protocol, as for every stream-level cell."""
        target = self.target(hop, message)
        if isinstance(target, HalfClosed) or target.flow is None:
            return []  # tor ignores them on streams it ended and without congestion control
        if message.command == RelayCommand.XOFF:
            target.flow.on_xoff(message.data, target.stream_id)
            return []
        if target.flow.on_xon(message.data) and hop_open:
            return [StreamWritable(target.stream_id)]
        return []

    def on_hop(self, hop: int) -> list[Stream]:
        return [s for s in self.streams.values() if s.hop == hop]
