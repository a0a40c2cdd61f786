"""Values shared by the command line and the torrc reader of the front ends: bridge lines,
loopback listen addresses, tor's booleans, DirAuthority lines.

    check_bridge_line("Bridge webtunnel 192.0.2.3:443 FP url=https://h/p")  -> "webtunnel ..."
    parse_listen("127.0.0.1:9150")                           -> ("127.0.0.1", 9150)
    parse_tor_bool("1", "EnforceDistinctSubnets")            -> True

Every error is a :class:`~webtunnel_pt.errors.ConfigError` whose message names the option and
never holds the bridge URL path or fingerprint (the bridge parser's messages don't either).
Sans-I/O.
"""

from __future__ import annotations

import ipaddress

from webtunnel_pt.errors import BridgeArgsError, ConfigError, DirAuthorityError
from webtunnel_pt.front.arguments import DEFAULT_LISTEN
from webtunnel_pt.tor.authorities import DirAuthority, parse_dir_authority
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

__all__ = [
    "DEFAULT_LISTEN",
    "check_bridge_line",
    "check_dir_authority",
    "parse_listen",
    "parse_tor_bool",
]

#: A bridge line is a few hundred characters; a longer one is a mistake, not a bridge.
MAX_BRIDGE_LINE_CHARS = 4096
_LOCALHOST_NAMES = frozenset({"localhost"})


def check_bridge_line(text: str) -> str:
    """Validate a WebTunnel bridge line (with or without the leading ``Bridge``) the way the PT
    would, and return it without the keyword."""
    if len(text) > MAX_BRIDGE_LINE_CHARS:
        raise ConfigError(f"bridge line is over {MAX_BRIDGE_LINE_CHARS} characters")
    try:
        line = parse_bridge_line(text)
        if line.transport != "webtunnel":
            raise ConfigError(
                f"bridge line names the transport {line.transport!r}; only webtunnel bridges "
                "are supported"
            )
        bridge_config_from_args(line.args)
    except BridgeArgsError as exc:
        raise ConfigError(f"bad bridge line: {exc}") from None
    words = text.split()
    if words and words[0].lower() == "bridge":
        words = words[1:]
    return " ".join(words)


def check_dir_authority(text: str) -> DirAuthority:
    """One ``DirAuthority`` line or its value (tor/authorities.py decides)."""
    try:
        return parse_dir_authority(text)
    except DirAuthorityError as exc:
        raise ConfigError(f"bad DirAuthority: {exc}") from None


def parse_listen(text: str, what: str = "--listen") -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare port, on a loopback address only."""
    text = text.strip()
    if text.isdigit():
        host, port_text = DEFAULT_LISTEN[0], text
    elif text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"{what}: expected [IPv6]:PORT, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError(f"{what}: expected HOST:PORT or PORT, got {text!r}")
    if host.lower() in _LOCALHOST_NAMES:
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IP address (use 127.0.0.1 or ::1)") from None
    if not address.is_loopback:
        raise ConfigError(
            f"{what}: {host} is not a loopback address; the SOCKS front listens on loopback "
            "only (127.0.0.1 or ::1), so nobody else on the network can use it"
        )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}: bad port {port_text!r}")
    return str(address), int(port_text)


def parse_tor_bool(text: str, what: str) -> bool:
    """tor's boolean options take ``0`` or ``1``."""
    value = text.strip()
    if value == "1":
        return True
    if value == "0":
        return False
    raise ConfigError(f"{what} takes 0 or 1, not {text!r}")
