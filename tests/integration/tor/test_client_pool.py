"""tor.circuit_pool's rules with a fake builder and an injected clock: reuse until 10 minutes
dirty, isolation keys never sharing a circuit, the exit's port, retries on fresh paths then a
clear error, pre-built circuits kept topped up, and a close that leaves no task or circuit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from webtunnel_pt.errors import (
    ChannelClosed,
    CircuitBuildFailed,
    CircuitBuildTimeout,
    NoPathError,
    TorClientClosed,
)
from webtunnel_pt.tor.circuit_pool import MAX_CIRCUIT_DIRTINESS_S, CircuitPool


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCircuit:
    def __init__(self, number: int, port: int | None, ports: frozenset[int] | None) -> None:
        self.number = number
        self.port = port
        self.ports = ports
        self.is_open = True
        self.stream_count = 0
        self.closed = False

    def allows_port(self, port: int | None) -> bool:
        return port is None or self.ports is None or port in self.ports

    async def aclose(self) -> None:
        self.closed = True
        self.is_open = False

    def __repr__(self) -> str:
        return f"<circuit {self.number}>"


class Builder:
    """Builds FakeCircuits; ``failures`` makes the next calls fail with those errors; each
    build is announced on ``built``."""

    def __init__(self, ports: frozenset[int] | None = None) -> None:
        self.calls: list[int | None] = []
        self.failures: list[Exception] = []
        self.ports = ports
        self.built: asyncio.Queue[FakeCircuit] = asyncio.Queue()
        self.gate: asyncio.Event | None = None

    async def __call__(self, port: int | None) -> FakeCircuit:
        self.calls.append(port)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        circuit = FakeCircuit(len(self.calls), port, self.ports)
        self.built.put_nowait(circuit)
        return circuit


def make_pool(
    builder: Builder, clock: Clock, prebuilt: int = 0, attempts: int = 3
) -> CircuitPool[FakeCircuit]:
    return CircuitPool(builder, prebuilt=prebuilt, clock=clock, max_attempts=attempts)


def test_a_circuit_is_reused_for_the_same_key_and_built_once() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        first = await pool.get(80)
        second = await pool.get(443)
        assert first is second
        assert builder.calls == [80]
        await pool.aclose()

    run(main())


def test_isolation_keys_never_share_a_circuit() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        a = await pool.get(80, "a")
        b = await pool.get(80, "b")
        none = await pool.get(80, None)
        assert len({id(a), id(b), id(none)}) == 3
        assert await pool.get(80, "a") is a
        assert await pool.get(80, ("user", "pw")) not in (a, b, none)
        assert len(builder.calls) == 4
        await pool.aclose()

    run(main())


def test_a_clean_circuit_takes_the_key_of_its_first_stream() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        await pool.fill(1)
        assert pool.clean_count() == 1
        prebuilt = pool.circuits[0]
        assert await pool.get(80, "a") is prebuilt
        assert pool.clean_count() == 0
        other = await pool.get(80, "b")
        assert other is not prebuilt
        await pool.aclose()

    run(main())


def test_a_circuit_takes_no_new_stream_once_ten_minutes_dirty() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        first = await pool.get(80)
        first.stream_count = 1  # a stream still runs on it
        clock.now += MAX_CIRCUIT_DIRTINESS_S - 1
        assert await pool.get(80) is first
        clock.now += 1
        second = await pool.get(80)
        assert second is not first
        assert not first.closed  # its stream runs on
        first.stream_count = 0
        await pool.prune()
        assert first.closed  # dirty, expired and idle: closed
        assert pool.circuits == [second]
        await pool.aclose()

    run(main())


def test_the_exit_must_allow_the_port() -> None:
    async def main() -> None:
        builder, clock = Builder(ports=frozenset({80})), Clock()
        pool = make_pool(builder, clock)
        web = await pool.get(80)
        other = await pool.get(22)
        assert other is not web
        assert builder.calls == [80, 22]
        await pool.aclose()

    run(main())


def test_closed_circuits_are_not_handed_out() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        first = await pool.get(80)
        first.is_open = False  # DESTROY, or the channel died
        second = await pool.get(80)
        assert second is not first
        assert pool.circuits == [second]
        await pool.aclose()

    run(main())


def test_a_failed_build_is_retried_on_a_fresh_path() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        builder.failures = [CircuitBuildTimeout("no EXTENDED2"), ChannelClosed("link died")]
        pool = make_pool(builder, clock)
        circuit = await pool.get(443)
        assert circuit.number == 3
        assert builder.calls == [443, 443, 443]
        await pool.aclose()

    run(main())


def test_after_max_attempts_the_error_is_clear_and_carries_the_last_cause() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        builder.failures = [CircuitBuildTimeout(f"attempt {n}") for n in range(1, 4)]
        pool = make_pool(builder, clock)
        with pytest.raises(CircuitBuildFailed) as caught:
            await pool.get(443)
        assert caught.value.attempts == 3
        assert isinstance(caught.value.__cause__, CircuitBuildTimeout)
        assert "attempt 3" in str(caught.value)
        assert pool.circuits == []
        await pool.aclose()

    run(main())


def test_no_path_is_not_retried() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        builder.failures = [NoPathError("no exit allows port 25")]
        pool = make_pool(builder, clock)
        with pytest.raises(NoPathError):
            await pool.get(25)
        assert builder.calls == [25]
        await pool.aclose()

    run(main())


def test_concurrent_streams_of_one_key_wait_for_one_build() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        builder.gate = asyncio.Event()
        pool = make_pool(builder, clock)
        gets = [asyncio.create_task(pool.get(80, "k")) for _ in range(5)]
        other = asyncio.create_task(pool.get(80, "other"))
        while len(builder.calls) < 2:  # both keys are building at once (yield, not a timer)
            await asyncio.sleep(0)
        builder.gate.set()
        circuits = await asyncio.gather(*gets)
        assert all(c is circuits[0] for c in circuits)
        assert (await other) is not circuits[0]
        assert len(builder.calls) == 2
        await pool.aclose()

    run(main())


def test_prebuilt_circuits_are_kept_topped_up() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock, prebuilt=2)
        pool.start()
        await builder.built.get()
        await builder.built.get()
        assert builder.calls == [80, 80]  # tor's first predicted port
        taken = await pool.get(443)  # needs no build if the exit allows 443
        assert builder.calls == [80, 80]
        await builder.built.get()  # the pool builds a replacement for 443, the port last used
        assert builder.calls == [80, 80, 443]
        assert taken in pool.circuits
        await pool.aclose()
        assert taken.closed

    run(main())


def test_close_stops_the_task_and_closes_every_circuit() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock, prebuilt=1)
        pool.start()
        prebuilt = await builder.built.get()
        used = await pool.get(80, "a")
        await pool.aclose()
        assert prebuilt.closed and used.closed
        assert pool.circuits == []
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "tor circuit pool"]
        assert tasks == []
        with pytest.raises(TorClientClosed):
            await pool.get(80)

    run(main())


def test_a_retired_circuit_takes_no_new_stream_and_closes_when_idle() -> None:
    async def main() -> None:
        builder, clock = Builder(), Clock()
        pool = make_pool(builder, clock)
        first = await pool.get(80)
        first.stream_count = 1
        pool.retire(first)  # its exit did not answer a BEGIN
        second = await pool.get(80)
        assert second is not first
        assert not first.closed  # its other stream runs on
        first.stream_count = 0
        await pool.prune()
        assert first.closed
        await pool.aclose()

    run(main())


def test_a_build_avoids_failed_relays_while_another_path_exists() -> None:
    from webtunnel_pt.tor.circuit_pool import FirstHop, build_circuit
    from webtunnel_pt.tor.path import PathHop

    class Selector:
        view = None

        def __init__(self) -> None:
            self.excluded: list[frozenset[bytes]] = []

        def choose(self, *, exclude: frozenset[bytes] = frozenset(), **kwargs: object) -> None:
            self.excluded.append(exclude)
            if exclude:
                raise NoPathError("only the failed exit allows the port")
            raise ChannelClosed("stop here: the path is what is under test")

    hop = PathHop(bytes(20), None, "192.0.2.1", None, frozenset(), frozenset())
    selector = Selector()

    async def main() -> None:
        with pytest.raises(ChannelClosed):
            await build_circuit(
                None,  # type: ignore[arg-type]
                FirstHop(hop, bytes(32)),
                selector,  # type: ignore[arg-type]
                port=80,
                exclude=frozenset({b"x" * 20}),
            )

    run(main())
    assert selector.excluded == [frozenset({b"x" * 20}), frozenset()]
