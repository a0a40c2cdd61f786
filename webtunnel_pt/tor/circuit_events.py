"""What :meth:`Circuit.receive_cell <webtunnel_pt.tor.circuit.Circuit.receive_cell>` reports
(tor-link.md §5-§9).

    for event in circuit.receive_cell(cell):
        match event:
            case CircuitOpen(hops) | CircuitExtended(hops): ...
            case StreamConnected(sid, address, ttl) | StreamData(sid, data): ...
            case StreamWritable(sid): ...             # a SENDME reopened a package window
            case StreamClosed(sid, reason) | StreamResolved(sid, answers): ...
            case CircuitClosed(reason, truncated, message): ...   # every stream ends with it
            case ConfluxLinked(desired_ux): ...       # the exit linked this leg (prop 329)

``join_stream_data(events)`` merges a stream's consecutive StreamData (what
``Circuit.receive_cells`` hands out for one read).

Sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from webtunnel_pt.errors import LinkProtocolError
from webtunnel_pt.tor.relay_msgs import ResolvedAnswer


@dataclass(frozen=True)
class CircuitOpen:
    """CREATED_FAST or CREATED2 accepted: the first hop is ready."""

    hops: int = 1


@dataclass(frozen=True)
class CircuitExtended:
    """EXTENDED2 accepted: the circuit now has ``hops`` hops."""

    hops: int


@dataclass(frozen=True)
class CircuitClosed:
    """The circuit is gone, and every stream on it. ``reason`` is the DESTROY or TRUNCATED
    reason (tor-spec §5.4); ``truncated`` says a hop sent RELAY_TRUNCATED (we then sent
    DESTROY). When we destroyed it ourselves because the relay broke the protocol, ``reason``
    is PROTOCOL and ``error`` is the violation (a :class:`LinkProtocolError`, e.g. a
    :class:`~webtunnel_pt.errors.CircuitHandshakeError` for a bad CREATED2/EXTENDED2 AUTH)."""

    reason: int
    truncated: bool = False
    message: str = ""
    error: LinkProtocolError | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ConfluxLinked:
    """The exit answered our CONFLUX_LINK with a valid LINKED (we queued LINKED_ACK): this
    leg waits to join its set. ``desired_ux`` is how the exit would like us to send."""

    desired_ux: int


@dataclass(frozen=True)
class StreamConnected:
    """CONNECTED: the address the exit connected to and its TTL, when the exit said."""

    stream_id: int
    address: str | None = None
    ttl: int | None = None


class StreamData(NamedTuple):
    """DATA on a stream; report it with :meth:`Circuit.consumed` once the application took it.
    (A named tuple: one is made per DATA cell.)"""

    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamWritable:
    """A SENDME reopened a package window this stream was waiting on."""

    stream_id: int


@dataclass(frozen=True)
class StreamClosed:
    """The relay sent END; ``reason`` is MISC when the data was empty (tor-spec §6.3)."""

    stream_id: int
    reason: int


@dataclass(frozen=True)
class StreamResolved:
    """RESOLVED answered a :meth:`Circuit.resolve`; the stream id is free again."""

    stream_id: int
    answers: list[ResolvedAnswer]


CircuitEvent = (
    CircuitOpen
    | CircuitExtended
    | CircuitClosed
    | ConfluxLinked
    | StreamConnected
    | StreamData
    | StreamWritable
    | StreamClosed
    | StreamResolved
)


def join_stream_data(events: list[CircuitEvent]) -> list[CircuitEvent]:
    """Consecutive StreamData events of one stream as one (their data joined, in order): a
    read's DATA cells reach the stream's buffer in one step."""
    out: list[CircuitEvent] = []
    run: list[bytes] = []
    run_stream = -1
    for event in events:
        if isinstance(event, StreamData):
            if event.stream_id == run_stream:
                run.append(event.data)
                continue
            _flush_run(out, run_stream, run)
            run, run_stream = [event.data], event.stream_id
            continue
        _flush_run(out, run_stream, run)
        run, run_stream = [], -1
        out.append(event)
    _flush_run(out, run_stream, run)
    return out


def _flush_run(out: list[CircuitEvent], stream_id: int, run: list[bytes]) -> None:
    if run:
        out.append(StreamData(stream_id, run[0] if len(run) == 1 else b"".join(run)))
