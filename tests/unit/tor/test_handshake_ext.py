"""tor.handshake_ext: the ntor v3 extension list (N_EXTENSIONS, then TYPE | LEN | BODY) and the
congestion-control request and response of prop 324 §10.3, as tor's trunnel encodes them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.handshake_ext import (
    EXT_CC_REQUEST,
    EXT_CC_RESPONSE,
    NO_EXTENSIONS,
    cc_request,
    check_sendme_inc,
    decode_extensions,
    encode_extensions,
    parse_cc_response,
)


def test_type_numbers() -> None:
    assert (EXT_CC_REQUEST, EXT_CC_RESPONSE) == (1, 2)


def test_cc_request_bytes() -> None:
    """One extension, type 01, empty body: what tor's congestion_control_build_ext_request
    sends."""
    assert cc_request() == b"\x01\x01\x00"


def test_no_extensions_is_a_zero_count() -> None:
    assert NO_EXTENSIONS == encode_extensions([]) == b"\x00"
    assert decode_extensions(NO_EXTENSIONS) == []


def test_encode_decode_in_order_with_duplicates() -> None:
    exts = [(2, b"\x1f"), (0xFF, b""), (2, b"\x20"), (7, bytes(255))]
    data = encode_extensions(exts)
    assert data[:4] == b"\x04\x02\x01\x1f"
    assert decode_extensions(data) == exts


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\x01", "header truncated"),
        (b"\x01\x02", "header truncated"),
        (b"\x01\x02\x01", "body truncated"),
        (b"\x02\x02\x01\x1f", "header truncated"),
        (b"\x01\x02\x05abcd", "body truncated"),
        (b"\x00\x00", "after the 0 extensions"),
        (b"\x01\x02\x01\x1fX", "after the 1 extensions"),
    ],
)
def test_malformed_lists(data: bytes, why: str) -> None:
    with pytest.raises(CircuitProtocolError, match=why):
        decode_extensions(data)


@pytest.mark.parametrize("exts", [[(256, b"")], [(-1, b"")], [(1, bytes(256))], [(1, b"")] * 256])
def test_unencodable_lists(exts: list[tuple[int, bytes]]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_extensions(exts)


@pytest.mark.parametrize(
    ("message", "sendme_inc"),
    [
        (b"\x01\x02\x01\x1f", 31),
        (b"\x00", None),
        (b"\x01\x09\x02ab", None),  # only an unknown extension
        (b"\x02\x09\x00\x02\x01\x20", 32),  # unknown first, then the response
        (b"\x02\x02\x01\x1f\x02\x01\x05", 31),  # the first response counts
        (b"\x01\x02\x02\x1f\x00", 31),  # bytes after sendme_inc ignored, as tor does
        (b"\x01\x01\x00", None),  # a request echoed back is no response
    ],
)
def test_parse_cc_response(message: bytes, sendme_inc: int | None) -> None:
    assert parse_cc_response(message) == sendme_inc


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"\x01\x02\x00", "without its sendme_inc"),
        (b"\x01\x02\x01\x00", "sendme_inc 0"),
        (b"\x01\x02\x02\x1f", "truncated"),
        (b"", "empty"),
        (b"\x01\x02\x01\x1f\x00", "after the 1 extensions"),
    ],
)
def test_parse_cc_response_malformed(message: bytes, why: str) -> None:
    with pytest.raises(CircuitProtocolError, match=why):
        parse_cc_response(message)


@pytest.mark.parametrize(("theirs", "ours"), [(31, 31), (30, 31), (32, 31), (1, 2)])
def test_sendme_inc_within_tors_tolerance(theirs: int, ours: int) -> None:
    check_sendme_inc(theirs, ours)


@pytest.mark.parametrize(("theirs", "ours"), [(29, 31), (33, 31), (62, 31), (255, 31)])
def test_sendme_inc_too_far_from_the_consensus(theirs: int, ours: int) -> None:
    with pytest.raises(CircuitProtocolError, match="cc_sendme_inc"):
        check_sendme_inc(theirs, ours)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_messages_raise_only_protocol_errors(data: bytes) -> None:
    try:
        exts = decode_extensions(data)
    except CircuitProtocolError:
        return
    assert encode_extensions(exts) == data  # what parses is exactly its own encoding
    try:
        sendme_inc = parse_cc_response(data)
    except CircuitProtocolError:
        return
    assert sendme_inc is None or 1 <= sendme_inc <= 255


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=255)), max_size=20))
def test_round_trip(exts: list[tuple[int, bytes]]) -> None:
    assert decode_extensions(encode_extensions(exts)) == exts
