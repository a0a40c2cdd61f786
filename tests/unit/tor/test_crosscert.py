"""tor.crosscert: the ntor-onion-key-crosscert (dir-spec §2.1.1) of the descriptor captured from
a real tor 0.4.9.11 bridge, mutated every way that must fail, and of descriptors whose keys are
made here: the Curve25519 onion key taken from an Ed25519 key by the inverse map (written here
from the formula, so the module's map is checked against an independent one), and, as tor
does it, an X25519 onion key whose clamped scalar signs the crosscert as an Ed25519 secret."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.support.link_capture import CAPTURED_AT, DESCRIPTOR_BYTES, ED25519_ID
from webtunnel_pt.errors import DescriptorSignatureError, DirectoryError, OnionKeyCrosscertError
from webtunnel_pt.tor.certs import parse_ed25519_cert
from webtunnel_pt.tor.crosscert import ed25519_from_curve25519, verify_ntor_onion_key_crosscert
from webtunnel_pt.tor.directory import ServerDescriptor, parse_server_descriptor

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
P = 2**255 - 19
DESC = parse_server_descriptor(DESCRIPTOR_BYTES)
ONION_KEY_B64 = "nRKVd+XwllIQtYzj3n8/IdysNboOJ1UcHTctQmGUEgs"
assert DESC.ntor_onion_key_crosscert is not None
CROSSCERT_EXPIRES = parse_ed25519_cert(DESC.ntor_onion_key_crosscert).expires


def replace_once(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) == 1, old
    return raw.replace(old, new)


def verify(desc: ServerDescriptor, now: float = CAPTURED_AT) -> None:
    verify_ntor_onion_key_crosscert(desc, now)


# ---- the captured descriptor -----------------------------------------------------------------


def test_descriptor_fields() -> None:
    assert DESC.ntor_onion_key == base64.b64decode(ONION_KEY_B64 + "=")
    assert DESC.ntor_onion_key_crosscert_sign == 1
    cert = parse_ed25519_cert(DESC.ntor_onion_key_crosscert or b"")
    assert cert.cert_type == 0x0A
    assert cert.certified_key == ED25519_ID == DESC.master_key_ed25519


def test_captured_crosscert_verifies() -> None:
    verify(DESC)
    verify(DESC, now=CROSSCERT_EXPIRES)


def test_error_is_a_descriptor_signature_error() -> None:
    assert issubclass(OnionKeyCrosscertError, DescriptorSignatureError)


def test_wrong_sign_bit() -> None:
    raw = replace_once(
        DESCRIPTOR_BYTES, b"ntor-onion-key-crosscert 1\n", b"ntor-onion-key-crosscert 0\n"
    )
    desc = parse_server_descriptor(raw)
    assert desc.ntor_onion_key_crosscert == DESC.ntor_onion_key_crosscert
    with pytest.raises(OnionKeyCrosscertError, match="signature does not verify"):
        verify(desc)


def test_expired() -> None:
    with pytest.raises(OnionKeyCrosscertError, match="expired"):
        verify(DESC, now=CROSSCERT_EXPIRES + 1)


def test_other_identity() -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(*RAW)
    with pytest.raises(OnionKeyCrosscertError, match="another key"):
        verify(dataclasses.replace(DESC, master_key_ed25519=other))


def test_identity_cert_of_another_identity() -> None:
    other = dataclasses.replace(DESC, identity_cert=None, master_key_ed25519=ED25519_ID)
    verify(other)  # master-key-ed25519 alone suffices when there is no identity cert
    assert DESC.identity_cert is not None
    ext = DESC.identity_cert.extensions[0]
    forged = dataclasses.replace(
        DESC.identity_cert, extensions=(dataclasses.replace(ext, data=bytes(32)),)
    )
    with pytest.raises(OnionKeyCrosscertError, match="another key"):
        verify(dataclasses.replace(DESC, identity_cert=forged))


def test_swapped_onion_key_in_the_text() -> None:
    other = X25519PrivateKey.generate().public_key().public_bytes(*RAW)
    text = base64.b64encode(other).rstrip(b"=")
    raw = replace_once(DESCRIPTOR_BYTES, ONION_KEY_B64.encode(), text)
    desc = parse_server_descriptor(raw)
    assert desc.ntor_onion_key == other
    with pytest.raises(OnionKeyCrosscertError, match="signature does not verify"):
        verify(desc)


def test_flipped_signature_byte() -> None:
    cert = bytearray(DESC.ntor_onion_key_crosscert or b"")
    cert[-5] ^= 0x40
    with pytest.raises(OnionKeyCrosscertError, match="signature does not verify"):
        verify(dataclasses.replace(DESC, ntor_onion_key_crosscert=bytes(cert)))


def test_identity_cert_in_place_of_the_crosscert() -> None:
    """A type-4 certificate, validly signed, is not a crosscert."""
    der = base64.b64decode(
        b"".join(
            DESCRIPTOR_BYTES.split(b"-----BEGIN ED25519 CERT-----\n")[1]
            .split(b"-----END")[0]
            .split()
        )
    )
    assert parse_ed25519_cert(der).cert_type == 4
    with pytest.raises(OnionKeyCrosscertError, match="type 4, not 10"):
        verify(dataclasses.replace(DESC, ntor_onion_key_crosscert=der))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ntor_onion_key": None}, "no ntor-onion-key"),
        ({"ntor_onion_key_crosscert": None}, "missing"),
        ({"ntor_onion_key_crosscert_sign": None}, "missing"),
        ({"ntor_onion_key_crosscert": b"\x01\x0a" + bytes(30)}, "does not parse"),
    ],
)
def test_missing_or_malformed(changes: dict[str, object], message: str) -> None:
    with pytest.raises(OnionKeyCrosscertError, match=message):
        verify(dataclasses.replace(DESC, **changes))  # type: ignore[arg-type]


def test_descriptor_without_crosscert_parses() -> None:
    start = DESCRIPTOR_BYTES.index(b"ntor-onion-key-crosscert 1\n")
    end = DESCRIPTOR_BYTES.index(b"-----END ED25519 CERT-----\n", start) + 27
    desc = parse_server_descriptor(DESCRIPTOR_BYTES[:start] + DESCRIPTOR_BYTES[end:])
    assert desc.ntor_onion_key_crosscert is None and desc.ntor_onion_key_crosscert_sign is None
    with pytest.raises(OnionKeyCrosscertError, match="missing"):
        verify(desc)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"ntor-onion-key-crosscert 1\n", b"ntor-onion-key-crosscert 2\n", "sign bit"),
        (ONION_KEY_B64.encode(), ONION_KEY_B64[:-4].encode(), "not 32 bytes"),
        (ONION_KEY_B64.encode(), b"*" + ONION_KEY_B64[1:].encode(), "not base64"),
    ],
)
def test_descriptor_lines_that_do_not_parse(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        parse_server_descriptor(replace_once(DESCRIPTOR_BYTES, old, new))


# ---- the Curve25519 -> Ed25519 map ------------------------------------------------------------


def curve25519_from_ed25519(ed_public: bytes) -> tuple[bytes, int]:
    """The inverse map, ``u = (1 + y) / (1 - y)``, and the sign bit of x."""
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, P - 2, P) % P
    return u.to_bytes(32, "little"), ed_public[31] >> 7


def test_base_point() -> None:
    """X25519's base point u = 9 is Ed25519's base point, y = 4/5, x even."""
    base = bytes.fromhex("58" + "66" * 31)
    assert ed25519_from_curve25519((9).to_bytes(32, "little"), 0) == base
    assert ed25519_from_curve25519((9).to_bytes(32, "little"), 1) == base[:31] + b"\xe6"
    # The unused top bit and a non-canonical encoding (u + p) change nothing.
    assert ed25519_from_curve25519((9 + (1 << 255)).to_bytes(32, "little"), 0) == base
    assert ed25519_from_curve25519((9 + P).to_bytes(32, "little"), 0) == base


@pytest.mark.parametrize("run", range(8))
def test_map_inverts_the_edwards_to_montgomery_map(run: int) -> None:
    ed_public = Ed25519PrivateKey.generate().public_key().public_bytes(*RAW)
    u, sign = curve25519_from_ed25519(ed_public)
    assert ed25519_from_curve25519(u, sign) == ed_public


@pytest.mark.parametrize(
    ("key", "sign"), [((P - 1).to_bytes(32, "little"), 0), (bytes(31), 0), (bytes(32), 2)]
)
def test_map_refuses(key: bytes, sign: int) -> None:
    with pytest.raises(OnionKeyCrosscertError):
        ed25519_from_curve25519(key, sign)


# ---- descriptors with keys made here --------------------------------------------------------


def make_crosscert(
    signer: Ed25519PrivateKey,
    certified: bytes,
    *,
    cert_type: int = 0x0A,
    expires: float = CAPTURED_AT + 3600,
    signed_with: bytes | None = None,
) -> bytes:
    """A Tor Ed25519 certificate (cert-spec §2.1), written out here."""
    body = struct.pack(">BBIB", 1, cert_type, int(expires // 3600), 1) + certified
    if signed_with is None:
        body += b"\x00"
    else:
        body += b"\x01" + struct.pack(">HBB", 32, 4, 0) + signed_with
    return body + signer.sign(body)


def made_descriptor(**cert_options: object) -> tuple[ServerDescriptor, Ed25519PrivateKey]:
    """The captured descriptor with its onion key and crosscert replaced by ones made here."""
    onion_ed = Ed25519PrivateKey.generate()
    onion_ed_public = onion_ed.public_key().public_bytes(*RAW)
    onion_key, sign = curve25519_from_ed25519(onion_ed_public)
    cert = make_crosscert(onion_ed, ED25519_ID, **cert_options)  # type: ignore[arg-type]
    desc = dataclasses.replace(
        DESC,
        ntor_onion_key=onion_key,
        ntor_onion_key_crosscert_sign=sign,
        ntor_onion_key_crosscert=cert,
    )
    return desc, onion_ed


def test_made_crosscert_verifies_with_both_sign_bits() -> None:
    signs = set()
    for _ in range(16):
        desc, _ = made_descriptor()
        verify(desc)
        signs.add(desc.ntor_onion_key_crosscert_sign)
        flipped = dataclasses.replace(
            desc, ntor_onion_key_crosscert_sign=1 - (desc.ntor_onion_key_crosscert_sign or 0)
        )
        with pytest.raises(OnionKeyCrosscertError):
            verify(flipped)
    assert signs == {0, 1}  # 2**-15 to fail by chance


def test_made_crosscert_naming_its_signer_verifies() -> None:
    desc, onion_ed = made_descriptor()
    signer = onion_ed.public_key().public_bytes(*RAW)
    verify(
        dataclasses.replace(
            desc, ntor_onion_key_crosscert=make_crosscert(onion_ed, ED25519_ID, signed_with=signer)
        )
    )


def test_made_crosscert_naming_another_signer() -> None:
    desc, onion_ed = made_descriptor()
    cert = make_crosscert(onion_ed, ED25519_ID, signed_with=ED25519_ID)
    with pytest.raises(OnionKeyCrosscertError, match="signing key other"):
        verify(dataclasses.replace(desc, ntor_onion_key_crosscert=cert))


def test_made_crosscert_of_the_wrong_type() -> None:
    desc, _ = made_descriptor(cert_type=0x0B)
    with pytest.raises(OnionKeyCrosscertError, match="type 11"):
        verify(desc)


def test_made_crosscert_expired() -> None:
    desc, _ = made_descriptor(expires=CAPTURED_AT - 3600)
    with pytest.raises(OnionKeyCrosscertError, match="expired"):
        verify(desc)


def test_made_crosscert_signed_by_another_key() -> None:
    desc, _ = made_descriptor()
    other = make_crosscert(Ed25519PrivateKey.generate(), ED25519_ID)
    with pytest.raises(OnionKeyCrosscertError, match="signature does not verify"):
        verify(dataclasses.replace(desc, ntor_onion_key_crosscert=other))


# ---- the way tor makes it: an X25519 onion key, its scalar used as an Ed25519 secret ---------
# Tor (proposal 228) signs the crosscert with the Ed25519 key whose secret scalar is the clamped
# Curve25519 secret itself; cryptography cannot sign with a bare scalar, so the Edwards
# arithmetic of RFC 8032 §5.1 is written out here.

D = -121665 * pow(121666, P - 2, P) % P
L = 2**252 + 27742317777372353535851937790883648493
Point = tuple[int, int, int, int]  # extended coordinates X, Y, Z, T


def _base_point() -> Point:
    y = 4 * pow(5, P - 2, P) % P
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if x & 1:
        x = P - x
    return x, y, 1, x * y % P


def _add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * D * p[3] * q[3] % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _mul(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _encode(point: Point) -> bytes:
    z_inv = pow(point[2], P - 2, P)
    x, y = point[0] * z_inv % P, point[1] * z_inv % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _sign(scalar: int, prefix: bytes, public: bytes, message: bytes) -> bytes:
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % L
    big_r = _encode(_mul(r, _base_point()))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % L
    return big_r + ((r + k * scalar) % L).to_bytes(32, "little")


def tor_style_descriptor(identity: bytes) -> ServerDescriptor:
    """A fresh X25519 onion key and the crosscert tor would make for it."""
    secret = bytearray(os.urandom(32))
    onion_key = X25519PrivateKey.from_private_bytes(bytes(secret)).public_key().public_bytes(*RAW)
    secret[0] &= 248
    secret[31] = (secret[31] & 127) | 64  # X25519's clamping: the scalar both curves use
    scalar = int.from_bytes(secret, "little")
    ed_public = _encode(_mul(scalar, _base_point()))
    body = struct.pack(">BBIB", 1, 0x0A, int(CAPTURED_AT // 3600) + 1, 1) + identity + b"\x00"
    prefix = hashlib.sha512(b"high part" + bytes(secret)).digest()[:32]
    cert = body + _sign(scalar, prefix, ed_public, body)
    Ed25519PublicKey.from_public_bytes(ed_public).verify(cert[-64:], body)  # the helper is sound
    return dataclasses.replace(
        DESC,
        ntor_onion_key=onion_key,
        ntor_onion_key_crosscert_sign=ed_public[31] >> 7,
        ntor_onion_key_crosscert=cert,
    )


@pytest.mark.parametrize("run", range(4))
def test_tor_style_crosscert(run: int) -> None:
    desc = tor_style_descriptor(ED25519_ID)
    assert desc.ntor_onion_key is not None
    verify(desc)
    with pytest.raises(OnionKeyCrosscertError):
        verify(
            dataclasses.replace(
                desc, ntor_onion_key_crosscert_sign=1 - (desc.ntor_onion_key_crosscert_sign or 0)
            )
        )
    other = tor_style_descriptor(ED25519_ID)
    with pytest.raises(OnionKeyCrosscertError):
        verify(dataclasses.replace(desc, ntor_onion_key=other.ntor_onion_key))
