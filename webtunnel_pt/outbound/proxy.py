"""Upstream proxies (``TOR_PT_PROXY``): the URI, and the client side of each handshake.

Sans-I/O: nothing here touches the network. tor writes the URI (``pt-protocol.md`` §2.1)::

    socks5://[user:pass@]host:port     RFC 1928 with RFC 1929 username/password
    socks4a://[user@]host:port         SOCKS4 with the SOCKS4a host-name extension
    http://[user:pass@]host:port       HTTP CONNECT (RFC 9110 §9.3.6), Basic auth (RFC 7617)

tor does not percent-encode user info: everything before the *last* ``@`` is user info, split
into user and password at the *first* ``:``; nothing is percent-decoded.

Every handshake speaks the vocabulary of :mod:`webtunnel_pt.socks.server`: send
:meth:`data_to_send`, feed :meth:`receive_data` / :meth:`receive_eof`, ask :meth:`next_event`
(``None`` means more bytes are needed, :class:`ProxyConnected` means the socket is now a raw
pipe to the target).
:attr:`max_read_bytes` says how much the caller may read without reading past the proxy's
reply, so the bytes behind it stay in the socket for the next layer; bytes fed beyond the reply
anyway are kept in :attr:`trailing_data`.

Failures raise, each carrying the SOCKS5 reply (RFC 1928 §6) tor gets and a message that never
contains the proxy password::

    BridgeUnreachable (also ConnectionError)
    └─ ProxyError                    the bridge could not be reached through the proxy
       ├─ ProxyUnreachable           TCP to the proxy failed (reply by errno)
       ├─ ProxyAuthRefused           the proxy refused our credentials or wants some (0x02)
       └─ ProxyTargetUnreachable     the proxy could not connect to the bridge (its reply)
    RemoteProtocolError
    └─ ProxyProtocolError            the proxy's answer is not valid SOCKS / HTTP (0x01)
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto

from webtunnel_pt.errors import (
    BridgeArgsError,
    BridgeUnreachable,
    LocalProtocolError,
    ProxyConfigError,
    RemoteProtocolError,
    SocksReply,
)
from webtunnel_pt.socks.server import AddressType, AuthMethod
from webtunnel_pt.webtunnel.bridge import validate_hostname

__all__ = [
    "ProxyAuthRefused",
    "ProxyConfig",
    "ProxyConnected",
    "ProxyError",
    "ProxyHandshake",
    "ProxyProtocolError",
    "ProxyScheme",
    "ProxyTargetUnreachable",
    "ProxyUnreachable",
    "client_handshake",
    "parse_proxy_uri",
]

#: RFC 1929 §2: ULEN and PLEN are one byte each.
MAX_SOCKS5_CREDENTIAL_BYTES = 255
#: RFC 1928 §5: a domain name is preceded by a one-byte length.
MAX_SOCKS5_DOMAIN_BYTES = 255
#: SOCKS4 user id: no limit in the protocol; tor has no option to set one, so keep it small.
MAX_SOCKS4_USERID_BYTES = 255
#: HTTP response head to CONNECT: a status line and a few headers; h11 allows 16 KiB.
MAX_RESPONSE_HEAD_BYTES = 16 * 1024

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PORT = re.compile(r":[0-9]{1,5}")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: ([^\r\n]*))?\Z")


# -- configuration ------------------------------------------------------------------------------


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
        return f"{_bracket(self.host)}:{self.port}"

    def describe(self) -> str:
        """``socks5 proxy 127.0.0.1:1080`` (credentials are never shown)."""
        auth = " with credentials" if self.username is not None else ""
        return f"{self.scheme.value} proxy {self.address}{auth}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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


# -- errors -------------------------------------------------------------------------------------


class ProxyError(BridgeUnreachable):
    """The bridge could not be reached through the upstream proxy."""


class ProxyUnreachable(ProxyError):
    """The TCP connection to the proxy itself failed."""


class ProxyAuthRefused(ProxyError):
    """The proxy refused our credentials, or wants credentials we do not have."""

    def __init__(self, message: str) -> None:
        super().__init__(message, SocksReply.NOT_ALLOWED)


class ProxyTargetUnreachable(ProxyError):
    """The proxy answered, but could not (or would not) connect to the bridge."""


class ProxyProtocolError(RemoteProtocolError):
    """The proxy's answer is not valid SOCKS or HTTP."""


