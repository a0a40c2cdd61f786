"""Circuits for streams: built bridge -> middle -> exit, kept in a small pool, reused until
dirty, never shared across isolation keys (tor-link.md §6, §7.4; path-spec §2.1; tor's
``MaxCircuitDirtiness`` and ``IsolateSOCKSAuth``). asyncio glue.

    pool = CircuitPool(build, prebuilt=2)        # build(port) -> a new open circuit
    pool.start()                                 # keeps `prebuilt` clean circuits ready
    circuit = await pool.get(port=443, isolation=("user", "pw"))
    await pool.aclose()

The pool's rules, each as tor has them:

- **Reuse.** A circuit takes new streams until it has been *dirty* (first used by a stream)
  for :data:`MAX_CIRCUIT_DIRTINESS_S` (10 minutes, tor's ``MaxCircuitDirtiness``); its
  streams then run on, and it is closed once the last one has ended.
- **Isolation.** A clean circuit takes the isolation key of its first stream; a stream goes
  only on a circuit with its own key (``None`` is a key like the others), so two keys never
  share a circuit.
- **Exit policy.** The exit must accept the stream's port; otherwise a new circuit is built
  for it.
- **Pre-built circuits.** ``prebuilt`` clean circuits are kept ready for the port last asked
  for (at first 80, as tor predicts), so a first stream does not wait for a build.
- **Builds.** :func:`build_circuit` makes one 3-hop circuit: ntor CREATE2 to the bridge with
  the key from its verified descriptor, then EXTEND2 to the middle and the exit with their link
  specifiers and microdescriptor keys; each step within :data:`~webtunnel_pt.deadlines.
  CIRCUIT_TIMEOUT_S`, the whole within :data:`CIRCUIT_BUILD_TIMEOUT_S`. A failed build is
  retried on a fresh path, up to ``max_attempts``; then :class:`CircuitBuildFailed` with the
  last error as its cause. A :class:`NoPathError` is not retried: no fresh path would fit.
- **Handshakes.** A middle or exit whose consensus ``pr`` lists ``Relay=4`` and that has an
  Ed25519 identity is extended to with ntor v3 (HTYPE 3, :func:`hop_handshake`), as tor 0.4.9
  does; the others with ntor. The exit's ntor v3 message asks for congestion control (prop
  324 §10) when :data:`REQUEST_CONGESTION_CONTROL` is on (as by default), it lists
  ``FlowCtrl=2`` and the consensus ``cc_alg`` is not 0; its answer goes to
  :func:`negotiated_cc`. Every other ntor v3 message is the empty extension list, which tor
  requires.

The pool is generic over the circuit (:class:`PoolCircuit`) and its builder, and takes a clock,
so its rules are tested without a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from webtunnel_pt.deadlines import CIRCUIT_TIMEOUT_S, Deadline
from webtunnel_pt.errors import (
    CircuitBuildFailed,
    CircuitProtocolError,
    LocalProtocolError,
    NoPathError,
    TorClientClosed,
    WebtunnelError,
)
from webtunnel_pt.tor.channel import Channel
from webtunnel_pt.tor.channel_circuit import budget
from webtunnel_pt.tor.circuit_flow import MAX_SENDME_VERSION
from webtunnel_pt.tor.congestion import CongestionParams
from webtunnel_pt.tor.handshake_ext import (
    NO_EXTENSIONS,
    cc_request,
    check_sendme_inc,
    parse_cc_response,
)
from webtunnel_pt.tor.linkspec import encode_link_specifiers
from webtunnel_pt.tor.live_circuit import LiveCircuit
from webtunnel_pt.tor.netview import NetworkView, Relay
from webtunnel_pt.tor.ntor import NtorHandshake
from webtunnel_pt.tor.ntor_v3 import NtorV3Handshake
from webtunnel_pt.tor.path import PathHop, PathSelector, hop_of

__all__ = [
    "CIRCUIT_BUILD_TIMEOUT_S",
    "MAX_BUILD_ATTEMPTS",
    "MAX_CIRCUIT_DIRTINESS_S",
    "REQUEST_CONGESTION_CONTROL",
    "CircuitPool",
    "FirstHop",
    "PoolCircuit",
    "build_circuit",
    "hop_handshake",
    "negotiated_cc",
    "sendme_versions",
    "wants_congestion_control",
]

log = logging.getLogger("webtunnel_pt.tor.circuit_pool")

#: tor's ``MaxCircuitDirtiness`` default: a circuit takes new streams for 10 minutes after its
#: first one.
MAX_CIRCUIT_DIRTINESS_S = 600.0
#: One whole 3-hop build (three request/answer steps, each within CIRCUIT_TIMEOUT_S): tor's
#: initial circuit build timeout is 60 s before it has learned better.
CIRCUIT_BUILD_TIMEOUT_S = 60.0
#: Builds on fresh paths before giving up on a stream (tor retries a few times too).
MAX_BUILD_ATTEMPTS = 3
#: Clean circuits kept ready for new streams.
DEFAULT_PREBUILT = 2
#: The port pre-built circuits' exits must accept until a stream asks for another (tor starts
#: by predicting port 80).
DEFAULT_PREDICTED_PORT = 80
#: How often the maintenance task looks at the pool when nothing wakes it.
MAINTENANCE_INTERVAL_S = 30.0
#: After a failed pre-build, the next one waits this long, doubling up to the maximum.
PREBUILD_BACKOFF_S = 1.0
MAX_PREBUILD_BACKOFF_S = 60.0
#: Ask exits for congestion control (prop 324) in the ntor v3 handshake, as tor 0.4.9's
#: client does; an exit that agrees gets Vegas and XON/XOFF (:func:`negotiated_cc`), and the
#: circuit may join a conflux set (:mod:`~webtunnel_pt.tor.conflux_set`), which needs it.
REQUEST_CONGESTION_CONTROL = True


class PoolCircuit(Protocol):
    """What the pool needs of a circuit."""

    @property
    def is_open(self) -> bool: ...

    @property
    def stream_count(self) -> int: ...

    def allows_port(self, port: int | None) -> bool: ...

    async def aclose(self) -> None: ...


C = TypeVar("C", bound=PoolCircuit)
#: Builds one open circuit whose exit accepts the port (None: any port).
Builder = Callable[[int | None], Awaitable[C]]


class _Unset:
    """The isolation of a clean circuit: it takes its first stream's key."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


