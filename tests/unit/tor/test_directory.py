"""link.directory: HTTP/1.0 over BEGIN_DIR and the bridge server descriptor (tor-link.md §10),
with a descriptor captured from a real tor 0.4.9.11 bridge."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import lzma
import zlib

import pytest

from tests.support import dir_capture
from tests.support.link_capture import (
    CAPTURED_AT,
    DESCRIPTOR_BYTES,
    DESCRIPTOR_TEXT,
    ED25519_BASE64,
    ED25519_ID,
    FINGERPRINT,
    relay_identity,
)
from webtunnel_pt.errors import DescriptorSignatureError, DirectoryError, IdentityMismatch
from webtunnel_pt.tor.directory import (
    MAX_DESCRIPTOR_BYTES,
    MAX_DIR_RESPONSE_BYTES,
    check_descriptor_identity,
    dir_request,
    match_descriptor_identity,
    parse_dir_response,
    parse_server_descriptor,
)

#: What the captured CERTS cell proves: the identity the descriptor is checked against.
IDENTITY = relay_identity()


def tor_lzma(data: bytes) -> bytes:
    """What tor's x-tor-lzma is: the legacy .lzma container."""
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def test_request_bytes() -> None:
    assert dir_request("/tor/server/authority") == (
        b"GET /tor/server/authority HTTP/1.0\r\nAccept-Encoding: deflate, x-tor-lzma, gzip, identity\r\n\r\n"
    )
    assert b"Host: 127.0.0.1\r\n" in dir_request("/x", "127.0.0.1")


def response(body: bytes, encoding: str = "identity", status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.0 {status}\r\nDate: Tue, 25 Nov 2026 10:00:00 GMT\r\n"
        f"Content-Type: text/plain\r\nContent-Encoding: {encoding}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("identity", lambda b: b),
        ("deflate", zlib.compress),
        ("gzip", gzip.compress),
        ("x-tor-lzma", tor_lzma),
    ],
)
def test_response_bodies(encoding: str, encode: object) -> None:
    parsed = parse_dir_response(response(encode(b"router x"), encoding))  # type: ignore[operator]
    assert (parsed.status, parsed.reason, parsed.body) == (200, "OK", b"router x")
    assert parsed.headers["content-type"] == "text/plain"


def test_response_errors() -> None:
    assert parse_dir_response(response(b"", status="404 Not found")).status == 404
    with pytest.raises(DirectoryError, match="unsupported"):
        parse_dir_response(response(b"x", "x-zstd"))
    with pytest.raises(DirectoryError, match="deflate"):
        parse_dir_response(response(b"not zlib", "deflate"))
    with pytest.raises(DirectoryError, match="head"):
        parse_dir_response(b"HTTP/1.0 200 OK\r\n")
    with pytest.raises(DirectoryError, match="status line"):
        parse_dir_response(b"SSH-2.0\r\n\r\n")


@pytest.mark.parametrize("status", [b"\xb900", b"2\xb20", b"40\xb3"])
def test_a_status_of_non_ascii_digits_is_a_directory_error(status: bytes) -> None:
    """The head is read as Latin-1, where str.isdigit() accepts the superscripts 1, 2 and 3;
    found by fuzzing, this was a bare ValueError (a crash) instead of a DirectoryError."""
    head = b"HTTP/1.0 " + status + b" OK\r\n\r\n"
    with pytest.raises(DirectoryError, match="status line"):
        parse_dir_response(head)


def test_captured_descriptor() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_TEXT)
    assert desc.nickname == "LinkCapture"
    assert desc.address == "127.0.0.1"
    assert desc.fingerprint == FINGERPRINT
    assert desc.master_key_ed25519 == ED25519_ID
    assert desc.identity_cert_key == ED25519_ID
    assert desc.platform is not None and desc.platform.startswith("Tor 0.4.9")
    assert desc.tor_version is not None and desc.tor_version.startswith("0.4.9")
    assert desc.uptime is not None and desc.uptime >= 0
    assert desc.published is not None and len(desc.published) == 19
    assert desc.signing_key == IDENTITY.rsa_identity_key
    assert desc.raw == DESCRIPTOR_TEXT.encode()
    assert parse_server_descriptor(DESCRIPTOR_TEXT.encode()) == desc
    check_descriptor_identity(desc, IDENTITY, now=CAPTURED_AT)


def test_descriptor_fingerprint_mismatch() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_TEXT)
    with pytest.raises(IdentityMismatch, match="fingerprint"):
        check_descriptor_identity(
            desc, dataclasses.replace(IDENTITY, rsa_fingerprint="0" * 40), now=CAPTURED_AT
        )


def test_descriptor_ed25519_mismatch() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_TEXT)
    with pytest.raises(IdentityMismatch, match="master-key-ed25519"):
        check_descriptor_identity(
            desc, dataclasses.replace(IDENTITY, ed25519_identity=bytes(32)), now=CAPTURED_AT
        )


