"""A multi-hop circuit that takes its cells as the channel reads them: built hop by hop
(CREATE2, EXTEND2 in RELAY_EARLY; ntor or ntor v3, each hop's HTYPE kept in ``hop_htypes``),
then carrying streams and resolves (tor-link.md §6-§9; issue 14). asyncio glue over the sans-I/O
:class:`~webtunnel_pt.tor.circuit.Circuit`, on a channel's circuit handle
(:class:`~webtunnel_pt.tor.channel_circuit.ChannelCircuit`, taking its cells inline).

    live = LiveCircuit(channel.new_circuit(sendme_emit_version=1), path=hops, exit_relay=exit)
    await live.create(NtorHandshake(bridge_id, bridge_key), deadline)          # CREATE2
    await live.extend(link_specifiers, NtorHandshake(mid_id, mid_key), deadline, "the middle")
    live.enable_congestion_control(sendme_inc, params)     # the exit accepted CC (ntor v3)
    stream = await live.open_stream("example.com", 443, deadline)              # BEGIN, CONNECTED
    answers = await live.resolve("example.com", deadline)                      # RESOLVE
    await live.aclose()

The channel's reader runs each cell through the circuit as it arrives and hands its events to
their streams (:mod:`~webtunnel_pt.tor.stream_io`); it never waits on one, so a stream nobody
reads holds back only itself (its window, or XOFF). Every way a circuit
ends reaches its streams and waiters as one error carrying the reason: DESTROY
(:class:`~webtunnel_pt.errors.CircuitDestroyed`), TRUNCATED
(:class:`~webtunnel_pt.errors.CircuitTruncated`), our DESTROY for a violation (the
:class:`~webtunnel_pt.errors.CircuitProtocolError` or
:class:`~webtunnel_pt.errors.CircuitHandshakeError` itself), the channel's end
(:class:`~webtunnel_pt.errors.ChannelClosed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import (
    CircuitBuildTimeout,
    CircuitDestroyed,
    CircuitTruncated,
    ConfluxSetEnded,
    LinkProtocolError,
    LocalProtocolError,
    ResolveFailed,
    StreamEnded,
    StreamRefused,
    StreamTimeout,
    TorClientClosed,
)
from webtunnel_pt.tor.cells import Cell, DestroyReason, EndReason, RelayCell, reason_name
from webtunnel_pt.tor.channel_circuit import ChannelCircuit
from webtunnel_pt.tor.circuit import (
    VIOLATION_DESTROY_REASON,
    CircuitClosed,
    CircuitEvent,
    CircuitExtended,
    CircuitHandshake,
    CircuitOpen,
    ResolvedAnswer,
    StreamClosed,
    StreamConnected,
    StreamData,
    StreamResolved,
    StreamWritable,
)
from webtunnel_pt.tor.circuit_events import ConfluxLinked
from webtunnel_pt.tor.conflux import ConfluxSequencer
from webtunnel_pt.tor.congestion import CongestionParams, CongestionWindow, overshoot_cap_cells
from webtunnel_pt.tor.stream_io import TorStream

if TYPE_CHECKING:
    from webtunnel_pt.tor.netview import Relay
    from webtunnel_pt.tor.path import PathHop

__all__ = ["LiveCircuit"]

_T = TypeVar("_T")
#: Events about streams: on a conflux leg they go to the leg that keeps the set's streams.
_STREAM_EVENTS = (StreamData, StreamWritable, StreamConnected, StreamResolved, StreamClosed)


class LiveCircuit:
    """A circuit built hop by hop (CREATE2, EXTEND2), then carrying streams
    (:class:`~webtunnel_pt.tor.stream_io.TorStream`) and resolves.

    Its cells reach :meth:`take_cell` in the channel's reader task as they arrive
    (:meth:`ChannelCircuit.receive_inline`): each runs through the sans-I/O circuit (decrypt,
    digest, windows) and its events go to their streams and waiters; the channel writes what
    a read's cells queued (SENDMEs, XON/XOFF, DESTROY) in one write at the end of the read.
    So a SENDME leaves within one read of the cell that called for it, with no task switch
    per cell. It never waits on a stream: a stream nobody reads holds back only itself (its
    window or XOFF; the sans-I/O circuit destroys a circuit whose relay overruns them).
    Everything else the circuit queues is written at once through the channel
    (:meth:`Channel.write_pending`).

    When the circuit ends (DESTROY, TRUNCATED, a protocol violation, the channel's end, or
    :meth:`aclose`) every stream and every waiter gets the error that ended it, carrying the
    reason.
    """

    def __init__(
        self,
        handle: ChannelCircuit,
        *,
        path: tuple[PathHop, ...] = (),
        exit_relay: Relay | None = None,
        on_close: Callable[[LiveCircuit], None] | None = None,
        created_at: float = 0.0,
        cc_params: CongestionParams | None = None,
    ) -> None:
        self.handle = handle
        self.channel = handle.channel
        self.circuit = handle.circuit
        self.path = path
        self.exit_relay = exit_relay
        self.created_at = created_at
        #: The consensus's congestion-control parameters, for when the exit accepts CC.
        self.cc_params = cc_params if cc_params is not None else CongestionParams()
        #: The CREATE2 / EXTEND2 handshake type of each hop built so far (2 ntor, 3 ntor v3).
        self.hop_htypes: list[int] = []
        self._on_close = on_close
        self._streams: dict[int, TorStream] = {}
        self._connecting: dict[int, tuple[asyncio.Future[StreamConnected], TorStream]] = {}
        self._resolving: dict[int, asyncio.Future[list[ResolvedAnswer]]] = {}
        self._hop_waiter: asyncio.Future[int] | None = None
        self._linked_waiter: asyncio.Future[ConfluxLinked] | None = None
        #: The legs of this circuit's conflux set (this one among them), once joined.
        self.conflux_legs: tuple[LiveCircuit, ...] = ()
        #: The set's sequencer (what each leg carried), once joined.
        self.conflux_sequencer: ConfluxSequencer[RelayCell] | None = None
        #: The leg whose circuit keeps the set's streams (this one without conflux).
        self._stream_owner: LiveCircuit = self
        self._error: Exception | None = None
        handle.receive_inline(self)

    @property
    def circ_id(self) -> int:
        return self.circuit.circ_id

    @property
    def is_open(self) -> bool:
        """Usable for new streams: not ended, and its channel is open."""
        return self._error is None and not self.channel.is_closed

    @property
    def error(self) -> Exception | None:
        """What ended the circuit, once it has ended."""
        return self._error

    @property
    def stream_count(self) -> int:
        """Streams open or opening, and resolves waiting."""
        opening = sum(1 for sid in self._connecting if sid not in self._streams)
        return len(self._streams) + opening + len(self._resolving)

    def allows_port(self, port: int | None) -> bool:
        """Whether the exit's policy summary lets a stream to ``port`` out (None: any)."""
        if port is None:
            return True
        return self.exit_relay is not None and self.exit_relay.allows_port(port)

    def fingerprints(self) -> tuple[str, ...]:
        """The RSA identities of the hops, upper-case hex, bridge first."""
        return tuple(hop.rsa_identity.hex().upper() for hop in self.path)

    # ---- building ---------------------------------------------------------------------------

    async def create(self, handshake: CircuitHandshake, deadline: Deadline) -> None:
        """CREATE2 to the first hop; returns once its keys are in (CREATED2 checked)."""
        self._check_open()
        waiter = self._expect_hop()
        self.circuit.create(handshake)
        self._write()
        await self._wait_hop(waiter, deadline, "CREATED2 from the bridge")
        self.hop_htypes.append(handshake.htype)

    async def extend(
        self, link_specifiers: bytes, handshake: CircuitHandshake, deadline: Deadline, what: str
    ) -> None:
        """EXTEND2 (in RELAY_EARLY) to one more hop; returns once EXTENDED2 is checked."""
        self._check_open()
        waiter = self._expect_hop()
        self.circuit.extend(link_specifiers, handshake)
        self._write()
        await self._wait_hop(waiter, deadline, f"EXTENDED2 from {what}")
        self.hop_htypes.append(handshake.htype)

    def enable_congestion_control(
        self, sendme_inc: int, params: CongestionParams | None = None
    ) -> None:
        """The last hop accepted congestion control with ``sendme_inc`` (prop 324): Vegas and
        XON/XOFF for the streams opened from now on; the inbox may then hold what the exit's
        window allows. A sendme_inc tor would refuse raises CircuitProtocolError."""
        params = params if params is not None else self.cc_params
        self.circuit.enable_congestion_control(-1, sendme_inc, params=params)
        self.handle.inbox.limit = max(self.handle.inbox.limit, overshoot_cap_cells(params))

    @property
    def congestion_control(self) -> CongestionWindow | None:
        """The exit's congestion window (cwnd, inflight, RTTs), None with fixed windows."""
        return self.circuit.congestion_control(-1)

    # ---- conflux (prop 329) ------------------------------------------------------------------

    async def link_conflux(self, nonce: bytes, deadline: Deadline) -> float:
        """CONFLUX_LINK to the exit; the seconds until its LINKED (checked; LINKED_ACK
        queued and written). The leg then waits for :meth:`join_conflux`."""
        self._check_open()
        waiter: asyncio.Future[ConfluxLinked] = asyncio.get_running_loop().create_future()
        self._linked_waiter = waiter
        self.circuit.conflux_link(nonce)
        started = time.monotonic()
        self._write()
        seconds = deadline.remaining()
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError as exc:
            what = f"no CONFLUX_LINKED from the exit within {seconds:.3g} s"
            raise CircuitBuildTimeout(what) from exc
        finally:
            self._linked_waiter = None
        return time.monotonic() - started

    def join_conflux(
        self,
        sequencer: ConfluxSequencer[RelayCell],
        legs: tuple[LiveCircuit, ...],
        owner: LiveCircuit,
    ) -> None:
        """This linked leg joins its set: the exit's stream messages, on any leg, reach the
        streams of ``owner`` in order; when one leg ends, every leg does."""
        leg = self.circuit.conflux
        if leg is None:
            raise LocalProtocolError("join_conflux before link_conflux")
        leg.join(sequencer, legs.index(self), owner.circuit)
        self.conflux_legs = legs
        self.conflux_sequencer = sequencer
        self._stream_owner = owner

    def _expect_hop(self) -> asyncio.Future[int]:
        self._hop_waiter = asyncio.get_running_loop().create_future()
        return self._hop_waiter

    async def _wait_hop(self, waiter: asyncio.Future[int], deadline: Deadline, what: str) -> None:
        seconds = deadline.remaining()
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError as exc:
            raise CircuitBuildTimeout(f"no {what} within {seconds:.3g} s") from exc
        finally:
            self._hop_waiter = None

    # ---- streams ----------------------------------------------------------------------------

    async def open_stream(
        self,
        host: str,
        port: int,
        deadline: Deadline,
        *,
        extra: dict[str, Any] | None = None,
    ) -> TorStream:
        """RELAY_BEGIN to the exit, and the stream once CONNECTED. END before it raises
        :class:`StreamRefused` (the END reason), the deadline :class:`StreamTimeout`.

        The stream joins the circuit's streams as the driver takes CONNECTED, so DATA right
        behind it is not lost."""
        self._check_open()
        stream_id = self.circuit.begin(host, port)
        info = dict(extra or {})
        info.update(
            tor_circuit_id=self.circ_id,
            tor_path=self.fingerprints(),
            tor_congestion_control=self.congestion_control is not None,
            tor_congestion_window=self.congestion_control,
            tor_stream_flow=self.circuit.stream_flow(stream_id),
            tor_hop_htypes=tuple(self.hop_htypes),
            tor_conflux_paths=tuple(leg.fingerprints() for leg in self.conflux_legs),
            tor_conflux_sequencer=self.conflux_sequencer,
        )
        stream = TorStream(self, stream_id, peername=(host, port), extra=info)
        waiter: asyncio.Future[StreamConnected] = asyncio.get_running_loop().create_future()
        self._connecting[stream_id] = (waiter, stream)
        self._write()
        try:
            await self._exit_answer(waiter, stream_id, deadline, "CONNECTED")
        finally:
            self._connecting.pop(stream_id, None)
        return stream

    async def resolve(self, host: str, deadline: Deadline) -> list[ResolvedAnswer]:
        """RELAY_RESOLVE at the exit; the answers of its RESOLVED."""
        self._check_open()
        stream_id = self.circuit.resolve(host)
        waiter: asyncio.Future[list[ResolvedAnswer]] = asyncio.get_running_loop().create_future()
        self._resolving[stream_id] = waiter
        self._write()
        try:
            return await self._exit_answer(waiter, stream_id, deadline, "RESOLVED")
        finally:
            self._resolving.pop(stream_id, None)

    async def _exit_answer(
        self, waiter: asyncio.Future[_T], stream_id: int, deadline: Deadline, what: str
    ) -> _T:
        """The exit's answer to a BEGIN or RESOLVE; on timeout or cancellation the request is
        abandoned (END) first."""
        seconds = deadline.remaining()
        try:
            async with asyncio.timeout(seconds):
                return await waiter
        except TimeoutError as exc:
            self._abandon(stream_id)
            raise StreamTimeout(f"no {what} from the exit within {seconds:.3g} s") from exc
        except asyncio.CancelledError:
            self._abandon(stream_id)
            raise

    def _abandon(self, stream_id: int) -> None:
        """A BEGIN we no longer wait for: END it (if the circuit still lives)."""
        self._streams.pop(stream_id, None)  # CONNECTED may have come with the deadline
        if self._error is None:
            with contextlib.suppress(LocalProtocolError):
                self.circuit.end_stream(stream_id, EndReason.MISC)
            self._write()

    # ---- the StreamLink the streams use -----------------------------------------------------

    def consumed(self, stream_id: int, nbytes: int) -> None:
        if self._error is None and stream_id in self._streams:
            self.circuit.consumed(stream_id, nbytes)
            self._write()

    def sendable(self, stream_id: int) -> int:
        if self._error is not None or stream_id not in self._streams:
            return 0
        return self.circuit.sendable(stream_id)

    def send_data(self, stream_id: int, data: bytes) -> int:
        if self._error is not None or stream_id not in self._streams:
            return 0
        taken = self.circuit.send_data(stream_id, data)
        self._write()
        return taken

    def end_stream(self, stream_id: int, reason: int) -> None:
        if self._streams.pop(stream_id, None) is not None and self._error is None:
            with contextlib.suppress(LocalProtocolError):
                self.circuit.end_stream(stream_id, reason)
            self._write()

    async def drain(self) -> None:
        if self._error is not None:
            raise self._error
        await self.channel.flush(self.circuit)

    # ---- the driver -------------------------------------------------------------------------

    def _write(self) -> None:
        self.channel.write_pending(self.circuit)

    def take_cell(self, cell: Cell) -> None:
        """One of the circuit's cells, in the channel's reader as it arrives: as
        :meth:`take_cells` with one cell."""
        self.take_cells([cell])

    def take_cells(self, cells: list[Cell]) -> None:
        """The circuit's cells of one read, in the channel's reader as they arrive, in order:
        run through the sans-I/O circuit (decrypted together, :meth:`Circuit.receive_cells`),
        their events handed to their streams and waiters. The channel writes what they queued
        (SENDMEs) after the read. A bug here ends this circuit, not the channel."""
        if self._error is not None:
            return
        try:
            for event in self.circuit.receive_cells(cells):
                self._dispatch(event)
            if self._stream_owner is not self:
                self._stream_owner._write()  # its streams' XON/XOFF
        except LinkProtocolError as exc:  # receive_cells reports the relay's as events
            self.circuit.destroy(VIOLATION_DESTROY_REASON)
            self._finish(exc)
        except Exception as exc:  # a bug: this circuit ends, the channel goes on
            self._finish(exc)

    def circuit_ended(self, error: Exception) -> None:
        """The channel ended (ChannelClosed, ...): so does the circuit."""
        self._finish(error)

    def _dispatch(self, event: CircuitEvent) -> None:
        if self._stream_owner is not self and isinstance(event, _STREAM_EVENTS):
            self._stream_owner._dispatch(event)
        elif isinstance(event, ConfluxLinked):
            if self._linked_waiter is not None and not self._linked_waiter.done():
                self._linked_waiter.set_result(event)
        elif isinstance(event, (CircuitOpen, CircuitExtended)):
            if self._hop_waiter is not None and not self._hop_waiter.done():
                self._hop_waiter.set_result(self.circuit.hops)
        elif isinstance(event, StreamData):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.feed_data(event.data)
        elif isinstance(event, StreamWritable):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.wake_writer()
        elif isinstance(event, StreamConnected):
            opening = self._connecting.get(event.stream_id)
            if opening is not None and not opening[0].done():
                waiter, stream = opening
                stream.extra.update(exit_address=event.address, exit_ttl=event.ttl)
                self._streams[event.stream_id] = stream
                waiter.set_result(event)
        elif isinstance(event, StreamResolved):
            answers = self._resolving.get(event.stream_id)
            if answers is not None and not answers.done():
                answers.set_result(list(event.answers))
        elif isinstance(event, StreamClosed):
            self._stream_closed(event.stream_id, event.reason)
        elif isinstance(event, CircuitClosed):
            self._finish(_closed_error(event))

    def _stream_closed(self, stream_id: int, reason: int) -> None:
        name = reason_name(EndReason, reason)
        opening = self._connecting.get(stream_id)
        connecting = opening[0] if opening is not None else None
        resolving = self._resolving.get(stream_id)
        if connecting is not None and not connecting.done():
            connecting.set_exception(StreamRefused(reason, f"the exit refused the stream: {name}"))
        elif resolving is not None and not resolving.done():
            resolving.set_exception(ResolveFailed(reason, f"the exit could not resolve: {name}"))
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.feed_end(reason)

    def _finish(self, error: Exception) -> None:
        """The circuit has ended with ``error``: wake and fail everything that waits on it."""
        if self._error is not None:
            return
        self._error = error
        waiters: list[asyncio.Future[Any]] = [w for w, _ in self._connecting.values()]
        waiters.extend(self._resolving.values())
        for pending in (self._hop_waiter, self._linked_waiter):
            if pending is not None:
                waiters.append(pending)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(_copy_error(error))
        for stream in self._streams.values():
            stream.fail(_copy_error(error))
        self._streams.clear()
        self.channel.end_circuit(self.circ_id, lambda: _copy_error(error), discard=True)
        if self._on_close is not None:
            self._on_close(self)
        for leg in self.conflux_legs:
            leg._set_ended(error)

    def _set_ended(self, error: Exception) -> None:
        """Another leg of this circuit's conflux set ended: so does this one (no resumption,
        as in tor: the set's data may have been on it)."""
        if self._error is None:
            self.circuit.destroy(DestroyReason.NONE)
            self._write()
            reason = error.reason if isinstance(error, CircuitDestroyed) else DestroyReason.NONE
            ended = ConfluxSetEnded(reason, f"another leg of the conflux set ended: {error}")
            ended.__cause__ = error
            self._finish(ended)

    def _check_open(self) -> None:
        if self._error is not None:
            raise _copy_error(self._error)

    async def aclose(self) -> None:
        """DESTROY (reason NONE) unless it already ended; fail its streams; stop the task."""
        if self._error is None:
            self.circuit.destroy(DestroyReason.NONE)
            self._write()
            self._finish(TorClientClosed("the circuit was closed"))


def _closed_error(event: CircuitClosed) -> Exception:
    """The error a circuit's end is reported as: the violation when we destroyed it (a bad
    CREATED2/EXTENDED2 AUTH is a CircuitHandshakeError), else the relay's reason."""
    if event.error is not None:
        return event.error
    name = reason_name(DestroyReason, event.reason)
    if event.truncated:
        text = event.message or f"a hop truncated the circuit: {name}"
        return CircuitTruncated(event.reason, text)
    return CircuitDestroyed(event.reason, event.message or f"relay destroyed the circuit: {name}")


def _copy_error(error: Exception) -> Exception:
    """A fresh exception of the same kind for each waiter (an exception object raised in two
    tasks would collect both tracebacks); the original is the ``__cause__``."""
    try:
        if isinstance(error, (CircuitDestroyed, StreamEnded)):
            copy: Exception = type(error)(error.reason, str(error))
        else:
            copy = type(error)(str(error))
    except TypeError:  # a class with another signature: hand the original out
        return error
    copy.__cause__ = error
    return copy