@dataclass(eq=False)
class _KeyLock:
    """One isolation key's lock, forgotten when nobody holds or waits for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass(eq=False)
class _Entry(Generic[C]):
    circuit: C
    dirty_since: float | None = None
    isolation: object = field(default=_UNSET)


class CircuitPool(Generic[C]):
    """Open circuits, handed to streams by the rules of the module docstring."""

    def __init__(
        self,
        build: Builder[C],
        *,
        prebuilt: int = DEFAULT_PREBUILT,
        max_dirtiness_s: float = MAX_CIRCUIT_DIRTINESS_S,
        max_attempts: int = MAX_BUILD_ATTEMPTS,
        predicted_port: int | None = DEFAULT_PREDICTED_PORT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.prebuilt = prebuilt
        self.max_dirtiness_s = max_dirtiness_s
        self.max_attempts = max_attempts
        self.predicted_port = predicted_port
        self._clock = clock
        self._entries: list[_Entry[C]] = []
        self._locks: dict[Hashable, _KeyLock] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._prebuilding = 0

    # ---- what is in the pool ------------------------------------------------------------------

    @property
    def circuits(self) -> list[C]:
        return [entry.circuit for entry in self._entries]

    def clean_count(self) -> int:
        """Open circuits no stream has used yet."""
        return sum(1 for e in self._entries if e.dirty_since is None and e.circuit.is_open)

    def _expired(self, entry: _Entry[C], now: float) -> bool:
        return entry.dirty_since is not None and now - entry.dirty_since >= self.max_dirtiness_s

    def _fits(self, entry: _Entry[C], port: int | None, isolation: Hashable, now: float) -> bool:
        return (
            entry.circuit.is_open
            and not self._expired(entry, now)
            and (entry.isolation is _UNSET or entry.isolation == isolation)
            and entry.circuit.allows_port(port)
        )

    def _find(self, port: int | None, isolation: Hashable) -> _Entry[C] | None:
        """A circuit for the stream: dirty ones with the key first (tor prefers circuits
        already in use), then clean ones."""
        now = self._clock()
        fitting = [e for e in self._entries if self._fits(e, port, isolation, now)]
        fitting.sort(key=lambda e: (e.dirty_since is None, -(e.dirty_since or 0.0)))
        return fitting[0] if fitting else None

    async def prune(self) -> None:
        """Forget ended circuits; close dirty-expired ones without streams."""
        now = self._clock()
        keep: list[_Entry[C]] = []
        for entry in self._entries:
            if not entry.circuit.is_open:
                continue
            if self._expired(entry, now) and entry.circuit.stream_count == 0:
                await entry.circuit.aclose()
                continue
            keep.append(entry)
        self._entries = keep

    # ---- handing out ------------------------------------------------------------------------

    async def get(self, port: int | None, isolation: Hashable = None) -> C:
        """An open circuit for a stream to ``port`` with this isolation key, marked dirty with
        it; built (with retries) when none fits."""
        self._check_open()
        if port is not None:
            self.predicted_port = port
        lock = self._locks.get(isolation)
        if lock is None:
            lock = self._locks[isolation] = _KeyLock()
        lock.users += 1
        try:
            async with lock.lock:  # one build per key at a time; the others then find it
                await self.prune()
                entry = self._find(port, isolation)
                if entry is None:
                    entry = _Entry(await self.build_with_retries(port))
                    self._check_open()
                    self._entries.append(entry)
                if entry.dirty_since is None:
                    entry.dirty_since = self._clock()
                    entry.isolation = isolation
        finally:
            lock.users -= 1
            if lock.users == 0:
                del self._locks[isolation]
        self._wake.set()  # a clean circuit may have been taken: top up
        return entry.circuit

    async def build_with_retries(self, port: int | None) -> C:
        """A new circuit, on a fresh path per attempt."""
        last: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            self._check_open()
            try:
                return await self._build(port)
            except (NoPathError, TorClientClosed):
                raise
            except (WebtunnelError, TimeoutError, ConnectionError) as exc:
                last = exc
                log.info("circuit build attempt %d failed: %s", attempt, exc)
        raise CircuitBuildFailed(
            f"no circuit after {self.max_attempts} attempts on fresh paths: {last}",
            attempts=self.max_attempts,
        ) from last

    def retire(self, circuit: C) -> None:
        """No new streams on ``circuit`` (its exit did not answer, say); its streams run on
        and it is closed once idle, as an expired dirty circuit is."""
        for entry in self._entries:
            if entry.circuit is circuit:
                entry.dirty_since = self._clock() - self.max_dirtiness_s
        self._wake.set()

    def _check_open(self) -> None:
        if self._closed:
            raise TorClientClosed("the circuit pool is closed")

    # ---- pre-built circuits -------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that keeps ``prebuilt`` clean circuits ready (owned by the pool)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._maintain(), name="tor circuit pool"
            )

    def wake(self) -> None:
        """Something changed (a circuit ended): look at the pool now."""
        self._wake.set()

    async def fill(self, target: int | None = None) -> None:
        """Build clean circuits until ``target`` (default ``prebuilt``) are ready, one at a
        time."""
        want = self.prebuilt if target is None else target
        await self.prune()
        while not self._closed and self.clean_count() < want:
            circuit = await self.build_with_retries(self.predicted_port)
            if self._closed:
                await circuit.aclose()
                return
            self._entries.append(_Entry(circuit))

    async def _maintain(self) -> None:
        backoff = PREBUILD_BACKOFF_S
        while not self._closed:
            wait = MAINTENANCE_INTERVAL_S
            try:
                await self.fill()
                backoff = PREBUILD_BACKOFF_S
            except (NoPathError, CircuitBuildFailed, WebtunnelError, OSError) as exc:
                log.info("pre-building a circuit failed: %s", exc)
                wait, backoff = backoff, min(backoff * 2, MAX_PREBUILD_BACKOFF_S)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def aclose(self) -> None:
        """Stop the maintenance task and close every circuit."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        entries, self._entries = self._entries, []
        for entry in entries:
            await entry.circuit.aclose()


