"""socks.client: the SOCKS5 / SOCKS4a client handshakes (used for TOR_PT_PROXY).

Wire vectors are written out by hand from RFC 1928, RFC 1929 and the SOCKS4/4a description;
every reply is fed whole, one byte at a time, and in the steps the handshake allows
(``max_read_bytes``), which must never pass the end of the proxy's reply.
"""

from __future__ import annotations

import pytest

from tests.support.proxy_handshake import MODES, TLS_HELLO, connected, drive
from webtunnel_pt.errors import (
    LocalProtocolError,
    ProxyAuthRefused,
    ProxyProtocolError,
    ProxyTargetUnreachable,
    SocksReply,
)
from webtunnel_pt.socks.client import (
    ProxyConnected,
    Socks4aClientHandshake,
    Socks5ClientHandshake,
)

PROXY = "socks5 proxy 127.0.0.1:1080"
SECRET = "hunter2-Pr0xy"


# -- SOCKS5 (RFC 1928, RFC 1929) ----------------------------------------------------------------

GREETING_NO_AUTH = b"\x05\x01\x00"
GREETING_AUTH = b"\x05\x02\x00\x02"
REQUEST_NAME = b"\x05\x01\x00\x03\x0bbridge.test\x01\xbb"
REPLY_OK_V4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40"


@pytest.mark.parametrize("mode", MODES)
def test_socks5_no_auth_sends_the_host_name(mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443)
    sent, result = drive(hs, b"\x05\x00" + REPLY_OK_V4 + TLS_HELLO, mode)
    assert sent == GREETING_NO_AUTH + REQUEST_NAME
    assert connected(result, mode, TLS_HELLO) == ProxyConnected("127.0.0.1:40000")
    if mode != "bounded":
        assert hs.trailing_data == TLS_HELLO


@pytest.mark.parametrize("mode", MODES)
def test_socks5_username_password(mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443, "alice", "s3cret")
    sent, result = drive(hs, b"\x05\x02" + b"\x01\x00" + REPLY_OK_V4, mode)
    assert sent == GREETING_AUTH + b"\x01\x05alice\x06s3cret" + REQUEST_NAME
    connected(result, mode)


@pytest.mark.parametrize("mode", MODES)
def test_socks5_proxy_may_skip_auth_even_when_offered(mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443, "alice", "s3cret")
    sent, result = drive(hs, b"\x05\x00" + REPLY_OK_V4, mode)
    assert sent == GREETING_AUTH + REQUEST_NAME
    connected(result, mode)


@pytest.mark.parametrize("mode", MODES)
def test_socks5_auth_reply_with_version_5_is_tolerated(mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443, "a", "b")
    _, result = drive(hs, b"\x05\x02\x05\x00" + REPLY_OK_V4, mode)
    connected(result, mode)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("192.0.2.7", b"\x01\xc0\x00\x02\x07"),
        ("2001:db8::7", b"\x04" + bytes.fromhex("20010db8000000000000000000000007")),
        ("a" * 255, b"\x03\xff" + b"a" * 255),
    ],
)
def test_socks5_address_types(host: str, address: bytes) -> None:
    hs = Socks5ClientHandshake(PROXY, host, 8443)
    sent, result = drive(hs, b"\x05\x00" + REPLY_OK_V4, "bytes")
    assert sent == GREETING_NO_AUTH + b"\x05\x01\x00" + address + b"\x20\xfb"
    assert isinstance(result, ProxyConnected)


