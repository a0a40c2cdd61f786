"""SOCKS client handshakes as sans-I/O cores: SOCKS5 (RFC 1928 + RFC 1929) and SOCKS4a.

Used to reach the bridge through an upstream proxy (``TOR_PT_PROXY``). Each handshake speaks
the vocabulary of :mod:`webtunnel_pt.socks.server`: send :meth:`~ProxyHandshake.data_to_send`,
feed :meth:`~ProxyHandshake.receive_data` / :meth:`~ProxyHandshake.receive_eof`, ask
:meth:`~ProxyHandshake.next_event` (``None`` means more bytes are needed,
:class:`ProxyConnected` means the socket is now a raw pipe to the target).
:attr:`~ProxyHandshake.max_read_bytes` says how much the caller may read without reading past
the proxy's reply, so the bytes behind it stay in the socket for the next layer; bytes fed
beyond the reply anyway are kept in :attr:`~ProxyHandshake.trailing_data`.

:class:`ProxyHandshake` is also the base of the HTTP CONNECT client
(:mod:`webtunnel_pt.outbound.http_connect`). Failures raise the proxy errors of
:mod:`webtunnel_pt.errors` (``ProxyAuthRefused``, ``ProxyTargetUnreachable``,
``ProxyProtocolError``), each carrying the SOCKS5 reply tor gets; no message contains a
password.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum, auto

from webtunnel_pt.errors import (
    LocalProtocolError,
    ProxyAuthRefused,
    ProxyProtocolError,
    ProxyTargetUnreachable,
    SocksReply,
)
from webtunnel_pt.socks.codes import (
    MAX_SOCKS4_USERID_BYTES,
    MAX_SOCKS5_CREDENTIAL_BYTES,
    MAX_SOCKS5_DOMAIN_BYTES,
    SOCKS4_REPLY_VERSION,
    SOCKS4_VERSION,
    SOCKS5_REPLY_TEXT,
    SOCKS5_VERSION,
    USERPASS_VERSION,
    AddressType,
    AuthMethod,
    Command,
    Socks4Status,
    authority,
)

__all__ = [
    "MAX_SOCKS4_USERID_BYTES",
    "MAX_SOCKS5_CREDENTIAL_BYTES",
    "MAX_SOCKS5_DOMAIN_BYTES",
    "ProxyConnected",
    "ProxyHandshake",
    "Socks4aClientHandshake",
    "Socks5ClientHandshake",
    "authority",
]


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


# -- SOCKS5 (RFC 1928, RFC 1929) ----------------------------------------------------------------


_ADDRESS_TYPES = frozenset(AddressType)


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
        super().__init__(proxy, authority(host, port))
        self._request = socks5_request(host, port)
        self._credentials = userpass_request(username, password) if username is not None else None
        self._state = _Socks5State.METHOD
        if self._credentials is None:
            self._out += bytes([SOCKS5_VERSION, 1, AuthMethod.NO_AUTH])
        else:
            methods = [AuthMethod.NO_AUTH, AuthMethod.USERNAME_PASSWORD]
            self._out += bytes([SOCKS5_VERSION, len(methods), *methods])

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
        if data[0] != SOCKS5_VERSION:
            raise self._invalid(f"method reply (version {data[0]})")
        if data[1] == AuthMethod.NO_AUTH:
            self._out += self._request
            self._state = _Socks5State.REPLY
        elif data[1] == AuthMethod.USERNAME_PASSWORD and self._credentials is not None:
            self._out += self._credentials
            self._state = _Socks5State.AUTH
        elif data[1] == AuthMethod.NO_ACCEPTABLE:
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
        if data[0] not in (USERPASS_VERSION, SOCKS5_VERSION):
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
        if version != SOCKS5_VERSION:
            raise self._invalid(f"reply (version {version})")
        if rep != SocksReply.SUCCEEDED:
            known = rep in SOCKS5_REPLY_TEXT
            text = SOCKS5_REPLY_TEXT[SocksReply(rep)] if known else f"unknown reply code {rep:#04x}"
            reply = SocksReply(rep) if known else SocksReply.GENERAL_FAILURE
            raise self._refused(f"{text} (SOCKS5 reply {rep:#04x})", reply)
        if atyp not in _ADDRESS_TYPES:
            raise self._invalid(f"reply (address type {atyp})")
        data = self._take(_socks5_reply_length(atyp, self._in[4]))
        if data is None:
            return None
        return ProxyConnected(_socks5_bound(atyp, data[4:]))


def socks5_request(host: str, port: int) -> bytes:
    """RFC 1928 §4: ``05 01 00 ATYP DST.ADDR DST.PORT`` (a name as ATYP 03, unresolved)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        if not 0 < len(name) <= MAX_SOCKS5_DOMAIN_BYTES:
            raise LocalProtocolError("SOCKS5 domain name must be 1 to 255 bytes") from None
        address = bytes([AddressType.DOMAIN, len(name)]) + name
    else:
        atyp = AddressType.IPV4 if ip.version == 4 else AddressType.IPV6
        address = bytes([atyp]) + ip.packed
    return bytes([SOCKS5_VERSION, Command.CONNECT, 0x00]) + address + port.to_bytes(2, "big")


def userpass_request(username: str, password: str | None) -> bytes:
    """RFC 1929 §2: ``01 ULEN UNAME PLEN PASSWD``."""
    user, secret = username.encode(), (password or "").encode()
    limit = MAX_SOCKS5_CREDENTIAL_BYTES
    if not (0 < len(user) <= limit and 0 < len(secret) <= limit):
        raise LocalProtocolError("RFC 1929 user name and password must be 1 to 255 bytes")
    return bytes([USERPASS_VERSION, len(user)]) + user + bytes([len(secret)]) + secret


def _socks5_reply_length(atyp: int, first_address_byte: int) -> int:
    """Whole reply length: 4 header bytes, BND.ADDR, 2 port bytes (RFC 1928 §6)."""
    if atyp == AddressType.IPV4:
        return 4 + 4 + 2
    if atyp == AddressType.IPV6:
        return 4 + 16 + 2
    return 4 + 1 + first_address_byte + 2


def _socks5_bound(atyp: int, address: bytes) -> str:
    port = int.from_bytes(address[-2:], "big")
    if atyp == AddressType.IPV4:
        return f"{ipaddress.IPv4Address(address[:4])}:{port}"
    if atyp == AddressType.IPV6:
        return f"[{ipaddress.IPv6Address(address[:16])}]:{port}"
    return f"{address[1:-2].decode('ascii', 'replace')}:{port}"


# -- SOCKS4a ------------------------------------------------------------------------------------


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
        super().__init__(proxy, authority(host, port))
        user = (userid or "").encode()
        if b"\x00" in user:
            raise LocalProtocolError("SOCKS4 user id must not contain NUL")
        head = bytes([SOCKS4_VERSION, Command.CONNECT]) + port.to_bytes(2, "big")
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
        if data[0] != SOCKS4_REPLY_VERSION:
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
