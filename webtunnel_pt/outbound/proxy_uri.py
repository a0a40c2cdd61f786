"""``TOR_PT_PROXY``: the upstream proxy URI grammar and the validated :class:`ProxyConfig`.

Sans-I/O. tor writes the URI (``pt-protocol.md`` §2.1)::

    socks5://[user:pass@]host:port     RFC 1928 with RFC 1929 username/password
    socks4a://[user@]host:port         SOCKS4 with the SOCKS4a host-name extension
    http://[user:pass@]host:port       HTTP CONNECT (RFC 9110 §9.3.6), Basic auth (RFC 7617)

tor does not percent-encode user info: everything before the *last* ``@`` is user info, split
into user and password at the *first* ``:``; nothing is percent-decoded. Errors raise
:class:`~webtunnel_pt.errors.ProxyConfigError` (answered with ``PROXY-ERROR``) with a reason
that never contains the password. :mod:`webtunnel_pt.pt.env` calls :func:`parse_proxy_uri`
with the other TOR_PT_* variables.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

from webtunnel_pt.errors import BridgeArgsError, ProxyConfigError
from webtunnel_pt.socks.codes import (
    MAX_SOCKS4_USERID_BYTES,
    MAX_SOCKS5_CREDENTIAL_BYTES,
    authority,
)
from webtunnel_pt.webtunnel.bridge import validate_hostname

__all__ = ["ProxyConfig", "ProxyScheme", "parse_proxy_uri"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT = re.compile(r":[0-9]{1,5}")


class ProxyScheme(Enum):
    SOCKS5 = "socks5"
    SOCKS4A = "socks4a"
    HTTP = "http"


@dataclass(frozen=True)
class ProxyConfig:
    """A validated ``TOR_PT_PROXY``. The password stays out of ``repr`` and :meth:`describe`."""

    scheme: ProxyScheme
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return authority(self.host, self.port)

    def describe(self) -> str:
        """``socks5 proxy 127.0.0.1:1080`` (credentials are never shown)."""
        auth = " with credentials" if self.username is not None else ""
        return f"{self.scheme.value} proxy {self.address}{auth}"


def parse_proxy_uri(uri: str) -> ProxyConfig:
    """Validate ``TOR_PT_PROXY``; raise :class:`ProxyConfigError` with a password-free reason."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        raise ProxyConfigError("TOR_PT_PROXY contains whitespace or control characters")
    match = _SCHEME.match(uri)
    if match is None:
        raise ProxyConfigError("TOR_PT_PROXY is not an absolute URI (scheme://host:port)")
    name = match.group(1).lower()
    try:
        scheme = ProxyScheme(name)
    except ValueError:
        raise ProxyConfigError(
            f"proxy scheme {name!r} is not supported (socks5, socks4a or http)"
        ) from None
    rest = uri[match.end() :]
    userinfo, at, hostport = rest.rpartition("@")
    username, password = _split_userinfo(userinfo) if at else (None, None)
    host, port = _parse_host_port(hostport)
    _check_credentials(scheme, username, password)
    return ProxyConfig(scheme, host, port, username, password)


def _split_userinfo(userinfo: str) -> tuple[str, str | None]:
    username, colon, password = userinfo.partition(":")
    return username, password if colon else None


def _parse_host_port(hostport: str) -> tuple[str, int]:
    for char, what in (("/", "a path"), ("?", "a query"), ("#", "a fragment")):
        if char in hostport:
            raise ProxyConfigError(f"TOR_PT_PROXY must not have {what}")
    if hostport.startswith("["):
        end = hostport.find("]")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if end < 0 or not _is_ipv6(host):
            raise ProxyConfigError("TOR_PT_PROXY has an invalid IPv6 address in brackets")
    elif hostport.count(":") > 1:
        raise ProxyConfigError("TOR_PT_PROXY: an IPv6 address must be written in brackets")
    else:
        host, sep, port = hostport.partition(":")
        rest = sep + port
        host = _check_host(host)
    if not _PORT.fullmatch(rest) or not 0 < int(rest[1:]) < 65536:
        raise ProxyConfigError("TOR_PT_PROXY needs a port from 1 to 65535")
    return host, int(rest[1:])


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _check_host(host: str) -> str:
    if not host:
        raise ProxyConfigError("TOR_PT_PROXY has no host")
    try:
        return validate_hostname(host, "TOR_PT_PROXY host")
    except BridgeArgsError as exc:
        raise ProxyConfigError(str(exc)) from None


def _check_credentials(scheme: ProxyScheme, username: str | None, password: str | None) -> None:
    if username is None:
        return
    if scheme is ProxyScheme.SOCKS4A:
        if password is not None:
            raise ProxyConfigError("a socks4a proxy takes a user id but no password")
        if len(username.encode()) > MAX_SOCKS4_USERID_BYTES:
            raise ProxyConfigError(
                f"socks4a user id is longer than {MAX_SOCKS4_USERID_BYTES} bytes"
            )
        return
    if password is None:
        raise ProxyConfigError(f"{scheme.value} proxy user info must be user:password")
    if not username:
        raise ProxyConfigError(f"{scheme.value} proxy user name is empty")
    if scheme is ProxyScheme.SOCKS5:
        for value, what in ((username, "user name"), (password, "password")):
            if not 0 < len(value.encode()) <= MAX_SOCKS5_CREDENTIAL_BYTES:
                raise ProxyConfigError(
                    f"socks5 proxy {what} must be 1 to {MAX_SOCKS5_CREDENTIAL_BYTES} bytes"
                    " (RFC 1929)"
                )
