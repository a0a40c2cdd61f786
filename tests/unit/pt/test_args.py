"""pt_args: tor's ``k=v;k=v`` argument string and its split over the SOCKS5 credentials.

Vectors from pt-protocol.md §6.1 (credential split) and §7 (escaping, verified against tor).
"""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.pt.args import (
    MAX_ARGS_BYTES,
    ArgsError,
    BridgeArgs,
    decode_socks_credentials,
    encode_socks_credentials,
    escape_args,
    parse_args,
)

# (pairs, exact string tor sends) -- both directions are checked.
VECTORS = [
    ([], ""),
    ([("url", "https://h/p;q"), ("ver", "0.0.1")], r"url=https://h/p\;q;ver=0.0.1"),
    (
        [("url", r"https://tech.example.is/D0CX;0y\kTa=x"), ("ver", "0.0.3")],
        r"url=https://tech.example.is/D0CX\;0y\\kTa=x;ver=0.0.3",
    ),
    ([("a", "")], "a="),
    ([("a", "b=c=d")], "a=b=c=d"),  # '=' is never escaped; a value may hold it
    ([("k;ey", "v")], r"k\;ey=v"),  # keys are escaped too
    ([("a", "\\")], r"a=\\"),
    ([("a", ";")], r"a=\;"),
    ([("a", "1"), ("b", "2"), ("c", "3")], "a=1;b=2;c=3"),
    ([("url", "https://h/\u00e9")], "url=https://h/\u00e9"),
]


@pytest.mark.parametrize(("pairs", "encoded"), VECTORS)
def test_escape_args_matches_tor(pairs, encoded):
    assert escape_args(pairs) == encoded


@pytest.mark.parametrize(("pairs", "encoded"), VECTORS)
def test_parse_args_inverts_tor_encoding(pairs, encoded):
    assert parse_args(encoded).pairs() == pairs


def test_escape_args_refuses_empty_key():
    with pytest.raises(ArgsError):
        escape_args([("", "v")])


def test_backslash_escapes_any_character():
    # goptlib: a backslash contributes the byte that follows, whatever it is.
    assert parse_args(r"a=\x\y").pairs() == [("a", "xy")]
    assert parse_args(r"k\=ey=v").pairs() == [("k=ey", "v")]


def test_duplicate_keys_are_kept_in_order_and_get_returns_the_first():
    args = parse_args("a=1;b=2;a=3")
    assert args["a"] == "1"
    assert args.get_all("a") == ("1", "3")
    assert args.get_all("missing") == ()
    assert list(args) == ["a", "b"]
    assert len(args) == 2
    assert args.pairs() == [("a", "1"), ("a", "3"), ("b", "2")]


def test_keys_are_case_sensitive():
    args = parse_args("URL=x")
    assert "url" not in args
    assert args["URL"] == "x"


@pytest.mark.parametrize(
    "bad",
    [
        "a=1;",  # trailing ';' is an empty pair
        "a=1;;b=2",  # empty pair in the middle
        ";a=1",
        "a=1\\",  # lone trailing backslash in a value
        "a\\",  # lone trailing backslash in a key
        "a",  # missing '='
        "a=1;b",  # second pair missing '='
        "=v",  # empty key
        "a=1;=v",
        r"\;",
    ],
)
def test_parse_args_errors(bad):
    with pytest.raises(ArgsError) as info:
        parse_args(bad)
    assert isinstance(info.value, BridgeArgsError)
    assert isinstance(info.value, ValueError)


def test_bridge_args_mapping_from_pairs():
    args = BridgeArgs([("x", "1"), ("y", "2"), ("x", "3")])
    assert dict(args) == {"x": "1", "y": "2"}
    assert "BridgeArgs" in repr(args)


# -- SOCKS5 credentials (pt-protocol.md §6.1) -------------------------------------------------


def test_short_string_goes_whole_into_username_with_nul_password():
    text = r"url=https://h/p\;q;ver=0.0.1"
    assert encode_socks_credentials(text) == (text.encode(), b"\x00")
    assert decode_socks_credentials(text.encode(), b"\x00") == text


def test_exactly_255_bytes_still_uses_nul_password():
    text = "a=" + "x" * 253
    username, password = encode_socks_credentials(text)
    assert (len(username), password) == (255, b"\x00")
    assert decode_socks_credentials(username, password) == text


def test_256_bytes_split_into_255_and_1():
    text = "a=" + "x" * 254
    username, password = encode_socks_credentials(text)
    assert (username, password) == (text.encode()[:255], b"x")
    assert decode_socks_credentials(username, password) == text


def test_split_inside_an_escape_is_rejoined_before_parsing():
    # Put the escaping backslash at byte 254 and the escaped ';' at byte 255.
    prefix = "url=https://h/" + "p" * (254 - len("url=https://h/"))
    pairs = [("url", prefix[len("url=") :] + ";q"), ("ver", "0.0.3")]
    text = escape_args(pairs)
    raw = text.encode()
    assert raw[254:256] == b"\\;"
    username, password = encode_socks_credentials(text)
    assert username.endswith(b"\\") and password.startswith(b";")
    assert len(username) == 255 and len(password) == len(raw) - 255
    rebuilt = decode_socks_credentials(username, password)
    assert rebuilt == text
    assert parse_args(rebuilt).pairs() == pairs


def test_split_inside_a_utf8_sequence_is_rejoined_before_decoding():
    # 'é' is C3 A9: put C3 at byte 254 and A9 at byte 255.
    head = "url=https://h/" + "p" * (254 - len("url=https://h/"))
    text = head + "\u00e9" + "tail;ver=0.0.3"
    raw = text.encode()
    assert raw[254:256] == b"\xc3\xa9"
    username, password = encode_socks_credentials(text)
    assert username[-1:] == b"\xc3" and password[:1] == b"\xa9"
    assert decode_socks_credentials(username, password) == text
    assert parse_args(decode_socks_credentials(username, password))["url"].endswith("\u00e9tail")


def test_long_verified_example_shape():
    # tor 0.4.9.11: url + ver + a 300-byte long= value gave ULEN=255, PLEN=104.
    pairs = [
        ("url", r"https://tech.example.is/D0CX;0y\kTa=x"),
        ("ver", "0.0.3"),
        ("long", "x" * 300),
    ]
    text = escape_args(pairs)
    username, password = encode_socks_credentials(text)
    assert (len(username), len(password)) == (255, 104)
    assert username.startswith(rb"url=https://tech.example.is/D0CX\;0y\\kTa=x;ver=0.0.3;long=xxx")
    assert parse_args(decode_socks_credentials(username, password)).pairs() == pairs


def test_password_other_than_single_nul_is_appended():
    assert decode_socks_credentials(b"a=1", b"23") == "a=123"
    # Two NULs are not the "no password" marker.
    assert decode_socks_credentials(b"a=1", b"\x00\x00") == "a=1\x00\x00"


def test_invalid_utf8_credentials_raise_args_error():
    with pytest.raises(ArgsError):
        decode_socks_credentials(b"a=\xff", b"\x00")


def test_encode_refuses_more_than_510_bytes():
    assert len(encode_socks_credentials("a=" + "x" * (MAX_ARGS_BYTES - 2))[1]) == 255
    with pytest.raises(ArgsError):
        encode_socks_credentials("a=" + "x" * (MAX_ARGS_BYTES - 1))