# ---- building one circuit -----------------------------------------------------------------------


@dataclass(frozen=True)
class FirstHop:
    """The bridge as the first hop: its hop for path rules and its verified ntor key."""

    hop: PathHop
    ntor_onion_key: bytes


def sendme_versions(view: NetworkView) -> tuple[int, int]:
    """(emit, accept) SENDME versions from the consensus (prop 289): we always emit at least
    version 1 (authenticated), and accept what the network requires at least; both capped at
    the highest version the circuit speaks."""
    emit = min(max(1, view.param("sendme_emit_min_version")), MAX_SENDME_VERSION)
    accept = min(view.param("sendme_accept_min_version"), MAX_SENDME_VERSION)
    return emit, accept


async def build_circuit(
    channel: Channel,
    first_hop: FirstHop,
    selector: PathSelector,
    *,
    port: int | None,
    rng: random.Random | None = None,
    distinct_subnets: bool = True,
    on_close: Callable[[LiveCircuit], None] | None = None,
    timeout_s: float = CIRCUIT_BUILD_TIMEOUT_S,
    step_timeout_s: float = CIRCUIT_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
    exclude: frozenset[bytes] = frozenset(),
    on_failed_hop: Callable[[bytes], None] | None = None,
    exit_relay: Relay | None = None,
    avoid: frozenset[bytes] = frozenset(),
) -> LiveCircuit:
    """One 3-hop circuit on ``channel``: the bridge, then a middle and an exit chosen from
    ``selector``'s view for ``port`` (or ``exit_relay``: a conflux set's second leg). On any
    failure the circuit is destroyed.

    Relays in ``exclude`` (RSA ids: ones that failed lately) are avoided while a path without
    them exists, those in ``avoid`` (the other legs' middles) always; ``on_failed_hop`` hears
    the RSA id of a middle or exit that did not extend."""
    choose = functools.partial(
        selector.choose,
        first_hop=first_hop.hop,
        port=port,
        rng=rng,
        distinct_subnets=distinct_subnets,
        exit_relay=exit_relay,
    )
    try:
        chosen = choose(exclude=exclude | avoid)
    except NoPathError:
        if not exclude:
            raise
        chosen = choose(exclude=avoid)
    emit, accept = sendme_versions(selector.view)
    handle = channel.new_circuit(sendme_emit_version=emit, sendme_accept_version=accept)
    live = LiveCircuit(
        handle,
        path=(first_hop.hop, hop_of(chosen.middle), hop_of(chosen.exit)),
        exit_relay=chosen.exit,
        on_close=on_close,
        created_at=clock(),
        cc_params=CongestionParams.from_consensus(selector.view.param),
    )
    total = Deadline.after(timeout_s)
    try:
        bridge = NtorHandshake(first_hop.hop.rsa_identity, first_hop.ntor_onion_key)
        await live.create(bridge, budget(step_timeout_s, total))
        hops = (("the middle", chosen.middle, False), ("the exit", chosen.exit, True))
        for what, relay, is_exit in hops:
            cc = is_exit and wants_congestion_control(relay, selector.view)
            handshake = hop_handshake(relay, request_cc=cc)
            try:
                await live.extend(
                    _link_specifiers(relay), handshake, budget(step_timeout_s, total), what
                )
                if isinstance(handshake, NtorV3Handshake):
                    _circuit_params(live, handshake, requested_cc=cc, view=selector.view)
            except (WebtunnelError, TimeoutError) as exc:
                log.info(
                    "extending to %s %s (middle %s, exit %s) failed: %s",
                    what,
                    relay.nickname,
                    chosen.middle.nickname,
                    chosen.exit.nickname,
                    exc,
                )
                if on_failed_hop is not None and not live.channel.is_closed:
                    on_failed_hop(relay.rsa_identity)
                raise
    except BaseException:
        await live.aclose()
        raise
    return live


