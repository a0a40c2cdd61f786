"""Circuits on an open link: ids, CREATE_FAST, relay streams, flow control (tor-link.md §4.5,
§5, §7, §8, §9).

    circ = Circuit(allocate_circ_id(used, link_version), link_version)
    circ.create_fast()                      # queue CREATE_FAST
    events = circ.receive_cell(cell)        # CircuitOpen, StreamConnected, StreamData, ...
    sid = circ.begin_dir()                  # queue RELAY_BEGIN_DIR
    circ.send_data(sid, b"GET ...")
    cells = circ.cells_to_send()

One-hop circuits are what the probe needs; the crypto supports more hops. SENDMEs are sent
when the deliver windows call for them (circuit SENDMEs authenticated, version 1) and
received SENDMEs refill the package windows. Sans-I/O.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from enum import Enum, auto

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
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
)
from webtunnel_pt.tor.onionskin import CreateFastHandshake
from webtunnel_pt.tor.relay_crypto import RelayCrypto

#: Circuit-level windows (§8.4): start, SENDME increment.
CIRCUIT_WINDOW = 1000
CIRCUIT_SENDME_INCREMENT = 100
#: Stream-level windows (§8.4).
STREAM_WINDOW = 500
STREAM_SENDME_INCREMENT = 50
#: Authenticated SENDME (prop 289): version 1, 20-byte digest.
SENDME_VERSION = 1
#: Circuit ids with this bit set are ours when we initiated the link (link >= 4, §4.5).
CIRC_ID_HIGH_BIT = 0x80000000
#: Attempts at a free random circuit id before giving up (a link has few circuits).
MAX_CIRC_ID_ATTEMPTS = 64


def allocate_circ_id(
    used: Container[int],
    link_version: int,
    randbits: Callable[[int], int] = secrets.randbits,
) -> int:
    """A random unused non-zero circuit id; high bit set from link 4 on (§4.5)."""
    for _ in range(MAX_CIRC_ID_ATTEMPTS):
        if link_version >= 4:
            circ_id = CIRC_ID_HIGH_BIT | randbits(31)
        else:
            circ_id = randbits(16)
        if circ_id != 0 and circ_id not in used:
            return circ_id
    raise LocalProtocolError("no free circuit id")


class CircuitState(Enum):
    NEW = auto()
    CREATING = auto()
    OPEN = auto()
    DESTROYED = auto()


@dataclass(frozen=True)
class CircuitOpen:
    """CREATED_FAST accepted: the first hop is ready."""


@dataclass(frozen=True)
class CircuitClosed:
    """The relay sent DESTROY (``reason``, §9)."""

    reason: int


@dataclass(frozen=True)
class StreamConnected:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamData:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamClosed:
    """The relay sent END; ``reason`` is MISC when the data was empty (§8.3)."""

    stream_id: int
    reason: int


CircuitEvent = CircuitOpen | CircuitClosed | StreamConnected | StreamData | StreamClosed


@dataclass
class _Stream:
    stream_id: int
    connected: bool = False
    ended: bool = False
    deliver_window: int = STREAM_WINDOW
    package_window: int = STREAM_WINDOW


@dataclass
class _Windows:
    deliver: int = CIRCUIT_WINDOW
    package: int = CIRCUIT_WINDOW


@dataclass
class Circuit:
    """One circuit from our side of the link."""

    circ_id: int
    link_version: int
    rng: Callable[[int], bytes] = field(default=secrets.token_bytes)
    state: CircuitState = CircuitState.NEW
    crypto: RelayCrypto = field(default_factory=RelayCrypto)
    destroy_reason: int | None = None
    _handshake: CreateFastHandshake | None = None
    _streams: dict[int, _Stream] = field(default_factory=dict)
    _windows: _Windows = field(default_factory=_Windows)
    _outgoing: list[Cell] = field(default_factory=list)
    _next_stream: int = 1

    # ---- sending ---------------------------------------------------------------------------

    def cells_to_send(self) -> list[Cell]:
        out, self._outgoing = self._outgoing, []
        return out

    def create_fast(self) -> None:
        """Queue CREATE_FAST with a fresh X (§5)."""
        if self.state is not CircuitState.NEW:
            raise LocalProtocolError("circuit already created")
        self._handshake = CreateFastHandshake(rng=self.rng)
        self._outgoing.append(
            Cell(self.circ_id, CellCommand.CREATE_FAST, self._handshake.onionskin)
        )
        self.state = CircuitState.CREATING

    def destroy(self, reason: int = DestroyReason.NONE) -> None:
        """Queue DESTROY (clients send NONE, §9); further cells for this circuit are dropped."""
        if self.state is CircuitState.DESTROYED:
            return
        if self.state is not CircuitState.NEW:
            self._outgoing.append(destroy_cell(self.circ_id, reason))
        self.state = CircuitState.DESTROYED
        self.destroy_reason = reason

    def _send_relay(self, message: RelayCell) -> None:
        if self.state is not CircuitState.OPEN:
            raise LocalProtocolError(f"circuit is {self.state.name}, not OPEN")
        payload = encode_relay_payload(message, self._padding)
        wire = self.crypto.encrypt_outbound(payload)
        self._outgoing.append(Cell(self.circ_id, CellCommand.RELAY, wire))

    def _padding(self, size: int) -> bytes:
        return self.rng(size)

    def begin_dir(self) -> int:
        """Open a directory stream (BEGIN_DIR, empty data, §8.1); returns its stream id."""
        stream_id = self._new_stream_id()
        self._streams[stream_id] = _Stream(stream_id)
        self._send_relay(RelayCell(RelayCommand.BEGIN_DIR, stream_id))
        return stream_id

    def _new_stream_id(self) -> int:
        for _ in range(0xFFFF):
            candidate = self._next_stream
            self._next_stream = candidate % 0xFFFF + 1
            if candidate not in self._streams:
                return candidate
        raise LocalProtocolError("no free stream id")

    def send_data(self, stream_id: int, data: bytes) -> None:
        """Queue DATA cells; the windows must allow it (§8.4, sending)."""
        stream = self._open_stream(stream_id)
        cells = (len(data) + MAX_RELAY_DATA - 1) // MAX_RELAY_DATA
        if cells > min(stream.package_window, self._windows.package):
            raise LocalProtocolError("package window exhausted; wait for a SENDME")
        for start in range(0, len(data), MAX_RELAY_DATA):
            chunk = data[start : start + MAX_RELAY_DATA]
            self._send_relay(RelayCell(RelayCommand.DATA, stream_id, chunk))
            stream.package_window -= 1
            self._windows.package -= 1

    def end_stream(self, stream_id: int, reason: int = EndReason.DONE) -> None:
        """Queue END (§8.3) unless the relay already ended the stream."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            return
        stream.ended = True
        self._send_relay(RelayCell(RelayCommand.END, stream_id, bytes([reason])))

    def _open_stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        return stream

    # ---- receiving -------------------------------------------------------------------------

    def receive_cell(self, cell: Cell) -> list[CircuitEvent]:
        """Handle one cell for this circuit; DESTROYED circuits drop everything (§9)."""
        if self.state is CircuitState.DESTROYED:
            return []
        if cell.command == CellCommand.DESTROY:
            self.state = CircuitState.DESTROYED
            self.destroy_reason = decode_destroy(cell.payload)
            return [CircuitClosed(self.destroy_reason)]
        if cell.command == CellCommand.CREATED_FAST:
            return self._on_created_fast(cell.payload)
        if cell.command in (CellCommand.RELAY, CellCommand.RELAY_EARLY):
            if cell.command == CellCommand.RELAY_EARLY:
                raise LinkProtocolError("relay sent an inbound RELAY_EARLY cell")
            return self._on_relay(cell.payload)
        return []

    def _on_created_fast(self, payload: bytes) -> list[CircuitEvent]:
        if self.state is not CircuitState.CREATING or self._handshake is None:
            raise LinkProtocolError("unexpected CREATED_FAST")
        self.crypto.add_hop(self._handshake.complete(payload))
        self._handshake = None
        self.state = CircuitState.OPEN
        return [CircuitOpen()]

    def _on_relay(self, payload: bytes) -> list[CircuitEvent]:
        if self.state is not CircuitState.OPEN:
            raise LinkProtocolError("relay cell on a circuit that is not open")
        inbound = self.crypto.decrypt_inbound(payload)
        message = decode_relay_payload(inbound.payload)
        if message.command == RelayCommand.DATA:
            return self._on_data(message, inbound.digest)
        stream = self._streams.get(message.stream_id) if message.stream_id else None
        if message.command == RelayCommand.CONNECTED and stream is not None:
            stream.connected = True
            return [StreamConnected(message.stream_id, message.data)]
        if message.command == RelayCommand.END and stream is not None:
            stream.ended = True
            reason = message.data[0] if message.data else EndReason.MISC
            return [StreamClosed(message.stream_id, reason)]
        if message.command == RelayCommand.SENDME:
            self._on_sendme(message)
        return []  # DROP, padding, unknown commands, cells for unknown streams

    def _on_data(self, message: RelayCell, digest: bytes) -> list[CircuitEvent]:
        """Count DATA against both deliver windows; SENDME when they call for it (§8.4)."""
        self._windows.deliver -= 1
        if self._windows.deliver < 0:
            raise LinkProtocolError("relay overran the circuit deliver window")
        if self._windows.deliver <= CIRCUIT_WINDOW - CIRCUIT_SENDME_INCREMENT:
            data = struct.pack(">BH", SENDME_VERSION, len(digest)) + digest
            self._send_relay(RelayCell(RelayCommand.SENDME, 0, data))
            self._windows.deliver += CIRCUIT_SENDME_INCREMENT
        stream = self._streams.get(message.stream_id)
        if stream is None or stream.ended:
            return []
        stream.deliver_window -= 1
        if stream.deliver_window < 0:
            raise LinkProtocolError("relay overran a stream deliver window")
        if stream.deliver_window <= STREAM_WINDOW - STREAM_SENDME_INCREMENT:
            self._send_relay(RelayCell(RelayCommand.SENDME, message.stream_id))
            stream.deliver_window += STREAM_SENDME_INCREMENT
        return [StreamData(message.stream_id, message.data)]

    def _on_sendme(self, message: RelayCell) -> None:
        if message.stream_id == 0:
            self._windows.package = min(
                CIRCUIT_WINDOW, self._windows.package + CIRCUIT_SENDME_INCREMENT
            )
            return
        stream = self._streams.get(message.stream_id)
        if stream is not None:
            stream.package_window = min(
                STREAM_WINDOW, stream.package_window + STREAM_SENDME_INCREMENT
            )
