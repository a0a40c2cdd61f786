"""outbound.http_connect: the HTTP CONNECT client handshake (RFC 9110 §9.3.6), parsed by h11.

Wire vectors are written out by hand; every reply is fed whole, one byte at a time, and in the
steps the handshake allows (``max_read_bytes``), which must never pass the end of the head.
"""

from __future__ import annotations

import h11
import pytest

from tests.support.proxy_handshake import MODES, TLS_HELLO, connected, drive
from webtunnel_pt.errors import (
    ProxyAuthRefused,
    ProxyProtocolError,
    ProxyTargetUnreachable,
    SocksReply,
)
from webtunnel_pt.outbound.http_connect import MAX_RESPONSE_HEAD_BYTES, HttpConnectClientHandshake
from webtunnel_pt.socks.client import ProxyConnected

SECRET = "hunter2-Pr0xy"


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
        (103, None, None),  # interim: the handshake waits for the final response
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
        (b"\x00\x01garbage\r\n\r\n", "not valid HTTP/1.x (illegal "),
        (b"HTTP/2 200 OK\r\n\r\n", "not valid HTTP/1.x (illegal "),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not valid HTTP/1.x (illegal "),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not valid HTTP/1.x (illegal "),
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


def test_101_to_connect_is_a_protocol_error() -> None:
    """A 101 switches to a protocol we never proposed (h11 refuses it; RFC 9110 §15.2.2)."""
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "whole")
    assert isinstance(result, ProxyProtocolError)
    assert "not valid HTTP/1.x" in str(result)


def test_malformed_header_line_is_a_protocol_error() -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bytes")
    assert isinstance(result, ProxyProtocolError)


def test_reply_one_byte_at_a_time_never_reads_past_the_head() -> None:
    """Fed one byte per step, the handshake stays undecided until the head's very last byte,
    and ``max_read_bytes`` never reaches past it: the bytes behind stay unread."""
    head = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n"
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    hs.data_to_send()
    for i, byte in enumerate(head):
        assert hs.next_event() is None
        assert 1 <= hs.max_read_bytes <= len(head) - i
        hs.receive_data(bytes([byte]))
    assert hs.next_event() == ProxyConnected()
    assert (hs.max_read_bytes, hs.trailing_data) == (0, b"")


@pytest.mark.parametrize("mode", MODES)
def test_bytes_behind_the_200_are_kept_exactly(mode: str) -> None:
    behind = bytes(range(256)) + b"\r\n\r\nHTTP/1.1 500 not a second head\r\n\r\n"
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, OK_HEAD + behind, mode)
    connected(result, mode, behind)
    if mode != "bounded":
        assert hs.trailing_data == behind
    hs.receive_data(b"more")  # later bytes are the tunnel's too
    assert hs.trailing_data.endswith(b"more")


@pytest.mark.parametrize(("extra", "accepted"), [(0, True), (1, False)])
def test_head_bound_is_exact(extra: int, accepted: bool) -> None:
    start, end = b"HTTP/1.1 200 OK\r\nX-Filler: ", b"\r\n\r\n"
    filler = b"y" * (MAX_RESPONSE_HEAD_BYTES - len(start) - len(end) + extra)
    head = start + filler + end
    assert len(head) == MAX_RESPONSE_HEAD_BYTES + extra
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    _, result = drive(hs, head + TLS_HELLO, "whole")
    if accepted:
        assert result == ProxyConnected()
        assert hs.trailing_data == TLS_HELLO
    else:
        assert isinstance(result, ProxyProtocolError)
        assert f"head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes" in str(result)


def test_oversized_head_fed_one_byte_at_a_time_fails_at_the_bound() -> None:
    hs = HttpConnectClientHandshake(HTTP_PROXY, "bridge.test", 443)
    hs.data_to_send()
    head = b"HTTP/1.1 200 OK\r\nX: " + b"y" * (2 * MAX_RESPONSE_HEAD_BYTES)
    fed = 0
    with pytest.raises(ProxyProtocolError, match="head exceeds"):
        for byte in head:
            hs.receive_data(bytes([byte]))
            fed += 1
            hs.next_event()
    assert fed == MAX_RESPONSE_HEAD_BYTES + 1


def test_request_is_read_by_an_independent_http_server() -> None:
    """h11 in the server role reads our request as CONNECT with the authority form."""
    hs = HttpConnectClientHandshake(HTTP_PROXY, "2001:db8::1", 443, "user", "pass")
    server = h11.Connection(h11.SERVER)
    server.receive_data(hs.data_to_send())
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (b"CONNECT", b"[2001:db8::1]:443")
    assert dict(request.headers) == {
        b"host": b"[2001:db8::1]:443",
        b"proxy-authorization": b"Basic dXNlcjpwYXNz",
    }
