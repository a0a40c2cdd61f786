"""SOCKS server handshake as a sans-I/O state machine: SOCKS5 (RFC 1928 + RFC 1929) and SOCKS4a.

What a client sends, e.g. tor to a client PT (pt-spec §3.5, ``pt-protocol.md`` §6)::

    greeting   05 NMETHODS METHODS...            we pick 02 (user/pass) whenever offered
    auth       01 ULEN UNAME PLEN PASSWD         for the PT: the bridge arguments (pt/args.py)
    request    05 01 00 ATYP ADDR PORT           CONNECT to the bridge line's (placeholder) address
    reply      05 REP 00 01 00000000 0000        sent by us, REP 00 only once the tunnel is up

    socks4a    04 01 PORT IPV4 USERID 00 [HOST 00]   for the PT: USERID is the argument string

The core knows nothing of what the credentials mean: :class:`SocksRequest` carries them raw, and
a ``check_credentials`` callable given to the handshake may refuse RFC 1929 credentials before
they are accepted (``01 01``). SOCKS4 has no such step; its caller refuses the request with
:meth:`SocksServerHandshake.reply`.

It accepts CONNECT only, unless given ``commands=``: the command bytes to accept, parsed as a
CONNECT is (the same layout: tor's RESOLVE 0xF0, say) and returned in
:attr:`SocksRequest.command`; any other command is refused with "command not supported" (07).

Vocabulary as h11's: feed bytes with :meth:`SocksServerHandshake.receive_data`, ask for
:meth:`next_event` (``None`` means more bytes are needed), send :meth:`data_to_send`. A violation
raises :class:`SocksProtocolError` after queueing the reply the client should get, so the caller
always flushes :meth:`data_to_send` before closing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum, auto
from typing import NoReturn

from webtunnel_pt.errors import LocalProtocolError, SocksProtocolError
from webtunnel_pt.socks.codes import (
    SOCKS4_REPLY_VERSION,
    SOCKS4_VERSION,
    SOCKS5_VERSION,
    USERPASS_VERSION,
    AddressType,
    AuthMethod,
    Command,
    Socks4Status,
    SocksReply,
)

__all__ = ["CredentialsCheck", "SocksReply", "SocksRequest", "SocksServerHandshake"]

#: The handshake is a few hundred bytes (tor's arguments are at most 510); anything beyond this
#: before the request is complete is not a SOCKS client.
MAX_HANDSHAKE_BYTES = 4096
#: SOCKS4 user id: tor sends the whole argument string (≤ 510 bytes) there.
MAX_SOCKS4_FIELD_BYTES = 1024


#: Judges RFC 1929 (username, password) before the server accepts them: raising ValueError
#: refuses them with ``01 01``, and the error's text becomes the SocksProtocolError message.
CredentialsCheck = Callable[[bytes, bytes], None]


class _State(Enum):
    GREETING = auto()
    AUTH = auto()
    REQUEST = auto()
    AWAIT_REPLY = auto()
    DONE = auto()
    FAILED = auto()


@dataclass(frozen=True)
class SocksRequest:
    """A complete CONNECT request, with the credentials as the client sent them.

    ``username`` / ``password`` are the RFC 1929 fields (``None`` without that step);
    ``userid`` is the SOCKS4 USERID (empty for SOCKS5); ``command`` is the request's command
    byte (CONNECT unless the handshake was given other ``commands=``).
    """

    version: int
    host: str
    port: int
    username: bytes | None = None
    password: bytes | None = None
    userid: bytes = b""
    command: int = Command.CONNECT


class SocksServerHandshake:
    """The server side of one SOCKS handshake, from greeting to reply."""

    def __init__(
        self,
        check_credentials: CredentialsCheck | None = None,
        *,
        commands: Collection[int] = (Command.CONNECT,),
    ) -> None:
        """``commands``: the request commands accepted (each laid out as CONNECT)."""
        self._commands = frozenset(int(c) for c in commands)
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._state = _State.GREETING
        self._version = 0
        self._check_credentials = check_credentials
        self._credentials: tuple[bytes, bytes] | None = None

    # -- vocabulary ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self._state in (_State.DONE, _State.FAILED):
            raise LocalProtocolError("handshake is over; data belongs to the tunnel")
        self._buffer += data
        if self._state is not _State.AWAIT_REPLY and len(self._buffer) > MAX_HANDSHAKE_BYTES:
            self._fail("SOCKS handshake too long")

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    @property
    def trailing_data(self) -> bytes:
        """Bytes the client sent after its request; they belong to the tunnel."""
        return bytes(self._buffer) if self._state is _State.DONE else b""

    def next_event(self) -> SocksRequest | None:
        """Advance as far as the buffered bytes allow; return the request once complete."""
        while True:
            if self._state is _State.GREETING:
                if not self._parse_greeting():
                    return None
            elif self._state is _State.AUTH:
                if not self._parse_auth():
                    return None
            elif self._state is _State.REQUEST:
                return self._parse_request()
            else:
                return None

    def reply(self, code: SocksReply) -> None:
        """Queue the answer to the request: success opens the tunnel, anything else ends it."""
        if self._state is not _State.AWAIT_REPLY:
            raise LocalProtocolError(f"cannot reply in state {self._state.name}")
        if self._version == 4:
            granted = code == SocksReply.SUCCEEDED
            status = Socks4Status.GRANTED if granted else Socks4Status.REJECTED
            self._outgoing += bytes([SOCKS4_REPLY_VERSION, status]) + bytes(6)
        else:
            self._outgoing += bytes([SOCKS5_VERSION, code, 0x00, AddressType.IPV4]) + bytes(6)
        self._state = _State.DONE if code == SocksReply.SUCCEEDED else _State.FAILED

    @property
    def awaiting_reply(self) -> bool:
        return self._state is _State.AWAIT_REPLY

    # -- parsing ------------------------------------------------------------------------------
    def _fail(
        self, message: str, reply: SocksReply = SocksReply.GENERAL_FAILURE, *, silent: bool = False
    ) -> NoReturn:
        """Queue the right refusal for the current step (unless ``silent``) and raise."""
        if not silent:
            if self._state is _State.GREETING and self._version == 5:
                self._outgoing += bytes([SOCKS5_VERSION, AuthMethod.NO_ACCEPTABLE])
            elif self._state is _State.AUTH:
                self._outgoing += bytes([USERPASS_VERSION, 0x01])  # RFC 1929 §2: failure
            elif self._version == 4:
                self._outgoing += bytes([SOCKS4_REPLY_VERSION, Socks4Status.REJECTED]) + bytes(6)
            elif self._version == 5:
                self._outgoing += bytes([SOCKS5_VERSION, reply, 0x00, AddressType.IPV4]) + bytes(6)
        self._state = _State.FAILED
        raise SocksProtocolError(message, reply)

    def _parse_greeting(self) -> bool:
        buf = self._buffer
        if not buf:
            return False
        if buf[0] == SOCKS4_VERSION:
            self._version = 4
            self._state = _State.REQUEST
            return True
        if buf[0] != SOCKS5_VERSION:
            self._fail(f"unsupported SOCKS version {buf[0]}", silent=True)
        self._version = 5
        if len(buf) < 2 or len(buf) < 2 + buf[1]:
            return False
        methods = set(buf[2 : 2 + buf[1]])
        del buf[: 2 + buf[1]]
        if AuthMethod.USERNAME_PASSWORD in methods:
            self._outgoing += bytes([SOCKS5_VERSION, AuthMethod.USERNAME_PASSWORD])
            self._state = _State.AUTH
        elif AuthMethod.NO_AUTH in methods:
            self._outgoing += bytes([SOCKS5_VERSION, AuthMethod.NO_AUTH])
            self._state = _State.REQUEST
        else:
            self._fail(
                "client offers no usable SOCKS authentication method", SocksReply.NOT_ALLOWED
            )
        return True

    def _parse_auth(self) -> bool:
        buf = self._buffer
        if not buf:
            return False
        if buf[0] != USERPASS_VERSION:
            self._fail(
                f"unsupported username/password auth version {buf[0]}", SocksReply.GENERAL_FAILURE
            )
        if len(buf) < 2 or len(buf) < 3 + buf[1]:
            return False
        ulen = buf[1]
        plen = buf[2 + ulen]
        if len(buf) < 3 + ulen + plen:
            return False
        username = bytes(buf[2 : 2 + ulen])
        password = bytes(buf[3 + ulen : 3 + ulen + plen])
        del buf[: 3 + ulen + plen]
        if ulen == 0 or plen == 0:
            self._fail("empty SOCKS username or password")
        if self._check_credentials is not None:
            try:
                self._check_credentials(username, password)
            except ValueError as exc:
                self._fail(str(exc), SocksReply.GENERAL_FAILURE)
        self._credentials = (username, password)
        self._outgoing += bytes([USERPASS_VERSION, 0x00])  # RFC 1929 §2: success
        self._state = _State.REQUEST
        return True

    def _parse_request(self) -> SocksRequest | None:
        if self._version == 4:
            return self._parse_socks4_request()
        buf = self._buffer
        if len(buf) < 5:
            return None
        if buf[0] != SOCKS5_VERSION:
            self._fail(f"request has SOCKS version {buf[0]}")
        command = buf[1]
        if command not in self._commands:
            self._fail(f"unsupported SOCKS command {command}", SocksReply.COMMAND_NOT_SUPPORTED)
        if buf[2] != 0x00:
            self._fail("non-zero reserved byte in SOCKS request")
        atyp = buf[3]
        if atyp == AddressType.IPV4:
            end = 4 + 4
        elif atyp == AddressType.IPV6:
            end = 4 + 16
        elif atyp == AddressType.DOMAIN:
            if buf[4] == 0:
                self._fail("empty domain name in SOCKS request")
            end = 5 + buf[4]
        else:
            self._fail(
                f"unsupported SOCKS address type {atyp}", SocksReply.ADDRESS_TYPE_NOT_SUPPORTED
            )
        if len(buf) < end + 2:
            return None
        if atyp == AddressType.IPV4:
            host = str(ipaddress.IPv4Address(bytes(buf[4:8])))
        elif atyp == AddressType.IPV6:
            host = str(ipaddress.IPv6Address(bytes(buf[4:20])))
        else:
            host = bytes(buf[5:end]).decode("ascii", errors="replace")
        port = int.from_bytes(buf[end : end + 2], "big")
        del buf[: end + 2]
        self._state = _State.AWAIT_REPLY
        username, password = self._credentials or (None, None)
        return SocksRequest(5, host, port, username, password, command=command)

    def _parse_socks4_request(self) -> SocksRequest | None:
        buf = self._buffer
        if len(buf) < 9:
            return None
        command = buf[1]
        if command not in self._commands:
            self._fail(f"unsupported SOCKS4 command {command}", SocksReply.COMMAND_NOT_SUPPORTED)
        userid_end = buf.find(b"\x00", 8)
        if userid_end < 0:
            if len(buf) > 8 + MAX_SOCKS4_FIELD_BYTES:
                self._fail("SOCKS4 user id too long")
            return None
        port = int.from_bytes(buf[2:4], "big")
        ip = bytes(buf[4:8])
        end = userid_end + 1
        if ip[:3] == b"\x00\x00\x00" and ip[3] != 0:  # SOCKS4a: a host name follows
            host_end = buf.find(b"\x00", end)
            if host_end < 0:
                if len(buf) > end + MAX_SOCKS4_FIELD_BYTES:
                    self._fail("SOCKS4a host name too long")
                return None
            host = bytes(buf[end:host_end]).decode("ascii", errors="replace")
            end = host_end + 1
        else:
            host = str(ipaddress.IPv4Address(ip))
        userid = bytes(buf[8:userid_end])
        del buf[:end]
        self._state = _State.AWAIT_REPLY
        return SocksRequest(4, host, port, userid=userid, command=command)
