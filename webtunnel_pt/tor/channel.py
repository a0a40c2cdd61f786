"""asyncio glue: inner TLS over a WebTunnel (or plain TCP) stream, the link handshake, and a
:class:`Channel` to open circuits on (tor-link.md §1, §2, §4; webtunnel-wire.md §7).

    tls = await start_inner_tls(writer, timeout_s=10)          # TLS-in-TLS via start_tls
    channel = await handshake_channel(reader, writer, tls, expected_fingerprint=fp)
    circuit = await channel.create_fast_circuit()
    response = await circuit.fetch_directory("/tor/server/authority")
    await channel.aclose()

Reading is pull-based: whoever waits for a circuit event reads the stream (one reader at a
time, under a lock) and dispatches every cell it finds, so no background task exists and
nothing is fire-and-forget. PADDING/VPADDING and unknown link-level cells are ignored;
DESTROY ends the circuit it names. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from webtunnel_pt.deadlines import (
    CHANNEL_CLOSE_TIMEOUT_S,
    CIRCUIT_TIMEOUT_S,
    INNER_TLS_TIMEOUT_S,
    LINK_HANDSHAKE_TIMEOUT_S,
)
from webtunnel_pt.errors import (
    ChannelClosed,
    CircuitDestroyed,
    DirectoryError,
    HandshakeTimeout,
    InnerTlsError,
    LinkProtocolError,
    StreamEnded,
)
from webtunnel_pt.tor.cells import (
    Cell,
    CellParser,
    DestroyReason,
    EndReason,
    IPAddress,
    encode_cell,
    reason_name,
)
from webtunnel_pt.tor.certs import RelayIdentity
from webtunnel_pt.tor.circuit import (
    Circuit,
    CircuitClosed,
    CircuitEvent,
    CircuitOpen,
    StreamClosed,
    StreamConnected,
    StreamData,
    allocate_circ_id,
)
from webtunnel_pt.tor.directory import MAX_DIR_RESPONSE_BYTES, DirResponse, dir_request
from webtunnel_pt.tor.directory import parse_dir_response as _parse_dir_response
from webtunnel_pt.tor.link_handshake import ClientHandshake, LinkOpen

#: One read from the stream: bounds what a single read can pull into memory.
READ_CHUNK_BYTES = 64 * 1024
_SNI_ALPHABET = string.ascii_lowercase + string.digits


def random_sni(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """``www.<4-25 random chars>.com`` like tor's own TLS client (tor-link.md §2)."""
    length = 4 + randbelow(22)
    return (
        "www."
        + "".join(_SNI_ALPHABET[randbelow(len(_SNI_ALPHABET))] for _ in range(length))
        + ".com"
    )


