"""outbound.resolver: getaddrinfo in daemon threads, bounded per loop, never holding up a stop.

The real system resolver answers the literal and ``localhost`` cases; a blocking stand-in for
``socket.getaddrinfo`` (released by an event, never by a sleep) shows the bound, the daemon
thread and a cancelled caller that does not wait for its lookup.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from webtunnel_pt.outbound import resolver
from webtunnel_pt.outbound.resolver import MAX_CONCURRENT_LOOKUPS

WAIT_S = 10.0


def test_ip_literal() -> None:
    infos = asyncio.run(resolver.getaddrinfo("127.0.0.1", 443))
    assert infos
    assert {info[4] for info in infos} == {("127.0.0.1", 443)}
    assert {info[1] for info in infos} == {socket.SOCK_STREAM}


def test_localhost_is_loopback() -> None:
    infos = asyncio.run(resolver.getaddrinfo("localhost", 80))
    assert {info[4][0] for info in infos} <= {"127.0.0.1", "::1"}
    assert infos


def test_errors_are_raised_as_getaddrinfo_raises_them() -> None:
    with pytest.raises(socket.gaierror):
        asyncio.run(resolver.getaddrinfo("name.invalid", 443))  # RFC 6761: never resolves


class BlockingLookups:
    """Replaces ``socket.getaddrinfo``: each call waits for :attr:`release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: list[threading.Thread] = []
        self.entered = threading.Semaphore(0)

    def __call__(self, host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.append(threading.current_thread())
        self.entered.release()
        try:
            assert self.release.wait(WAIT_S)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockingLookups]:
    lookups = BlockingLookups()
    monkeypatch.setattr(resolver.socket, "getaddrinfo", lookups)
    yield lookups
    lookups.release.set()


def test_lookups_run_in_daemon_threads(blocking: BlockingLookups) -> None:
    async def main() -> list[tuple[Any, ...]]:
        task = asyncio.create_task(resolver.getaddrinfo("bridge.test", 443))
        assert await asyncio.to_thread(blocking.entered.acquire, True, WAIT_S)
        (thread,) = blocking.threads
        assert thread.daemon and thread.name == "getaddrinfo"
        blocking.release.set()
        return await task

    assert asyncio.run(main()) == [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))]


def test_at_most_max_concurrent_lookups(blocking: BlockingLookups) -> None:
    extra = 5

    async def main() -> int:
        tasks = [
            asyncio.create_task(resolver.getaddrinfo(f"h{i}.test", 1))
            for i in range(MAX_CONCURRENT_LOOKUPS + extra)
        ]
        for _ in range(MAX_CONCURRENT_LOOKUPS):
            assert await asyncio.to_thread(blocking.entered.acquire, True, WAIT_S)
        for _ in range(3):  # give every waiting task a chance to (wrongly) start a lookup
            await asyncio.sleep(0)
        started = len(blocking.threads)
        blocking.release.set()
        results = await asyncio.gather(*tasks)
        assert len(results) == MAX_CONCURRENT_LOOKUPS + extra
        return started

    assert asyncio.run(main()) == MAX_CONCURRENT_LOOKUPS
    assert blocking.most == MAX_CONCURRENT_LOOKUPS


def test_cancelled_caller_does_not_wait_and_the_slot_comes_back(
    blocking: BlockingLookups,
) -> None:
    async def main() -> list[tuple[Any, ...]]:
        stuck = [
            asyncio.create_task(resolver.getaddrinfo("stuck.test", 1))
            for _ in range(MAX_CONCURRENT_LOOKUPS)
        ]
        for _ in range(MAX_CONCURRENT_LOOKUPS):
            assert await asyncio.to_thread(blocking.entered.acquire, True, WAIT_S)
        for task in stuck:
            task.cancel()
        # Every caller gives up at once although its lookup is still blocked.
        done, pending = await asyncio.wait(stuck, timeout=WAIT_S)
        assert not pending and all(task.cancelled() for task in done)
        assert blocking.running == MAX_CONCURRENT_LOOKUPS
        # The slots are freed when the threads end, not before: a new lookup waits for one.
        later = asyncio.create_task(resolver.getaddrinfo("later.test", 2))
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(blocking.threads) == MAX_CONCURRENT_LOOKUPS
        blocking.release.set()
        return await asyncio.wait_for(later, WAIT_S)

    assert asyncio.run(main())[0][4] == ("192.0.2.1", 2)