@pytest.mark.parametrize(
    ("reply", "bound"),
    [
        (b"\x05\x00\x00\x04" + bytes(15) + b"\x01\x00\x50", "[::1]:80"),
        (b"\x05\x00\x00\x03\x09localhost\x00\x50", "localhost:80"),
        (b"\x05\x00\x00\x03\x00\x00\x50", ":80"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_socks5_bound_address_types(reply: bytes, bound: str, mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443)
    _, result = drive(hs, b"\x05\x00" + reply + TLS_HELLO, mode)
    assert connected(result, mode, TLS_HELLO).bound == bound


@pytest.mark.parametrize("rep", range(1, 9))
@pytest.mark.parametrize("mode", MODES)
def test_socks5_failure_replies_are_passed_on(rep: int, mode: str) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443)
    _, result = drive(hs, b"\x05\x00\x05" + bytes([rep]) + b"\x00\x01" + bytes(6), mode)
    assert isinstance(result, ProxyTargetUnreachable)
    assert result.socks_reply == rep
    assert str(result).startswith(f"{PROXY} could not connect to bridge.test:443: ")
    assert f"(SOCKS5 reply {rep:#04x})" in str(result)


def test_socks5_unknown_reply_code_is_general_failure() -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443)
    _, result = drive(hs, b"\x05\x00\x05\x09\x00\x01" + bytes(6), "whole")
    assert isinstance(result, ProxyTargetUnreachable)
    assert result.socks_reply is SocksReply.GENERAL_FAILURE
    assert "unknown reply code 0x09" in str(result)


@pytest.mark.parametrize(
    ("username", "incoming", "error", "message"),
    [
        (None, b"\x05\xff", ProxyAuthRefused, "wants credentials; TOR_PT_PROXY has none"),
        ("alice", b"\x05\xff", ProxyAuthRefused, "accepts neither username/password nor none"),
        ("alice", b"\x05\x02\x01\x01", ProxyAuthRefused, "refused the user name and password"),
        (None, b"\x05\x02", ProxyProtocolError, "method 0x02, which we did not offer"),
        (None, b"\x05\x01", ProxyProtocolError, "method 0x01, which we did not offer"),
        (None, b"\x04\x00", ProxyProtocolError, "invalid SOCKS5 method reply"),
        ("alice", b"\x05\x02\x02\x00", ProxyProtocolError, "invalid SOCKS5 authentication"),
        (None, b"\x05\x00\x04\x00\x00\x01" + bytes(6), ProxyProtocolError, "reply (version 4)"),
        (None, b"\x05\x00\x05\x00\x00\x07" + bytes(6), ProxyProtocolError, "address type 7"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_socks5_failures(
    username: str | None, incoming: bytes, error: type[Exception], message: str, mode: str
) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443, username, SECRET if username else None)
    _, result = drive(hs, incoming, mode)
    assert isinstance(result, error), result
    assert message in str(result)
    assert SECRET not in str(result)
    if error is ProxyAuthRefused:
        assert result.socks_reply is SocksReply.NOT_ALLOWED  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [0, 1, 2, 5, 11])
def test_socks5_eof_mid_handshake(cut: int) -> None:
    hs = Socks5ClientHandshake(PROXY, "bridge.test", 443)
    hs.receive_data((b"\x05\x00" + REPLY_OK_V4)[:cut])
    assert hs.next_event() is None
    hs.receive_eof()
    with pytest.raises(ProxyProtocolError, match="closed the connection during the SOCKS5"):
        hs.next_event()
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"x")


def test_socks5_rejects_impossible_requests() -> None:
    with pytest.raises(LocalProtocolError):
        Socks5ClientHandshake(PROXY, "a" * 256, 443)
    with pytest.raises(LocalProtocolError):
        Socks5ClientHandshake(PROXY, "bridge.test", 443, "u" * 256, "p")


# -- SOCKS4a ------------------------------------------------------------------------------------

GRANTED = b"\x00\x5a\x00\x00\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("host", "userid", "request_bytes"),
    [
        ("bridge.test", None, b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00bridge.test\x00"),
        ("bridge.test", "me", b"\x04\x01\x01\xbb\x00\x00\x00\x01me\x00bridge.test\x00"),
        ("192.0.2.7", None, b"\x04\x01\x01\xbb\xc0\x00\x02\x07\x00"),
        ("192.0.2.7", "me", b"\x04\x01\x01\xbb\xc0\x00\x02\x07me\x00"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_socks4a_requests(host: str, userid: str | None, request_bytes: bytes, mode: str) -> None:
    hs = Socks4aClientHandshake("socks4a proxy 127.0.0.1:1080", host, 443, userid)
    sent, result = drive(hs, b"\x00\x5a\x01\xbb\x7f\x00\x00\x01" + TLS_HELLO, mode)
    assert sent == request_bytes
    assert connected(result, mode, TLS_HELLO) == ProxyConnected("127.0.0.1:443")


@pytest.mark.parametrize(
    ("status", "error", "reply", "message"),
    [
        (0x5B, ProxyTargetUnreachable, SocksReply.GENERAL_FAILURE, "rejected or failed"),
        (0x5C, ProxyAuthRefused, SocksReply.NOT_ALLOWED, "identd check failed (SOCKS4 0x5c)"),
        (0x5D, ProxyAuthRefused, SocksReply.NOT_ALLOWED, "identd check failed (SOCKS4 0x5d)"),
        (0x42, ProxyProtocolError, SocksReply.GENERAL_FAILURE, "status 0x42"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_socks4a_failures(
    status: int, error: type[Exception], reply: SocksReply, message: str, mode: str
) -> None:
    hs = Socks4aClientHandshake("socks4a proxy 127.0.0.1:1080", "bridge.test", 443)
    _, result = drive(hs, bytes([0, status]) + bytes(6), mode)
    assert isinstance(result, error)
    assert message in str(result)
    assert getattr(result, "socks_reply", SocksReply.GENERAL_FAILURE) is reply


def test_socks4a_reply_version_must_be_zero() -> None:
    hs = Socks4aClientHandshake("p", "bridge.test", 443)
    _, result = drive(hs, b"\x04\x5a" + bytes(6), "whole")
    assert isinstance(result, ProxyProtocolError)


def test_socks4a_has_no_ipv6() -> None:
    with pytest.raises(ProxyTargetUnreachable, match="SOCKS4a has no IPv6") as info:
        Socks4aClientHandshake("p", "2001:db8::1", 443)
    assert info.value.socks_reply is SocksReply.ADDRESS_TYPE_NOT_SUPPORTED


def test_socks4a_eof() -> None:
    hs = Socks4aClientHandshake("p", "bridge.test", 443)
    hs.receive_data(GRANTED[:5])
    hs.receive_eof()
    with pytest.raises(ProxyProtocolError, match="during the SOCKS4a handshake"):
        hs.next_event()
