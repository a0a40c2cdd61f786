"""link.certs: Tor certificates (cert-spec) and the CERTS verification of tor-link.md §4.2.

Positive vectors: chutney's certs from tor-link.md §11 and a CERTS cell captured from a real
tor 0.4.9.11 bridge (tests/data/capture_link.py). Negative variants are derived from the
captured bytes: wrong fingerprint, clock in the future, flipped signature bytes, another TLS
certificate, missing or duplicated types.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.link_capture import (
    CAPTURED_AT,
    CERTS_CELL,
    ED25519_BASE64,
    ED25519_ID,
    FINGERPRINT,
    TLS_LEAF_DER,
)
from webtunnel_pt.errors import (
    BadCertificateSignature,
    CertificateError,
    CertificateExpired,
    IdentityMismatch,
    LinkCertMismatch,
    MalformedCertificate,
    MissingCertificate,
)
from webtunnel_pt.tor.certs import (
    CROSS_CERT_PREFIX,
    CertType,
    KeyType,
    parse_certs_cell,
    parse_ed25519_cert,
    parse_rsa_cross_cert,
    rsa_fingerprint,
    rsa_raw_verify,
    verify_certs,
    verify_ed25519_cert,
)

# ---- chutney vectors (tor-link.md §11) ---------------------------------------------------------

TYPE4 = bytes.fromhex(
    "01 04 0006CC2A 01 F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B0"
    "01 0020 04 00 DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9"
    "FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA"
    "094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602"
)
TYPE5 = bytes.fromhex(
    "01 05 0006C98A 03 B4FD606B64E4CBD466B8D76CB131069BAE6F3AA1878857C9F624E31D77A799B8"
    "00 7173E5F8068431D0D3F5EE16B4C9FFD59DF373E152A87281BAE744AA5FCF7217"
    "1BF4B27C4E8FC1C6A9FC5CA11058BC49647063D7903CFD9F512F89099B27BC0C"
)
RSA_ID_DER = bytes.fromhex(
    "30818902818100d38b1e6ceb946e0db0751f4cbace3dcb9688b6c25304227b4710c35afb7362"
    "7e50500f5913e158b621802612d1c75827003703338375237552eb3cd3c12f6ab3604e60c1a2d26bb1fb"
    "ad206ff023969a90909d6a65a5458a5312c26ebd3a3dad30302d4515cdcd264146ac18e6fc60a04bd3ec"
    "327f04294d96ba5aa25b464c3f0203010001"
)
TYPE7 = bytes.fromhex(
    "DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9 0006DA3A 80"
    "5CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A5"
    "2DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91C"
    "DCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED8964"
    "88DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F"
)
ED_ID = bytes.fromhex("DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9")
SIGNING = bytes.fromhex("F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B0")
VECTOR_NOW = dt.datetime(2020, 9, 25, 2, 13, 20, tzinfo=dt.UTC).timestamp()


def rsa_id_key() -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(
        # PKCS#1 RSAPublicKey wrapped as SubjectPublicKeyInfo is what the loader wants
        bytes.fromhex("30819f300d06092a864886f70d010101050003818d00") + RSA_ID_DER
    )
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_type4_vector() -> None:
    cert = parse_ed25519_cert(TYPE4)
    assert (cert.cert_type, cert.key_type) == (CertType.ED_ID_SIGNING, KeyType.ED25519)
    assert cert.certified_key == SIGNING
    assert cert.signing_key == ED_ID
    assert dt.datetime.fromtimestamp(cert.expires, dt.UTC) == dt.datetime(
        2020, 10, 26, 18, tzinfo=dt.UTC
    )
    verify_ed25519_cert(cert, ED_ID, "type 4")


def test_type5_vector() -> None:
    cert = parse_ed25519_cert(TYPE5)
    assert (cert.cert_type, cert.key_type) == (CertType.ED_SIGNING_LINK, KeyType.SHA256_OF_X509)
    assert cert.signing_key is None and cert.extensions == ()
    verify_ed25519_cert(cert, SIGNING, "type 5")
    with pytest.raises(BadCertificateSignature):
        verify_ed25519_cert(cert, ED_ID, "type 5")


def test_rsa_identity_fingerprint_vector() -> None:
    key = rsa_id_key()
    assert (
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1) == RSA_ID_DER
    )
    assert rsa_fingerprint(key) == "2F1FB49BB332A9EEC617E41E911C33FB3890AEF3"


def test_cross_cert_vector() -> None:
    cross = parse_rsa_cross_cert(TYPE7)
    assert cross.ed25519_key == ED_ID
    assert dt.datetime.fromtimestamp(cross.expires, dt.UTC) == dt.datetime(
        2021, 3, 25, 18, tzinfo=dt.UTC
    )
    assert cross.expires > VECTOR_NOW
    digest = hashlib.sha256(CROSS_CERT_PREFIX + TYPE7[:36]).digest()
    assert rsa_raw_verify(rsa_id_key(), cross.signature, digest)
    assert not rsa_raw_verify(rsa_id_key(), cross.signature, bytes(32))


def test_ed25519_cert_must_use_all_bytes() -> None:
    with pytest.raises(MalformedCertificate):
        parse_ed25519_cert(TYPE5 + b"\0")
    with pytest.raises(MalformedCertificate):
        parse_ed25519_cert(TYPE4[:-1])
    with pytest.raises(MalformedCertificate):
        parse_rsa_cross_cert(TYPE7 + b"\0")


def test_unknown_critical_extension_invalidates() -> None:
    base = TYPE5[:39]
    ext = struct.pack(">BHBB", 1, 2, 9, 1) + b"zz"  # N=1, length 2, type 9, AFFECTS_VALIDATION
    with pytest.raises(MalformedCertificate, match="critical"):
        parse_ed25519_cert(base + ext + bytes(64))
    lenient = struct.pack(">BHBB", 1, 2, 9, 0) + b"zz"
    assert parse_ed25519_cert(base + lenient + bytes(64)).extensions[0].ext_type == 9


# ---- captured from tor 0.4.9.11 ----------------------------------------------------------------


def captured() -> tuple[bytes, bytes, str, float]:
    return CERTS_CELL, TLS_LEAF_DER, FINGERPRINT, CAPTURED_AT


def verify(certs: dict[int, bytes], leaf: bytes, fingerprint: str | None, now: float) -> object:
    return verify_certs(certs, tls_leaf_der=leaf, expected_fingerprint=fingerprint, now=now)


def negative_serial(der: bytes) -> bytes:
    """The same X.509 certificate with its serial number's sign bit set (RFC 5280: positive)."""
    marker = b"\xa0\x03\x02\x01\x02\x02"  # [0] version v3, then the serial's INTEGER tag
    at = der.index(marker) + len(marker) + 1  # past the serial's one-byte length
    return der[:at] + bytes([der[at] | 0x80]) + der[at + 1 :]


