"""The channel: the link handshake over inner TLS, then one open link to a relay that circuits
live on (tor-link.md §4, §5, §9). asyncio glue.

    tls = await start_inner_tls(writer, timeout_s=10)          # inner_tls.py
    channel = await handshake_channel(reader, writer, tls, expected_fingerprint=fp)
    circuit = await channel.create_fast_circuit()              # channel_circuit.py
    response = await circuit.fetch_directory("/tor/server/authority")
    await channel.aclose()

One reader task per channel reads cells from the link and hands each to its circuit; the
channel owns the task and :meth:`Channel.aclose` cancels and awaits it. A circuit whose owner
asked for it (:meth:`ChannelCircuit.receive_inline`, the built-in client's multi-hop circuits)
has each cell run through it in the reader as it arrives, and what a read's cells queued
(SENDMEs) goes out in one write at the end of that read. Other circuits' cells wait in an inbox
until their owner takes them (:meth:`ChannelCircuit.next_event`, with a deadline). PADDING, VPADDING
and cells for unknown circuits are dropped; DESTROY ends the circuit it names. When the link
ends or fails, every waiting circuit gets :class:`ChannelClosed`.

Inboxes are bounded (:data:`MAX_QUEUED_CELLS_PER_CIRCUIT`; with congestion control, twice the
exit's slow-start ceiling; inline circuits queue nothing here: their streams' windows and XOFF
bound what waits): SENDMEs go out only as cells are taken, so a relay that honours its
window cannot fill one; one that does is in violation, and the channel destroys that circuit
(a protocol error here; reason NONE on the wire, as tor's client sends) instead of buffering
without end.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from types import TracebackType

from webtunnel_pt.deadlines import (
    CHANNEL_CLOSE_TIMEOUT_S,
    CIRCUIT_TIMEOUT_S,
    LINK_HANDSHAKE_TIMEOUT_S,
    Deadline,
)
from webtunnel_pt.errors import ChannelClosed, HandshakeTimeout, LinkProtocolError
from webtunnel_pt.tor.cells import Cell, CellParser, IPAddress, encode_cell
from webtunnel_pt.tor.certs import RelayIdentity
from webtunnel_pt.tor.channel_circuit import (
    MAX_QUEUED_CELLS_PER_CIRCUIT,
    ChannelCircuit,
    CircuitInbox,
    ErrorFactory,
    InlineReceiver,
    budget,
)
from webtunnel_pt.tor.circuit import (
    VIOLATION_DESTROY_REASON,
    Circuit,
    CircuitOpen,
    allocate_circ_id,
)
from webtunnel_pt.tor.inner_tls import InnerTls, inner_tls_context, random_sni, start_inner_tls
from webtunnel_pt.tor.link_handshake import ClientHandshake, LinkOpen

__all__ = [
    "MAX_QUEUED_CELLS_PER_CIRCUIT",
    "READ_CHUNK_BYTES",
    "Channel",
    "ChannelCircuit",
    "InnerTls",
    "handshake_channel",
    "inner_tls_context",
    "open_channel",
    "random_sni",
    "start_inner_tls",
]

#: One read from the stream: bounds what a single read can pull into memory, and how many
#: cells (about 32) the reader runs through the inline circuits before it writes their SENDMEs
#: and lets the streams' readers run. 16 KiB downloaded 25 % faster than 64 KiB on the bench
#: network (sooner SENDMEs: the fixed windows' round trip is the bound) for 6 % more CPU;
#: 8 and 4 KiB were no faster and cost more CPU.
READ_CHUNK_BYTES = 16 * 1024


#: While more has arrived than one read takes, what the inline circuits queued over several
#: reads (SENDMEs, XON/XOFF) leaves in one write, at the latest after this many cells: under
#: load, fewer and fuller writes (each a TLS record in a TLS record, then a hop through nginx,
#: the WebTunnel server and the relays); once the reader has caught up, at once.
FLUSH_AFTER_CELLS = 128


def _has_buffered(reader: asyncio.StreamReader) -> bool:
    """Whether the next read returns at once (asyncio has no public way to ask)."""
    return bool(getattr(reader, "_buffer", b""))


async def _read_some(reader: asyncio.StreamReader, when: str = "") -> bytes:
    """Up to :data:`READ_CHUNK_BYTES`; the end of the link or a failed read is ChannelClosed."""
    where = f" {when}" if when else ""
    try:
        data = await reader.read(READ_CHUNK_BYTES)
    except (ConnectionError, ssl.SSLError) as exc:
        raise ChannelClosed(f"link failed{where}: {type(exc).__name__}") from exc
    if not data:
        raise ChannelClosed(f"relay closed the link{where}")
    return data


async def _run_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handshake: ClientHandshake
) -> LinkOpen:
    writer.write(handshake.data_to_send())
    await writer.drain()
    while True:
        handshake.receive_data(await _read_some(reader, "during the link handshake"))
        event = handshake.next_event()
        out = handshake.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        if event is not None:
            return event


async def handshake_channel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: InnerTls,
    *,
    expected_fingerprint: str | None,
    peer_address: IPAddress | None = None,
    timeout_s: float = LINK_HANDSHAKE_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
    deadline: Deadline | None = None,
) -> Channel:
    """VERSIONS, CERTS (verified against ``tls`` and the fingerprint), NETINFO (§4), within
    ``timeout_s`` (cut to what is left of ``deadline``).

    On failure the stream stays the caller's to close; on success the :class:`Channel` owns it.
    """
    if deadline is not None:
        timeout_s = deadline.cap(timeout_s)
    handshake = ClientHandshake(
        tls_leaf_der=tls.leaf_der,
        expected_fingerprint=expected_fingerprint,
        clock=clock,
        peer_address=peer_address,
    )
    try:
        async with asyncio.timeout(timeout_s):
            link = await _run_handshake(reader, writer, handshake)
    except TimeoutError as exc:
        raise HandshakeTimeout(
            f"link handshake timed out after {timeout_s:.3g} s in {handshake.state.name}"
        ) from exc
    return Channel(reader, writer, link, tls, clock)


async def open_channel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    expected_fingerprint: str | None,
    peer_address: IPAddress | None = None,
    timeout_s: float = LINK_HANDSHAKE_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
    deadline: Deadline | None = None,
) -> Channel:
    """Inner TLS and link handshake in one call, both within one budget of ``timeout_s``."""
    wait = budget(timeout_s, deadline)
    tls = await start_inner_tls(writer, timeout_s=timeout_s, reader=reader, deadline=wait)
    return await handshake_channel(
        reader,
        writer,
        tls,
        expected_fingerprint=expected_fingerprint,
        peer_address=peer_address,
        timeout_s=timeout_s,
        clock=clock,
        deadline=wait,
    )


class Channel:
    """An open link to one relay; circuits are created on it and their cells dispatched to
    them by one reader task that the channel owns (also an async context manager).

    Made by :func:`handshake_channel`, inside a running event loop: the reader starts at once.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: LinkOpen,
        tls: InnerTls,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.link = link
        self.tls = tls
        self.opened_at = clock()
        self._parser: CellParser = link.parser
        self._circuits: dict[int, Circuit] = {}
        self._inboxes: dict[int, CircuitInbox] = {}
        self._receivers: dict[int, InlineReceiver] = {}
        self._touched: dict[int, Circuit] = {}  # circuits inline cells went to since a write
        self._unflushed = 0  # cells taken since their circuits' queued cells were last written
        self._closed: ChannelClosed | None = None
        self._failure: Exception | None = None
        self._reader_task = asyncio.get_running_loop().create_task(
            self._read_cells(), name=f"tor channel reader {id(self):x}"
        )

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def link_version(self) -> int:
        return self.link.link_version

    @property
    def identity(self) -> RelayIdentity:
        return self.link.identity

    @property
    def clock_skew(self) -> float | None:
        """Relay clock minus ours when the relay's NETINFO arrived, in seconds."""
        return self.link.clock_skew(self.opened_at)

    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    # ---- circuits ------------------------------------------------------------------------

    def new_circuit(
        self, *, sendme_emit_version: int = 1, sendme_accept_version: int = 0
    ) -> ChannelCircuit:
        """A circuit with a free id, registered so that the reader hands its cells to its inbox
        (nothing sent yet). The SENDME versions come from the consensus parameters
        ``sendme_emit_min_version`` and ``sendme_accept_min_version``."""
        self._check_open()
        circuit = Circuit(
            allocate_circ_id(self._circuits, self.link_version),
            self.link_version,
            sendme_emit_version=sendme_emit_version,
            sendme_accept_version=sendme_accept_version,
        )
        inbox = CircuitInbox()
        self._circuits[circuit.circ_id] = circuit
        self._inboxes[circuit.circ_id] = inbox
        return ChannelCircuit(self, circuit, inbox)

    async def create_fast_circuit(
        self, timeout_s: float = CIRCUIT_TIMEOUT_S, *, deadline: Deadline | None = None
    ) -> ChannelCircuit:
        """A one-hop circuit to the relay with CREATE_FAST (§5)."""
        wait = budget(timeout_s, deadline)
        seconds = wait.remaining()
        handle = self.new_circuit()
        handle.circuit.create_fast()
        await self.flush(handle.circuit)
        try:
            event = await handle.next_event(wait)
        except TimeoutError as exc:
            raise HandshakeTimeout(f"no CREATED_FAST within {seconds:.3g} s") from exc
        if not isinstance(event, CircuitOpen):  # pragma: no cover - only OPEN or DESTROY here
            raise LinkProtocolError(f"unexpected {type(event).__name__} while creating")
        return handle

    def receive_inline(self, circ_id: int, inbox: CircuitInbox, receiver: InlineReceiver) -> None:
        """Hand the cells of ``circ_id`` to ``receiver`` in the reader, as they arrive
        (:meth:`ChannelCircuit.receive_inline`): first what its ``inbox`` holds; a circuit
        that has ended (or a closed channel) is reported to the receiver at once."""
        for cell in inbox.take_all():
            receiver.take_cell(cell)
        error = inbox.error()
        if error is not None:
            receiver.circuit_ended(error)
        elif circ_id in self._circuits:
            self._receivers[circ_id] = receiver

    def end_circuit(self, circ_id: int, error: ErrorFactory, *, discard: bool = False) -> None:
        """No more cells for ``circ_id``: its inbox stays with its owner, closed with ``error``
        once the cells already queued are taken (at once with ``discard``)."""
        self._circuits.pop(circ_id, None)
        self._receivers.pop(circ_id, None)
        inbox = self._inboxes.pop(circ_id, None)
        if inbox is not None:
            inbox.close(error, discard=discard)

    # ---- writing -------------------------------------------------------------------------

    async def flush(self, circuit: Circuit) -> None:
        """Write the cells the circuit has queued."""
        self._check_open()
        if not self._write(circuit):
            return
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            raise self._fail(f"write failed: {type(exc).__name__}", exc) from exc

    async def flush_if_open(self, circuit: Circuit) -> None:
        """After taking a cell: a closed link cannot take the SENDMEs, and the event still
        belongs to the caller."""
        if self._closed is None:
            await self.flush(circuit)

    def write_pending(self, circuit: Circuit) -> None:
        """Write the cells the circuit has queued, without waiting (the transport buffers them;
        :meth:`flush` waits for room). On a closed channel they are dropped."""
        if self._closed is None:
            self._write(circuit)
        else:
            circuit.cells_to_send()

    def _write(self, circuit: Circuit) -> bool:
        cells = circuit.cells_to_send()
        if cells:
            self._writer.write(b"".join(encode_cell(c, self.link_version) for c in cells))
        return bool(cells)

    # ---- the reader task -----------------------------------------------------------------

    async def _read_cells(self) -> None:
        """The one reader: route every cell to its circuit (its receiver, or its inbox) until
        the link ends; after each read, one write for what the receivers' circuits queued."""
        try:
            while True:
                batch = self._parser.take_cells()
                self._route_read(batch)
                self._unflushed += len(batch)
                if self._touched:
                    if self._unflushed >= FLUSH_AFTER_CELLS or not _has_buffered(self._reader):
                        self._unflushed = 0
                        self._write_touched()
                    # The streams' readers take this read's data before the next read (their
                    # stream SENDMEs, XON): a read from a full buffer would not yield.
                    await asyncio.sleep(0)
                self._parser.receive_data(await _read_some(self._reader))
        except ChannelClosed as exc:
            self._fail(str(exc), exc)
        except Exception as exc:  # a bug here must still wake every waiter
            self._fail(f"channel reader failed: {type(exc).__name__}: {exc}", exc)

    def _write_touched(self) -> None:
        """The cells the inline circuits queued during this read (SENDMEs, XON/XOFF,
        DESTROY), in one write."""
        circuits = list(self._touched.values())
        self._touched.clear()
        cells = [cell for circuit in circuits for cell in circuit.cells_to_send()]
        if cells and self._closed is None:
            version = self.link_version
            self._writer.write(b"".join(encode_cell(c, version) for c in cells))

    def _route_read(self, cells: list[Cell]) -> None:
        """One read's cells: each inline circuit takes its own together, in their order
        (circuits are independent, so their cells need not interleave as they came); the
        others' go to their inboxes one by one."""
        if len(cells) == 1:
            self._route(cells[0])
            return
        runs: dict[int, list[Cell]] = {}
        for cell in cells:
            run = runs.get(cell.circ_id)
            if run is None:
                runs[cell.circ_id] = [cell]
            else:
                run.append(cell)
        for circ_id, run in runs.items():
            receiver = self._receivers.get(circ_id)
            if receiver is None or len(run) == 1:
                for cell in run:
                    self._route(cell)
            else:
                self._touched[circ_id] = self._circuits[circ_id]
                receiver.take_cells(run)

    def _route(self, cell: Cell) -> None:
        receiver = self._receivers.get(cell.circ_id)
        if receiver is not None:
            self._touched[cell.circ_id] = self._circuits[cell.circ_id]
            receiver.take_cell(cell)
            return
        inbox = self._inboxes.get(cell.circ_id)
        if inbox is None:
            return  # link-level padding, late VERSIONS, cells for ended circuits
        if inbox.offer(cell):
            return
        circuit = self._circuits[cell.circ_id]
        message = (
            f"relay sent more than {inbox.limit} cells on circuit {cell.circ_id:#010x} "
            "before they were read; its SENDME window allows fewer"
        )
        circuit.destroy(VIOLATION_DESTROY_REASON)
        self.end_circuit(cell.circ_id, lambda: LinkProtocolError(message), discard=True)
        if self._closed is None:
            self._write(circuit)  # one DESTROY cell: drained by the next flush or the close

    # ---- closing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed is not None:
            raise ChannelClosed(str(self._closed))

    def _fail(self, message: str, cause: BaseException | None = None) -> ChannelClosed:
        """Mark the channel closed (the first reason wins) and wake every waiting circuit."""
        if self._closed is None:
            self._closed = ChannelClosed(message or "relay closed the link")
            self._failure = cause if isinstance(cause, Exception) else None
        closed, failure = str(self._closed), self._failure

        def error() -> Exception:
            exc = ChannelClosed(closed)
            exc.__cause__ = failure
            return exc

        for inbox in self._inboxes.values():
            inbox.close(error)
        for receiver in list(self._receivers.values()):
            receiver.circuit_ended(error())
        self._receivers.clear()
        return self._closed

    async def aclose(self, timeout_s: float = CHANNEL_CLOSE_TIMEOUT_S) -> None:
        """DESTROY our circuits, close the stream, stop the reader; never raises, done within
        ``timeout_s``.

        A relay that stops reading blocks the DESTROY cells and the TLS close: at the deadline
        the stream is aborted instead.
        """
        try:
            async with asyncio.timeout(timeout_s):
                for circuit in list(self._circuits.values()):
                    circuit.destroy()
                    try:
                        await self.flush(circuit)
                    except ChannelClosed:
                        break
                self._fail("channel closed")
                self._writer.close()
                await self._writer.wait_closed()
        except TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._fail("channel closed")
            self._reader_task.cancel()
            await asyncio.wait({self._reader_task})