# -- handshakes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyConnected:
    """The proxy connected us to the target; ``bound`` is what it reported (may be empty)."""

    bound: str = ""


class ProxyHandshake:
    """What every client handshake shares: buffers, EOF, trailing bytes, the final event."""

    #: Shown in messages, e.g. ``SOCKS5``.
    protocol = ""

    def __init__(self, proxy: str, target: str) -> None:
        self._proxy = proxy
        self._target = target
        self._in = bytearray()
        self._out = bytearray()
        self._eof = False
        self._result: ProxyConnected | None = None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        self._in += data

    def receive_eof(self) -> None:
        self._eof = True

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the proxy's success reply; they belong to the tunnel."""
        return bytes(self._in) if self._result is not None else b""

    @property
    def max_read_bytes(self) -> int:
        """How much the caller may read now without reading past the proxy's reply."""
        return 0 if self._result is not None else max(1, self._reply_bytes_missing())

    def next_event(self) -> ProxyConnected | None:
        """The result once the proxy has answered; ``None`` while more bytes are needed."""
        if self._result is None:
            self._result = self._advance()
            if self._result is None and self._eof:
                raise ProxyProtocolError(
                    f"{self._proxy} closed the connection during the {self.protocol} handshake"
                )
        return self._result

    def _advance(self) -> ProxyConnected | None:
        raise NotImplementedError

    def _reply_bytes_missing(self) -> int:
        raise NotImplementedError

    def _take(self, n: int) -> bytes | None:
        """Consume ``n`` buffered bytes, or nothing if fewer are there."""
        if len(self._in) < n:
            return None
        data = bytes(self._in[:n])
        del self._in[:n]
        return data

    def _invalid(self, what: str) -> ProxyProtocolError:
        return ProxyProtocolError(f"{self._proxy} sent an invalid {self.protocol} {what}")

    def _refused(self, detail: str, reply: SocksReply) -> ProxyTargetUnreachable:
        return ProxyTargetUnreachable(
            f"{self._proxy} could not connect to {self._target}: {detail}", reply
        )


# SOCKS5 (RFC 1928, RFC 1929) ------------------------------------------------------------------


# The wire codes are the ones the SOCKS server side (socks.py) speaks.
Socks5Method = AuthMethod
Socks5AddressType = AddressType
_SOCKS5_ADDRESS_TYPES = frozenset(Socks5AddressType)

#: RFC 1928 §6 REP field, as text for the log (tor shows the same words for the code we pass on).
SOCKS5_REPLY_TEXT = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


class _Socks5State(Enum):
    METHOD = auto()  # waiting for 05 METHOD
    AUTH = auto()  # waiting for 01 STATUS (RFC 1929 §2)
    REPLY = auto()  # waiting for 05 REP 00 ATYP BND.ADDR BND.PORT


