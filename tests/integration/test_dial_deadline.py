"""The dial's budget over real loopback sockets: each wait gets what is left of it.

A resolver that takes part of the budget, then a web server that completes TCP but never
answers TLS: the dial must fail at its overall deadline, in the TLS handshake stage, and the TLS
handshake must have been given only the remainder (not the whole budget again)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.secrets import secret_path
from webtunnel_pt.errors import DialStage, HandshakeTimeout
from webtunnel_pt.webtunnel import outer_tls
from webtunnel_pt.webtunnel.client import open_tunnel
from webtunnel_pt.webtunnel.dial import DialOptions

#: The whole dial's budget in these tests.
BUDGET_S = 1.0
#: How much of it the resolver stub spends.
RESOLVER_DELAY_S = 0.4
#: Scheduling slack allowed after the deadline (two shared cores under load).
SLACK_S = 1.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes; nobody ever accepts or answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield int(silent.getsockname()[1])


def slow_resolver(lookups: list[str]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        never = asyncio.Event()  # a DNS server that answers only after RESOLVER_DELAY_S
        try:
            await asyncio.wait_for(never.wait(), RESOLVER_DELAY_S)
        except TimeoutError:
            pass
        return ["127.0.0.1"]

    return resolve


@pytest.mark.parametrize("utls", ["none", "hellochrome_auto"])
def test_tls_handshake_gets_what_is_left_of_the_dial(
    silent_port: int, monkeypatch: pytest.MonkeyPatch, utls: str
) -> None:
    given: list[float] = []
    plain_open, openssl_open = asyncio.open_connection, outer_tls.open_tls_connection
    socket_open = outer_tls.open_ssl_socket_connection

    async def recording_open_connection(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs["ssl_handshake_timeout"])
        return await plain_open(*args, **kwargs)

    async def recording_open_tls(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs["handshake_timeout_s"])
        return await openssl_open(*args, **kwargs)

    async def recording_open_ssl_socket(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs["handshake_timeout_s"])
        return await socket_open(*args, **kwargs)

    monkeypatch.setattr(asyncio, "open_connection", recording_open_connection)
    monkeypatch.setattr(outer_tls, "open_tls_connection", recording_open_tls)
    monkeypatch.setattr(outer_tls, "open_ssl_socket_connection", recording_open_ssl_socket)
    lookups: list[str] = []
    bridge = {
        "url": f"https://bridge.test{secret_path()}",
        "addr": f"bridge.test:{silent_port}",
        "utls": utls,
    }
    options = DialOptions(timeout_s=BUDGET_S, resolver=slow_resolver(lookups))

    async def main() -> HandshakeTimeout:
        with pytest.raises(HandshakeTimeout) as info:
            await open_tunnel(bridge, options)
        return info.value

    started = time.monotonic()
    error = asyncio.run(main())
    elapsed = time.monotonic() - started

    assert lookups == ["bridge.test"]
    assert error.stage is DialStage.TLS_HANDSHAKE
    assert str(error) == f"bridge dial timed out after {BUDGET_S:g} s during TLS handshake"
    assert BUDGET_S - 0.05 <= elapsed < BUDGET_S + SLACK_S
    (handshake_timeout,) = given
    assert 0 < handshake_timeout <= BUDGET_S - RESOLVER_DELAY_S + 0.05
