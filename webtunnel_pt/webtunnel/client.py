"""Library API: open a WebTunnel stream from Python, on the same code path the SOCKS handler uses.

    reader, writer = await open_webtunnel("webtunnel 192.0.2.1:443 url=https://example.com/p")

The pair carries the raw tunnel (for a Tor bridge: tor's link protocol, starting with the inner
TLS). Errors are :class:`~webtunnel_pt.errors.WebtunnelError` subclasses; a bad bridge line
raises :class:`~webtunnel_pt.errors.BridgeArgsError` before any connection is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import BridgeConfig, bridge_config_from_args, parse_bridge_line
from webtunnel_pt.webtunnel.dial import DialOptions, Tunnel, dial_bridge

BridgeSpec = str | Mapping[str, str] | BridgeArgs | BridgeConfig


def bridge_config(bridge: BridgeSpec) -> BridgeConfig:
    """Accept a bridge line, a mapping of arguments (``{"url": ...}``) or a ready config."""
    if isinstance(bridge, BridgeConfig):
        return bridge
    if isinstance(bridge, str):
        return bridge_config_from_args(parse_bridge_line(bridge).args)
    if isinstance(bridge, BridgeArgs):
        return bridge_config_from_args(bridge)
    return bridge_config_from_args(BridgeArgs(bridge.items()))


async def open_tunnel(bridge: BridgeSpec, options: DialOptions | None = None) -> Tunnel:
    """Like :func:`open_webtunnel` but also returns what the dial found out (``report``)."""
    return await dial_bridge(bridge_config(bridge), options)


async def open_webtunnel(
    bridge: BridgeSpec, *, timeout: float | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial the bridge's web server, upgrade, and return the raw tunnel as a stream pair."""
    options = DialOptions() if timeout is None else DialOptions(timeout_s=timeout)
    tunnel = await open_tunnel(bridge, options)
    return tunnel.reader, tunnel.writer
