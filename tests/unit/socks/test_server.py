"""socks.server: the generic SOCKS5 / SOCKS4a server handshake, fed whole and byte by byte.

Client messages are built by the small encoder below, written from RFC 1928/1929 and the
SOCKS4a description, independently of the module under test. The core hands over credentials
raw; what tor's mean (bridge arguments) is tested in tests/unit/pt/test_args.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.support.socks_wire import auth, connect, greeting, socks4
from webtunnel_pt.errors import LocalProtocolError, SocksProtocolError, SocksReply
from webtunnel_pt.socks.server import (
    MAX_HANDSHAKE_BYTES,
    CredentialsCheck,
    SocksRequest,
    SocksServerHandshake,
)

REPLY_OK = bytes.fromhex("05 00 00 01 00000000 0000")


def reply5(rep: int) -> bytes:
    return bytes([5, rep, 0, 1]) + bytes(6)


# -- a driver that feeds bytes in chunks and records everything -------------------------------


@dataclass
class Run:
    sent: bytes = b""
    requests: list[SocksRequest] = field(default_factory=list)
    error: SocksProtocolError | None = None
    handshake: SocksServerHandshake = field(default_factory=SocksServerHandshake)


def drive(data: bytes, chunk: int | None, check: CredentialsCheck | None = None) -> Run:
    run = Run(handshake=SocksServerHandshake(check))
    hs = run.handshake
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    try:
        for piece in pieces:
            hs.receive_data(piece)
            event = hs.next_event()
            if event is not None:
                run.requests.append(event)
            run.sent += hs.data_to_send()
    except SocksProtocolError as exc:
        run.error = exc
        run.sent += hs.data_to_send()
    return run


def both(data: bytes, check: CredentialsCheck | None = None) -> Run:
    """Feed ``data`` whole and one byte at a time; insist on the same outcome."""
    whole, single = drive(data, None, check), drive(data, 1, check)
    assert whole.sent == single.sent
    assert whole.requests == single.requests
    assert type(whole.error) is type(single.error)
    if whole.error is not None:
        assert whole.error.socks_reply == single.error.socks_reply
    return whole


ARGS = r"url=https://h.example/p\;q;ver=0.0.1"
CREDS = auth(ARGS.encode(), b"\x00")

# -- greeting ---------------------------------------------------------------------------------


def test_greeting_with_user_pass_picks_02():
    run = both(greeting(0, 2))
    assert run.sent == b"\x05\x02"
    assert run.error is None and run.requests == []


def test_greeting_user_pass_only_picks_02():
    assert both(greeting(2)).sent == b"\x05\x02"


def test_greeting_no_auth_only_picks_00():
    run = both(greeting(0))
    assert run.sent == b"\x05\x00"
    assert run.error is None


@pytest.mark.parametrize("methods", [(1,), (), (3, 0x80, 0xFF)])
def test_no_acceptable_method(methods):
    run = both(greeting(*methods))
    assert run.sent == b"\x05\xff"
    assert run.error is not None


@pytest.mark.parametrize("first", [0x00, 0x01, 0x06, 0x47, 0xFF])
def test_wrong_version_byte_is_refused_without_reply(first):
    run = both(bytes([first]) + b"\x01\x00")
    assert run.error is not None
    assert run.sent == b""


def test_incomplete_greeting_waits():
    run = both(b"\x05\x02\x00")
    assert (run.sent, run.error, run.requests) == (b"", None, [])


# -- RFC 1929 ---------------------------------------------------------------------------------


def test_full_tor_handshake_with_arguments():
    run = both(greeting(0, 2) + CREDS + connect("192.0.2.3", 443))
    assert run.sent == b"\x05\x02" + b"\x01\x00"
    assert run.error is None
    (request,) = run.requests
    assert (request.version, request.host, request.port) == (5, "192.0.2.3", 443)
    assert (request.username, request.password, request.userid) == (ARGS.encode(), b"\x00", b"")
    assert run.handshake.awaiting_reply


@pytest.mark.parametrize(
    "credentials",
    [
        auth(b"", b"\x00"),  # ULEN = 0
        auth(b"url=x", b""),  # PLEN = 0
        b"\x05" + CREDS[1:],  # wrong sub-negotiation version
    ],
)
def test_bad_credentials_get_01_01(credentials):
    run = both(greeting(0, 2) + credentials + connect("192.0.2.3", 443))
    assert run.sent == b"\x05\x02" + b"\x01\x01"
    assert run.error is not None and run.requests == []


def test_no_auth_request_has_no_credentials():
    run = both(greeting(0) + connect("192.0.2.3", 443))
    assert run.sent == b"\x05\x00"
    assert run.requests == [SocksRequest(5, "192.0.2.3", 443, None, None, b"")]


def test_credentials_are_handed_over_raw():
    """Any bytes are credentials to the core (here not UTF-8, no '='): only a check refuses."""
    run = both(greeting(2) + auth(b"\xff\x00u", b"p\x01") + connect("192.0.2.3", 443))
    assert run.sent == b"\x05\x02\x01\x00"
    assert run.requests == [SocksRequest(5, "192.0.2.3", 443, b"\xff\x00u", b"p\x01")]


def test_check_sees_the_credentials_and_may_accept_them():
    seen: list[tuple[bytes, bytes]] = []
    run = both(CREDS_GREETING + CREDS + connect("192.0.2.3", 443), check=recorder(seen))
    assert run.sent == b"\x05\x02\x01\x00"
    assert seen == [(ARGS.encode(), b"\x00")] * 2  # once whole, once byte by byte
    assert run.requests[0].username == ARGS.encode()


def test_check_refusal_gets_01_01_and_its_message():
    def refuse(username: bytes, password: bytes) -> None:
        raise ValueError(f"no entry for {username!r}")

    run = both(CREDS_GREETING + auth(b"bob", b"pw") + connect("192.0.2.3", 443), check=refuse)
    assert run.sent == b"\x05\x02\x01\x01"
    assert run.requests == []
    assert run.error is not None
    assert str(run.error) == "no entry for b'bob'"
    assert run.error.socks_reply is SocksReply.GENERAL_FAILURE


def recorder(seen: list[tuple[bytes, bytes]]) -> Callable[[bytes, bytes], None]:
    def check(username: bytes, password: bytes) -> None:
        seen.append((username, password))

    return check


CREDS_GREETING = greeting(0, 2)


# -- CONNECT ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected_host"),
    [
        ("192.0.2.3", 443, "192.0.2.3"),
        ("0.0.0.0", 1, "0.0.0.0"),
        ("2001:db8:2ba7:5f68:dc7e:27ca:1f5d:128d", 443, "2001:db8:2ba7:5f68:dc7e:27ca:1f5d:128d"),
        ("2001:0db8:0000::0001", 65535, "2001:db8::1"),
        ("bridge.example", 8443, "bridge.example"),
        ("a" * 255, 80, "a" * 255),
    ],
)
def test_connect_address_types(host, port, expected_host):
    run = both(greeting(0, 2) + CREDS + connect(host, port))
    assert run.error is None
    assert [(r.host, r.port) for r in run.requests] == [(expected_host, port)]


def test_verified_ipv6_connect_bytes():
    # tor 0.4.9.11: [2001:db8:2ba7:...:128d]:443 arrives as ATYP 04 + 16 bytes + 01 BB.
    request = bytes.fromhex("05 01 00 04 20010db82ba75f68dc7e27ca1f5d128d 01bb")
    run = both(greeting(0, 2) + CREDS + request)
    assert (run.requests[0].host, run.requests[0].port) == (
        "2001:db8:2ba7:5f68:dc7e:27ca:1f5d:128d",
        443,
    )


@pytest.mark.parametrize("cmd", [2, 3, 0, 9])  # BIND, UDP ASSOCIATE, nonsense
def test_unsupported_command_gets_07(cmd):
    run = both(greeting(0, 2) + CREDS + connect("192.0.2.3", 443, cmd=cmd))
    assert run.sent == b"\x05\x02\x01\x00" + bytes.fromhex("05 07 00 01 00000000 0000")
    assert run.error.socks_reply == SocksReply.COMMAND_NOT_SUPPORTED


@pytest.mark.parametrize("atyp", [0, 2, 5, 0xFF])
def test_unknown_address_type_gets_08(atyp):
    request = bytes([5, 1, 0, atyp]) + bytes(6)
    run = both(greeting(0, 2) + CREDS + request)
    assert run.sent == b"\x05\x02\x01\x00" + reply5(0x08)
    assert run.error.socks_reply == SocksReply.ADDRESS_TYPE_NOT_SUPPORTED


def test_nonzero_reserved_byte_gets_01():
    run = both(greeting(0, 2) + CREDS + connect("192.0.2.3", 443, rsv=1))
    assert run.sent == b"\x05\x02\x01\x00" + reply5(0x01)
    assert run.error.socks_reply == SocksReply.GENERAL_FAILURE


def test_zero_length_domain_gets_01():
    run = both(greeting(0) + bytes.fromhex("05 01 00 03 00 01bb"))
    assert run.sent == b"\x05\x00" + reply5(0x01)
    assert run.error is not None


def test_wrong_version_in_request_gets_01():
    run = both(greeting(0) + b"\x04" + connect("192.0.2.3", 443)[1:])
    assert run.sent == b"\x05\x00" + reply5(0x01)
    assert run.error is not None


def test_too_long_handshake_is_refused():
    # Nothing tor sends comes near MAX_HANDSHAKE_BYTES before the request is complete; a
    # client that buffers more than that unread is not a SOCKS client.
    junk = greeting(0, 2) + b"\x01\xff" + b"a" * (MAX_HANDSHAKE_BYTES + 10)
    hs = SocksServerHandshake()
    with pytest.raises(SocksProtocolError):
        hs.receive_data(junk)
        hs.next_event()
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"more")


def test_too_long_socks4_user_id_is_refused():
    run = both(b"\x04\x01\x01\xbb\xc0\x00\x02\x03" + b"u" * 2000)
    assert run.error is not None
    assert run.sent == b"\x00\x5b" + bytes(6)


# -- replies and trailing data ----------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 1])
def test_success_reply_and_trailing_data(chunk):
    payload = b"\x16\x03\x01 inner TLS ClientHello"
    run = drive(greeting(0, 2) + CREDS + connect("192.0.2.3", 443) + payload, chunk)
    hs = run.handshake
    assert hs.awaiting_reply
    assert hs.trailing_data == b""  # not before the reply
    hs.reply(SocksReply.SUCCEEDED)
    assert hs.data_to_send() == REPLY_OK
    assert hs.trailing_data == payload
    assert not hs.awaiting_reply
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"tunnel bytes go elsewhere")


@pytest.mark.parametrize(
    "code", [SocksReply.GENERAL_FAILURE, SocksReply.CONNECTION_REFUSED, SocksReply.TTL_EXPIRED]
)
def test_failure_reply_drops_trailing_data(code):
    run = drive(greeting(0, 2) + CREDS + connect("192.0.2.3", 443) + b"payload", None)
    hs = run.handshake
    hs.reply(code)
    assert hs.data_to_send() == reply5(code)
    assert hs.trailing_data == b""


@pytest.mark.parametrize("version", [5, 4])
def test_plain_int_success_code_means_success(version):
    # SocksReply is an IntEnum; reply(0) must not send "granted" bytes while dropping the
    # tunnel's first bytes (SOCKS5), nor send 5B for a success (SOCKS4).
    data = (
        greeting(0) + connect("192.0.2.3", 443) if version == 5 else socks4("192.0.2.3", 443, b"")
    )
    run = drive(data + b"payload", None)
    run.handshake.reply(0)
    expected = REPLY_OK if version == 5 else b"\x00\x5a" + bytes(6)
    assert run.handshake.data_to_send() == expected
    assert run.handshake.trailing_data == b"payload"


def test_reply_before_request_is_a_local_error():
    hs = SocksServerHandshake()
    with pytest.raises(LocalProtocolError):
        hs.reply(SocksReply.SUCCEEDED)
    hs.receive_data(greeting(0, 2))
    hs.next_event()
    with pytest.raises(LocalProtocolError):
        hs.reply(SocksReply.SUCCEEDED)


def test_reply_twice_is_a_local_error():
    run = drive(greeting(0) + connect("192.0.2.3", 443), None)
    run.handshake.reply(SocksReply.SUCCEEDED)
    with pytest.raises(LocalProtocolError):
        run.handshake.reply(SocksReply.SUCCEEDED)


def test_next_event_after_request_returns_none():
    run = drive(greeting(0) + connect("192.0.2.3", 443), None)
    assert run.handshake.next_event() is None


# -- SOCKS4 / SOCKS4a -------------------------------------------------------------------------


def test_socks4_verified_request():
    # tor: 04 01 0001 c0000203 "url=https://a.example/p;ver=0.0.1" 00
    data = bytes.fromhex("04 01 0001 c0000203") + b"url=https://a.example/p;ver=0.0.1\x00"
    run = both(data)
    assert run.sent == b"" and run.error is None
    (request,) = run.requests
    assert (request.version, request.host, request.port) == (4, "192.0.2.3", 1)
    assert request.userid == b"url=https://a.example/p;ver=0.0.1"
    assert (request.username, request.password) == (None, None)


def test_socks4a_hostname():
    run = both(socks4("0.0.0.1", 443, b"a=1", b"bridge.example"))
    (request,) = run.requests
    assert (request.host, request.port, request.userid) == ("bridge.example", 443, b"a=1")


def test_socks4_without_user_id_has_an_empty_one():
    run = both(socks4("192.0.2.3", 443, b""))
    assert run.requests == [SocksRequest(4, "192.0.2.3", 443)]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (SocksReply.SUCCEEDED, 0x5A),
        (SocksReply.GENERAL_FAILURE, 0x5B),
        (SocksReply.HOST_UNREACHABLE, 0x5B),
    ],
)
def test_socks4_replies(code, status):
    run = drive(socks4("192.0.2.3", 443, b"a=1") + b"after", None)
    run.handshake.reply(code)
    assert run.handshake.data_to_send() == bytes([0x00, status]) + bytes(6)
    assert run.handshake.trailing_data == (b"after" if status == 0x5A else b"")


def test_socks4_bind_is_refused_with_5b():
    run = both(socks4("192.0.2.3", 443, b"a=1", cmd=2))
    assert run.sent == b"\x00\x5b" + bytes(6)
    assert run.error.socks_reply == SocksReply.COMMAND_NOT_SUPPORTED


# -- commands= : extra commands laid out as CONNECT (tor's RESOLVE, for the SOCKS front) --------


@pytest.mark.parametrize("chunk", [None, 1])
def test_an_extra_command_is_parsed_as_connect_and_named(chunk: int | None) -> None:
    data = greeting(0) + connect("example.com", 80, cmd=0xF0)
    hs = SocksServerHandshake(commands=(1, 0xF0))
    pieces = [data] if chunk is None else [data[i : i + 1] for i in range(len(data))]
    events = []
    for piece in pieces:
        hs.receive_data(piece)
        events.append(hs.next_event())
    assert [e for e in events if e is not None] == [
        SocksRequest(5, "example.com", 80, command=0xF0)
    ]


def test_commands_not_listed_are_refused_even_connect() -> None:
    hs = SocksServerHandshake(commands=(0xF0,))
    hs.receive_data(greeting(0) + connect("192.0.2.3", 443))
    with pytest.raises(SocksProtocolError) as caught:
        hs.next_event()
    assert caught.value.socks_reply == SocksReply.COMMAND_NOT_SUPPORTED
    assert hs.data_to_send() == b"\x05\x00" + reply5(SocksReply.COMMAND_NOT_SUPPORTED)


def test_socks4_request_carries_its_listed_command() -> None:
    hs = SocksServerHandshake(commands=(1, 0xF0))
    hs.receive_data(socks4("192.0.2.3", 443, b"u", cmd=0xF0))
    assert hs.next_event() == SocksRequest(4, "192.0.2.3", 443, userid=b"u", command=0xF0)