def test_rsa_identity_certificate_with_a_negative_serial_is_malformed() -> None:
    """cryptography only warns about it today; the CERTS check refuses it, quietly."""
    cell, leaf, fingerprint, now = captured()
    certs = dict(parse_certs_cell(cell))
    certs[CertType.RSA_IDENTITY_X509] = negative_serial(certs[CertType.RSA_IDENTITY_X509])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedCertificate, match="serial"):
            verify(certs, leaf, fingerprint, now)


def test_captured_certs_verify() -> None:
    payload, leaf, fingerprint, now = captured()
    certs = parse_certs_cell(payload)
    assert sorted(certs) == [1, 2, 4, 5, 7]
    assert certs[CertType.LINK_X509] == leaf  # the legacy type-1 cert is the TLS leaf
    identity = verify_certs(
        certs, tls_leaf_der=leaf, expected_fingerprint=fingerprint.lower(), now=now
    )
    assert identity.rsa_fingerprint == fingerprint
    assert identity.ed25519_base64 == ED25519_BASE64.rstrip("=")
    assert identity.ed25519_identity == ED25519_ID
    assert identity.link_cert_sha256 == hashlib.sha256(leaf).digest()
    assert identity.expires > now


def test_wrong_fingerprint() -> None:
    payload, leaf, fingerprint, now = captured()
    wrong = fingerprint[::-1]
    with pytest.raises(IdentityMismatch) as info:
        verify(parse_certs_cell(payload), leaf, wrong, now)
    assert (info.value.expected, info.value.actual) == (wrong, fingerprint)


