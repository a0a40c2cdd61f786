"""upgrade: the WebTunnel HTTP/1.1 upgrade client (webtunnel-wire.md §3 steps 6-8)."""

from __future__ import annotations

import h11
import pytest

from webtunnel_pt.errors import LocalProtocolError, UpgradeError, UpgradeRejected
from webtunnel_pt.webtunnel.upgrade import MAX_RESPONSE_HEAD_BYTES, UpgradeAccepted, UpgradeClient

# What Go's Request.Write produces for the official client (webtunnel-wire.md §3 step 6).
GO_REQUEST = (
    b"GET /D0CX0ykTaxzAgALpPd2hBMU6 HTTP/1.1\r\n"
    b"Host: tech.example.is\r\n"
    b"User-Agent: Go-http-client/1.1\r\n"
    b"Connection: upgrade\r\n"
    b"Upgrade: websocket\r\n"
    b"\r\n"
)
# What the Go server writes (webtunnel-wire.md §5).
GO_101 = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"


def new_client(host: str = "tech.example.is", target: str = "/D0CX0ykTaxzAgALpPd2hBMU6"):
    client = UpgradeClient(host, target)
    client.data_to_send()
    return client


def feed(data: bytes, chunk: int | None, eof: bool = False) -> UpgradeAccepted | None:
    """Feed ``data`` (whole or in ``chunk``-byte pieces); return the first event."""
    client = new_client()
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        client.receive_data(piece)
        event = client.next_event()
        if event is not None:
            return event
    if eof:
        client.receive_eof()
    return client.next_event()


def both(data: bytes, eof: bool = False) -> UpgradeAccepted | None:
    """Whole and byte-by-byte feeding must agree."""
    whole = feed(data, None, eof)
    single = feed(data, 1, eof)
    if whole is None or single is None:
        assert whole is single is None
        return None
    # Byte by byte, the event fires at the end of the head: nothing trails yet.
    assert (whole.reason, whole.headers) == (single.reason, single.headers)
    return whole


def rejected(data: bytes, exc_type=UpgradeRejected, eof: bool = False):
    errors = []
    for chunk in (None, 1):
        with pytest.raises(exc_type) as info:
            feed(data, chunk, eof)
        errors.append(info.value)
    assert type(errors[0]) is type(errors[1])
    assert getattr(errors[0], "status", None) == getattr(errors[1], "status", None)
    return errors[0]


# -- request ----------------------------------------------------------------------------------


def test_request_bytes_equal_go():
    client = UpgradeClient("tech.example.is", "/D0CX0ykTaxzAgALpPd2hBMU6")
    assert client.data_to_send() == GO_REQUEST
    assert client.data_to_send() == b""


def test_request_with_escaped_path_and_servername():
    client = UpgradeClient("sni.example", "/a%20b/c")
    assert client.data_to_send() == (
        b"GET /a%20b/c HTTP/1.1\r\nHost: sni.example\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("host", "header"),
    [
        ("2001:db8::1", b"Host: [2001:db8::1]\r\n"),
        ("::1", b"Host: [::1]\r\n"),
        ("fe80::1%eth0", b"Host: [fe80::1]\r\n"),
        ("192.0.2.7", b"Host: 192.0.2.7\r\n"),
        ("bridge.example", b"Host: bridge.example\r\n"),
    ],
)
def test_host_header_brackets_ipv6_literals(host: str, header: bytes) -> None:
    request = UpgradeClient(host, "/p").data_to_send()
    assert request.split(b"\r\n")[1] + b"\r\n" == header
    # an independent HTTP/1.1 server reads back the same authority
    server = h11.Connection(h11.SERVER)
    server.receive_data(request)
    event = server.next_event()
    assert isinstance(event, h11.Request)
    assert dict(event.headers)[b"host"] == header[6:-2]


def test_request_target_must_start_with_slash():
    with pytest.raises(LocalProtocolError):
        UpgradeClient("h.example", "p")


# -- accepted ---------------------------------------------------------------------------------


def test_go_101_is_accepted():
    event = both(GO_101)
    assert event == UpgradeAccepted(
        "Switching Protocols", (("connection", "upgrade"), ("upgrade", "websocket")), b""
    )
    assert event.header("Upgrade") == "websocket"
    assert event.header("X-Missing") is None


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: keep-alive, Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nCONNECTION: UPGRADE\r\nuPgRaDe: WebSocket\r\n\r\n",
        b"HTTP/1.1 101 Switching protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 \r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.24.0\r\n"
        b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"X-Extra: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + GO_101,
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + GO_101,
    ],
)
def test_accepted_variants(head):
    event = both(head)
    assert isinstance(event, UpgradeAccepted)
    assert event.trailing_data == b""


def test_reason_is_reported():
    event = both(GO_101.replace(b"Switching Protocols", b"Switching protocols"))
    assert event.reason == "Switching protocols"


