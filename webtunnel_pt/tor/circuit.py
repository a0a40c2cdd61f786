"""Circuits on an open link: ids, CREATE_FAST / CREATE2, EXTEND2, streams, flow control,
teardown (tor-link.md §4.5-§9; tor-spec §5, §6, §7).

    circ = Circuit(allocate_circ_id(used, link_version), link_version,
                   sendme_emit_version=1, sendme_accept_version=1)   # consensus params
    circ.create(ntor_handshake)             # CREATE2 (or circ.create_fast())
    circ.extend(link_specifiers, ntor)      # EXTEND2 in RELAY_EARLY to the last hop
    events = circ.receive_cell(cell)        # CircuitOpen, CircuitExtended, Stream*, CircuitClosed
    sid = circ.begin("example.com", 443)    # or begin_dir(), resolve(host)
    taken = circ.send_data(sid, data)       # as much as both package windows allow
    circ.consumed(sid, n)                   # the application took n bytes: stream SENDMEs
    circ.enable_congestion_control(hop, sendme_inc, params=...)   # the exit accepted CC
    cells = circ.cells_to_send()

Hostile input never raises out of :meth:`Circuit.receive_cell`: a relay that breaks the
protocol gets DESTROY (PROTOCOL) and the caller a :class:`CircuitClosed` carrying the error.
Circuit windows (1000/100) are kept per hop; circuit SENDMEs go out as DATA cells are received
(authenticated, version 1 unless ``sendme_emit_version`` is 0) and received ones must carry
the digest we recorded (tor-spec §7.3). Stream SENDMEs (500/50) go out only as the application
reports consumption, so a slow reader stops the sender (tor-spec §7.4). A hop that negotiated
congestion control (prop 324) gets a :class:`~webtunnel_pt.tor.congestion.CongestionWindow`
instead (Vegas; a SENDME per ``sendme_inc`` cells) and its streams XON/XOFF
(:mod:`~webtunnel_pt.tor.flow_control`) instead of stream windows.

Decisions where tor-spec leaves room (the stream ones are in circuit_streams.py): relay
commands a relay must never send to a client (BEGIN, EXTEND2, ...) destroy the circuit,
unknown ones are dropped (tor-spec §6.1); relay cells to any hop but the first go as
RELAY_EARLY while the 8 allowed last, as tor does (tor-spec §5.6); END always says MISC
(prop 148).

Sans-I/O.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from webtunnel_pt.errors import CircuitProtocolError, LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import (
    MAX_RELAY_DATA,
    Cell,
    CellCommand,
    DestroyReason,
    EndReason,
    RelayCell,
    RelayCommand,
    decode_destroy,
    decode_relay_payload,
    destroy_cell,
    encode_relay_payload,
    reason_name,
)
from webtunnel_pt.tor.circuit_events import (
    CircuitClosed,
    CircuitEvent,
    CircuitExtended,
    CircuitOpen,
    StreamClosed,
    StreamConnected,
    StreamData,
    StreamResolved,
    StreamWritable,
    join_stream_data,
)
from webtunnel_pt.tor.circuit_flow import (
    CIRCUIT_SENDME_INCREMENT,
    CIRCUIT_WINDOW,
    MAX_SENDME_VERSION,
    HopWindows,
)
from webtunnel_pt.tor.circuit_streams import (
    STREAM_SENDME_INCREMENT,
    STREAM_WINDOW,
    HalfClosed,
    Stream,
    StreamKind,
    StreamTable,
)
from webtunnel_pt.tor.circuit_types import (
    CIRC_ID_HIGH_BIT,
    CircuitHandshake,
    CircuitState,
    Completes,
    allocate_circ_id,
)
from webtunnel_pt.tor.conflux import MULTIPLEXED_COMMANDS, LinkBody
from webtunnel_pt.tor.conflux_leg import CONFLUX_COMMANDS, ConfluxLeg
from webtunnel_pt.tor.congestion import CongestionParams, CongestionWindow
from webtunnel_pt.tor.flow_control import StreamFlow
from webtunnel_pt.tor.onionskin import CreateFastHandshake, HopKeys
from webtunnel_pt.tor.relay_crypto import InboundRelay, RelayCrypto
from webtunnel_pt.tor.relay_msgs import (
    ResolvedAnswer,
    begin_body,
    create2_payload,
    created2_hdata,
    decode_sendme,
    extend2_body,
    extended2_hdata,
    resolve_body,
    sendme_body,
)

__all__ = [
    "CIRCUIT_SENDME_INCREMENT",
    "CIRCUIT_WINDOW",
    "CIRC_ID_HIGH_BIT",
    "STREAM_SENDME_INCREMENT",
    "STREAM_WINDOW",
    "Circuit",
    "CircuitClosed",
    "CircuitEvent",
    "CircuitExtended",
    "CircuitHandshake",
    "CircuitOpen",
    "CircuitState",
    "ResolvedAnswer",
    "StreamClosed",
    "StreamConnected",
    "StreamData",
    "StreamResolved",
    "StreamWritable",
    "allocate_circ_id",
]

#: The DESTROY reason we put on the wire when the relay broke the protocol: NONE, as tor as a
#: client sends for every DESTROY it originates (tor-spec §5.4; circuit_mark_for_close_), so
#: relays learn nothing from it and can't tell us from tor. The reason we report locally
#: (:class:`CircuitClosed`) is still PROTOCOL.
VIOLATION_DESTROY_REASON = DestroyReason.NONE
#: The END reason a client puts on the wire, whatever its own (prop 148: exits must not learn
#: why a client closed, nor tell client platforms apart by it).
CLIENT_END_REASON = EndReason.MISC
#: RELAY_EARLY cells a circuit may send (tor-spec §5.6).
MAX_RELAY_EARLY = 8
#: Relay commands only a client sends; a relay sending one breaks the protocol. EXTENDED (TAP)
#: answers an EXTEND we never send.
_FORWARD_ONLY = frozenset(
    {
        RelayCommand.BEGIN,
        RelayCommand.EXTEND,
        RelayCommand.EXTENDED,
        RelayCommand.TRUNCATE,
        RelayCommand.RESOLVE,
        RelayCommand.BEGIN_DIR,
        RelayCommand.EXTEND2,
    }
)


class Circuit:
    """One circuit from our side of the link."""

    def __init__(
        self,
        circ_id: int,
        link_version: int,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        *,
        sendme_emit_version: int = 1,
        sendme_accept_version: int = 0,
    ) -> None:
        for name, version in (
            ("sendme_emit_version", sendme_emit_version),
            ("sendme_accept_version", sendme_accept_version),
        ):
            if not 0 <= version <= MAX_SENDME_VERSION:
                raise LocalProtocolError(f"{name} {version} is not supported (0 or 1)")
        self.circ_id = circ_id
        self.link_version = link_version
        self.rng = rng
        self.sendme_emit_version = sendme_emit_version
        self.sendme_accept_version = sendme_accept_version
        self.state = CircuitState.NEW
        self.crypto = RelayCrypto()
        #: The DESTROY reason sent or received, or the TRUNCATED reason.
        self.destroy_reason: int | None = None
        self._pending: tuple[CellCommand | RelayCommand, Completes] | None = None
        self._windows: list[HopWindows | CongestionWindow] = []
        self._streams = StreamTable()
        self._outgoing: list[Cell] = []
        self._relay_early_left = MAX_RELAY_EARLY
        #: This circuit's part in a conflux set (prop 329), once it sent CONFLUX_LINK.
        self.conflux: ConfluxLeg | None = None

    @property
    def hops(self) -> int:
        return len(self._windows)

    @property
    def stream_count(self) -> int:
        """Open streams (not counting those we ended and still remember)."""
        return len(self._streams)

    # ---- building ----------------------------------------------------------------------------

    def cells_to_send(self) -> list[Cell]:
        out, self._outgoing = self._outgoing, []
        return out

    def create_fast(self) -> None:
        """Queue CREATE_FAST with a fresh X (tor-spec §5.1.5)."""
        handshake = CreateFastHandshake(rng=self.rng)
        self._start(
            CellCommand.CREATED_FAST, handshake, CellCommand.CREATE_FAST, handshake.onionskin
        )

    def create(self, handshake: CircuitHandshake) -> None:
        """Queue CREATE2 with the handshake's type and data (tor-spec §5.1)."""
        payload = create2_payload(handshake.htype, handshake.onionskin)
        self._start(CellCommand.CREATED2, handshake, CellCommand.CREATE2, payload)

    def _start(self, expect: CellCommand, hs: Completes, command: int, payload: bytes) -> None:
        if self.state is not CircuitState.NEW:
            raise LocalProtocolError("circuit already created")
        self._pending = (expect, hs)
        self._outgoing.append(Cell(self.circ_id, command, payload))
        self.state = CircuitState.CREATING

    def extend(self, link_specifiers: bytes, handshake: CircuitHandshake) -> None:
        """Queue EXTEND2 to the last hop, in RELAY_EARLY (tor-spec §5.1.2, §5.6)."""
        self._check_idle()
        if self._relay_early_left == 0:
            raise LocalProtocolError("no RELAY_EARLY cell left for EXTEND2 on this circuit")
        body = extend2_body(link_specifiers, handshake.htype, handshake.onionskin)
        self._send_relay(RelayCell(RelayCommand.EXTEND2, 0, body))
        self._pending = (RelayCommand.EXTENDED2, handshake)

    def destroy(self, reason: int = DestroyReason.NONE) -> None:
        """Queue DESTROY (clients send NONE, tor-spec §5.4); later cells are dropped."""
        if self.state is CircuitState.DESTROYED:
            return
        if self.state is not CircuitState.NEW:
            self._outgoing.append(destroy_cell(self.circ_id, reason))
        self.state = CircuitState.DESTROYED
        self.destroy_reason = reason
        self._pending = None

    def enable_congestion_control(
        self,
        hop: int,
        sendme_inc: int,
        *,
        params: CongestionParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """The hop (0-based; -1: the last) accepted congestion control with ``sendme_inc``
        (its ntor v3 reply): Vegas and XON/XOFF from now on, for streams opened after this.
        An increment tor would refuse raises CircuitProtocolError (destroy the circuit)."""
        self._check_idle()
        index = hop % self.hops
        windows = self._windows[index]
        used = windows.package != CIRCUIT_WINDOW or self._streams.on_hop(index)
        if not isinstance(windows, HopWindows) or used:
            raise LocalProtocolError(f"hop {index + 1} already carried streams or uses CC")
        self._windows[index] = CongestionWindow(sendme_inc, params, clock)

    def congestion_control(self, hop: int = -1) -> CongestionWindow | None:
        """The hop's congestion window, None when it uses the fixed windows."""
        windows = self._windows[hop] if self._windows else None
        return windows if isinstance(windows, CongestionWindow) else None

    def stream_flow(self, stream_id: int) -> StreamFlow | None:
        """An open stream's XON/XOFF state; None without congestion control."""
        stream = self._streams.streams.get(stream_id)
        return stream.flow if stream is not None else None

    def conflux_link(self, nonce: bytes) -> None:
        """Send CONFLUX_LINK to the exit (prop 329 §2.2): a fresh set's leg, asking for
        throughput. The exit must have accepted congestion control, and no stream may have
        used the circuit; its LINKED comes back as :class:`ConfluxLinked`."""
        self._check_idle()
        if self.conflux is not None or self.congestion_control(-1) is None:
            raise LocalProtocolError("conflux needs an unlinked circuit with congestion control")
        if self._streams.opened:
            raise LocalProtocolError("a circuit that carried streams cannot join a conflux set")
        body = LinkBody(nonce).encode()
        self.conflux = ConfluxLeg(nonce, self.hops - 1)
        self.send_conflux(RelayCell(RelayCommand.CONFLUX_LINK, 0, body))

    def send_conflux(self, message: RelayCell) -> None:
        """A conflux control message to the exit (LINK, LINKED_ACK)."""
        self._send_relay(message, self.hops - 1)

    def _check_idle(self) -> None:
        """Open, and not waiting for EXTENDED2 (the last hop is about to change)."""
        if self.state is not CircuitState.OPEN:
            raise LocalProtocolError(f"circuit is {self.state.name}, not OPEN")
        if self._pending is not None:
            raise LocalProtocolError("circuit is being extended")

    # ---- sending -----------------------------------------------------------------------------

    def _send_relay(self, message: RelayCell, hop: int = -1) -> int:
        if self.state is not CircuitState.OPEN:
            raise LocalProtocolError(f"circuit is {self.state.name}, not OPEN")
        index = hop % len(self._windows)
        payload = encode_relay_payload(message, self.rng)
        wire = self.crypto.encrypt_outbound(payload, index)
        command = CellCommand.RELAY
        early = message.command == RelayCommand.EXTEND2 or index > 0
        if early and self._relay_early_left > 0:
            command = CellCommand.RELAY_EARLY
            self._relay_early_left -= 1
        self._outgoing.append(Cell(self.circ_id, command, wire))
        return index

    def begin_dir(self, *, consume_on_delivery: bool = True) -> int:
        """Open a directory stream at the last hop (BEGIN_DIR, tor-spec §6.2.1). By default its
        data counts as consumed when delivered (the reader buffers a bounded response)."""
        self._check_idle()
        hop = self.hops - 1
        stream = self._streams.open(
            StreamKind.DIR, hop, consume_on_delivery=consume_on_delivery, window=self._windows[hop]
        )
        self._send_relay(RelayCell(RelayCommand.BEGIN_DIR, stream.stream_id), stream.hop)
        return stream.stream_id

    def begin(self, host: str, port: int, *, flags: int = 0) -> int:
        """Open a stream to ``host:port`` through the last hop (BEGIN, tor-spec §6.2)."""
        body = begin_body(host, port, flags)
        self._check_idle()
        stream = self._streams.open(StreamKind.EXIT, self.hops - 1, window=self._windows[-1])
        self._send_relay(RelayCell(RelayCommand.BEGIN, stream.stream_id, body), stream.hop)
        return stream.stream_id

    def resolve(self, host: str) -> int:
        """Ask the last hop to resolve ``host`` (RESOLVE, tor-spec §6.4); StreamResolved follows."""
        body = resolve_body(host)
        self._check_idle()
        stream = self._streams.open(StreamKind.RESOLVE, self.hops - 1)
        self._send_relay(RelayCell(RelayCommand.RESOLVE, stream.stream_id, body), stream.hop)
        return stream.stream_id

    def sendable(self, stream_id: int) -> int:
        """Bytes :meth:`send_data` would take now on that stream."""
        stream = self._streams.streams.get(stream_id)
        if (
            stream is None
            or stream.kind is StreamKind.RESOLVE
            or self.state is not CircuitState.OPEN
        ):
            return 0
        return min(stream.package_room(), self._windows[stream.hop].package) * MAX_RELAY_DATA

    def send_data(self, stream_id: int, data: bytes) -> int:
        """Queue DATA cells of up to 498 bytes as far as the stream's and the hop's package
        windows allow; the number of bytes taken (the caller keeps the rest and waits for
        StreamWritable)."""
        stream = self._streams.get_open(stream_id)
        if stream.kind is StreamKind.RESOLVE:
            raise LocalProtocolError(f"stream {stream_id} is a RESOLVE, not a data stream")
        taken = min(len(data), self.sendable(stream_id))
        windows = self._windows[stream.hop]
        for start in range(0, taken, MAX_RELAY_DATA):
            chunk = data[start : min(start + MAX_RELAY_DATA, taken)]
            self._send_relay(RelayCell(RelayCommand.DATA, stream_id, chunk), stream.hop)
            stream.packaged()
            windows.packaged(self.crypto.hops[stream.hop].forward_digest.digest)
        return taken

    def consumed(self, stream_id: int, nbytes: int) -> None:
        """The application took ``nbytes`` of the stream's delivered data: send the stream
        SENDMEs that allows. Streams already ended are ignored."""
        if nbytes < 0:
            raise LocalProtocolError("consumed a negative number of bytes")
        stream = self._streams.streams.get(stream_id)
        if stream is None or self.state is not CircuitState.OPEN or stream.consume_on_delivery:
            return
        if nbytes > stream.unconsumed:
            raise LocalProtocolError(
                f"stream {stream_id}: consumed {nbytes} bytes, only {stream.unconsumed} delivered"
            )
        stream.unconsumed -= nbytes
        if stream.flow is None:
            self._send_stream_sendmes(stream)
            return
        now = self._windows[stream.hop].now_usec()  # type: ignore[union-attr]
        self._send_flow(stream, stream.flow.drained(nbytes, stream.unconsumed, now))

    def _send_flow(self, stream: Stream, body: bytes | None) -> None:
        """XOFF (body of one byte) or XON (five) to the stream's hop, if flow control says."""
        if body is not None:
            command = RelayCommand.XOFF if len(body) == 1 else RelayCommand.XON
            self._send_relay(RelayCell(command, stream.stream_id, body), stream.hop)

    def _send_stream_sendmes(self, stream: Stream) -> None:
        for _ in range(stream.sendmes_due()):
            self._send_relay(RelayCell(RelayCommand.SENDME, stream.stream_id), stream.hop)
            stream.deliver_window += STREAM_SENDME_INCREMENT

    def end_stream(self, stream_id: int, reason: int = EndReason.DONE) -> None:
        """Queue END (tor-spec §6.3) unless the stream is already over; a RESOLVE is just
        abandoned (the exit holds no stream for it). ``reason`` is the caller's; the wire says
        MISC whatever it is, as every tor client does (prop 148, tor-spec §6.3)."""
        del reason  # kept in the signature so callers can say why; never sent
        stream = self._streams.streams.get(stream_id)
        if stream is None or self.state is not CircuitState.OPEN:
            return
        if stream.kind is not StreamKind.RESOLVE:
            end = RelayCell(RelayCommand.END, stream_id, bytes([CLIENT_END_REASON]))
            self._send_relay(end, stream.hop)
        self._streams.end_by_us(stream_id)

    # ---- receiving ---------------------------------------------------------------------------

    def receive_cell(self, cell: Cell) -> list[CircuitEvent]:
        """Handle one cell for this circuit. Never raises for what the relay sent: a violation
        destroys the circuit and is reported as :class:`CircuitClosed` (``error`` set)."""
        if self.state is CircuitState.DESTROYED:
            return []
        try:
            return self._receive(cell)
        except LinkProtocolError as exc:
            self.destroy(VIOLATION_DESTROY_REASON)
            return [CircuitClosed(DestroyReason.PROTOCOL, False, str(exc), exc)]

    def _receive(self, cell: Cell) -> list[CircuitEvent]:
        if cell.command == CellCommand.DESTROY:
            self.state = CircuitState.DESTROYED
            self.destroy_reason = decode_destroy(cell.payload)
            name = reason_name(DestroyReason, self.destroy_reason)
            return [
                CircuitClosed(self.destroy_reason, False, f"relay destroyed the circuit: {name}")
            ]
        if cell.command == CellCommand.CREATED_FAST:
            return self._on_created(CellCommand.CREATED_FAST, cell.payload)
        if cell.command == CellCommand.CREATED2:
            return self._on_created(CellCommand.CREATED2, cell.payload)
        if cell.command == CellCommand.RELAY_EARLY:
            raise CircuitProtocolError("relay sent an inbound RELAY_EARLY cell")
        if cell.command == CellCommand.RELAY:
            return self._on_relay(cell.payload)
        return []  # PADDING and the like address the link, not us

    def _on_created(self, command: CellCommand, payload: bytes) -> list[CircuitEvent]:
        if (
            self.state is not CircuitState.CREATING
            or self._pending is None
            or self._pending[0] != command
        ):
            raise CircuitProtocolError(f"unexpected {command.name}")
        reply = created2_hdata(payload) if command == CellCommand.CREATED2 else payload
        self._add_hop(self._pending[1].complete(reply))
        self.state = CircuitState.OPEN
        return [CircuitOpen(self.hops)]

    def _add_hop(self, keys: HopKeys) -> None:
        self.crypto.add_hop(keys)
        self._windows.append(HopWindows())
        self._pending = None

    def receive_cells(self, cells: list[Cell]) -> list[CircuitEvent]:
        """:meth:`receive_cell` for each of ``cells`` (one read's cells for this circuit), in
        order, with the same events; the relay cells of an open circuit are decrypted
        together (:meth:`RelayCrypto.decrypt_inbound_batch`, one CTR call per hop)."""
        if len(cells) < 2:
            return self.receive_cell(cells[0]) if cells else []
        payloads = [cell.payload for cell in cells if cell.command == CellCommand.RELAY]
        if (
            len(payloads) != len(cells)
            or self.state is not CircuitState.OPEN
            or self._pending is not None
        ):
            events: list[CircuitEvent] = []
            for cell in cells:
                events.extend(self.receive_cell(cell))
            return join_stream_data(events)
        done, error = self.crypto.decrypt_inbound_batch(payloads)
        events = []
        try:
            for inbound in done:
                if self.state is not CircuitState.OPEN:
                    break  # destroyed by an earlier cell: the rest are dropped
                events.extend(self._on_inbound(inbound))
            else:
                if error is not None:
                    raise CircuitProtocolError(str(error)) from error
        except LinkProtocolError as exc:
            self.destroy(VIOLATION_DESTROY_REASON)
            events.append(CircuitClosed(DestroyReason.PROTOCOL, False, str(exc), exc))
        return join_stream_data(events)

    def _on_relay(self, payload: bytes) -> list[CircuitEvent]:
        if self.state is not CircuitState.OPEN:
            raise CircuitProtocolError("relay cell on a circuit that is not open")
        try:
            inbound = self.crypto.decrypt_inbound(payload)
        except LinkProtocolError as exc:
            raise CircuitProtocolError(str(exc)) from exc
        return self._on_inbound(inbound)

    def _on_inbound(self, inbound: InboundRelay) -> list[CircuitEvent]:
        """A relay cell a hop recognized: by its command."""
        try:
            message = decode_relay_payload(inbound.payload)
        except LinkProtocolError as exc:
            raise CircuitProtocolError(str(exc)) from exc
        hop, command = inbound.hop, message.command
        if command == RelayCommand.SENDME:
            return self._on_sendme(hop, message)
        if command == RelayCommand.DATA:
            self._count_data(hop, inbound.digest)  # per circuit, before any reordering
        if self.conflux is not None and (
            command in MULTIPLEXED_COMMANDS or command in CONFLUX_COMMANDS
        ):
            return self.conflux.receive(self, hop, message)
        if command in CONFLUX_COMMANDS:
            raise CircuitProtocolError(
                f"relay sent {RelayCommand(command).name} on a circuit we never linked"
            )
        if command == RelayCommand.EXTENDED2:
            return self._on_extended2(hop, message)
        if command == RelayCommand.TRUNCATED:
            return self._on_truncated(hop, message)
        return self.deliver_stream_message(hop, message)

    def deliver_stream_message(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        """A stream's message from ``hop``, in order: straight from :meth:`_on_relay`, or
        through a conflux set's sequencer when this circuit keeps the set's streams."""
        command = message.command
        if command == RelayCommand.DATA:
            return self._on_data(hop, message)
        if command in (RelayCommand.CONNECTED, RelayCommand.END, RelayCommand.RESOLVED):
            return self._streams.reply(hop, message)
        windows = self._windows[hop]
        if command in (RelayCommand.XOFF, RelayCommand.XON) and windows.flow_control:
            return self._streams.flow_message(hop, message, windows.package > 0)
        if command in _FORWARD_ONLY:
            raise CircuitProtocolError(
                f"relay sent {RelayCommand(command).name}, a client's command"
            )
        return []  # DROP, padding, unknown commands (tor-spec §6.1)

    def _count_data(self, hop: int, digest: bytes) -> None:
        """Count DATA against the hop's deliver window (or congestion window): a circuit
        SENDME with this cell's digest when it calls for one (tor-spec §7.3, prop 289)."""
        if self._windows[hop].delivered(hop):
            body = sendme_body(self.sendme_emit_version, digest)
            self._send_relay(RelayCell(RelayCommand.SENDME, 0, body), hop)

    def _on_data(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        """Count DATA against the stream's deliver window (tor-spec §7.4) or its XON/XOFF."""
        target = self._streams.target(hop, message)
        if isinstance(target, HalfClosed):
            target.delivered()
            return []
        target.delivered(len(message.data))
        if target.flow is not None:
            self._send_flow(target, self._streams.flow_delivered(target, self._windows[hop]))
        elif target.consume_on_delivery:
            self._send_stream_sendmes(target)
        return [StreamData(target.stream_id, message.data)]

    def _on_sendme(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        if message.stream_id == 0:
            sendme = decode_sendme(message.data)
            if not self._windows[hop].sendme_received(sendme, self.sendme_accept_version, hop):
                return []
            return [
                StreamWritable(s.stream_id)
                for s in self._streams.on_hop(hop)
                if s.package_room() > 0 and s.kind is not StreamKind.RESOLVE
            ]
        target = self._streams.target(hop, message)
        if isinstance(target, HalfClosed):
            target.sendme_received()
            return []
        if target.sendme_received() and self._windows[hop].package > 0:
            return [StreamWritable(target.stream_id)]
        return []

    def _on_extended2(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        pending = self._pending
        if (
            pending is None
            or pending[0] != RelayCommand.EXTENDED2
            or hop != self.hops - 1
            or message.stream_id
        ):
            raise CircuitProtocolError(f"unexpected EXTENDED2 from hop {hop + 1}")
        self._add_hop(pending[1].complete(extended2_hdata(message.data)))
        return [CircuitExtended(self.hops)]

    def _on_truncated(self, hop: int, message: RelayCell) -> list[CircuitEvent]:
        """tor tears a truncated circuit down rather than reuse it (tor-spec §5.4)."""
        reason = message.data[0] if message.data else DestroyReason.NONE
        self.destroy(DestroyReason.NONE)
        self.destroy_reason = reason
        name = reason_name(DestroyReason, reason)
        return [CircuitClosed(reason, True, f"hop {hop + 1} truncated the circuit: {name}")]