def test_wrong_ed25519_identity() -> None:
    payload, leaf, fingerprint, now = captured()
    with pytest.raises(IdentityMismatch, match="Ed25519"):
        verify_certs(
            parse_certs_cell(payload),
            tls_leaf_der=leaf,
            expected_fingerprint=fingerprint,
            now=now,
            expected_ed25519=bytes(32),
        )


@pytest.mark.parametrize("years", [1, 10])
def test_expired_with_clock_in_the_future(years: int) -> None:
    payload, leaf, fingerprint, now = captured()
    with pytest.raises(CertificateExpired):
        verify(parse_certs_cell(payload), leaf, fingerprint, now + years * 366 * 86400)


def test_rsa_identity_not_yet_valid_with_clock_in_the_past() -> None:
    """tor backdates notBefore by months; 30 days of slack before that are tolerated."""
    payload, leaf, fingerprint, _ = captured()
    certs = parse_certs_cell(payload)
    not_before = x509.load_der_x509_certificate(certs[2]).not_valid_before_utc.timestamp()
    verify(certs, leaf, fingerprint, not_before - 29 * 86400)
    with pytest.raises(CertificateExpired, match="not valid before"):
        verify(certs, leaf, fingerprint, not_before - 31 * 86400)


@pytest.mark.parametrize("cert_type", [2, 4, 5, 7])
def test_flipped_signature_byte(cert_type: int) -> None:
    payload, leaf, fingerprint, now = captured()
    certs = parse_certs_cell(payload)
    body = bytearray(certs[cert_type])
    body[-1] ^= 0x01  # the last bytes are signature bytes in every format here
    certs[cert_type] = bytes(body)
    with pytest.raises(BadCertificateSignature):
        verify(certs, leaf, fingerprint, now)


@pytest.mark.parametrize("cert_type", [4, 5, 7])
def test_flipped_signed_byte(cert_type: int) -> None:
    payload, leaf, fingerprint, now = captured()
    certs = parse_certs_cell(payload)
    body = bytearray(certs[cert_type])
    body[10] ^= 0x01  # inside the certified key: the signature no longer covers it
    certs[cert_type] = bytes(body)
    with pytest.raises(CertificateError):
        verify(certs, leaf, fingerprint, now)


def test_link_cert_mismatch() -> None:
    payload, leaf, fingerprint, now = captured()
    other = bytearray(leaf)
    other[-1] ^= 0x01
    with pytest.raises(LinkCertMismatch):
        verify(parse_certs_cell(payload), bytes(other), fingerprint, now)


@pytest.mark.parametrize("cert_type", [2, 4, 5, 7])
def test_missing_certificate(cert_type: int) -> None:
    payload, leaf, fingerprint, now = captured()
    certs = parse_certs_cell(payload)
    del certs[cert_type]
    with pytest.raises(MissingCertificate, match=f"type-{cert_type}"):
        verify(certs, leaf, fingerprint, now)


def test_type_mixup_is_refused() -> None:
    payload, leaf, fingerprint, now = captured()
    certs = parse_certs_cell(payload)
    certs[4], certs[5] = certs[5], certs[4]
    with pytest.raises(CertificateError):
        verify(certs, leaf, fingerprint, now)


def build_cell(entries: list[tuple[int, bytes]]) -> bytes:
    return bytes([len(entries)]) + b"".join(struct.pack(">BH", t, len(b)) + b for t, b in entries)


def test_certs_cell_framing() -> None:
    payload, _, _, _ = captured()
    assert parse_certs_cell(payload + b"trailing") == parse_certs_cell(payload)
    with pytest.raises(MalformedCertificate, match="two"):
        parse_certs_cell(build_cell([(4, TYPE4), (4, TYPE4)]))
    with pytest.raises(MalformedCertificate, match="truncated"):
        parse_certs_cell(build_cell([(4, TYPE4)])[:-1])
    with pytest.raises(MalformedCertificate):
        parse_certs_cell(b"")
    assert parse_certs_cell(build_cell([(9, b"unknown"), (5, TYPE5)])) == {9: b"unknown", 5: TYPE5}
