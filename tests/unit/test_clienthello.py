"""The test-side ClientHello parser and JA3/JA4 code, against recorded hellos and ``ja4plus``."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from tests.support.clienthello import (
    ClientHello,
    HelloParseError,
    NeedMoreData,
    ja3,
    ja3_string,
    ja4,
    ja4_r,
    parse_client_hello,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "hellos"
RECORDED = sorted(p.stem for p in DATA.glob("*.json"))


def recorded(name: str) -> tuple[bytes, dict]:
    record = json.loads((DATA / f"{name}.json").read_text())
    return bytes.fromhex(record["raw_hex"]), record


def build_hello(
    ciphers: list[int],
    extensions: list[tuple[int, bytes]],
    version: int = 0x0303,
) -> bytes:
    """A ClientHello record built field by field (RFC 8446 §4.1.2), random pinned to zeros."""
    exts = b"".join(struct.pack(">HH", t, len(body)) + body for t, body in extensions)
    body = (
        struct.pack(">H", version)
        + bytes(32)
        + b"\x20"
        + bytes(32)
        + struct.pack(">H", 2 * len(ciphers))
        + b"".join(struct.pack(">H", c) for c in ciphers)
        + b"\x01\x00"
        + struct.pack(">H", len(exts))
        + exts
    )
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(message)) + message


def u16s(values: list[int], length_bytes: int = 2) -> bytes:
    raw = b"".join(struct.pack(">H", v) for v in values)
    return len(raw).to_bytes(length_bytes, "big") + raw


def sni(name: str) -> bytes:
    entry = b"\x00" + struct.pack(">H", len(name)) + name.encode()
    return struct.pack(">H", len(entry)) + entry


def alpn(*names: bytes) -> bytes:
    body = b"".join(bytes([len(n)]) + n for n in names)
    return struct.pack(">H", len(body)) + body


SMALL = build_hello(
    [0x1A1A, 0x1301, 0xC02B, 0x002F],
    [
        (0x2A2A, b""),
        (0, sni("bridge.test")),
        (10, u16s([0x3A3A, 0x001D, 0x0017])),
        (11, b"\x01\x00"),
        (13, u16s([0x0403, 0x0804])),
        (16, alpn(b"h2", b"http/1.1")),
        (43, b"\x04" + struct.pack(">HH", 0x0304, 0x0303)),
        (51, struct.pack(">H", 8) + struct.pack(">HH", 0x001D, 4) + bytes(4)),
    ],
)


def test_parse_fields_in_wire_order() -> None:
    hello = parse_client_hello(SMALL)
    assert hello.record_version == 0x0301 and hello.legacy_version == 0x0303
    assert hello.session_id_length == 32
    assert hello.cipher_suites == [0x1A1A, 0x1301, 0xC02B, 0x002F]
    assert hello.extensions == [0x2A2A, 0, 10, 11, 13, 16, 43, 51]
    assert hello.server_name == "bridge.test"
    assert hello.supported_groups == [0x3A3A, 0x001D, 0x0017]
    assert hello.ec_point_formats == [0]
    assert hello.signature_algorithms == [0x0403, 0x0804]
    assert hello.alpn == ["h2", "http/1.1"]
    assert hello.supported_versions == [0x0304, 0x0303]
    assert hello.key_share_groups == [0x001D]
    assert hello.has_grease


def test_ja4_by_hand() -> None:
    """The JA4 recipe worked through by hand for SMALL: GREASE out, SNI/ALPN counted but not
    hashed, sorted lists, sigalgs in wire order."""
    hello = parse_client_hello(SMALL)
    ciphers = "002f,1301,c02b"
    exts = "000a,000b,000d,002b,0033_0403,0804"
    expected = (
        "t13d0307h2_"
        + hashlib.sha256(ciphers.encode()).hexdigest()[:12]
        + "_"
        + hashlib.sha256(exts.encode()).hexdigest()[:12]
    )
    assert ja4(hello) == expected
    assert ja4_r(hello) == f"t13d0307h2_{ciphers}_{exts}"


def test_ja3_by_hand() -> None:
    hello = parse_client_hello(SMALL)
    text = "771,4865-49195-47,0-10-11-13-16-43-51,29-23,0"
    assert ja3_string(hello) == text
    assert ja3(hello) == hashlib.md5(text.encode()).hexdigest()


def test_ja4_without_sni_alpn_or_versions_extension() -> None:
    hello = parse_client_hello(build_hello([0x002F], [(13, u16s([0x0401]))]))
    assert ja4(hello).startswith("t12i010100_")


def test_ja4_alpn_not_alphanumeric_uses_hex() -> None:
    hello = parse_client_hello(build_hello([0x002F], [(16, alpn(b"\xab\xcd"))]))
    assert ja4(hello).split("_")[0].endswith("ad")


def test_ja4_no_extensions_hash_is_zeros() -> None:
    hello = parse_client_hello(build_hello([0x002F], [(0, sni("x.test"))]))
    assert ja4(hello).endswith("_000000000000")


def test_byte_at_a_time_needs_more_until_complete() -> None:
    for cut in range(len(SMALL)):
        with pytest.raises(NeedMoreData):
            parse_client_hello(SMALL[:cut])
    assert parse_client_hello(SMALL).cipher_suites[1] == 0x1301


def test_hello_split_over_two_records() -> None:
    message = SMALL[5:]
    split = b"".join(
        b"\x16\x03\x01" + struct.pack(">H", len(part)) + part
        for part in (message[:40], message[40:])
    )
    assert parse_client_hello(split) == parse_client_hello(SMALL)


def test_not_a_handshake_record() -> None:
    with pytest.raises(HelloParseError):
        parse_client_hello(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_hello_round_trip(name: str) -> None:
    raw, record = recorded(name)
    hello = parse_client_hello(raw)
    assert hello == ClientHello.from_json(record["hello"])
    assert ja4(hello) == record["ja4"]
    assert ja3(hello) == record["ja3"]


@pytest.mark.parametrize("name", RECORDED)
def test_ja4_agrees_with_ja4plus(name: str) -> None:
    """An independent implementation from PyPI parses the same bytes from a packet."""
    pytest.importorskip("ja4plus")
    from ja4plus import JA4Fingerprinter
    from scapy.all import IP, TCP, Raw

    raw, _ = recorded(name)
    packet = (
        IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=40000, dport=443, flags="PA") / Raw(raw)
    )
    assert JA4Fingerprinter().process_packet(packet) == ja4(parse_client_hello(raw))


def test_ja4plus_agrees_on_the_hand_built_hello() -> None:
    pytest.importorskip("ja4plus")
    from ja4plus import JA4Fingerprinter
    from scapy.all import IP, TCP, Raw

    packet = (
        IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=40000, dport=443, flags="PA") / Raw(SMALL)
    )
    assert JA4Fingerprinter().process_packet(packet) == ja4(parse_client_hello(SMALL))
