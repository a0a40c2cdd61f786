"""The SOCKS request core of the SOCKS front: the generic handshake of
:mod:`webtunnel_pt.socks.server` plus tor's RESOLVE extension, and the resolve answer.

    handshake = FrontSocksHandshake()
    handshake.receive_data(data); request = handshake.next_event()   # a FrontRequest or None
    request.command == RESOLVE -> answer with resolve_reply(request.version, address)

Commands (tor's socks-extensions.txt §2):

- CONNECT (1): SOCKS5 with a host name, IPv4 or IPv6; SOCKS4 and SOCKS4a.
- RESOLVE (0xF0): a host name (or a literal) to look up through the exit; answered with
  ``05 00 00 ATYP ADDR 0000`` (SOCKS5) or ``00 5A 0000 IPv4`` (SOCKS4a), port zero as tor does.
- RESOLVE_PTR (0xF1) is refused with "command not supported" (7), BIND and UDP ASSOCIATE too.

Username and password (RFC 1929) are carried raw; the front uses them as the isolation key
(tor's IsolateSOCKSAuth). The generic core only knows CONNECT, so a RESOLVE request is parsed
as a CONNECT (the two differ in the command byte only) and returned as a :class:`FrontRequest`
with its command. Sans-I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from webtunnel_pt.socks.codes import (
    SOCKS4_REPLY_VERSION,
    SOCKS4_VERSION,
    SOCKS5_VERSION,
    AddressType,
    Command,
    Socks4Status,
    SocksReply,
)
from webtunnel_pt.socks.server import SocksRequest, SocksServerHandshake

__all__ = [
    "CONNECT",
    "RESOLVE",
    "RESOLVE_PTR",
    "FrontRequest",
    "FrontSocksHandshake",
    "resolve_reply",
]

CONNECT = int(Command.CONNECT)
#: tor's SOCKS extension commands (socks-extensions.txt §2).
RESOLVE = 0xF0
RESOLVE_PTR = 0xF1
#: Offset of the command byte in a SOCKS4 and a SOCKS5 request alike.
_COMMAND_OFFSET = 1


@dataclass(frozen=True)
class FrontRequest(SocksRequest):
    """A complete request: CONNECT or RESOLVE, with the credentials as sent."""

    command: int = CONNECT

    @property
    def isolation(self) -> tuple[bytes, bytes] | bytes | None:
        """What separates this client's circuits from others' (IsolateSOCKSAuth): the
        username and password, or the SOCKS4 user id; None without credentials."""
        if self.username is not None and self.password is not None:
            return (self.username, self.password)
        return self.userid or None


class FrontSocksHandshake(SocksServerHandshake):
    """The generic handshake, also accepting RESOLVE (see the module docstring)."""

    def _parse_request(self) -> SocksRequest | None:
        buf = self._buffer
        if len(buf) <= _COMMAND_OFFSET:
            return None
        command = buf[_COMMAND_OFFSET]
        if command == RESOLVE_PTR:
            self._fail("SOCKS RESOLVE_PTR is not supported", SocksReply.COMMAND_NOT_SUPPORTED)
        if command != RESOLVE:
            request = super()._parse_request()
            return None if request is None else FrontRequest(**vars(request))
        buf[_COMMAND_OFFSET] = Command.CONNECT
        request = super()._parse_request()
        if request is None:
            buf[_COMMAND_OFFSET] = command  # incomplete: parse again when more bytes come
            return None
        return FrontRequest(**vars(request), command=RESOLVE)


def resolve_reply(version: int, answer: str) -> bytes:
    """The success answer to a RESOLVE: the first address found (SOCKS4a takes IPv4 only: an
    IPv6-only answer is refused there, as by tor)."""
    address = ipaddress.ip_address(answer)
    if version == SOCKS4_VERSION:
        if not isinstance(address, ipaddress.IPv4Address):
            return bytes([SOCKS4_REPLY_VERSION, Socks4Status.REJECTED]) + bytes(6)
        return bytes([SOCKS4_REPLY_VERSION, Socks4Status.GRANTED, 0, 0]) + address.packed
    atyp = AddressType.IPV4 if address.version == 4 else AddressType.IPV6
    return bytes([SOCKS5_VERSION, SocksReply.SUCCEEDED, 0x00, atyp]) + address.packed + bytes(2)
