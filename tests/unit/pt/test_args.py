"""pt.args: tor's ``k=v;k=v`` argument string, its split over the SOCKS5 credentials, and the
bridge arguments the PT decodes from what the generic SOCKS server core hands over.

Vectors from pt-protocol.md §6.1 (credential split) and §7 (escaping, verified against tor).
"""

from __future__ import annotations

import pytest

from tests.support.socks_wire import auth, connect, greeting, socks4
from webtunnel_pt.errors import BridgeArgsError, SocksProtocolError, SocksReply, describe_failure
from webtunnel_pt.pt.args import (
    MAX_ARGS_BYTES,
    ArgsError,
    BridgeArgs,
    bridge_args,
    check_bridge_credentials,
    decode_socks_credentials,
    encode_socks_credentials,
    escape_args,
    parse_args,
)
from webtunnel_pt.socks.server import SocksRequest, SocksServerHandshake

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


# -- tor's SOCKS credentials -> bridge arguments, through the generic server core --------------


def pt_handshake(data: bytes, chunk: int | None = None) -> tuple[bytes, SocksRequest | None]:
    """Run the server core as the PT does (with its credentials check); return what it sent
    and the request, or re-raise its refusal after collecting the reply bytes."""
    hs = SocksServerHandshake(check_bridge_credentials)
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(len(data))]
    sent, request = b"", None
    try:
        for piece in pieces:
            hs.receive_data(piece)
            request = request or hs.next_event()
            sent += hs.data_to_send()
    except SocksProtocolError as exc:
        exc.add_note(repr(sent + hs.data_to_send()))
        raise
    return sent, request


def test_tor_credentials_give_bridge_args():
    text = r"url=https://h.example/p\;q;ver=0.0.1"
    sent, request = pt_handshake(greeting(0, 2) + auth(text.encode(), b"\x00") + connect("h", 1))
    assert sent == b"\x05\x02\x01\x00"
    assert request is not None
    args = bridge_args(request)
    assert args is not None
    assert args.pairs() == [("url", "https://h.example/p;q"), ("ver", "0.0.1")]


@pytest.mark.parametrize("chunk", [None, 1])
def test_long_arguments_split_over_username_and_password(chunk):
    # The split at byte 255 falls between '\' and ';' (pt-protocol.md §6.1).
    value = "https://h/" + "p" * (254 - len("url=https://h/")) + ";q"
    text = f"url={value.replace(';', chr(92) + ';')};ver=0.0.3"
    raw = text.encode()
    assert raw[254:256] == b"\\;"
    data = greeting(0, 2) + auth(raw[:255], raw[255:]) + connect("192.0.2.3", 443)
    sent, request = pt_handshake(data, chunk)
    assert sent == b"\x05\x02\x01\x00"
    assert request is not None
    assert bridge_args(request).pairs() == [("url", value), ("ver", "0.0.3")]


@pytest.mark.parametrize("chunk", [None, 1])
def test_split_inside_utf8_sequence(chunk):
    text = "url=https://h/" + "p" * (254 - len("url=https://h/")) + "\u00e9x"
    raw = text.encode()
    assert raw[254:256] == b"\xc3\xa9"
    data = greeting(2) + auth(raw[:255], raw[255:]) + connect("192.0.2.3", 443)
    _, request = pt_handshake(data, chunk)
    assert request is not None
    assert bridge_args(request)["url"].endswith("p\u00e9x")


@pytest.mark.parametrize(
    "credentials",
    [
        auth(b"url", b"\x00"),  # no '='
        auth(b"url=x;", b"\x00"),  # trailing ';'
        auth(b"url=x\\", b"\x00"),  # lone trailing backslash
        auth(b"=x", b"\x00"),  # empty key
        auth(b"url=\xff", b"\x00"),  # not UTF-8
    ],
)
@pytest.mark.parametrize("chunk", [None, 1])
def test_bad_bridge_args_in_credentials_get_01_01(credentials, chunk):
    """Refused during RFC 1929, before the request, as tor expects (and as lyrebird does)."""
    with pytest.raises(SocksProtocolError) as info:
        pt_handshake(greeting(0, 2) + credentials + connect("192.0.2.3", 443), chunk)
    assert info.value.__notes__ == [repr(b"\x05\x02" + b"\x01\x01")]
    assert str(info.value).startswith("invalid bridge arguments in SOCKS credentials: ")
    assert info.value.socks_reply is SocksReply.GENERAL_FAILURE
    assert info.value.log_severity == "warning"


def test_socks4_user_id_gives_bridge_args():
    data = bytes.fromhex("04 01 0001 c0000203") + b"url=https://a.example/p;ver=0.0.1\x00"
    sent, request = pt_handshake(data)
    assert sent == b""
    assert request is not None
    assert bridge_args(request).pairs() == [("url", "https://a.example/p"), ("ver", "0.0.1")]
    _, request = pt_handshake(socks4("0.0.0.1", 443, b"a=1", b"bridge.example"))
    assert request is not None
    assert (request.host, bridge_args(request)["a"]) == ("bridge.example", "1")


def test_no_credentials_give_no_args():
    _, request = pt_handshake(greeting(0) + connect("192.0.2.3", 443))
    assert request is not None and bridge_args(request) is None
    _, request = pt_handshake(socks4("192.0.2.3", 443, b""))
    assert request is not None and bridge_args(request) is None


def test_socks4_bad_args_are_refused_with_5b():
    """SOCKS4 has no authentication step: the request is refused with the reply the error
    maps to (describe_failure, as the listener does), 5B."""
    hs = SocksServerHandshake(check_bridge_credentials)
    hs.receive_data(socks4("192.0.2.3", 443, b"a=1;"))
    request = hs.next_event()
    assert request is not None
    with pytest.raises(SocksProtocolError) as info:
        bridge_args(request)
    reply, severity, message = describe_failure(info.value)
    assert (reply, severity) == (SocksReply.GENERAL_FAILURE, "warning")
    assert message.startswith("invalid bridge arguments in SOCKS4 user id: ")
    hs.reply(reply)
    assert hs.data_to_send() == b"\x00\x5b" + bytes(6)


def test_check_bridge_credentials_is_a_value_error():
    check_bridge_credentials(b"url=x", b"\x00")
    with pytest.raises(ValueError, match="invalid bridge arguments in SOCKS credentials"):
        check_bridge_credentials(b"url", b"\x00")