def inner_tls_context() -> ssl.SSLContext:
    """No WebPKI (CERTS authenticates), no ALPN, no session resumption (tor-link.md §2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


@dataclass(frozen=True)
class InnerTls:
    """What the inner TLS handshake showed: the leaf DER is what CERTS type 5 must certify."""

    leaf_der: bytes
    version: str | None
    cipher: str | None
    server_hostname: str


def _check_nothing_buffered(reader: asyncio.StreamReader | None) -> None:
    """A relay speaks only after our ClientHello (webtunnel-wire.md §7): bytes already waiting
    behind the 101 cannot belong to the inner TLS, and ``start_tls`` would hand them on as if
    they were decrypted. ``StreamReader`` has no public way to ask, hence the attribute."""
    waiting = len(getattr(reader, "_buffer", b"")) if reader is not None else 0
    if waiting:
        raise LinkProtocolError(
            f"bridge sent {waiting} bytes before the inner TLS handshake; a relay speaks only "
            "after the client's ClientHello"
        )


async def start_inner_tls(
    writer: asyncio.StreamWriter,
    *,
    timeout_s: float = INNER_TLS_TIMEOUT_S,
    server_hostname: str | None = None,
    reader: asyncio.StreamReader | None = None,
) -> InnerTls:
    """Upgrade the stream in place to TLS with the relay (works on a TLS transport, 3.11+).
    Pass ``reader`` to refuse bytes the bridge sent before our ClientHello."""
    _check_nothing_buffered(reader)
    sni = server_hostname or random_sni()
    try:
        await writer.start_tls(
            inner_tls_context(), server_hostname=sni, ssl_handshake_timeout=timeout_s
        )
    except TimeoutError as exc:
        raise HandshakeTimeout(f"inner TLS handshake timed out after {timeout_s:g} s") from exc
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        detail = getattr(exc, "reason", None) or type(exc).__name__
        raise InnerTlsError(f"inner TLS handshake with the relay failed: {detail}") from exc
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise InnerTlsError("relay presented no TLS certificate")
    cipher = ssl_object.cipher()
    return InnerTls(bytes(der), ssl_object.version(), cipher[0] if cipher else None, sni)


async def _read_some(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        data = await reader.read(READ_CHUNK_BYTES)
    except (ConnectionError, ssl.SSLError) as exc:
        raise ChannelClosed(f"link failed {what}: {type(exc).__name__}") from exc
    if not data:
        raise ChannelClosed(f"relay closed the link {what}")
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
) -> Channel:
    """VERSIONS, CERTS (verified against ``tls`` and the fingerprint), NETINFO (§4).

    On failure the stream stays the caller's to close; on success the :class:`Channel` owns it.
    """
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
            f"link handshake timed out after {timeout_s:g} s in {handshake.state.name}"
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
) -> Channel:
    """Inner TLS and link handshake in one call."""
    tls = await start_inner_tls(writer, timeout_s=timeout_s, reader=reader)
    return await handshake_channel(
        reader,
        writer,
        tls,
        expected_fingerprint=expected_fingerprint,
        peer_address=peer_address,
        timeout_s=timeout_s,
        clock=clock,
    )


class Channel:
    """An open link to one relay; circuits are created on it."""

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
        self._events: dict[int, deque[CircuitEvent | BaseException]] = {}
        self._read_lock = asyncio.Lock()
        self._closed: ChannelClosed | None = None

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

    async def create_fast_circuit(self, timeout_s: float = CIRCUIT_TIMEOUT_S) -> ChannelCircuit:
        """A one-hop circuit to the relay with CREATE_FAST (§5)."""
        circuit = Circuit(allocate_circ_id(self._circuits, self.link_version), self.link_version)
        self._circuits[circuit.circ_id] = circuit
        self._events[circuit.circ_id] = deque()
        handle = ChannelCircuit(self, circuit)
        circuit.create_fast()
        await self.flush(circuit)
        try:
            async with asyncio.timeout(timeout_s):
                event = await self.next_event(circuit)
        except TimeoutError as exc:
            raise HandshakeTimeout(f"no CREATED_FAST within {timeout_s:g} s") from exc
        if not isinstance(event, CircuitOpen):  # pragma: no cover - only OPEN or DESTROY here
            raise LinkProtocolError(f"unexpected {type(event).__name__} while creating")
        return handle

    async def flush(self, circuit: Circuit) -> None:
        """Write the cells the circuit has queued."""
        self._check_open()
        cells = circuit.cells_to_send()
        if not cells:
            return
        self._writer.write(b"".join(encode_cell(c, self.link_version) for c in cells))
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            raise self._fail(f"write failed: {type(exc).__name__}") from exc

    async def next_event(self, circuit: Circuit) -> CircuitEvent:
        """The circuit's next event; reads the link when none is queued. DESTROY raises."""
        queue = self._events[circuit.circ_id]
        while not queue:
            async with self._read_lock:
                if queue:
                    break
                await self._read_cells()
        event = queue.popleft()
        if isinstance(event, BaseException):
            raise event
        if isinstance(event, CircuitClosed):
            self._forget(circuit.circ_id)
            name = reason_name(DestroyReason, event.reason)
            raise CircuitDestroyed(event.reason, f"relay destroyed the circuit: {name}")
        return event

    async def _read_cells(self) -> None:
        self._check_open()
        try:
            data = await _read_some(self._reader, "")
        except ChannelClosed as exc:
            raise self._fail(str(exc)) from exc
        self._parser.receive_data(data)
        while (cell := self._parser.next_cell()) is not None:
            await self._dispatch(cell)

    async def _dispatch(self, cell: Cell) -> None:
        circuit = self._circuits.get(cell.circ_id)
        if circuit is None:
            return  # link-level padding, late VERSIONS, cells for forgotten circuits
        try:
            events: list[CircuitEvent | BaseException] = list(circuit.receive_cell(cell))
        except LinkProtocolError as exc:
            circuit.destroy(DestroyReason.PROTOCOL)
            events = [exc]
        self._events[cell.circ_id].extend(events)
        await self.flush(circuit)

    def _forget(self, circ_id: int) -> None:
        self._circuits.pop(circ_id, None)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise ChannelClosed(str(self._closed))

    def _fail(self, message: str) -> ChannelClosed:
        self._closed = ChannelClosed(message or "relay closed the link")
        return self._closed

    async def aclose(self, timeout_s: float = CHANNEL_CLOSE_TIMEOUT_S) -> None:
        """DESTROY our circuits, close the stream; never raises, done within ``timeout_s``.

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
                self._closed = self._closed or ChannelClosed("channel closed")
                self._writer.close()
                await self._writer.wait_closed()
        except TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._closed = self._closed or ChannelClosed("channel closed")


class ChannelCircuit:
    """A circuit on a channel, with the stream operations the probe needs."""

    def __init__(self, channel: Channel, circuit: Circuit) -> None:
        self.channel = channel
        self.circuit = circuit

    @property
    def circ_id(self) -> int:
        return self.circuit.circ_id

    async def begin_dir(self, timeout_s: float = CIRCUIT_TIMEOUT_S) -> int:
        """BEGIN_DIR and wait for CONNECTED (§8.1); END raises :class:`StreamEnded`."""
        stream_id = self.circuit.begin_dir()
        await self.channel.flush(self.circuit)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = await self.channel.next_event(self.circuit)
                    if isinstance(event, StreamConnected) and event.stream_id == stream_id:
                        return stream_id
                    if isinstance(event, StreamClosed) and event.stream_id == stream_id:
                        raise StreamEnded(event.reason, _end_message("BEGIN_DIR", event.reason))
        except TimeoutError as exc:
            raise HandshakeTimeout(f"no answer to BEGIN_DIR within {timeout_s:g} s") from exc

    async def send(self, stream_id: int, data: bytes) -> None:
        self.circuit.send_data(stream_id, data)
        await self.channel.flush(self.circuit)

    async def read_to_end(self, stream_id: int, limit: int = MAX_DIR_RESPONSE_BYTES) -> bytes:
        """Stream data until the relay's END; more than ``limit`` bytes is an error."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.channel.next_event(self.circuit)
            if isinstance(event, StreamData) and event.stream_id == stream_id:
                size += len(event.data)
                if size > limit:
                    raise DirectoryError(f"directory answer exceeds {limit} bytes")
                chunks.append(event.data)
            elif isinstance(event, StreamClosed) and event.stream_id == stream_id:
                return b"".join(chunks)

    async def fetch_directory(
        self, path: str, *, timeout_s: float = CIRCUIT_TIMEOUT_S, host: str | None = None
    ) -> DirResponse:
        """BEGIN_DIR, ``GET path HTTP/1.0``, read to END, parse (§10)."""
        stream_id = await self.begin_dir(timeout_s)
        await self.send(stream_id, dir_request(path, host))
        try:
            async with asyncio.timeout(timeout_s):
                raw = await self.read_to_end(stream_id)
        except TimeoutError as exc:
            raise HandshakeTimeout(f"directory answer not complete within {timeout_s:g} s") from exc
        return _parse_dir_response(raw)


def _end_message(what: str, reason: int) -> str:
    return f"relay ended the {what} stream: {reason_name(EndReason, reason)}"
