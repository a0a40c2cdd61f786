"""SOCKS wire codes and field limits shared by the server and client handshakes, and how an
address and port are written in their messages (sans-I/O, no imports).

SOCKS5   RFC 1928: version 05, methods (§3), commands (§4), address types (§5), REP (§6)
RFC 1929 username/password sub-negotiation: version 01, status 00 = success
SOCKS4   version 04 in requests, 00 in replies; CD 5A granted, 5B-5D refused; SOCKS4a
         marks a host name with the address 0.0.0.x (x != 0)
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "SOCKS4_REPLY_VERSION",
    "SOCKS4_VERSION",
    "SOCKS5_REPLY_TEXT",
    "SOCKS5_VERSION",
    "USERPASS_VERSION",
    "AddressType",
    "AuthMethod",
    "Command",
    "Socks4Status",
    "SocksReply",
]

SOCKS5_VERSION = 0x05  # RFC 1928 §3: VER in every SOCKS5 message
SOCKS4_VERSION = 0x04  # SOCKS4: VN of a request
SOCKS4_REPLY_VERSION = 0x00  # SOCKS4: VN of a reply
USERPASS_VERSION = 0x01  # RFC 1929 §2: VER of the sub-negotiation


class SocksReply(IntEnum):
    """SOCKS5 reply field REP (RFC 1928 §6)."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


class AuthMethod(IntEnum):
    NO_AUTH = 0x00  # RFC 1928 §3
    USERNAME_PASSWORD = 0x02  # RFC 1929
    NO_ACCEPTABLE = 0xFF  # RFC 1928 §3: none of the offered methods


class AddressType(IntEnum):
    IPV4 = 0x01  # RFC 1928 §5
    DOMAIN = 0x03
    IPV6 = 0x04


class Command(IntEnum):
    CONNECT = 0x01  # RFC 1928 §4 (and SOCKS4 CD in a request)
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class Socks4Status(IntEnum):
    GRANTED = 0x5A  # SOCKS4: request granted
    REJECTED = 0x5B  # rejected or failed
    NO_IDENTD = 0x5C  # rejected: the server cannot reach our identd
    IDENTD_MISMATCH = 0x5D  # rejected: identd reports a different user id


#: RFC 1928 §6 REP field, as text for the log (tor shows the same words for the code we pass on).
SOCKS5_REPLY_TEXT = {
    SocksReply.GENERAL_FAILURE: "general SOCKS server failure",
    SocksReply.NOT_ALLOWED: "connection not allowed by ruleset",
    SocksReply.NETWORK_UNREACHABLE: "network unreachable",
    SocksReply.HOST_UNREACHABLE: "host unreachable",
    SocksReply.CONNECTION_REFUSED: "connection refused",
    SocksReply.TTL_EXPIRED: "TTL expired",
    SocksReply.COMMAND_NOT_SUPPORTED: "command not supported",
    SocksReply.ADDRESS_TYPE_NOT_SUPPORTED: "address type not supported",
}


#: RFC 1929 §2: ULEN and PLEN are one byte each.
MAX_SOCKS5_CREDENTIAL_BYTES = 255
#: RFC 1928 §5: a domain name is preceded by a one-byte length.
MAX_SOCKS5_DOMAIN_BYTES = 255
#: SOCKS4 user id: no limit in the protocol; tor has no option to set one, so keep it small.
MAX_SOCKS4_USERID_BYTES = 255


def authority(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
