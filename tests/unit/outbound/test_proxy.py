"""proxy: TOR_PT_PROXY parsing and the SOCKS5 / SOCKS4a / HTTP CONNECT client handshakes.

Wire vectors are written out by hand from RFC 1928, RFC 1929, the SOCKS4/4a description and
RFC 9110 §9.3.6; every reply is fed whole, one byte at a time, and in the steps the
handshake allows (``max_read_bytes``), which must never pass the end of the proxy's reply.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webtunnel_pt.errors import LocalProtocolError, ProxyConfigError, SocksReply
from webtunnel_pt.outbound.proxy import (
    MAX_RESPONSE_HEAD_BYTES,
    HttpConnectClientHandshake,
    ProxyAuthRefused,
    ProxyConfig,
    ProxyConnected,
    ProxyHandshake,
    ProxyProtocolError,
    ProxyScheme,
    ProxyTargetUnreachable,
    Socks4aClientHandshake,
    Socks5ClientHandshake,
    client_handshake,
    parse_proxy_uri,
)

PROXY = "socks5 proxy 127.0.0.1:1080"
SECRET = "hunter2-Pr0xy"

# -- URI parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # The exact strings tor 0.4.9.11 generates (pt-protocol.md §2.1).
        ("socks4a://1.2.3.4:1080", ProxyConfig(ProxyScheme.SOCKS4A, "1.2.3.4", 1080)),
        ("socks4a://[::1]:1080", ProxyConfig(ProxyScheme.SOCKS4A, "::1", 1080)),
        ("socks5://127.0.0.1:9050", ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 9050)),
        (
            "socks5://u:p@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "u", "p"),
        ),
        ("http://127.0.0.1:3128", ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 3128)),
        (
            "http://user:pw@[2001:db8::1]:8080",
            ProxyConfig(ProxyScheme.HTTP, "2001:db8::1", 8080, "user", "pw"),
        ),
        # No percent-encoding: user info ends at the last '@', the password at the first ':'.
        (
            "socks5://us:er:p@ss@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "us", "er:p@ss"),
        ),
        (
            "socks5://u%41:p%2F@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "u%41", "p%2F"),
        ),
        (
            "http://user:p/?#@127.0.0.1:1",
            ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 1, "user", "p/?#"),
        ),
        (
            "http://user:@127.0.0.1:65535",
            ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 65535, "user", ""),
        ),
        (
            "socks4a://ident@10.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS4A, "10.0.0.1", 1080, "ident"),
        ),
        # Names are accepted (hand-written configurations), lower-cased; schemes too.
        ("SOCKS5://Proxy.Example:1080", ProxyConfig(ProxyScheme.SOCKS5, "proxy.example", 1080)),
    ],
)
def test_parse_valid(uri: str, expected: ProxyConfig) -> None:
    assert parse_proxy_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "not an absolute URI"),
        ("127.0.0.1:1080", "not an absolute URI"),
        ("socks5:/127.0.0.1:1080", "not an absolute URI"),
        ("socks4://127.0.0.1:1080", "'socks4' is not supported"),
        ("https://127.0.0.1:443", "'https' is not supported"),
        ("socks5://127.0.0.1", "port from 1 to 65535"),
        ("socks5://127.0.0.1:", "port from 1 to 65535"),
        ("socks5://127.0.0.1:0", "port from 1 to 65535"),
        ("socks5://127.0.0.1:65536", "port from 1 to 65535"),
        ("socks5://127.0.0.1:+80", "port from 1 to 65535"),
        ("socks5://127.0.0.1:\u0661\u0660\u0668\u0660", "port from 1 to 65535"),
        ("socks5://::1:1080", "IPv6 address must be written in brackets"),
        ("socks5://[::1:1080", "invalid IPv6 address in brackets"),
        ("socks5://[1.2.3.4]:1080", "invalid IPv6 address in brackets"),
        ("socks5://[::1]1080", "port from 1 to 65535"),
        ("socks5://:1080", "has no host"),
        ("socks5://bad_host!:1080", "not a valid host name"),
        ("socks5://127.0.0.1:1080/", "must not have a path"),
        ("socks5://127.0.0.1:1080?x", "must not have a query"),
        ("socks5://127.0.0.1:1080#x", "must not have a fragment"),
        ("socks5:// 127.0.0.1:1080", "whitespace or control characters"),
        ("socks5://127.0.0.1:1080\n", "whitespace or control characters"),
        ("socks5://u@127.0.0.1:1080", "must be user:password"),
        ("socks5://:p@127.0.0.1:1080", "user name is empty"),
        ("socks5://u:@127.0.0.1:1080", "password must be 1 to 255 bytes"),
        (f"socks5://{'u' * 256}:p@127.0.0.1:1080", "user name must be 1 to 255 bytes"),
        ("socks5://u:" + "\u00e9" * 128 + "@127.0.0.1:1080", "password must be 1 to 255 bytes"),
        ("socks4a://u:p@127.0.0.1:1080", "no password"),
        (f"socks4a://{'u' * 256}@127.0.0.1:1080", "user id is longer than 255 bytes"),
        ("http://user@127.0.0.1:3128", "must be user:password"),
        ("http://:pw@127.0.0.1:3128", "user name is empty"),
    ],
)
def test_parse_invalid(uri: str, reason: str) -> None:
    with pytest.raises(ProxyConfigError, match=reason):
        parse_proxy_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        f"socks5://u:{SECRET}@127.0.0.1:99999",
        f"socks5://u:{SECRET}@[::1:1080",
        f"socks5://u:{SECRET}@127.0.0.1:1080/path",
        f"socks4a://u:{SECRET}@127.0.0.1:1080",
        f"gopher://u:{SECRET}@127.0.0.1:1080",
        f"socks5://u:{SECRET * 30}@127.0.0.1:1080",
    ],
)
def test_errors_never_show_the_password(uri: str) -> None:
    with pytest.raises(ProxyConfigError) as info:
        parse_proxy_uri(uri)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)


_VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(
    user=st.text(_VISIBLE.filter(lambda c: c != ":"), min_size=1, max_size=40),
    password=st.text(_VISIBLE, min_size=1, max_size=40),
)
def test_user_info_round_trips_as_tor_writes_it(user: str, password: str) -> None:
    """tor pastes user and password in unescaped; only a ':' in the user name is ambiguous."""
    config = parse_proxy_uri(f"socks5://{user}:{password}@[::1]:1080")
    assert (config.username, config.password, config.host, config.port) == (
        user,
        password,
        "::1",
        1080,
    )


@given(st.text(max_size=80))
def test_parse_raises_only_proxy_config_errors(text: str) -> None:
    for uri in (text, "socks5://" + text, "http://u:p@" + text):
        try:
            parse_proxy_uri(uri)
        except ProxyConfigError:
            pass


def test_config_hides_the_password() -> None:
    config = parse_proxy_uri(f"socks5://alice:{SECRET}@[::1]:1080")
    assert SECRET not in repr(config)
    assert config.describe() == "socks5 proxy [::1]:1080 with credentials"
    assert SECRET not in config.describe()
    assert parse_proxy_uri("http://127.0.0.1:3128").describe() == "http proxy 127.0.0.1:3128"


def test_config_is_frozen() -> None:
    config = parse_proxy_uri("socks5://127.0.0.1:1080")
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


# -- drivers ------------------------------------------------------------------------------------


def drive(handshake: ProxyHandshake, incoming: bytes, mode: str) -> tuple[bytes, object]:
    """Feed ``incoming`` whole, byte by byte, or as the handshake allows; return what was
    sent and the event (or the exception raised)."""
    sent = handshake.data_to_send()
    if mode == "whole":
        pieces = [incoming]
    elif mode == "bytes":
        pieces = [incoming[i : i + 1] for i in range(len(incoming))]
    else:
        pieces = []
    try:
        event = handshake.next_event()
        for piece in pieces:
            handshake.receive_data(piece)
            event = handshake.next_event()
            sent += handshake.data_to_send()
        if mode == "bounded":
            rest = incoming
            while event is None and rest:
                size = handshake.max_read_bytes
                assert size > 0
                handshake.receive_data(rest[:size])
                rest = rest[size:]
                event = handshake.next_event()
                sent += handshake.data_to_send()
            if event is not None:
                assert handshake.max_read_bytes == 0
                assert rest == incoming[len(incoming) - len(rest) :]
                return sent, (event, rest)
    except Exception as exc:
        return sent + handshake.data_to_send(), exc
    return sent, event


MODES = ["whole", "bytes", "bounded"]
TLS_HELLO = b"\x16\x03\x01\x02\x00"  # what would follow the reply on the same socket


def connected(result: object, mode: str, tail: bytes = b"") -> ProxyConnected:
    if mode == "bounded":
        assert isinstance(result, tuple)
        event, rest = result
        assert rest == tail, "read past the proxy's reply"
    else:
        event = result
    assert isinstance(event, ProxyConnected), event
    return event


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


# -- HTTP CONNECT (RFC 9110 §9.3.6) -------------------------------------------------------------

HTTP_PROXY = "http proxy 127.0.0.1:3128"
OK_HEAD = b"HTTP/1.1 200 Connection established\r\n\r\n"


@pytest.mark.parametrize(
    ("host", "username", "password", "request_head"),
    [
        (
            "bridge.test",
            None,
            None,
            b"CONNECT bridge.test:443 HTTP/1.1\r\nHost: bridge.test:443\r\n\r\n",
        ),
        (
            "bridge.test",
            "user",
            "pass",
            b"CONNECT bridge.test:443 HTTP/1.1\r\nHost: bridge.test:443\r\n"
            b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n",
        ),
        (
            "2001:db8::1",
            "us",
            "er:p@ss",
            b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
            b"Proxy-Authorization: Basic dXM6ZXI6cEBzcw==\r\n\r\n",
        ),
    ],
)
def test_http_connect_request(
    host: str, username: str | None, password: str | None, request_head: bytes
) -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, host, 443, username, password)
    assert hs.data_to_send() == request_head


@pytest.mark.parametrize(
    "head",
    [
        OK_HEAD,
        b"HTTP/1.0 200 OK\r\nProxy-Agent: tinyproxy\r\n\r\n",
        b"HTTP/1.1 204\r\n\r\n",
        b"HTTP/1.1 200 OK\n\n",
        b"HTTP/1.1 200 OK\r\nX: y\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",  # ignored for 2xx (RFC 9110 §9.3.6)
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_http_connect_success_keeps_bytes_after_the_head(head: bytes, mode: str) -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, head + TLS_HELLO, mode)
    connected(result, mode, TLS_HELLO)
    if mode != "bounded":
        assert hs.trailing_data == TLS_HELLO


@pytest.mark.parametrize(
    ("status", "error", "reply"),
    [
        (407, ProxyAuthRefused, SocksReply.NOT_ALLOWED),
        (401, ProxyAuthRefused, SocksReply.NOT_ALLOWED),
        (403, ProxyTargetUnreachable, SocksReply.NOT_ALLOWED),
        (502, ProxyTargetUnreachable, SocksReply.HOST_UNREACHABLE),
        (503, ProxyTargetUnreachable, SocksReply.HOST_UNREACHABLE),
        (504, ProxyTargetUnreachable, SocksReply.HOST_UNREACHABLE),
        (500, ProxyTargetUnreachable, SocksReply.GENERAL_FAILURE),
        (404, ProxyTargetUnreachable, SocksReply.GENERAL_FAILURE),
        (301, ProxyTargetUnreachable, SocksReply.GENERAL_FAILURE),
        (101, None, None),  # interim: the handshake waits for the final response
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_http_connect_failures(
    status: int, error: type[Exception] | None, reply: SocksReply | None, mode: str
) -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443, "user", SECRET)
    head = f"HTTP/1.1 {status} Some Reason\r\nContent-Length: 3\r\n\r\nabc".encode()
    _, result = drive(hs, head, mode)
    if error is None:
        assert result is None or result == (None, b"")
        return
    assert isinstance(result, error)
    assert result.socks_reply is reply  # type: ignore[attr-defined]
    assert f"HTTP {status} Some Reason" in str(result)
    assert SECRET not in str(result)


def test_http_407_without_credentials_says_so() -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "whole")
    assert isinstance(result, ProxyAuthRefused)
    assert str(result) == (
        "http proxy 127.0.0.1:3128 wants credentials (HTTP 407 Proxy Authentication Required)"
    )


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"\x00\x01garbage\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/2 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
    ],
)
def test_http_connect_invalid_responses(head: bytes, message: str) -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, head, "bytes")
    assert isinstance(result, ProxyProtocolError)
    assert message in str(result)


@pytest.mark.parametrize("mode", ["whole", "bounded"])
def test_http_connect_head_is_bounded(mode: str) -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"y" * MAX_RESPONSE_HEAD_BYTES + b"\r\n\r\n"
    _, result = drive(hs, head, mode)
    assert isinstance(result, ProxyProtocolError)
    assert f"head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes" in str(result)


def test_http_connect_interim_heads_count_towards_the_bound() -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    _, result = drive(hs, interim * (MAX_RESPONSE_HEAD_BYTES // len(interim) + 1), "whole")
    assert isinstance(result, ProxyProtocolError)


def test_http_connect_eof() -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    hs.receive_data(b"HTTP/1.1 200 OK\r\n")
    assert hs.next_event() is None
    hs.receive_eof()
    with pytest.raises(ProxyProtocolError, match="during the HTTP CONNECT handshake"):
        hs.next_event()


# -- factory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kind", "first_bytes"),
    [
        ("socks5://127.0.0.1:1080", Socks5ClientHandshake, GREETING_NO_AUTH),
        ("socks5://u:p@127.0.0.1:1080", Socks5ClientHandshake, GREETING_AUTH),
        ("socks4a://127.0.0.1:1080", Socks4aClientHandshake, b"\x04\x01\x01\xbb"),
        ("http://127.0.0.1:3128", HttpConnectClientHandshake, b"CONNECT bridge.test:443 "),
    ],
)
def test_client_handshake_factory(uri: str, kind: type, first_bytes: bytes) -> None:
    hs = client_handshake(parse_proxy_uri(uri), "bridge.test", 443)
    assert isinstance(hs, kind)
    assert hs.data_to_send().startswith(first_bytes)
