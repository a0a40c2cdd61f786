"""front/socks_proto.py: CONNECT through the generic core, tor's RESOLVE, byte-exact replies."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import SocksProtocolError
from webtunnel_pt.front.socks_proto import (
    CONNECT,
    RESOLVE,
    FrontRequest,
    FrontSocksHandshake,
    resolve_reply,
)
from webtunnel_pt.socks.codes import SocksReply


def _feed(*chunks: bytes) -> tuple[FrontSocksHandshake, FrontRequest | None, bytes]:
    handshake = FrontSocksHandshake()
    request = None
    out = b""
    for chunk in chunks:
        handshake.receive_data(chunk)
        event = handshake.next_event()
        out += handshake.data_to_send()
        if event is not None:
            assert isinstance(event, FrontRequest)
            request = event
    return handshake, request, out


def test_connect_hostname_with_credentials_is_isolated_by_them() -> None:
    _, request, out = _feed(
        b"\x05\x01\x02",
        b"\x01\x01u\x02pw",
        b"\x05\x01\x00\x03\x0bexample.com\x00\x50",
    )
    assert out == b"\x05\x02\x01\x00"
    assert request == FrontRequest(5, "example.com", 80, b"u", b"pw", command=CONNECT)
    assert request.isolation == (b"u", b"pw")


def test_connect_ipv6_without_auth_has_no_isolation() -> None:
    _, request, out = _feed(b"\x05\x01\x00", b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x01\xbb")
    assert out == b"\x05\x00"
    assert request is not None and (request.host, request.port) == ("::1", 443)
    assert request.isolation is None and request.command == CONNECT


def test_resolve_split_over_reads() -> None:
    handshake, request, _ = _feed(b"\x05\x01\x00", b"\x05\xf0\x00\x03\x0bexample", b".com\x00\x00")
    assert request is not None and request.command == RESOLVE
    assert (request.host, request.port) == ("example.com", 0)
    assert handshake.awaiting_reply


def test_socks4a_connect_and_resolve_use_the_user_id_as_isolation() -> None:
    _, connect, _ = _feed(b"\x04\x01\x00\x50\x00\x00\x00\x01alice\x00example.com\x00")
    assert connect == FrontRequest(4, "example.com", 80, userid=b"alice")
    assert connect.isolation == b"alice"
    _, resolve, _ = _feed(b"\x04\xf0\x00\x00\x00\x00\x00\x01\x00example.com\x00")
    assert resolve is not None and resolve.command == RESOLVE and resolve.isolation is None


def test_resolve_ptr_is_command_not_supported() -> None:
    handshake = FrontSocksHandshake()
    handshake.receive_data(b"\x05\x01\x00")
    handshake.next_event()
    handshake.data_to_send()
    handshake.receive_data(b"\x05\xf1\x00\x01\x01\x02\x03\x04\x00\x00")
    with pytest.raises(SocksProtocolError) as caught:
        handshake.next_event()
    assert caught.value.socks_reply == SocksReply.COMMAND_NOT_SUPPORTED
    assert handshake.data_to_send() == b"\x05\x07\x00\x01" + bytes(6)


def test_bind_is_refused_by_the_core() -> None:
    handshake = FrontSocksHandshake()
    handshake.receive_data(b"\x05\x01\x00\x05\x02\x00\x01\x01\x02\x03\x04\x00\x00")
    with pytest.raises(SocksProtocolError):
        handshake.next_event()
    assert handshake.data_to_send() == b"\x05\x00\x05\x07\x00\x01" + bytes(6)


def test_resolve_replies_byte_exact() -> None:
    assert resolve_reply(5, "93.184.216.34") == bytes.fromhex("05000001 5db8d822 0000")
    assert resolve_reply(5, "2001:db8::1") == (
        bytes.fromhex("05000004") + bytes.fromhex("20010db8" + "00" * 11 + "01") + b"\x00\x00"
    )
    assert resolve_reply(4, "93.184.216.34") == bytes.fromhex("005a0000 5db8d822")
    assert resolve_reply(4, "2001:db8::1") == bytes.fromhex("005b") + bytes(6)
    with pytest.raises(ValueError):
        resolve_reply(5, "example.com")


def test_failure_reply_after_connect() -> None:
    handshake, _, _ = _feed(b"\x05\x01\x00\x05\x01\x00\x01\x01\x02\x03\x04\x00\x50")
    handshake.reply(SocksReply.HOST_UNREACHABLE)
    assert handshake.data_to_send() == b"\x05\x04\x00\x01" + bytes(6)
