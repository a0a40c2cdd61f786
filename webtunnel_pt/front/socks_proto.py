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
(tor's IsolateSOCKSAuth). The generic core is told to accept RESOLVE next to CONNECT (its
``commands=``: the two differ in the command byte only) and refuses every other command; its
requests come back as :class:`FrontRequest`. Sans-I/O.
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


@dataclass(frozen=True)
class FrontRequest(SocksRequest):
    """A complete request: CONNECT or RESOLVE (``command``), with the credentials as sent."""

    @property
    def isolation(self) -> tuple[bytes, bytes] | bytes | None:
        """What separates this client's circuits from others' (IsolateSOCKSAuth): the
        username and password, or the SOCKS4 user id; None without credentials."""
        if self.username is not None and self.password is not None:
            return (self.username, self.password)
        return self.userid or None


class FrontSocksHandshake(SocksServerHandshake):
    """The generic handshake accepting CONNECT and RESOLVE (RESOLVE_PTR, BIND and UDP
    ASSOCIATE are refused with "command not supported")."""

    def __init__(self) -> None:
        super().__init__(commands=(CONNECT, RESOLVE))

    def next_event(self) -> FrontRequest | None:
        request = super().next_event()
        return None if request is None else FrontRequest(**vars(request))


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
