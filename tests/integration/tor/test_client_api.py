"""tor.client.TorClient's own logic with its parts replaced by fakes (the bridge link, the
directory fetch, path selection and circuit builds): bootstrap progress as tor reports it, to
the callback and the async iterator; streams retried on a new circuit when theirs dies, an
exit's refusal final; isolation; resolve; errors before bootstrap and after close; no task
left behind. And tor.bridge_link's failover across bridge lines.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import (
    BridgeArgsError,
    BridgeUnreachable,
    CircuitDestroyed,
    ConsensusSignatureError,
    DirectoryError,
    HandshakeTimeout,
    IdentityMismatch,
    ResolveFailed,
    StreamRefused,
    TorClientClosed,
)
from webtunnel_pt.tor import bridge_link
from webtunnel_pt.tor import client as client_module
from webtunnel_pt.tor.cells import DestroyReason, EndReason
from webtunnel_pt.tor.client import BootstrapEvent, TorClient
from webtunnel_pt.tor.relay_msgs import ResolvedAnswer
from webtunnel_pt.tor.stream_io import TorStream

FP = "0123456789ABCDEF0123456789ABCDEF01234567"
LINE = f"Bridge webtunnel 192.0.2.3:443 {FP} url=https://example.com/secret ver=0.0.2"
AUTHORITY = (
    "moria1 orport=9101 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 "
    "128.31.0.39:9231 1A25C6358DB91342AA51720A6D3F4D4AE6E3C3B0"
)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


class NullLink:
    def consumed(self, stream_id: int, nbytes: int) -> None:
        pass

    def sendable(self, stream_id: int) -> int:
        return 1 << 30

    def send_data(self, stream_id: int, data: bytes) -> int:
        return len(data)

    def end_stream(self, stream_id: int, reason: int) -> None:
        pass

    async def drain(self) -> None:
        pass


class FakeCircuit:
    def __init__(self, world: World, number: int) -> None:
        self.world = world
        self.circ_id = number
        self.is_open = True
        self.stream_count = 0
        self.closed = False
        self.exit_relay = None  # no exit to link a conflux set with: a plain circuit
        self.congestion_control = None

    def allows_port(self, port: int | None) -> bool:
        return True

    async def aclose(self) -> None:
        self.closed = True
        self.is_open = False

    async def open_stream(self, host: str, port: int, deadline: Deadline) -> TorStream:
        self.world.begins.append((self.circ_id, host, port))
        outcome = self.world.outcomes.pop(0) if self.world.outcomes else None
        if isinstance(outcome, CircuitDestroyed):
            self.is_open = False
        if outcome is not None:
            raise outcome
        return TorStream(
            NullLink(), 1, peername=(host, port), extra={"tor_circuit_id": self.circ_id}
        )

    async def resolve(self, host: str, deadline: Deadline) -> list[ResolvedAnswer]:
        return self.world.answers


@dataclass
class FakeView:
    fresh_until: float = 4e9
    valid_until: float = 4e9


@dataclass
class World:
    """What the fakes do; what they saw."""

    link_error: Exception | None = None
    hang: bool = False
    directory_errors: list[Exception] = field(default_factory=list)
    directory_calls: list[bool] = field(default_factory=list)  # with a cache?
    outcomes: list[Exception | None] = field(default_factory=list)
    answers: list[ResolvedAnswer] = field(default_factory=list)
    circuits: list[FakeCircuit] = field(default_factory=list)
    begins: list[tuple[int, str, int]] = field(default_factory=list)
    links: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        world = self

        class Channel:
            is_closed = False

        class Link:
            channel = Channel()
            first_hop = None

            async def aclose(self) -> None:
                pass

        async def connect_bridges(entries: Any, *, on_step: Any, **kwargs: Any) -> Link:
            world.links += 1
            on_step("conn")
            on_step("handshake")
            if world.hang:
                await asyncio.Event().wait()  # a bridge that never answers
            if world.link_error is not None:
                raise world.link_error
            return Link()

        class Report:
            relays, exits, signatures, microdescs_missing = 5, 1, "3/3", 0

        class Result:
            view = FakeView()
            report = Report()

        async def fetch_network_view(*args: Any, **kwargs: Any) -> Result:
            world.directory_calls.append(kwargs.get("cache") is not None)
            if world.directory_errors:
                raise world.directory_errors.pop(0)
            return Result()

        async def build_circuit(*args: Any, **kwargs: Any) -> FakeCircuit:
            circuit = FakeCircuit(world, len(world.circuits) + 1)
            world.circuits.append(circuit)
            return circuit

        monkeypatch.setattr(client_module, "connect_bridges", connect_bridges)
        monkeypatch.setattr(client_module, "fetch_network_view", fetch_network_view)
        monkeypatch.setattr(client_module, "PathSelector", lambda view: object())
        monkeypatch.setattr(client_module, "build_circuit", build_circuit)


def our_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("tor ")]


def make_client(**kwargs: Any) -> TorClient:
    return TorClient([LINE], dir_authorities=[AUTHORITY], prebuilt_circuits=1, **kwargs)


def test_bootstrap_reports_progress_as_tor_does(monkeypatch: pytest.MonkeyPatch) -> None:
    World().install(monkeypatch)
    seen: list[BootstrapEvent] = []

    async def main() -> None:
        tor = make_client(on_progress=seen.append)
        iterated: list[BootstrapEvent] = []

        async def follow() -> None:
            async for event in tor.progress():
                iterated.append(event)

        follower = asyncio.create_task(follow())
        async with tor:
            assert tor.bootstrapped
            await follower
        assert iterated == seen
        assert our_tasks() == []

    run(main())
    assert [(e.percent, e.tag) for e in seen] == [
        (10, "conn"),
        (25, "handshake"),
        (40, "loading_status"),
        (75, "enough_dirinfo"),
        (90, "circuit_create"),
        (100, "done"),
    ]
    assert str(seen[-1]) == "Bootstrapped 100% (done): Done"


def test_a_failed_bootstrap_raises_its_error_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(link_error=IdentityMismatch("not the bridge", expected="a", actual="b"))
    world.install(monkeypatch)

    async def main() -> None:
        tor = make_client()
        with pytest.raises(IdentityMismatch):
            async with tor:
                pass
        with pytest.raises(TorClientClosed):
            async for _ in tor.progress():
                pass
        assert our_tasks() == []
        with pytest.raises(TorClientClosed):
            await tor.open_connection("example.com", 80)

    run(main())


def test_streams_need_a_bootstrap_and_end_with_the_close(monkeypatch: pytest.MonkeyPatch) -> None:
    World().install(monkeypatch)

    async def main() -> None:
        tor = make_client()
        with pytest.raises(TorClientClosed):
            await tor.open_connection("example.com", 80)
        await tor.bootstrap()
        await tor.bootstrap()  # once is enough
        await tor.aclose()
        with pytest.raises(TorClientClosed):
            await tor.resolve("example.com")

    run(main())


def test_a_stream_whose_circuit_dies_is_retried_on_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(outcomes=[CircuitDestroyed(DestroyReason.CONNECTFAILED), None])
    world.install(monkeypatch)

    async def main() -> None:
        async with make_client() as tor:
            _, writer = await tor.open_connection("example.com", 443)
            assert writer.get_extra_info("peername") == ("example.com", 443)
            first, second = world.begins
            assert first[0] != second[0]
            assert world.circuits[first[0] - 1].is_open is False

    run(main())


def test_an_exits_refusal_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(outcomes=[StreamRefused(EndReason.RESOLVEFAILED)])
    world.install(monkeypatch)

    async def main() -> None:
        async with make_client() as tor:
            with pytest.raises(StreamRefused) as caught:
                await tor.open_connection("nowhere.invalid", 80)
            assert caught.value.reason == EndReason.RESOLVEFAILED
            assert len(world.begins) == 1

    run(main())


def test_isolation_keys_get_their_own_circuits(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    world.install(monkeypatch)

    async def main() -> None:
        async with make_client() as tor:
            for key in ("alice", "bob", "alice", None):
                await tor.open_connection("example.com", 80, isolation=key)
            alice, bob, alice_again, none = (begin[0] for begin in world.begins)
            assert alice == alice_again
            assert len({alice, bob, none}) == 3

    run(main())


def test_resolve_gives_addresses_or_resolve_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    world.install(monkeypatch)

    async def main() -> None:
        async with make_client() as tor:
            world.answers = [
                ResolvedAnswer("ipv4", "192.0.2.1", 60),
                ResolvedAnswer("ipv6", "2001:db8::1", 60),
            ]
            assert await tor.resolve("example.com") == ["192.0.2.1", "2001:db8::1"]
            world.answers = [ResolvedAnswer("error", "nontransient", 0)]
            with pytest.raises(ResolveFailed):
                await tor.resolve("nowhere.invalid")

    run(main())


def test_bad_arguments_fail_before_any_connection() -> None:
    with pytest.raises(BridgeArgsError):
        TorClient(["webtunnel 192.0.2.3:443 url=https://example.com/secret"])  # no fingerprint


def test_bridge_lines_fail_over_from_a_random_start(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        bridge_link.parse_bridge(LINE.replace("192.0.2.3", f"192.0.2.{n}"), n) for n in range(3)
    ]
    tried: list[int] = []

    async def connect_bridge(entry: bridge_link.BridgeEntry, **kwargs: Any) -> Any:
        tried.append(entry.index)
        raise BridgeUnreachable(f"bridge {entry.index} is down")

    monkeypatch.setattr(bridge_link, "connect_bridge", connect_bridge)
    rng = random.Random(4)
    start = random.Random(4).randrange(3)

    async def main() -> None:
        with pytest.raises(BridgeUnreachable) as caught:
            await bridge_link.connect_bridges(entries, rng=rng)
        assert tried == [start, (start + 1) % 3, (start + 2) % 3]
        assert str(caught.value) == f"bridge {tried[-1]} is down"
        assert any("all 3 bridges failed" in note for note in caught.value.__notes__)

    run(main())


def test_bootstrap_timeout_names_the_step_it_stopped_at(monkeypatch: pytest.MonkeyPatch) -> None:
    World(hang=True).install(monkeypatch)

    async def main() -> None:
        tor = make_client()
        with pytest.raises(HandshakeTimeout) as caught:
            await tor.bootstrap(timeout_s=0.2)
        assert "at 25% (handshake)" in str(caught.value)
        await tor.aclose()
        assert our_tasks() == []

    run(main())


def test_a_refused_cached_fetch_is_not_retried_without_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A microdescriptor batch answered 404 no longer fails the fetch (tests of dirmgr), so
    the client's former retry without the cache is gone: an HTTP error is the bridge's."""
    world = World(directory_errors=[DirectoryError("consensus: HTTP 500 Internal error")])
    world.install(monkeypatch)

    async def main() -> None:
        with pytest.raises(DirectoryError, match="HTTP 500"):
            async with make_client(state_dir=tmp_path):
                pass

    run(main())
    assert world.directory_calls == [True]


def test_a_verification_failure_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refused = ConsensusSignatureError("0 of 3 signed", valid=0, needed=2, failures={})
    world = World(directory_errors=[refused])
    world.install(monkeypatch)

    async def main() -> None:
        with pytest.raises(ConsensusSignatureError):
            async with make_client(state_dir=tmp_path):
                pass

    run(main())
    assert world.directory_calls == [True]
