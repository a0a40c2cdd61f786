"""The built-in Tor client: streams through 3-hop circuits over a WebTunnel bridge, from Python
(issue 14; tor-link.md §5-§9; path-spec; tor's client behaviour where noted). asyncio glue.

    async with TorClient([bridge_line], state_dir="~/.cache/x") as tor:   # bootstraps
        reader, writer = await tor.open_connection("example.com", 80)
        writer.write(b"GET / HTTP/1.0\\r\\nHost: example.com\\r\\n\\r\\n")
        page = await reader.read()
        addresses = await tor.resolve("example.com")

Bootstrap, reported as tor reports it (:class:`BootstrapEvent`, to ``on_progress`` and to
:meth:`TorClient.progress`)::

    10% conn            dialling the bridge (DNS, TCP, TLS, WebTunnel upgrade)
    25% handshake       inner TLS, link handshake, the bridge's descriptor verified
    40% loading_status  consensus, key certificates, microdescriptors (cache first)
    75% enough_dirinfo  the network view is verified
    90% circuit_create  the first 3-hop circuit
    100% done

What the client owns, and closes in :meth:`TorClient.aclose`: the bridge link (one channel,
remade on demand when it dies: :mod:`~webtunnel_pt.tor.bridge_link`), the circuit pool and its
task (:mod:`~webtunnel_pt.tor.circuit_pool`), each circuit's driver task, and the task that
refreshes the directory between the consensus' ``fresh-until`` and ``valid-until`` (dir-spec
§5.1). No task outlives :meth:`~TorClient.aclose`.

Streams: :meth:`TorClient.open_connection` gives an asyncio-style reader/writer pair
(:mod:`~webtunnel_pt.tor.stream_io`). A stream goes on a circuit of its isolation key whose
exit allows its port; when the circuit fails before CONNECTED (DESTROY, a protocol violation,
the channel's end, no answer in :data:`STREAM_CONNECT_TIMEOUT_S`), it is retried on another
circuit, up to :data:`MAX_STREAM_ATTEMPTS` in all, as tor retries; an END from the exit
(:class:`~webtunnel_pt.errors.StreamRefused`, with its reason) is final. For ``https://``,
:meth:`TorStreamWriter.start_tls <webtunnel_pt.tor.stream_io.TorStreamWriter.start_tls>` runs
TLS to the destination over the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import (
    ChannelClosed,
    CircuitDestroyed,
    HandshakeTimeout,
    LinkProtocolError,
    LocalProtocolError,
    ResolveFailed,
    StreamTimeout,
    TorClientClosed,
    WebtunnelError,
)
from webtunnel_pt.tor.authorities import DEFAULT_AUTHORITIES, DirAuthority, parse_dir_authorities
from webtunnel_pt.tor.bridge_link import BridgeEntry, BridgeLink, connect_bridges, parse_bridge
from webtunnel_pt.tor.circuit_pool import (
    DEFAULT_PREBUILT,
    CircuitPool,
    build_circuit,
)
from webtunnel_pt.tor.conflux_set import build_conflux_set, conflux_legs
from webtunnel_pt.tor.dircache import DirectoryCache
from webtunnel_pt.tor.dirmgr import DIRECTORY_TIMEOUT_S, fetch_network_view
from webtunnel_pt.tor.live_circuit import LiveCircuit
from webtunnel_pt.tor.netview import NetworkView, Relay
from webtunnel_pt.tor.path import PathSelector
from webtunnel_pt.tor.stream_io import TorStreamReader, TorStreamWriter
from webtunnel_pt.webtunnel.dial import DialOptions

__all__ = [
    "MAX_STREAM_ATTEMPTS",
    "STREAM_CONNECT_TIMEOUT_S",
    "BootstrapEvent",
    "TorClient",
]

log = logging.getLogger("webtunnel_pt.tor.client")

#: One BEGIN's wait for CONNECTED before the stream is tried on another circuit (tor waits
#: 10-15 s, then retries; a slow exit resolving a name needs more than a few seconds).
STREAM_CONNECT_TIMEOUT_S = 30.0
#: Circuits a stream is tried on before its error is final (tor: until SocksTimeout, 2 min).
MAX_STREAM_ATTEMPTS = 3
#: Longest host name a BEGIN or RESOLVE carries (a DNS name is at most 253 characters).
MAX_HOSTNAME_CHARS = 255
#: A middle or exit that failed to extend, or whose circuit the relays ended, is left out of
#: new paths this long (while other paths exist).
SUSPECT_RELAY_S = 300.0
#: Directory fetches after the bootstrap are at least this far apart (a failed one is tried
#: again after it).
DIRECTORY_RETRY_S = 60.0


#: Failures of the circuit, not of the stream: the stream is tried on another circuit.
_CIRCUIT_FAILURES = (CircuitDestroyed, ChannelClosed, StreamTimeout, LinkProtocolError)


@dataclass(frozen=True)
class BootstrapEvent:
    """One step of the bootstrap, as tor logs it: ``Bootstrapped 10% (conn): ...``."""

    percent: int
    tag: str
    summary: str

    def __str__(self) -> str:
        return f"Bootstrapped {self.percent}% ({self.tag}): {self.summary}"


_STEPS = {
    "conn": BootstrapEvent(10, "conn", "Connecting to the bridge"),
    "handshake": BootstrapEvent(25, "handshake", "Handshaking with the bridge"),
    "loading_status": BootstrapEvent(
        40, "loading_status", "Loading the directory (consensus, keys, microdescriptors)"
    ),
    "enough_dirinfo": BootstrapEvent(
        75, "enough_dirinfo", "Loaded enough directory info to build circuits"
    ),
    "circuit_create": BootstrapEvent(90, "circuit_create", "Establishing a Tor circuit"),
    "done": BootstrapEvent(100, "done", "Done"),
}


def _authorities(lines: Sequence[str | DirAuthority] | None) -> tuple[DirAuthority, ...]:
    if lines is None:
        return tuple(DEFAULT_AUTHORITIES)
    given = [a for a in lines if isinstance(a, DirAuthority)]
    texts = [a for a in lines if isinstance(a, str)]
    if given and texts:
        return (*given, *parse_dir_authorities(texts))
    return tuple(given) if given else parse_dir_authorities(texts)


def _check_target(host: str, port: int | None) -> None:
    if not host or len(host) > MAX_HOSTNAME_CHARS or not host.isprintable() or " " in host:
        raise LocalProtocolError("host must be a printable name or address of 1-255 characters")
    if port is not None and not 1 <= port <= 65535:
        raise LocalProtocolError(f"port {port} is outside 1-65535")


class TorClient:
    """Tor streams over a WebTunnel bridge (see the module docstring).

    ``bridges``: torrc bridge lines (``Bridge`` optional; the fingerprint is required);
    ``state_dir``: where the directory cache lives (None: no cache, everything is fetched);
    ``dir_authorities``: ``DirAuthority`` lines or :class:`DirAuthority` values (None: tor's);
    ``distinct_subnets``: False allows two hops in one /16 (tor's ``EnforceDistinctSubnets
    0``, for private test networks); ``on_progress``: called with each :class:`BootstrapEvent`.
    """

    def __init__(
        self,
        bridges: Sequence[str],
        *,
        state_dir: str | Path | None = None,
        dir_authorities: Sequence[str | DirAuthority] | None = None,
        distinct_subnets: bool = True,
        on_progress: Callable[[BootstrapEvent], None] | None = None,
        prebuilt_circuits: int = DEFAULT_PREBUILT,
        dial_options: DialOptions | None = None,
        stream_timeout_s: float = STREAM_CONNECT_TIMEOUT_S,
        directory_timeout_s: float = DIRECTORY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(bridges, str):
            bridges = [bridges]
        self._entries: list[BridgeEntry] = [
            parse_bridge(text, index) for index, text in enumerate(bridges)
        ]
        if not self._entries:
            raise LocalProtocolError("TorClient needs at least one bridge line")
        self._authorities = _authorities(dir_authorities)
        self._cache = (
            DirectoryCache(Path(state_dir).expanduser()) if state_dir is not None else None
        )
        self.distinct_subnets = distinct_subnets
        self._on_progress = on_progress
        self._dial_options = dial_options
        self.stream_timeout_s = stream_timeout_s
        self.directory_timeout_s = directory_timeout_s
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        self._events: list[BootstrapEvent] = []
        self._progress_changed = asyncio.Event()
        self._bootstrap_error: BaseException | None = None
        self._bootstrap_lock = asyncio.Lock()
        self._link_lock = asyncio.Lock()
        self._link: BridgeLink | None = None
        self._view: NetworkView | None = None
        self._selector: PathSelector | None = None
        self._pool: CircuitPool[LiveCircuit] = CircuitPool(
            self._build_circuit, prebuilt=prebuilt_circuits
        )
        self._refresh_task: asyncio.Task[None] | None = None
        self._failed_relays: dict[bytes, float] = {}  # RSA id -> avoided until (monotonic)
        self._ready = False
        self._closed = False

    # ---- context manager --------------------------------------------------------------------

    async def __aenter__(self) -> TorClient:
        try:
            await self.bootstrap()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- progress -----------------------------------------------------------------------------

    @property
    def bootstrapped(self) -> bool:
        return self._ready

    @property
    def events(self) -> tuple[BootstrapEvent, ...]:
        """The bootstrap events so far."""
        return tuple(self._events)

    @property
    def circuits(self) -> list[LiveCircuit]:
        """The circuits in the pool now (open or not yet pruned), e.g. to see their paths
        (:meth:`LiveCircuit.fingerprints`)."""
        return self._pool.circuits

    @property
    def network_view(self) -> NetworkView | None:
        """The verified network view in use (None before the directory is loaded)."""
        return self._view

    def _emit(self, tag: str) -> None:
        event = _STEPS[tag]
        if self._events and self._events[-1].percent >= event.percent:
            return
        self._events.append(event)
        self._progress_changed.set()
        log.info("%s", event)
        if self._on_progress is not None:
            self._on_progress(event)

    async def progress(self) -> AsyncIterator[BootstrapEvent]:
        """Every bootstrap event, past ones first, until ``done``; a failed bootstrap ends the
        iteration by raising its error."""
        index = 0
        while True:
            while index < len(self._events):
                event = self._events[index]
                index += 1
                yield event
                if event.percent >= 100:
                    return
            if self._bootstrap_error is not None:
                raise TorClientClosed(f"bootstrap failed: {self._bootstrap_error}")
            if self._closed:
                return
            self._progress_changed.clear()
            await self._progress_changed.wait()

    # ---- bootstrap ----------------------------------------------------------------------------

    async def bootstrap(self, timeout_s: float | None = None) -> None:
        """Link to a bridge, load the verified directory, build the first circuit; returns at
        once when already done. Errors are those of the failed step (bridge, link,
        directory, circuit); each step has its own deadlines, and ``timeout_s`` bounds the
        whole (:class:`HandshakeTimeout`)."""
        async with self._bootstrap_lock:
            if self._ready:
                return
            self._check_open()
            try:
                try:
                    async with asyncio.timeout(timeout_s):
                        await self._bootstrap()
                except TimeoutError as exc:
                    if isinstance(exc, WebtunnelError):
                        raise
                    last = self._events[-1] if self._events else None
                    step = f" at {last.percent}% ({last.tag})" if last is not None else ""
                    raise HandshakeTimeout(
                        f"bootstrap did not finish within {timeout_s} s{step}"
                    ) from exc
            except BaseException as exc:
                self._bootstrap_error = exc
                self._progress_changed.set()
                raise

    async def _bootstrap(self) -> None:
        link = await self._ensure_link(bootstrapping=True)
        self._emit("loading_status")
        await self._load_directory(link)
        self._emit("enough_dirinfo")
        self._emit("circuit_create")
        await self._pool.fill(1)
        self._ready = True
        self._emit("done")
        self._pool.start()
        self._refresh_task = asyncio.get_running_loop().create_task(
            self._refresh_directory(), name="tor directory refresh"
        )

    async def _load_directory(self, link: BridgeLink) -> None:
        # A microdescriptor batch the bridge lacks (404) or is too busy for (503) is not an
        # error: those relays stay unusable (fetch_network_view reports them missing).
        result = await fetch_network_view(
            link.channel,
            self._authorities,
            now=self._clock,
            cache=self._cache,
            timeout_s=self.directory_timeout_s,
        )
        self._view = result.view
        self._selector = PathSelector(result.view)
        log.info(
            "directory: %d relays, %d exits, signatures %s, %d microdescriptors missing",
            result.report.relays,
            result.report.exits,
            result.report.signatures,
            result.report.microdescs_missing,
        )

    async def _refresh_directory(self) -> None:
        """Fetch the next consensus after ``fresh-until``, at a random point of the first
        three quarters of the time left to ``valid-until`` (dir-spec §5.1, as a client)."""
        last_fetch = self._clock()
        while not self._closed:
            view = self._view
            assert view is not None
            span = max(0.0, (view.valid_until - view.fresh_until) * 0.75)
            when = view.fresh_until + self._rng.uniform(0.0, span)
            # A bridge that only has an old consensus must not be asked again at once.
            when = max(when, last_fetch + DIRECTORY_RETRY_S)
            await asyncio.sleep(max(0.0, when - self._clock()))
            last_fetch = self._clock()
            try:
                link = await self._ensure_link()
                await self._load_directory(link)
            except Exception as exc:  # the old view stays; tried again later
                log.warning("directory refresh failed: %s", exc)

    # ---- the bridge link ----------------------------------------------------------------------

    async def _ensure_link(self, *, bootstrapping: bool = False) -> BridgeLink:
        """The open bridge link; a new one when there is none or its channel died."""
        async with self._link_lock:
            self._check_open()
            link = self._link
            if link is not None and not link.channel.is_closed:
                return link
            if link is not None:
                self._link = None
                await link.aclose()
                log.info("the channel to the bridge closed; connecting again")
            link = await connect_bridges(
                self._entries,
                rng=self._rng,
                dial_options=self._dial_options,
                clock=self._clock,
                on_step=self._emit if bootstrapping else lambda step: None,
            )
            if self._closed:
                await link.aclose()
                self._check_open()
            self._link = link
            return link

    async def _build_circuit(self, port: int | None) -> LiveCircuit:
        """A circuit for the pool: with an exit that takes conflux, the set it is linked into
        (:mod:`~webtunnel_pt.tor.conflux_set`), else a plain circuit."""
        link = await self._ensure_link()
        selector = self._selector
        if selector is None:
            raise TorClientClosed("no network view: bootstrap first")

        async def build(
            exit_relay: Relay | None = None, avoid: frozenset[bytes] = frozenset()
        ) -> LiveCircuit:
            return await build_circuit(
                link.channel,
                link.first_hop,
                selector,
                port=port,
                rng=self._rng,
                distinct_subnets=self.distinct_subnets,
                on_close=self._circuit_closed,
                exclude=self._suspects(),
                on_failed_hop=self._suspect,
                exit_relay=exit_relay,
                avoid=avoid,
            )

        first = await build()
        view = self._view
        legs = conflux_legs(first, view) if view is not None else 0
        return await build_conflux_set(first, legs=legs, build_leg=build)

    def _circuit_closed(self, circuit: LiveCircuit) -> None:
        """A circuit ended: when the relays ended it (DESTROY, TRUNCATED), its exit is avoided
        for a while (the likeliest cause: it went away), and the pool tops up."""
        if isinstance(circuit.error, CircuitDestroyed) and circuit.exit_relay is not None:
            self._suspect(circuit.exit_relay.rsa_identity)
        self._pool.wake()

    def _suspect(self, rsa_identity: bytes) -> None:
        self._failed_relays[rsa_identity] = time.monotonic() + SUSPECT_RELAY_S

    def _suspects(self) -> frozenset[bytes]:
        now = time.monotonic()
        for key in [k for k, until in self._failed_relays.items() if until <= now]:
            del self._failed_relays[key]
        return frozenset(self._failed_relays)

    # ---- streams ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TorClientClosed("the Tor client is closed")

    def _check_ready(self) -> None:
        self._check_open()
        if not self._ready:
            raise TorClientClosed("the Tor client has not bootstrapped")

    async def open_connection(
        self, host: str, port: int, isolation: Hashable = None
    ) -> tuple[TorStreamReader, TorStreamWriter]:
        """A stream to ``host:port`` through a 3-hop circuit: a name is resolved by the exit,
        an IPv4 or IPv6 literal is connected to as is. Streams with different ``isolation``
        keys never share a circuit."""
        self._check_ready()
        _check_target(host, port)
        last: BaseException | None = None
        for _ in range(MAX_STREAM_ATTEMPTS):
            circuit = await self._pool.get(port, isolation)
            try:
                stream = await circuit.open_stream(
                    host, port, Deadline.after(self.stream_timeout_s)
                )
            except _CIRCUIT_FAILURES as exc:
                last = exc
                log.info("stream attempt failed on circuit %#010x: %s", circuit.circ_id, exc)
                if isinstance(exc, StreamTimeout):
                    self._pool.retire(circuit)  # an exit that does not answer: not again
                continue
            return TorStreamReader(stream), TorStreamWriter(stream)
        assert last is not None
        raise last

    async def resolve(self, host: str, isolation: Hashable = None) -> list[str]:
        """The addresses the exit resolves ``host`` to (RELAY_RESOLVE), as strings; none
        raises :class:`ResolveFailed`."""
        self._check_ready()
        _check_target(host, None)
        last: BaseException | None = None
        for _ in range(MAX_STREAM_ATTEMPTS):
            circuit = await self._pool.get(None, isolation)
            try:
                answers = await circuit.resolve(host, Deadline.after(self.stream_timeout_s))
            except _CIRCUIT_FAILURES as exc:
                last = exc
                if isinstance(exc, StreamTimeout):
                    self._pool.retire(circuit)
                continue
            addresses = [str(a.value) for a in answers if a.kind in ("ipv4", "ipv6", "hostname")]
            if not addresses:
                raise ResolveFailed(2, f"the exit could not resolve {host!r}")
            return addresses
        assert last is not None
        raise last

    # ---- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every stream, circuit and the channel; stop every task. Never raises."""
        if self._closed:
            return
        self._closed = True
        self._progress_changed.set()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            await asyncio.wait({self._refresh_task})
        await self._pool.aclose()
        async with self._link_lock:
            link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                await link.aclose()
