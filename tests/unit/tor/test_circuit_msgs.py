"""tor.relay_msgs: byte-exact CREATE2 / CREATED2 / EXTEND2 / EXTENDED2 / BEGIN / CONNECTED /
END / RESOLVE / RESOLVED / SENDME bodies (tor-spec §5.1, §5.1.2, §6.2-§6.4, §7.3.1), and the
malformed inputs each decoder refuses."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import EndReason
from webtunnel_pt.tor.relay_msgs import (
    BEGIN_FLAG_IPV6_OK,
    BEGIN_FLAG_IPV6_PREFERRED,
    Connected,
    ResolvedAnswer,
    Sendme,
    begin_body,
    create2_payload,
    created2_hdata,
    decode_connected,
    decode_end_reason,
    decode_resolved,
    decode_sendme,
    extend2_body,
    extended2_hdata,
    resolve_body,
    sendme_body,
)

#: IPv4 127.0.0.1:9001, legacy id 20 x 0xAA, Ed25519 id 32 x 0xBB (order 00, 02, 03).
LINK_SPECIFIERS = (
    bytes.fromhex("0300067f0000012329")
    + bytes.fromhex("0214")
    + b"\xaa" * 20
    + bytes.fromhex("0320")
    + b"\xbb" * 32
)


def test_create2_payload() -> None:
    assert create2_payload(2, b"\x01" * 84) == bytes.fromhex("00020054") + b"\x01" * 84
    with pytest.raises(LocalProtocolError):
        create2_payload(2, bytes(506))


def test_created2_and_extended2_hdata() -> None:
    payload = (bytes.fromhex("0040") + b"\x02" * 64).ljust(509, b"\0")
    assert created2_hdata(payload) == b"\x02" * 64
    assert extended2_hdata(bytes.fromhex("0003") + b"abc") == b"abc"
    assert extended2_hdata(bytes.fromhex("0000")) == b""
    for bad in (b"", b"\x00", bytes.fromhex("0004") + b"abc", bytes.fromhex("ffff")):
        with pytest.raises(CircuitProtocolError):
            extended2_hdata(bad)
    with pytest.raises(CircuitProtocolError, match="CREATED2"):
        created2_hdata(bytes.fromhex("01fe") + bytes(507))


def test_extend2_body_byte_exact() -> None:
    body = extend2_body(LINK_SPECIFIERS, 2, b"\x05" * 84)
    assert body == (
        bytes.fromhex("0300067f00000123290214")
        + b"\xaa" * 20
        + bytes.fromhex("0320")
        + b"\xbb" * 32
        + bytes.fromhex("00020054")
        + b"\x05" * 84
    )
    assert len(body) == 1 + 8 + 22 + 34 + 4 + 84


@pytest.mark.parametrize(
    "specifiers",
    [b"", b"\x01", b"\x01\x00\x06\x7f", LINK_SPECIFIERS + b"\x00", b"\x00\x00"],
)
def test_extend2_refuses_malformed_link_specifiers(specifiers: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="link specifiers"):
        extend2_body(specifiers, 2, bytes(84))


def test_extend2_must_fit_a_relay_cell() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds 498"):
        extend2_body(b"\x00", 2, bytes(494))
    assert len(extend2_body(b"\x00", 2, bytes(493))) == 498


def test_begin_body() -> None:
    assert begin_body("Example.COM", 443) == b"example.com:443\0"
    assert begin_body("192.0.2.7", 80) == b"192.0.2.7:80\0"
    assert begin_body("2001:DB8::0:1", 8080) == b"[2001:db8::1]:8080\0"
    assert begin_body("[2001:db8::1]", 1) == b"[2001:db8::1]:1\0"
    flags = BEGIN_FLAG_IPV6_OK | BEGIN_FLAG_IPV6_PREFERRED
    assert begin_body("a.example", 65535, flags) == b"a.example:65535\0\x00\x00\x00\x05"


@pytest.mark.parametrize(
    ("host", "port", "flags"),
    [
        ("example.com", 0, 0),
        ("example.com", 65536, 0),
        ("exa mple.com", 80, 0),
        ("evil.com:80\0", 80, 0),
        ("", 80, 0),
        ("a" * 256, 80, 0),
        ("example.com", 80, 8),
        ("[not-an-ip]", 80, 0),
    ],
)
def test_begin_refuses_what_cannot_go_on_the_wire(host: str, port: int, flags: int) -> None:
    with pytest.raises(LocalProtocolError):
        begin_body(host, port, flags)


def test_resolve_body() -> None:
    assert resolve_body("WWW.example.org") == b"www.example.org\0"
    assert resolve_body("7.2.0.192.in-addr.arpa") == b"7.2.0.192.in-addr.arpa\0"
    assert resolve_body("::1") == b"::1\0"


def test_decode_connected() -> None:
    assert decode_connected(b"") == Connected()
    assert decode_connected(bytes.fromhex("c000020700000e10")) == Connected("192.0.2.7", 3600)
    assert decode_connected(bytes.fromhex("c0000207")) == Connected("192.0.2.7", None)
    v6 = bytes(4) + b"\x06" + bytes.fromhex("20010db8000000000000000000000001") + b"\0\0\0\x3c"
    assert decode_connected(v6) == Connected("2001:db8::1", 60)
    assert decode_connected(v6 + b"extra") == Connected("2001:db8::1", 60)


@pytest.mark.parametrize(
    "data",
    [
        b"\x01",
        b"\x01\x02\x03",
        bytes(4),
        bytes(8),
        bytes(4) + b"\x04" + bytes(20),  # zero address, type 4
        bytes(4) + b"\x06" + bytes(19),  # IPv6 truncated
    ],
)
def test_malformed_connected(data: bytes) -> None:
    with pytest.raises(CircuitProtocolError, match="CONNECTED"):
        decode_connected(data)


def test_end_reasons() -> None:
    assert decode_end_reason(b"") == EndReason.MISC
    assert decode_end_reason(bytes([EndReason.EXITPOLICY]) + bytes(8)) == EndReason.EXITPOLICY
    assert decode_end_reason(b"\xc8") == 200  # unknown reasons are legal
    assert [r.value for r in EndReason] == list(range(1, 15))


def test_decode_resolved() -> None:
    data = (
        bytes.fromhex("0404c00002070000012c")
        + bytes.fromhex("0610")
        + bytes.fromhex("20010db8000000000000000000000001")
        + bytes.fromhex("00000e10")
        + b"\x00\x0bexample.net\x00\x00\x00\x05"
        + b"\x99\x02??\x00\x00\x00\x00"  # unknown type: skipped
    )
    assert decode_resolved(data) == [
        ResolvedAnswer("ipv4", "192.0.2.7", 300),
        ResolvedAnswer("ipv6", "2001:db8::1", 3600),
        ResolvedAnswer("hostname", "example.net", 5),
    ]
    error = b"\xf0\x18Error resolving hostname\x00\x00\x00\x00"
    assert decode_resolved(error) == [ResolvedAnswer("error", "transient", 0)]
    assert decode_resolved(b"\xf1\x00\xff\xff\xff\xff") == [
        ResolvedAnswer("error", "nontransient", 0xFFFFFFFF)
    ]
    assert decode_resolved(b"") == []


@pytest.mark.parametrize(
    "data",
    [
        b"\x04",
        b"\x04\x04\xc0\x00\x02\x07\x00\x00\x01",  # TTL truncated
        b"\x04\x03\xc0\x00\x02\x00\x00\x00\x00",  # IPv4 of 3 bytes
        b"\x06\x04\xc0\x00\x02\x07\x00\x00\x00\x00",  # IPv6 of 4 bytes
        b"\x00\x00\x00\x00\x00\x00",  # empty hostname
        b"\x00\x02a\n\x00\x00\x00\x00",  # control character
        b"\x00\x02\xc3\xa9\x00\x00\x00\x00",  # not ASCII
    ],
)
def test_malformed_resolved(data: bytes) -> None:
    with pytest.raises(CircuitProtocolError, match="RESOLVED"):
        decode_resolved(data)


def test_sendme_bodies() -> None:
    digest = bytes(range(20))
    assert sendme_body(1, digest) == bytes.fromhex("010014") + digest
    assert sendme_body(0, digest) == b""
    with pytest.raises(LocalProtocolError):
        sendme_body(2, digest)
    with pytest.raises(LocalProtocolError):
        sendme_body(1, digest[:19])
    assert decode_sendme(b"") == Sendme(0)
    assert decode_sendme(bytes.fromhex("000000")) == Sendme(0)
    assert decode_sendme(bytes.fromhex("010014") + digest) == Sendme(1, digest)
    assert decode_sendme(bytes.fromhex("010016") + digest + b"xx") == Sendme(1, digest)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01", "truncated"),
        (bytes.fromhex("010014") + bytes(19), "DATA_LEN"),
        (bytes.fromhex("010013") + bytes(19), "shorter"),
        (bytes.fromhex("020014") + bytes(20), "version 2"),
    ],
)
def test_malformed_sendme(data: bytes, match: str) -> None:
    with pytest.raises(CircuitProtocolError, match=match):
        decode_sendme(data)
