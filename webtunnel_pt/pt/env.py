"""The TOR_PT_* environment of a managed client PT (pt-spec §3.2), parsed into a frozen config.

Sans-I/O: the environment comes in as a mapping; errors are raised as :class:`VersionError`
(answered with ``VERSION-ERROR``), :class:`EnvError` (answered with ``ENV-ERROR``) or, for
``TOR_PT_PROXY``, :class:`ProxyConfigError` (answered with ``PROXY-ERROR``); the caller prints
the line and exits 1. ``TOR_PT_PROXY`` is checked last, so any ``ENV-ERROR`` comes first.
"""

from __future__ import annotations

import ipaddress
import ntpath
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from webtunnel_pt.errors import EnvError, VersionError
from webtunnel_pt.outbound.proxy_uri import ProxyConfig, parse_proxy_uri

SUPPORTED_PT_VERSION = "1"
TRANSPORT_NAME = "webtunnel"


@dataclass(frozen=True)
class ClientEnvironment:
    """What tor asked of us, validated."""

    #: Requested transports we implement, in tor's order (only ever ``webtunnel``).
    transports: tuple[str, ...]
    #: Requested transports we do not implement: each gets a CMETHOD-ERROR.
    unsupported: tuple[str, ...]
    state_location: str | None
    exit_on_stdin_close: bool
    #: ``TOR_PT_PROXY``, validated; ``None`` when unset or empty.
    proxy: ProxyConfig | None
    bind_v4: ipaddress.IPv4Address | None
    bind_v6: ipaddress.IPv6Address | None


def negotiate_version(env: Mapping[str, str]) -> str:
    """Return the managed-proxy version to announce, or raise."""
    offered = env.get("TOR_PT_MANAGED_TRANSPORT_VER", "")
    if not offered:
        raise EnvError("no TOR_PT_MANAGED_TRANSPORT_VER environment variable")
    if SUPPORTED_PT_VERSION not in offered.split(","):
        raise VersionError("no-version")
    return SUPPORTED_PT_VERSION


def _bind_v4(value: str) -> ipaddress.IPv4Address | None:
    if not value:
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise EnvError(f"TOR_PT_OUTBOUND_BIND_ADDRESS_V4 is not an IPv4 address: {value}") from exc


def _bind_v6(value: str) -> ipaddress.IPv6Address | None:
    if not value:
        return None
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return ipaddress.IPv6Address(bare)
    except ValueError as exc:
        raise EnvError(f"TOR_PT_OUTBOUND_BIND_ADDRESS_V6 is not an IPv6 address: {value}") from exc


def parse_client_environment(
    env: Mapping[str, str], supported: tuple[str, ...] = (TRANSPORT_NAME,)
) -> ClientEnvironment:
    """Parse everything but the version (see :func:`negotiate_version`); raise
    :class:`EnvError`, or :class:`ProxyConfigError` for a bad ``TOR_PT_PROXY``."""
    if env.get("TOR_PT_SERVER_TRANSPORTS"):
        if env.get("TOR_PT_CLIENT_TRANSPORTS"):
            raise EnvError("TOR_PT_[CLIENT,SERVER]_TRANSPORTS both set")
        raise EnvError("webtunnel-pt is a client; TOR_PT_SERVER_TRANSPORTS is not supported")
    requested_text = env.get("TOR_PT_CLIENT_TRANSPORTS", "")
    if not requested_text:
        raise EnvError("no TOR_PT_CLIENT_TRANSPORTS environment variable")
    requested = [name for name in requested_text.split(",") if name]
    if not requested:
        raise EnvError("TOR_PT_CLIENT_TRANSPORTS names no transport")
    if "*" in requested:
        transports = list(supported)
        unsupported = [name for name in requested if name != "*" and name not in supported]
    else:
        transports = [name for name in dict.fromkeys(requested) if name in supported]
        unsupported = [name for name in dict.fromkeys(requested) if name not in supported]

    state = env.get("TOR_PT_STATE_LOCATION") or None
    if state is not None and not (posixpath.isabs(state) or ntpath.isabs(state)):
        raise EnvError(f"TOR_PT_STATE_LOCATION is not an absolute path: {state}")

    bind_v4 = _bind_v4(env.get("TOR_PT_OUTBOUND_BIND_ADDRESS_V4", ""))
    bind_v6 = _bind_v6(env.get("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", ""))
    proxy_uri = env.get("TOR_PT_PROXY")
    return ClientEnvironment(
        transports=tuple(transports),
        unsupported=tuple(unsupported),
        state_location=state,
        exit_on_stdin_close=env.get("TOR_PT_EXIT_ON_STDIN_CLOSE") == "1",
        proxy=parse_proxy_uri(proxy_uri) if proxy_uri else None,
        bind_v4=bind_v4,
        bind_v6=bind_v6,
    )
