"""A circuit on an open :class:`~webtunnel_pt.tor.channel.Channel`: its bounded inbox of cells,
its events, and the stream operations the built-in client needs (BEGIN_DIR, DATA, read to END,
one directory fetch; tor-link.md §8, §9, §10). asyncio glue over the sans-I/O
:class:`~webtunnel_pt.tor.circuit.Circuit`.

    circuit = await channel.create_fast_circuit()
    response = await circuit.fetch_directory("/tor/server/authority")

The channel's reader puts the circuit's cells into its :class:`CircuitInbox`; the circuit's
owner takes them (:meth:`ChannelCircuit.next_event`), so decryption, window accounting and
SENDMEs happen as cells are consumed.

Each wait takes what is left of a :class:`~webtunnel_pt.deadlines.Deadline`: one passed in, or
one of ``timeout_s`` started by the call; a whole fetch shares one budget.

Multi-hop circuits with streams, driven by a task of their own, are
:class:`~webtunnel_pt.tor.live_circuit.LiveCircuit` (issue 14).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from webtunnel_pt.deadlines import CIRCUIT_TIMEOUT_S, Deadline
from webtunnel_pt.errors import (
    CircuitDestroyed,
    DirectoryError,
    HandshakeTimeout,
    LinkProtocolError,
    StreamEnded,
)
from webtunnel_pt.tor.cells import Cell, DestroyReason, EndReason, reason_name
from webtunnel_pt.tor.circuit import (
    CIRCUIT_SENDME_INCREMENT,
    CIRCUIT_WINDOW,
    VIOLATION_DESTROY_REASON,
    Circuit,
    CircuitClosed,
    CircuitEvent,
    StreamClosed,
    StreamConnected,
    StreamData,
)
from webtunnel_pt.tor.directory import (
    MAX_DIR_RESPONSE_BYTES,
    DirResponse,
    dir_request,
    parse_dir_response,
)

if TYPE_CHECKING:
    from webtunnel_pt.tor.channel import Channel

#: Cells waiting in one circuit's inbox. SENDMEs go out as cells are taken, so a relay honouring
#: the circuit window has at most this many queued; the margin is for CONNECTED, END and SENDMEs.
#: A circuit with congestion control raises its inbox's ``limit`` (the exit's window can grow).
MAX_QUEUED_CELLS_PER_CIRCUIT = CIRCUIT_WINDOW + CIRCUIT_SENDME_INCREMENT

#: Makes the error a closed inbox raises: a fresh exception for each waiter.
ErrorFactory = Callable[[], Exception]


class InlineReceiver(Protocol):
    """A circuit's owner that takes its cells in the channel's reader as they arrive
    (:meth:`ChannelCircuit.receive_inline`) instead of from the inbox."""

    def take_cell(self, cell: Cell) -> None:
        """One cell for the circuit, in the reader task: must not block, and should not
        raise (an exception here ends the whole channel)."""

    def take_cells(self, cells: list[Cell]) -> None:
        """The circuit's cells of one read, in order; the same rules."""

    def circuit_ended(self, error: Exception) -> None:
        """No more cells will come: the channel ended (or had ended this circuit)."""


def budget(timeout_s: float, deadline: Deadline | None) -> Deadline:
    """A step's own limit as a deadline, cut to what is left of the caller's ``deadline``."""
    return Deadline.after(deadline.cap(timeout_s) if deadline is not None else timeout_s)


class CircuitInbox:
    """One circuit's cells, from the channel's reader to the circuit's owner: at most
    :data:`MAX_QUEUED_CELLS_PER_CIRCUIT` (or ``limit``), and closable with an error that
    waits then raise."""

    def __init__(self, limit: int = MAX_QUEUED_CELLS_PER_CIRCUIT) -> None:
        self.limit = limit
        self._cells: deque[Cell] = deque()
        self._error: ErrorFactory | None = None
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._cells)

    @property
    def closed(self) -> bool:
        return self._error is not None

    def offer(self, cell: Cell) -> bool:
        """Queue ``cell``; ``False`` when the inbox is full or closed."""
        if self._error is not None or len(self._cells) >= self.limit:
            return False
        self._cells.append(cell)
        self._changed.set()
        return True

    def close(self, error: ErrorFactory, *, discard: bool = False) -> None:
        """Waits raise ``error()`` once the queued cells are taken (at once with ``discard``).
        The first error wins."""
        if self._error is None:
            self._error = error
        if discard:
            self._cells.clear()
        self._changed.set()

    def take_all(self) -> list[Cell]:
        """The cells queued now, in order, without waiting."""
        batch = list(self._cells)
        self._cells.clear()
        return batch

    def error(self) -> Exception | None:
        """The error the inbox was closed with (a fresh one), None while open."""
        return None if self._error is None else self._error()

    async def get(self, deadline: Deadline | None = None) -> Cell:
        """The next cell; :class:`TimeoutError` at the ``deadline`` (none: no limit)."""
        if not self._cells:  # a queued cell is taken without arming a timer
            await self._wait(deadline)
        return self._cells.popleft()

    async def get_batch(self, limit: int, deadline: Deadline | None = None) -> list[Cell]:
        """The cells queued now, at least one and at most ``limit``, in order; waits and
        raises as :meth:`get` does."""
        cells = self._cells
        if not cells:
            await self._wait(deadline)
        if len(cells) <= limit:
            batch = list(cells)
            cells.clear()
            return batch
        return [cells.popleft() for _ in range(limit)]

    async def _wait(self, deadline: Deadline | None) -> None:
        async with asyncio.timeout(None if deadline is None else deadline.remaining()):
            while not self._cells:
                if self._error is not None:
                    raise self._error()
                self._changed.clear()
                await self._changed.wait()