def test_descriptor_signing_key_must_be_the_link_rsa_key() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_TEXT)
    other = dataclasses.replace(IDENTITY, rsa_identity_key=IDENTITY.rsa_identity_key[:-1] + b"\0")
    with pytest.raises(IdentityMismatch, match="signing-key") as info:
        check_descriptor_identity(desc, other, now=CAPTURED_AT)
    assert info.value.actual == FINGERPRINT  # SHA-1 of the descriptor's signing-key


def test_descriptor_identity_cert_must_agree_with_master_key() -> None:
    other = base64.b64encode(bytes(32)).decode().rstrip("=")
    text = DESCRIPTOR_TEXT.replace(
        f"master-key-ed25519 {ED25519_BASE64.rstrip('=')}", f"master-key-ed25519 {other}"
    )
    desc = parse_server_descriptor(text)
    assert desc.master_key_ed25519 == bytes(32)
    # The signatures cover the line: the edited descriptor is refused before any comparison.
    with pytest.raises(DescriptorSignatureError, match="router-sig-ed25519"):
        check_descriptor_identity(desc, IDENTITY, now=CAPTURED_AT)
    # And the comparison itself: the cert still names ED25519_ID.
    with pytest.raises(IdentityMismatch, match="identity-ed25519 certificate"):
        match_descriptor_identity(desc, dataclasses.replace(IDENTITY, ed25519_identity=bytes(32)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("router ", "xrouter ", 1),
        lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("fingerprint ")),
        lambda t: t.replace("master-key-ed25519 ", "master-key-ed25519 !!", 1),
    ],
)
def test_malformed_descriptors(mutate: object) -> None:
    with pytest.raises(DirectoryError):
        parse_server_descriptor(mutate(DESCRIPTOR_TEXT))  # type: ignore[operator]


def test_an_unterminated_object_is_an_error_found_in_one_pass() -> None:
    """A hostile descriptor: after the fields the parser needs, many ``signing-key`` lines each
    opening an object that never ends. The first one is an error; the parser used to rescan
    the rest of the text for each of them (quadratic time, a probe frozen for minutes)."""
    keep = DESCRIPTOR_TEXT[: DESCRIPTOR_TEXT.index("\nuptime ") + 1]  # router .. fingerprint
    hostile = keep + "signing-key\n-----BEGIN RSA PUBLIC KEY-----\n" * 1000
    assert len(hostile.encode()) <= MAX_DESCRIPTOR_BYTES
    with pytest.raises(DirectoryError, match="signing-key object has no END line"):
        parse_server_descriptor(hostile)


def test_descriptor_size_is_bounded() -> None:
    padded = DESCRIPTOR_BYTES + b"\n" * MAX_DESCRIPTOR_BYTES
    with pytest.raises(DirectoryError, match="larger than"):
        parse_server_descriptor(padded)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("deflate", zlib.compress), ("gzip", gzip.compress), ("x-tor-lzma", tor_lzma)],
)
def test_decompressed_body_is_bounded(encoding: str, compress: object) -> None:
    """A small compressed body must not expand past MAX_DIR_RESPONSE_BYTES (a zip bomb: 64 KiB
    on the wire, 64 MiB decoded)."""
    bomb = compress(bytes(16 * MAX_DIR_RESPONSE_BYTES))  # type: ignore[operator]
    assert len(bomb) < MAX_DIR_RESPONSE_BYTES // 16
    with pytest.raises(DirectoryError, match="exceeds"):
        parse_dir_response(response(bomb, encoding))
    exact = compress(bytes(MAX_DIR_RESPONSE_BYTES))  # type: ignore[operator]
    assert len(parse_dir_response(response(exact, encoding)).body) == MAX_DIR_RESPONSE_BYTES


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("deflate", zlib.compress), ("gzip", gzip.compress), ("x-tor-lzma", tor_lzma)],
)
def test_truncated_compressed_body(encoding: str, compress: object) -> None:
    whole = compress(b"router x 127.0.0.1 9001 0 0\n" * 50)  # type: ignore[operator]
    with pytest.raises(DirectoryError, match=encoding):
        parse_dir_response(response(whole[:-6], encoding))


def test_the_captured_x_tor_lzma_consensus_decodes() -> None:
    """tor 0.4.9.11's answer with ``Content-Encoding: x-tor-lzma`` (tests/data/dir)."""
    raw = b"HTTP/1.0 200 OK\r\nContent-Encoding: x-tor-lzma\r\n\r\n" + dir_capture.CONSENSUS_LZMA
    assert parse_dir_response(raw).body == dir_capture.CONSENSUS


def test_an_lzma_header_asking_for_too_much_memory_is_refused() -> None:
    """The .lzma header names the dictionary size; one over tor's 16 MiB limit is refused."""
    big = lzma.compress(
        b"x", format=lzma.FORMAT_ALONE, filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 64 << 20}]
    )
    with pytest.raises(DirectoryError, match="x-tor-lzma"):
        parse_dir_response(response(big, "x-tor-lzma"))
