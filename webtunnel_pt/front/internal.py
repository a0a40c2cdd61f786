"""tor's ``ClientRejectInternalAddresses``: which destinations a client refuses to send to an exit.

    internal_reason("10.1.2.3")        -> "private address (10.0.0.0/8)"
    internal_reason("foo.localhost")   -> "local host name"
    internal_reason("example.com")     -> None

What tor refuses (tor's ``tor_addr_is_internal`` and ``tor_addr_hostname_is_local``, used by
``connection_ap_handshake_rewrite_and_attach`` when the option is on, its default):

- IPv4 ``0.0.0.0/8``, ``10.0.0.0/8``, ``127.0.0.0/8``, ``169.254.0.0/16``, ``172.16.0.0/12``,
  ``192.168.0.0/16``; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) counts as its IPv4;
- IPv6 ``::`` and ``::1`` (``::/127``), ``fc00::/7`` (ULA), ``fe80::/10`` (link-local),
  ``fec0::/10`` (deprecated site-local);
- the names ``localhost`` and ``local`` and any name ending in ``.local``.

tor does not refuse carrier-grade NAT (``100.64.0.0/10``) or multicast, and neither does this.
Two additions, both stricter than tor and documented as such: names ending in ``.localhost``
(RFC 6761 §6.3 says they are loopback), and IPv4 in the short or numeric forms that C
resolvers accept (``127.1``, ``2130706433``, ``0x7f.1``), which an exit's resolver would turn
into the internal address tor's literal check misses. Names are compared case-insensitively,
without a trailing dot. Sans-I/O.
"""

from __future__ import annotations

import ipaddress

__all__ = ["internal_reason", "is_internal"]

_IPV4_INTERNAL = tuple(
    (ipaddress.IPv4Network(net), what)
    for net, what in (
        ("0.0.0.0/8", "unspecified address"),
        ("10.0.0.0/8", "private address"),
        ("127.0.0.0/8", "loopback address"),
        ("169.254.0.0/16", "link-local address"),
        ("172.16.0.0/12", "private address"),
        ("192.168.0.0/16", "private address"),
    )
)
_IPV6_INTERNAL = tuple(
    (ipaddress.IPv6Network(net), what)
    for net, what in (
        ("::/127", "loopback or unspecified address"),
        ("fc00::/7", "unique local address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
    )
)
_LOCAL_NAMES = frozenset({"localhost", "local"})
_LOCAL_SUFFIXES = (".local", ".localhost")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a C resolver's ``inet_aton`` reads from ``text`` (1 to 4 parts,
    decimal, octal with a leading 0, or hex with 0x; the last part fills the rest)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                value = int(part[2:], 16) if len(part) > 2 else 0
            elif len(part) > 1 and part.startswith("0"):
                value = int(part, 8)
            else:
                value = int(part, 10)
        except ValueError:
            return None
        if not part or value < 0:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (4 - len(head))) | last
    return ipaddress.IPv4Address(number)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return _inet_aton(text) if text[:1].isdigit() else None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def internal_reason(host: str) -> str | None:
    """Why ``host`` (a name or an IP literal, IPv6 with or without brackets) is internal, or
    None if a client may ask an exit for it."""
    address = _address(host)
    if isinstance(address, ipaddress.IPv4Address):
        for net, what in _IPV4_INTERNAL:
            if address in net:
                return f"{what} ({net})"
        return None
    if isinstance(address, ipaddress.IPv6Address):
        for net6, what in _IPV6_INTERNAL:
            if address in net6:
                return f"{what} ({net6})"
        return None
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
        return "local host name"
    return None


def is_internal(host: str) -> bool:
    return internal_reason(host) is not None
