"""Lines a managed client PT writes on stdout (pt-spec §3.3), built and checked before writing.

    VERSION 1 | VERSION-ERROR <msg> | ENV-ERROR <msg>
    PROXY DONE | PROXY-ERROR <msg>
    CMETHOD <transport> socks5 <ip:port> | CMETHOD-ERROR <transport> <msg> | CMETHODS DONE
    LOG SEVERITY=<severity> MESSAGE=<quoted>
    STATUS TYPE=version IMPLEMENTATION=<name> VERSION=<version>

Free-text messages may not contain line breaks; LOG values are C-quoted the way goptlib does it
(printable ASCII as is, everything else, plus ``"`` and ``\\``, as a three-digit octal escape),
which tor's kvline parser accepts (``pt-protocol.md`` §4.1).
"""

from __future__ import annotations

import ipaddress
import re
from typing import get_args

from webtunnel_pt.errors import LocalProtocolError, LogSeverity

_TOKEN = re.compile(r"[!-~]+\Z")  # printable ASCII without space
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SEVERITIES: frozenset[str] = frozenset(get_args(LogSeverity))


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise LocalProtocolError(f"{what} must be printable ASCII without spaces: {value!r}")
    return value


def _text(message: str) -> str:
    """A free-text tail: one line of printable US-ASCII (pt-spec §3), never empty."""
    cleaned = "".join(
        c if " " <= c <= "~" else (" " if c.isspace() or not c.isprintable() else "?")
        for c in message
    ).strip()
    return cleaned or "unspecified error"


def quote_value(value: str) -> str:
    """C-quote a value for a LOG/STATUS line; NUL bytes (which tor rejects) are dropped."""
    out = ['"']
    for byte in value.encode("utf-8"):
        if byte == 0:
            continue
        if 32 <= byte < 127 and byte not in (0x22, 0x5C):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def version(ver: str = "1") -> str:
    return f"VERSION {_token(ver, 'version')}"


def version_error(message: str = "no-version") -> str:
    return f"VERSION-ERROR {_text(message)}"


def env_error(message: str) -> str:
    return f"ENV-ERROR {_text(message)}"


def proxy_done() -> str:
    return "PROXY DONE"


def proxy_error(message: str) -> str:
    return f"PROXY-ERROR {_text(message)}"


def _transport(name: str) -> str:
    if not _C_IDENTIFIER.match(name):
        raise LocalProtocolError(f"transport names are C identifiers: {name!r}")
    return name


def cmethod(transport: str, host: str, port: int, kind: str = "socks5") -> str:
    if kind not in ("socks4", "socks5"):
        raise LocalProtocolError(f"unknown CMETHOD proxy kind {kind!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise LocalProtocolError(f"CMETHOD address must be an IP literal: {host!r}") from exc
    if not 0 < port < 65536:
        raise LocalProtocolError(f"CMETHOD port out of range: {port}")
    address = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    return f"CMETHOD {_transport(transport)} {kind} {address}"


def cmethod_error(transport: str, message: str) -> str:
    return f"CMETHOD-ERROR {_transport(transport)} {_text(message)}"


def cmethods_done() -> str:
    return "CMETHODS DONE"


def log(severity: str, message: str) -> str:
    if severity not in SEVERITIES:
        raise LocalProtocolError(f"unknown LOG severity {severity!r}")
    return f"LOG SEVERITY={severity} MESSAGE={quote_value(message)}"


def status_version(implementation: str, impl_version: str) -> str:
    return (
        f"STATUS TYPE=version IMPLEMENTATION={_token(implementation, 'implementation')} "
        f"VERSION={_token(impl_version, 'version')}"
    )
