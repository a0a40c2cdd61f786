"""front/http_get.py: URL parsing, the request bytes, response parsing with its bounds."""

from __future__ import annotations

import pytest

from webtunnel_pt import __version__
from webtunnel_pt.errors import ConfigError, RemoteProtocolError
from webtunnel_pt.front.http_get import (
    MAX_HEAD_BYTES,
    BodyChunk,
    HttpGet,
    ResponseEnd,
    ResponseHead,
    Url,
    parse_url,
)


@pytest.mark.parametrize(
    ("text", "url", "host_header"),
    [
        ("http://example.com", Url("http", "example.com", 80, "/"), "example.com"),
        (
            "HTTPS://Example.com/a/b?c=d#frag",
            Url("https", "example.com", 443, "/a/b?c=d"),
            "example.com",
        ),
        ("http://example.com:8080/x", Url("http", "example.com", 8080, "/x"), "example.com:8080"),
        (
            "https://[2001:db8::1]:8443/",
            Url("https", "2001:db8::1", 8443, "/"),
            "[2001:db8::1]:8443",
        ),
        ("https://127.0.0.1:443/", Url("https", "127.0.0.1", 443, "/"), "127.0.0.1"),
    ],
)
def test_parse_url(text: str, url: Url, host_header: str) -> None:
    assert parse_url(text) == url
    assert parse_url(text).host_header == host_header


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://example.com/", "only http:// and https://"),
        ("example.com", "only http:// and https://"),
        ("http:///path", "no host"),
        ("http://user:pw@example.com/", "user:password@"),
        ("http://example.com:99999/", "bad port"),
        ("http://exa mple.com/", "printable ASCII"),
        ("http://bücher.example/", "printable ASCII"),
        ("http://example.com/" + "a" * 9000, "over"),
    ],
)
def test_bad_urls(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(text)


def test_request_bytes() -> None:
    get = HttpGet(parse_url("http://example.com:8080/a?b"))
    assert get.request_bytes() == (
        b"GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\n"
        + f"User-Agent: webtunnel-pt/{__version__}\r\n".encode()
        + b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    assert (
        HttpGet(parse_url("http://e.example/"), head=True)
        .request_bytes()
        .startswith(b"HEAD / HTTP/1.1\r\n")
    )


def _exchange(*chunks: bytes, head: bool = False) -> list[object]:
    get = HttpGet(parse_url("http://example.com/"), head=head)
    get.request_bytes()
    events: list[object] = []
    for chunk in chunks:
        events += get.receive_data(chunk)
    return events


def test_content_length_body_split_anywhere() -> None:
    events = _exchange(b"HTTP/1.1 200 OK\r\nContent-Len", b"gth: 5\r\nX-A: b\r\n\r\nhel", b"lo")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.http_version) == (200, "OK", "1.1")
    assert head.header("X-a") == "b" and head.status_line == "HTTP/1.1 200 OK"
    assert b"".join(e.data for e in events if isinstance(e, BodyChunk)) == b"hello"
    assert isinstance(events[-1], ResponseEnd)


def test_chunked_and_close_delimited_bodies() -> None:
    chunked = _exchange(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert [e.data for e in chunked if isinstance(e, BodyChunk)] == [b"abc"]
    assert isinstance(chunked[-1], ResponseEnd)
    closed = _exchange(b"HTTP/1.0 404 Not Found\r\n\r\ngone", b"")
    assert isinstance(closed[0], ResponseHead) and closed[0].status == 404
    assert isinstance(closed[-1], ResponseEnd)


def test_head_response_has_no_body() -> None:
    events = _exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", head=True)
    assert [type(e) for e in events] == [ResponseHead, ResponseEnd]


def test_interim_responses_are_skipped() -> None:
    events = _exchange(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert isinstance(events[0], ResponseHead) and events[0].status == 204


def test_too_many_interim_responses() -> None:
    with pytest.raises(RemoteProtocolError, match="interim"):
        _exchange(b"HTTP/1.1 102 Processing\r\n\r\n" * 9)


def test_oversized_head_is_refused() -> None:
    big = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * MAX_HEAD_BYTES
    with pytest.raises(RemoteProtocolError, match="bad HTTP response"):
        _exchange(big)


@pytest.mark.parametrize(
    "chunks",
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n",),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""),
        (b"HTTP/1.1 200 OK\r\n", b""),
        (b"",),
    ],
)
def test_bad_or_cut_responses(chunks: tuple[bytes, ...]) -> None:
    with pytest.raises(RemoteProtocolError):
        _exchange(*chunks)


def test_reason_phrase_is_shown_printable_only() -> None:
    events = _exchange(b"HTTP/1.1 500 Bad\x7f\x1bThing\r\nContent-Length: 0\r\n\r\n")
    head = events[0]
    assert isinstance(head, ResponseHead) and head.status_line == "HTTP/1.1 500 BadThing"
