"""A test double of ``TorClient`` for the front ends' integration tests.

It implements the contract the front ends use (api-contract.md, "asyncio client"): ``bootstrap()``
with progress events (the real :class:`~webtunnel_pt.tor.client.BootstrapEvent`, given to the
``on_progress`` callback), ``open_connection(host, port, isolation=...)``, ``resolve(host,
isolation=...)``, ``aclose()``, over plain loopback TCP: a host name is looked up in ``routes``
(name -> loopback address) and connected to on the port asked for. This stands in for the real
client only in tests of the front ends (SOCKS, fetch); the real client is tested in
tests/integration/tor and end to end in tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from webtunnel_pt.front.options import FrontOptions
from webtunnel_pt.tor.client import BootstrapEvent

STEPS = (
    BootstrapEvent(10, "conn", "Connecting to the bridge"),
    BootstrapEvent(25, "handshake", "Handshaking with the bridge"),
    BootstrapEvent(40, "loading_status", "Loading the directory"),
    BootstrapEvent(75, "enough_dirinfo", "Loaded enough directory info to build circuits"),
    BootstrapEvent(90, "circuit_create", "Establishing a Tor circuit"),
    BootstrapEvent(100, "done", "Done"),
)


@dataclass
class FakeNetwork:
    """What the fake exit can reach, and how it fails; shared by the clients a factory makes."""

    routes: dict[str, str] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    #: host -> exception raised by open_connection / resolve
    failures: dict[str, BaseException] = field(default_factory=dict)
    bootstrap_error: BaseException | None = None
    #: When set, bootstrap() reports its first step, sets ``bootstrapping`` and waits for it.
    bootstrap_gate: asyncio.Event | None = None
    bootstrapping: asyncio.Event = field(default_factory=asyncio.Event)
    opened: list[tuple[str, int, Hashable]] = field(default_factory=list)
    resolved: list[tuple[str, Hashable]] = field(default_factory=list)
    clients: list[FakeTorClient] = field(default_factory=list)

    def factory(
        self, options: FrontOptions, on_progress: Callable[[object], None]
    ) -> FakeTorClient:
        client = FakeTorClient(self, options, on_progress)
        self.clients.append(client)
        return client


class FakeTorClient:
    def __init__(
        self, network: FakeNetwork, options: FrontOptions, on_progress: Callable[[object], None]
    ) -> None:
        self.network = network
        self.options = options
        self.on_progress = on_progress
        self.bootstrapped = False
        self.closed = False

    async def bootstrap(self) -> None:
        if self.network.bootstrap_gate is not None:
            self.on_progress(STEPS[0])
            self.network.bootstrapping.set()
            await self.network.bootstrap_gate.wait()
        for step in STEPS[:2] if self.network.bootstrap_error else STEPS:
            self.on_progress(step)
        if self.network.bootstrap_error is not None:
            raise self.network.bootstrap_error
        self.bootstrapped = True

    async def open_connection(
        self, host: str, port: int, isolation: Hashable = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.bootstrapped and not self.closed
        self.network.opened.append((host, port, isolation))
        if host in self.network.failures:
            raise self.network.failures[host]
        return await asyncio.open_connection(self.network.routes.get(host, host), port)

    async def resolve(self, host: str, isolation: Hashable = None) -> list[str]:
        assert self.bootstrapped and not self.closed
        self.network.resolved.append((host, isolation))
        if host in self.network.failures:
            raise self.network.failures[host]
        return self.network.names[host]

    async def aclose(self) -> None:
        self.closed = True
