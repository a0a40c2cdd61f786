"""The SOCKS listener is for tor on this machine only: loopback, and nothing else reaches it."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from webtunnel_pt.pt.listener import SocksServer


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "2001:db8::1", "localhost"])
def test_start_refuses_any_address_but_loopback(host: str) -> None:
    async def main() -> None:
        server = SocksServer()
        with pytest.raises(ValueError):
            await server.start(host)
        await server.aclose()

    run(main())


def _non_loopback_addresses() -> list[str]:
    """This machine's own addresses that are not loopback (from its host name and the source
    address of its default route, which needs no packet to be sent)."""
    found: set[str] = set()
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(str(sockaddr[0]))
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect: picks a route, sends nothing
            found.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def test_the_listener_cannot_be_reached_on_another_address_of_this_machine() -> None:
    addresses = _non_loopback_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address to try")

    async def main() -> None:
        server = SocksServer()
        host, port = await server.start()
        try:
            assert host == "127.0.0.1"
            for address in addresses:
                with pytest.raises(OSError) as refused:
                    _, writer = await asyncio.open_connection(address, port)
                    writer.close()
                assert refused.value.errno in (errno.ECONNREFUSED, errno.ENETUNREACH), address
            # ...while tor's way in works
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        finally:
            await server.aclose()

    run(main())
