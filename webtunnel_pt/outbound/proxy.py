"""Upstream proxies (``TOR_PT_PROXY``): which client handshake speaks to which proxy.

Sans-I/O. The pieces live with their protocol:

    outbound/proxy_uri.py      the TOR_PT_PROXY grammar -> ProxyConfig (parsed by pt/env.py)
    socks/client.py            SOCKS5 and SOCKS4a client handshakes, the shared vocabulary
    outbound/http_connect.py   the HTTP CONNECT client handshake (h11)
    outbound/proxy_dial.py     the asyncio glue: TCP to the proxy, then the handshake

The errors (``ProxyError`` and its subclasses, ``ProxyProtocolError``) are in
:mod:`webtunnel_pt.errors`.
"""

from __future__ import annotations

from webtunnel_pt.outbound.http_connect import HttpConnectClientHandshake
from webtunnel_pt.outbound.proxy_uri import ProxyConfig, ProxyScheme
from webtunnel_pt.socks.client import ProxyHandshake, Socks4aClientHandshake, Socks5ClientHandshake

__all__ = ["client_handshake"]


def client_handshake(config: ProxyConfig, host: str, port: int) -> ProxyHandshake:
    """The handshake that asks the proxy in ``config`` for a connection to ``host:port``."""
    shown = config.describe()
    if config.scheme is ProxyScheme.SOCKS5:
        return Socks5ClientHandshake(shown, host, port, config.username, config.password)
    if config.scheme is ProxyScheme.SOCKS4A:
        return Socks4aClientHandshake(shown, host, port, config.username)
    return HttpConnectClientHandshake(shown, host, port, config.username, config.password)
