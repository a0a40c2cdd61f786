"""Does a server certificate name a host? The check behind ``utls-authority=``.

When the certificate must be verified against a name other than the SNI (lyrebird's
``utls-authority=``), the TLS stack checks only the chain and this module checks the name,
after the handshake, on the certificate's ``subjectAltName`` as :meth:`ssl.SSLSocket.getpeercert`
reports it (``(("DNS", "a.example"), ("IP Address", "192.0.2.1"), ...)``). The rules are those of
RFC 9110 §4.3.4 and RFC 6125 §6 as browsers and Go's crypto/tls apply them:

- a host name is compared with the ``DNS`` entries, case-insensitively, in A-label (IDNA) form,
  a trailing dot ignored;
- ``*`` matches one whole left-most label and nothing else: ``*.example.com`` matches
  ``a.example.com``, not ``example.com`` nor ``a.b.example.com``; partial wildcards
  (``f*.example.com``) and wildcards with fewer than two labels after them (``*.com``) match
  nothing; a wildcard never matches an IP address;
- an IP address is compared with the ``IP Address`` entries only, as addresses;
- no ``subjectAltName``, no match: the subject's common name is never used (RFC 6125 §6.4.4
  leaves it to legacy clients; browsers and Go ignore it).

Sans-I/O: pure functions on strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from webtunnel_pt.errors import TlsError

SanEntry = tuple[str, str]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _a_label(name: str) -> str | None:
    """Lower-case A-label form without a trailing dot, or None if it cannot be one."""
    name = name.strip().rstrip(".").lower()
    if not name:
        return None
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _dns_matches(pattern: str, host: str) -> bool:
    """``pattern`` is a certificate's DNS entry, ``host`` an A-label name; both lower-case."""
    if not pattern.isascii():
        return False  # a dNSName is an IA5String: A-labels only
    pattern = pattern.rstrip(".").lower()
    if "*" not in pattern:
        return pattern == host
    first, sep, rest = pattern.partition(".")
    if first != "*" or not sep or "*" in rest or rest.count(".") < 1:
        return False
    host_first, host_sep, host_rest = host.partition(".")
    return bool(host_first) and bool(host_sep) and host_rest == rest


def name_matches(name: str, san: Iterable[SanEntry]) -> bool:
    """Whether ``name`` (a host name or an IP literal) is one of the ``san`` names."""
    entries = list(san)
    address = _ip(name)
    if address is not None:
        return any(kind == "IP Address" and _ip(value) == address for kind, value in entries)
    host = _a_label(name)
    if host is None:
        return False
    return any(kind == "DNS" and _dns_matches(value, host) for kind, value in entries)


def check_certificate_name(name: str, peer_certificate: Mapping[str, Any] | None) -> None:
    """Raise :class:`TlsError` unless the (already chain-verified) certificate names ``name``."""
    san = tuple((peer_certificate or {}).get("subjectAltName", ()))
    if not san:
        raise TlsError(f"TLS certificate has no subjectAltName, so it cannot be valid for {name}")
    if not name_matches(name, san):
        shown = ", ".join(value for _kind, value in san[:8])
        more = ", ..." if len(san) > 8 else ""
        raise TlsError(f"TLS certificate is not valid for {name} (it names {shown}{more})")
