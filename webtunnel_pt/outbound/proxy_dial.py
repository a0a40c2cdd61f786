"""The TCP leg of a dial through an upstream proxy: connect to the proxy, run its handshake.

Called by :mod:`webtunnel_pt.webtunnel.dial` instead of DNS + TCP when ``TOR_PT_PROXY`` is set. The
bridge host goes to the proxy as given (a name stays a name: the proxy resolves it, no DNS
query for the bridge leaves this machine); only a proxy given by name is resolved here. The
proxy's reply is read in steps no larger than :attr:`ProxyHandshake.max_read_bytes`, so the
first bytes of the tunnel stay in the socket for TLS. The caller's deadline bounds every wait.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from webtunnel_pt.errors import (
    BridgeUnreachable,
    DialStage,
    LocalProtocolError,
    ProxyUnreachable,
    SocksReply,
)
from webtunnel_pt.outbound import resolver
from webtunnel_pt.outbound.proxy import client_handshake
from webtunnel_pt.outbound.proxy_uri import ProxyConfig
from webtunnel_pt.socks.client import ProxyConnected

#: Connects to the first reachable address of a list (``dial._connect`` with its options).
Connector = Callable[[list[str], int], Awaitable[socket.socket]]
#: Told each dial step as it begins, so that an error can name where it happened.
StageObserver = Callable[[DialStage], None]


async def _proxy_addresses(proxy: ProxyConfig) -> list[str]:
    """tor always gives an IP literal; a name (accepted for hand-written configs) is resolved."""
    try:
        return [str(ipaddress.ip_address(proxy.host))]
    except ValueError:
        pass
    try:
        infos = await resolver.getaddrinfo(proxy.host, proxy.port)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProxyUnreachable(
            f"cannot resolve {proxy.describe()}: {getattr(exc, 'strerror', None) or exc}",
            SocksReply.HOST_UNREACHABLE,
        ) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def connect_via_proxy(
    proxy: ProxyConfig, host: str, port: int, connect: Connector, enter: StageObserver
) -> tuple[socket.socket, ProxyConnected]:
    """A socket that is a raw pipe to ``host:port`` through ``proxy``, or a ProxyError."""
    enter(DialStage.PROXY_CONNECT)
    addresses = await _proxy_addresses(proxy)  # raises its own ProxyUnreachable
    try:
        sock = await connect(addresses, proxy.port)
    except BridgeUnreachable as exc:
        raise ProxyUnreachable(f"cannot reach {proxy.describe()}: {exc}", exc.socks_reply) from exc
    enter(DialStage.PROXY_HANDSHAKE)
    try:
        return sock, await _handshake(sock, proxy, host, port)
    except BaseException:
        sock.close()
        raise


async def _handshake(
    sock: socket.socket, proxy: ProxyConfig, host: str, port: int
) -> ProxyConnected:
    loop = asyncio.get_running_loop()
    handshake = client_handshake(proxy, host, port)
    while True:
        event = handshake.next_event()
        outgoing = handshake.data_to_send()
        if outgoing:
            await loop.sock_sendall(sock, outgoing)
        if event is not None:
            break
        data = await loop.sock_recv(sock, handshake.max_read_bytes)
        if data:
            handshake.receive_data(data)
        else:
            handshake.receive_eof()
    if handshake.trailing_data:  # pragma: no cover - reads never pass the reply
        raise LocalProtocolError("read past the proxy's reply")
    return event