def wants_congestion_control(relay: Relay, view: NetworkView) -> bool:
    """Whether to ask ``relay`` (an exit) for congestion control: :data:`REQUEST_CONGESTION_
    CONTROL` is on, it speaks ntor v3 and ``FlowCtrl=2``, and the consensus ``cc_alg`` is not 0
    (prop 324 §10.1)."""
    return (
        REQUEST_CONGESTION_CONTROL
        and _speaks_ntor_v3(relay)
        and relay.supports("FlowCtrl", 2)
        and view.param("cc_alg") != 0
    )


def hop_handshake(relay: Relay, *, request_cc: bool = False) -> NtorHandshake | NtorV3Handshake:
    """The handshake to extend to ``relay`` with: ntor v3 if its ``pr`` lists ``Relay=4`` and
    it has an Ed25519 identity (its message :func:`~webtunnel_pt.tor.handshake_ext.cc_request`
    when ``request_cc``, else the empty extension list), ntor otherwise."""
    ed25519_id = relay.ed25519_identity
    if ed25519_id is not None and relay.supports("Relay", 4):
        message = cc_request() if request_cc else NO_EXTENSIONS
        return NtorV3Handshake(ed25519_id, relay.ntor_onion_key, message)
    if request_cc:
        raise LocalProtocolError("congestion control needs the ntor v3 handshake")
    return NtorHandshake(relay.rsa_identity, relay.ntor_onion_key)