class Socks5ClientHandshake(ProxyHandshake):
    """RFC 1928 CONNECT, with RFC 1929 username/password when credentials are given.

    Host names go out as ATYP 03 so the *proxy* resolves them: no DNS query for the bridge
    leaves this machine. IP literals use ATYP 01 / 04.

        greeting  05 02 00 02  (or 05 01 00 without credentials)
        auth      01 ULEN UNAME PLEN PASSWD
        request   05 01 00 ATYP DST.ADDR DST.PORT
    """

    protocol = "SOCKS5"

    def __init__(
        self,
        proxy: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(proxy, f"{_bracket(host)}:{port}")
        self._request = _socks5_request(host, port)
        self._credentials = (
            _socks5_credentials(username, password) if username is not None else None
        )
        self._state = _Socks5State.METHOD
        if self._credentials is None:
            self._out += bytes([0x05, 1, Socks5Method.NO_AUTH])
        else:
            self._out += bytes([0x05, 2, Socks5Method.NO_AUTH, Socks5Method.USERNAME_PASSWORD])

    def _reply_bytes_missing(self) -> int:
        if self._state is not _Socks5State.REPLY:
            return 2 - len(self._in)
        if len(self._in) < 5:
            return 5 - len(self._in)
        return _socks5_reply_length(self._in[3], self._in[4]) - len(self._in)

    def _advance(self) -> ProxyConnected | None:
        while True:
            if self._state is _Socks5State.METHOD:
                if not self._parse_method():
                    return None
            elif self._state is _Socks5State.AUTH:
                if not self._parse_auth():
                    return None
            else:
                return self._parse_reply()

    def _parse_method(self) -> bool:
        data = self._take(2)
        if data is None:
            return False
        if data[0] != 0x05:
            raise self._invalid(f"method reply (version {data[0]})")
        if data[1] == Socks5Method.NO_AUTH:
            self._out += self._request
            self._state = _Socks5State.REPLY
        elif data[1] == Socks5Method.USERNAME_PASSWORD and self._credentials is not None:
            self._out += self._credentials
            self._state = _Socks5State.AUTH
        elif data[1] == Socks5Method.NO_ACCEPTABLE:
            if self._credentials is None:
                raise ProxyAuthRefused(f"{self._proxy} wants credentials; TOR_PT_PROXY has none")
            raise ProxyAuthRefused(f"{self._proxy} accepts neither username/password nor none")
        else:
            raise self._invalid(f"method reply (method {data[1]:#04x}, which we did not offer)")
        return True

    def _parse_auth(self) -> bool:
        data = self._take(2)
        if data is None:
            return False
        # RFC 1929 says version 01; some servers echo the SOCKS version 05 instead.
        if data[0] not in (0x01, 0x05):
            raise self._invalid(f"authentication reply (version {data[0]})")
        if data[1] != 0x00:
            raise ProxyAuthRefused(f"{self._proxy} refused the user name and password")
        self._out += self._request
        self._state = _Socks5State.REPLY
        return True

    def _parse_reply(self) -> ProxyConnected | None:
        if len(self._in) < 5:
            return None
        version, rep, _, atyp = self._in[:4]
        if version != 0x05:
            raise self._invalid(f"reply (version {version})")
        if rep != 0x00:
            text = SOCKS5_REPLY_TEXT.get(rep, f"unknown reply code {rep:#04x}")
            reply = SocksReply(rep) if rep in SOCKS5_REPLY_TEXT else SocksReply.GENERAL_FAILURE
            raise self._refused(f"{text} (SOCKS5 reply {rep:#04x})", reply)
        if atyp not in _SOCKS5_ADDRESS_TYPES:
            raise self._invalid(f"reply (address type {atyp})")
        data = self._take(_socks5_reply_length(atyp, self._in[4]))
        if data is None:
            return None
        return ProxyConnected(_socks5_bound(atyp, data[4:]))


def _socks5_request(host: str, port: int) -> bytes:
    """RFC 1928 §4: ``05 01 00 ATYP DST.ADDR DST.PORT``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        if not 0 < len(name) <= MAX_SOCKS5_DOMAIN_BYTES:
            raise LocalProtocolError("SOCKS5 domain name must be 1 to 255 bytes") from None
        address = bytes([Socks5AddressType.DOMAIN, len(name)]) + name
    else:
        atyp = Socks5AddressType.IPV4 if ip.version == 4 else Socks5AddressType.IPV6
        address = bytes([atyp]) + ip.packed
    return b"\x05\x01\x00" + address + port.to_bytes(2, "big")


def _socks5_credentials(username: str, password: str | None) -> bytes:
    """RFC 1929 §2: ``01 ULEN UNAME PLEN PASSWD``."""
    user, secret = username.encode(), (password or "").encode()
    if not (0 < len(user) <= 255 and 0 < len(secret) <= 255):
        raise LocalProtocolError("RFC 1929 user name and password must be 1 to 255 bytes")
    return bytes([0x01, len(user)]) + user + bytes([len(secret)]) + secret


def _socks5_reply_length(atyp: int, first_address_byte: int) -> int:
    """Whole reply length: 4 header bytes, BND.ADDR, 2 port bytes (RFC 1928 §6)."""
    if atyp == Socks5AddressType.IPV4:
        return 4 + 4 + 2
    if atyp == Socks5AddressType.IPV6:
        return 4 + 16 + 2
    return 4 + 1 + first_address_byte + 2


def _socks5_bound(atyp: int, address: bytes) -> str:
    port = int.from_bytes(address[-2:], "big")
    if atyp == Socks5AddressType.IPV4:
        return f"{ipaddress.IPv4Address(address[:4])}:{port}"
    if atyp == Socks5AddressType.IPV6:
        return f"[{ipaddress.IPv6Address(address[:16])}]:{port}"
    return f"{address[1:-2].decode('ascii', 'replace')}:{port}"


# SOCKS4a --------------------------------------------------------------------------------------


class Socks4Status(IntEnum):
    GRANTED = 0x5A  # SOCKS4: request granted
    REJECTED = 0x5B  # rejected or failed
    NO_IDENTD = 0x5C  # rejected: the server cannot reach our identd
    IDENTD_MISMATCH = 0x5D  # rejected: identd reports a different user id


class Socks4aClientHandshake(ProxyHandshake):
    """SOCKS4 CONNECT; host names use the SOCKS4a form so the proxy resolves them.

        request   04 01 DSTPORT DSTIP USERID 00            (IPv4 literal)
        request   04 01 DSTPORT 0.0.0.1 USERID 00 HOST 00  (SOCKS4a: host name)
        reply     00 CD DSTPORT DSTIP                      (CD 5A = granted)

    SOCKS4 has no IPv6: an IPv6 target fails before anything is sent.
    """

    protocol = "SOCKS4a"
    REPLY_BYTES = 8

    def __init__(self, proxy: str, host: str, port: int, userid: str | None = None) -> None:
        super().__init__(proxy, f"{_bracket(host)}:{port}")
        user = (userid or "").encode()
        if b"\x00" in user:
            raise LocalProtocolError("SOCKS4 user id must not contain NUL")
        head = b"\x04\x01" + port.to_bytes(2, "big")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            self._out += head + b"\x00\x00\x00\x01" + user + b"\x00" + host.encode("ascii") + b"\0"
        else:
            if ip.version != 4:
                raise ProxyTargetUnreachable(
                    f"{proxy} cannot reach {self._target}: SOCKS4a has no IPv6 addresses",
                    SocksReply.ADDRESS_TYPE_NOT_SUPPORTED,
                )
            self._out += head + ip.packed + user + b"\x00"

    def _reply_bytes_missing(self) -> int:
        return self.REPLY_BYTES - len(self._in)

    def _advance(self) -> ProxyConnected | None:
        data = self._take(self.REPLY_BYTES)
        if data is None:
            return None
        if data[0] != 0x00:
            raise self._invalid(f"reply (version {data[0]})")
        status = data[1]
        if status == Socks4Status.GRANTED:
            return ProxyConnected(f"{ipaddress.IPv4Address(data[4:8])}:{data[2] << 8 | data[3]}")
        if status in (Socks4Status.NO_IDENTD, Socks4Status.IDENTD_MISMATCH):
            raise ProxyAuthRefused(
                f"{self._proxy} refused the request: identd check failed (SOCKS4 {status:#04x})"
            )
        if status == Socks4Status.REJECTED:
            raise self._refused("rejected or failed (SOCKS4 0x5b)", SocksReply.GENERAL_FAILURE)
        raise self._invalid(f"reply (status {status:#04x})")


# HTTP CONNECT (RFC 9110 §9.3.6) ---------------------------------------------------------------

#: Status codes with a more precise meaning for tor than "general failure".
HTTP_STATUS_REPLIES = {
    403: SocksReply.NOT_ALLOWED,  # the proxy's rules forbid this target or port
    502: SocksReply.HOST_UNREACHABLE,  # Bad Gateway: the proxy could not connect
    503: SocksReply.HOST_UNREACHABLE,  # Service Unavailable
    504: SocksReply.HOST_UNREACHABLE,  # Gateway Timeout
}


class HttpConnectClientHandshake(ProxyHandshake):
    """``CONNECT host:port HTTP/1.1`` with ``Host`` and, given credentials,
    ``Proxy-Authorization: Basic`` (RFC 7617). Any 2xx opens the tunnel (RFC 9110 §9.3.6);
    1xx heads are skipped; 407 (or 401) means refused credentials; anything else fails. The
    response head is bounded by :data:`MAX_RESPONSE_HEAD_BYTES`; bytes after it are kept."""

    protocol = "HTTP CONNECT"

    def __init__(
        self,
        proxy: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(proxy, f"{_bracket(host)}:{port}")
        authority = f"{_bracket(host)}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            lines.append(f"Proxy-Authorization: Basic {token}")
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self._has_credentials = username is not None
        self._head_bytes = 0

    def _reply_bytes_missing(self) -> int:
        # A head ends with an empty line: CRLF CRLF, or LF LF from a lax server. Read no further
        # than the shortest way it could end from here.
        if self._in.endswith((b"\n", b"\n\r")):
            return 1
        return 2

    def _advance(self) -> ProxyConnected | None:
        while True:
            head = self._take_head()
            if head is None:
                return None
            status, reason = self._status(head)
            if 100 <= status < 200:
                continue  # an interim response; the final one follows
            if 200 <= status < 300:
                return ProxyConnected()
            raise self._failure(status, reason)

    def _take_head(self) -> bytes | None:
        match = _HEAD_END.search(self._in)
        if match is None:
            if self._head_bytes + len(self._in) > MAX_RESPONSE_HEAD_BYTES:
                raise self._invalid(f"response: head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes")
            return None
        self._head_bytes += match.end()
        if self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise self._invalid(f"response: head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes")
        head = bytes(self._in[: match.start()])
        del self._in[: match.end()]
        return head

    def _status(self, head: bytes) -> tuple[int, str]:
        status_line = head.split(b"\n", 1)[0].rstrip(b"\r")
        match = _STATUS_LINE.match(status_line)
        if match is None:
            raise self._invalid("response: not an HTTP/1.x status line")
        reason = (match.group(2) or b"").decode("latin-1")
        return int(match.group(1)), "".join(c if c.isprintable() else "?" for c in reason)

    def _failure(self, status: int, reason: str) -> ProxyError:
        shown = f"HTTP {status} {reason}".rstrip()
        if status in (401, 407):  # 407 per RFC 9110 §15.5.8; tinyproxy answers 401
            what = "refused the credentials" if self._has_credentials else "wants credentials"
            return ProxyAuthRefused(f"{self._proxy} {what} ({shown})")
        reply = HTTP_STATUS_REPLIES.get(status, SocksReply.GENERAL_FAILURE)
        return self._refused(shown, reply)


def client_handshake(config: ProxyConfig, host: str, port: int) -> ProxyHandshake:
    """The handshake that asks the proxy in ``config`` for a connection to ``host:port``."""
    shown = config.describe()
    if config.scheme is ProxyScheme.SOCKS5:
        return Socks5ClientHandshake(shown, host, port, config.username, config.password)
    if config.scheme is ProxyScheme.SOCKS4A:
        return Socks4aClientHandshake(shown, host, port, config.username)
    return HttpConnectClientHandshake(shown, host, port, config.username, config.password)