@pytest.mark.parametrize("payload", [b"x", b"\x16\x03\x03\x00\x2a" + bytes(42), b"\r\n\r\n"])
def test_trailing_payload_behind_the_head_is_handed_on(payload):
    event = feed(GO_101 + payload, None)
    assert event.trailing_data == payload


def test_trailing_payload_larger_than_head_limit_is_kept():
    payload = bytes(range(256)) * ((MAX_RESPONSE_HEAD_BYTES // 256) + 4)
    assert feed(GO_101 + payload, None).trailing_data == payload


def test_after_acceptance_data_belongs_to_the_tunnel():
    client = new_client()
    client.receive_data(GO_101)
    event = client.next_event()
    assert client.next_event() is event
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"more")


def test_incomplete_head_needs_more_data():
    assert both(GO_101[:-1]) is None


# -- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (200, b"OK"),
        (301, b"Moved Permanently"),
        (403, b"Forbidden"),
        (404, b"Not Found"),
        (502, b"Bad Gateway"),
    ],
)
def test_non_101_status_is_rejected_with_status(status, reason):
    head = b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (status, reason)
    error = rejected(head)
    assert error.status == status
    assert error.reason == reason.decode()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
        b"Upgrade: h2c\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.0 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
)
def test_unusable_101_is_rejected(head):
    assert rejected(head).status == 101


@pytest.mark.parametrize(
    "head",
    [
        b"garbage\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
    ],
)
def test_garbage_is_an_upgrade_error(head):
    rejected(head, UpgradeError)


def test_head_larger_than_limit():
    head = b"HTTP/1.1 101 Switching Protocols\r\nX-Big: " + b"a" * MAX_RESPONSE_HEAD_BYTES
    rejected(head, UpgradeError)


@pytest.mark.parametrize("status", [b"101 Switching Protocols", b"404 Not Found"])
def test_a_complete_head_over_the_limit_in_one_chunk_is_refused(status):
    """h11 bounds only incomplete heads; a whole oversized head arriving at once is refused
    too, whatever it says."""
    big = b"X-Big: " + b"a" * MAX_RESPONSE_HEAD_BYTES + b"\r\n"
    head = b"HTTP/1.1 " + status + b"\r\nConnection: upgrade\r\nUpgrade: websocket\r\n" + big
    client = UpgradeClient("h.example", "/p")
    client.receive_data(head + b"\r\n")
    with pytest.raises(UpgradeError, match="exceeds"):
        client.next_event()


def test_too_many_informational_responses():
    rejected(b"HTTP/1.1 100 Continue\r\n\r\n" * 10 + GO_101, UpgradeError)


@pytest.mark.parametrize("cut", [0, 5, len(GO_101) // 2, len(GO_101) - 1])
def test_eof_mid_head(cut):
    rejected(GO_101[:cut], UpgradeError, eof=True)


def test_upgrade_errors_are_remote_protocol_errors():
    from webtunnel_pt.errors import RemoteProtocolError

    assert issubclass(UpgradeRejected, RemoteProtocolError)
    assert issubclass(UpgradeError, RemoteProtocolError)


# -- an independent peer: h11 as the server ---------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"first tunnel bytes"])
def test_against_h11_server(payload):
    client = UpgradeClient("tech.example.is", "/D0CX0ykTaxzAgALpPd2hBMU6")
    server = h11.Connection(h11.SERVER)
    server.receive_data(client.data_to_send())

    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert request.method == b"GET"
    assert request.target == b"/D0CX0ykTaxzAgALpPd2hBMU6"
    assert request.http_version == b"1.1"
    assert list(request.headers) == [
        (b"host", b"tech.example.is"),
        (b"user-agent", b"Go-http-client/1.1"),
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
    ]
    assert isinstance(server.next_event(), h11.EndOfMessage)  # no body
    assert server.their_state is h11.MIGHT_SWITCH_PROTOCOL

    answer = server.send(
        h11.InformationalResponse(
            status_code=101, headers=[("Connection", "upgrade"), ("Upgrade", "websocket")]
        )
    )
    assert server.our_state is h11.SWITCHED_PROTOCOL

    client.receive_data(answer + payload)
    event = client.next_event()
    assert isinstance(event, UpgradeAccepted)
    assert event.trailing_data == payload


def test_against_h11_server_refusing():
    client = UpgradeClient("h.example", "/wrong")
    server = h11.Connection(h11.SERVER)
    server.receive_data(client.data_to_send())
    server.next_event()
    server.next_event()
    answer = server.send(h11.Response(status_code=404, headers=[("Content-Length", "0")]))
    answer += server.send(h11.EndOfMessage())
    client.receive_data(answer)
    with pytest.raises(UpgradeRejected) as info:
        client.next_event()
    assert info.value.status == 404