def _speaks_ntor_v3(relay: Relay) -> bool:
    return relay.ed25519_identity is not None and relay.supports("Relay", 4)


def negotiated_cc(circuit: LiveCircuit, hop: int, sendme_inc: int) -> None:
    """Turn congestion control on for ``hop`` (0-based; only the last, the exit, can have it)
    of ``circuit`` with the exit's ``sendme_inc``: Vegas with the consensus parameters the
    circuit was built with, XON/XOFF on its streams."""
    if hop != len(circuit.hop_htypes) - 1:
        raise LocalProtocolError(f"congestion control on hop {hop + 1}, not the last one")
    circuit.enable_congestion_control(sendme_inc)


def _circuit_params(
    live: LiveCircuit, handshake: NtorV3Handshake, *, requested_cc: bool, view: NetworkView
) -> None:
    """What the relay's ntor v3 message says about the new hop (prop 324 §10.5): a
    congestion-control response we did not ask for, or a sendme_inc too far from the
    consensus, is a :class:`CircuitProtocolError`; an accepted request goes to
    :func:`negotiated_cc`."""
    sendme_inc = parse_cc_response(handshake.server_message)
    if sendme_inc is None:
        return
    if not requested_cc:
        raise CircuitProtocolError("a congestion-control response we did not ask for")
    check_sendme_inc(sendme_inc, view.param("cc_sendme_inc"))
    negotiated_cc(live, len(live.hop_htypes) - 1, sendme_inc)


def _link_specifiers(relay: Relay) -> bytes:
    return encode_link_specifiers(
        address=relay.address,
        or_port=relay.or_port,
        rsa_identity=relay.rsa_identity,
        ed25519_identity=relay.ed25519_identity,
        ipv6=relay.ipv6,
    )
