"""tor.linkspec: link specifiers for EXTEND2 (tor-spec §5.1.2), byte for byte both ways."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import LinkSpecifierError, LocalProtocolError
from webtunnel_pt.tor.linkspec import (
    LinkSpecifier,
    LinkSpecType,
    decode_link_specifiers,
    encode_link_specifiers,
    encode_specifier_list,
)

RSA_ID = bytes.fromhex("07D2B3FBDC88247A9CAF8709ACD9CEDE02E2A9B9")
ED_ID = bytes(range(0x20, 0x40))

#: 203.0.113.5:9001, the RSA id, the Ed25519 id, [2001:db8::7]:443, written out by hand.
FULL = bytes.fromhex(
    "04"
    "00 06 cb007105 2329"
    "02 14 07d2b3fbdc88247a9caf8709acd9cede02e2a9b9"
    "03 20 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "01 12 20010db8000000000000000000000007 01bb"
)


def test_encode_all_four() -> None:
    encoded = encode_link_specifiers(
        address="203.0.113.5",
        or_port=9001,
        rsa_identity=RSA_ID,
        ed25519_identity=ED_ID,
        ipv6=("[2001:db8::7]", 443),
    )
    assert encoded == FULL


def test_encode_without_ed25519_or_ipv6() -> None:
    encoded = encode_link_specifiers(
        address="127.0.0.1", or_port=5000, rsa_identity=RSA_ID, ed25519_identity=None
    )
    assert encoded == bytes.fromhex("02 0006 7f000001 1388 0214") + RSA_ID


def test_ipv6_without_brackets() -> None:
    encoded = encode_link_specifiers(
        address="203.0.113.5",
        or_port=9001,
        rsa_identity=RSA_ID,
        ed25519_identity=ED_ID,
        ipv6=("2001:db8::7", 443),
    )
    assert encoded == FULL


def test_decode_all_four() -> None:
    specs, used = decode_link_specifiers(FULL + b"\x00\x02\x00\x54")
    assert used == len(FULL)
    assert specs == [
        LinkSpecifier(LinkSpecType.IPV4, bytes.fromhex("cb0071052329")),
        LinkSpecifier(LinkSpecType.LEGACY_ID, RSA_ID),
        LinkSpecifier(LinkSpecType.ED25519_ID, ED_ID),
        LinkSpecifier(LinkSpecType.IPV6, bytes.fromhex("20010db800000000000000000000000701bb")),
    ]
    assert specs[0].endpoint == ("203.0.113.5", 9001)
    assert specs[3].endpoint == ("2001:db8::7", 443)
    assert specs[1].endpoint is None
    assert encode_specifier_list(specs) == FULL


def test_decode_keeps_unknown_types() -> None:
    raw = bytes.fromhex("02 7f 03 abcdef 04 00")
    specs, used = decode_link_specifiers(raw)
    assert used == len(raw)
    assert specs == [LinkSpecifier(0x7F, bytes.fromhex("abcdef")), LinkSpecifier(4, b"")]
    assert encode_specifier_list(specs) == raw


def test_decode_empty_list_and_repeated_addresses() -> None:
    assert decode_link_specifiers(b"\x00rest") == ([], 1)
    two = bytes.fromhex("02 0006 7f0000011388 0006 7f0000021389")
    specs, _ = decode_link_specifiers(two)
    assert [s.endpoint for s in specs] == [("127.0.0.1", 5000), ("127.0.0.2", 5001)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "no NSPEC"),
        (bytes.fromhex("01"), "truncated"),
        (bytes.fromhex("01 00"), "truncated"),
        (bytes.fromhex("01 00 06 7f00000113"), "truncated"),
        (bytes.fromhex("02 7f 00"), "truncated"),
        (bytes.fromhex("01 00 05 7f00000113"), "expected 6"),
        (bytes.fromhex("01 01 06 7f0000011388"), "expected 18"),
        (bytes.fromhex("01 02 13") + RSA_ID[:19], "expected 20"),
        (bytes.fromhex("01 03 21") + ED_ID + b"\x00", "expected 32"),
        (bytes.fromhex("02 0214") + RSA_ID + bytes.fromhex("0214") + RSA_ID, "twice"),
        (bytes.fromhex("02 0320") + ED_ID + bytes.fromhex("0320") + ED_ID, "twice"),
    ],
)
def test_decode_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(LinkSpecifierError, match=message):
        decode_link_specifiers(raw)


def test_decode_every_truncation_of_a_good_list() -> None:
    for cut in range(len(FULL)):
        with pytest.raises(LinkSpecifierError):
            decode_link_specifiers(FULL[:cut])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "::1"},
        {"address": "example.com"},
        {"or_port": 0},
        {"or_port": 65536},
        {"rsa_identity": RSA_ID[:19]},
        {"ed25519_identity": ED_ID + b"\x00"},
        {"ipv6": ("127.0.0.1", 443)},
        {"ipv6": ("::1", 0)},
    ],
)
def test_encode_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "address": "127.0.0.1",
        "or_port": 5000,
        "rsa_identity": RSA_ID,
        "ed25519_identity": ED_ID,
    }
    args.update(kwargs)
    with pytest.raises(LocalProtocolError):
        encode_link_specifiers(**args)  # type: ignore[arg-type]


def test_oversized_specifier_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_specifier_list([LinkSpecifier(9, bytes(256))])
    with pytest.raises(LocalProtocolError):
        encode_specifier_list([LinkSpecifier(9, b"")] * 256)
