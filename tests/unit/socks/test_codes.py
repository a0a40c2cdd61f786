"""socks.codes: the wire values, checked against the RFC tables written out here by hand."""

from __future__ import annotations

from webtunnel_pt import errors
from webtunnel_pt.socks.codes import (
    SOCKS4_REPLY_VERSION,
    SOCKS4_VERSION,
    SOCKS5_REPLY_TEXT,
    SOCKS5_VERSION,
    USERPASS_VERSION,
    AddressType,
    AuthMethod,
    Command,
    Socks4Status,
    SocksReply,
)


def test_rfc1928_values() -> None:
    assert SOCKS5_VERSION == 5 and USERPASS_VERSION == 1
    assert [int(r) for r in SocksReply] == list(range(9))  # §6: X'00' to X'08'
    assert {m.name: int(m) for m in AuthMethod} == {
        "NO_AUTH": 0x00,
        "USERNAME_PASSWORD": 0x02,
        "NO_ACCEPTABLE": 0xFF,
    }
    assert {a.name: int(a) for a in AddressType} == {"IPV4": 1, "DOMAIN": 3, "IPV6": 4}
    assert {c.name: int(c) for c in Command} == {"CONNECT": 1, "BIND": 2, "UDP_ASSOCIATE": 3}


def test_socks4_values() -> None:
    assert (SOCKS4_VERSION, SOCKS4_REPLY_VERSION) == (4, 0)
    assert [int(s) for s in Socks4Status] == [0x5A, 0x5B, 0x5C, 0x5D]


def test_every_failure_reply_has_its_rfc_text() -> None:
    assert set(SOCKS5_REPLY_TEXT) == set(SocksReply) - {SocksReply.SUCCEEDED}
    assert SOCKS5_REPLY_TEXT[SocksReply.CONNECTION_REFUSED] == "connection refused"
    assert SOCKS5_REPLY_TEXT[SocksReply.NOT_ALLOWED] == "connection not allowed by ruleset"


def test_errors_reexports_the_same_socks_reply() -> None:
    assert errors.SocksReply is SocksReply