class ChannelCircuit:
    """A circuit on a channel, with its inbox and the stream operations the probe needs."""

    def __init__(self, channel: Channel, circuit: Circuit, inbox: CircuitInbox) -> None:
        self.channel = channel
        self.circuit = circuit
        self.inbox = inbox
        self._events: deque[CircuitEvent] = deque()

    @property
    def circ_id(self) -> int:
        return self.circuit.circ_id

    def receive_inline(self, receiver: InlineReceiver) -> None:
        """From now on the channel's reader hands this circuit's cells to ``receiver`` as they
        arrive, and writes what they made the circuit queue (SENDMEs) once per read: no inbox,
        no task switch per cell. What the inbox held is handed over first."""
        self.channel.receive_inline(self.circ_id, self.inbox, receiver)

    async def next_cell(self, deadline: Deadline | None = None) -> Cell:
        """The next cell the relay sent on this circuit, as it arrived (not decrypted).
        :class:`TimeoutError` at the ``deadline`` (none: no limit); once the circuit or the
        channel has ended and the queued cells are taken, the error that ended it
        (:class:`~webtunnel_pt.errors.ChannelClosed`, ...)."""
        return await self.inbox.get(deadline)

    async def next_cells(self, limit: int, deadline: Deadline | None = None) -> list[Cell]:
        """The cells queued now (at least one, at most ``limit``), as :meth:`next_cell`."""
        return await self.inbox.get_batch(limit, deadline)

    async def next_event(self, deadline: Deadline | None = None) -> CircuitEvent:
        """The circuit's next event; the SENDMEs it calls for are sent. DESTROY raises
        :class:`CircuitDestroyed`, a cell that breaks the protocol :class:`LinkProtocolError`
        (after our DESTROY), the ``deadline`` :class:`TimeoutError`."""
        while not self._events:
            cell = await self.next_cell(deadline)
            try:
                self._events.extend(self.circuit.receive_cell(cell))
            except LinkProtocolError as exc:
                self.circuit.destroy(VIOLATION_DESTROY_REASON)
                self.channel.end_circuit(self.circ_id, _same_error(exc))
                await self.channel.flush_if_open(self.circuit)
                raise
            await self.channel.flush_if_open(self.circuit)
        event = self._events.popleft()
        if isinstance(event, CircuitClosed):
            if event.error is not None:  # we destroyed it: the relay broke the protocol
                self.channel.end_circuit(self.circ_id, _same_error(event.error))
                raise event.error
            reason = event.reason
            self.channel.end_circuit(self.circ_id, lambda: _destroyed(reason))
            raise _destroyed(reason)
        return event

    async def begin_dir(
        self, timeout_s: float = CIRCUIT_TIMEOUT_S, *, deadline: Deadline | None = None
    ) -> int:
        """BEGIN_DIR and wait for CONNECTED (§8.1); END raises :class:`StreamEnded`."""
        wait = budget(timeout_s, deadline)
        seconds = wait.remaining()
        stream_id = self.circuit.begin_dir()
        await self.channel.flush(self.circuit)
        try:
            while True:
                event = await self.next_event(wait)
                if isinstance(event, StreamConnected) and event.stream_id == stream_id:
                    return stream_id
                if isinstance(event, StreamClosed) and event.stream_id == stream_id:
                    raise StreamEnded(event.reason, _end_message("BEGIN_DIR", event.reason))
        except TimeoutError as exc:
            raise HandshakeTimeout(f"no answer to BEGIN_DIR within {seconds:.3g} s") from exc

    async def send(self, stream_id: int, data: bytes) -> None:
        self.circuit.send_data(stream_id, data)
        await self.channel.flush(self.circuit)

    async def read_to_end(
        self,
        stream_id: int,
        limit: int = MAX_DIR_RESPONSE_BYTES,
        *,
        deadline: Deadline | None = None,
    ) -> bytes:
        """Stream data until the relay's END; more than ``limit`` bytes is an error. At the
        ``deadline`` (none: no limit), :class:`TimeoutError`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.next_event(deadline)
            if isinstance(event, StreamData) and event.stream_id == stream_id:
                size += len(event.data)
                if size > limit:
                    raise DirectoryError(f"directory answer exceeds {limit} bytes")
                chunks.append(event.data)
            elif isinstance(event, StreamClosed) and event.stream_id == stream_id:
                return b"".join(chunks)

    async def fetch_directory(
        self,
        path: str,
        *,
        timeout_s: float = CIRCUIT_TIMEOUT_S,
        host: str | None = None,
        deadline: Deadline | None = None,
    ) -> DirResponse:
        """BEGIN_DIR, ``GET path HTTP/1.0``, read to END, parse (§10); all within one budget of
        ``timeout_s`` (cut to what is left of ``deadline``)."""
        wait = budget(timeout_s, deadline)
        seconds = wait.remaining()
        stream_id = await self.begin_dir(timeout_s, deadline=wait)
        await self.send(stream_id, dir_request(path, host))
        try:
            raw = await self.read_to_end(stream_id, deadline=wait)
        except TimeoutError as exc:
            raise HandshakeTimeout(f"directory answer not complete within {seconds:.3g} s") from exc
        return parse_dir_response(raw)


def _destroyed(reason: int) -> CircuitDestroyed:
    name = reason_name(DestroyReason, reason)
    return CircuitDestroyed(reason, f"relay destroyed the circuit: {name}")


def _same_error(exc: LinkProtocolError) -> ErrorFactory:
    """Later waits on a circuit that broke the protocol raise an error of the same kind."""
    return lambda: type(exc)(str(exc))


def _end_message(what: str, reason: int) -> str:
    return f"relay ended the {what} stream: {reason_name(EndReason, reason)}"
