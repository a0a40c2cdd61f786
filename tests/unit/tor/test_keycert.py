"""Authority key certificates (dir-spec §3.1): real tor-gencert output, certificates built by
tests/support/dirauth.py, and mutations that must fail closed."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import dirauth
from webtunnel_pt.errors import DirectoryError, KeyCertificateError, WebtunnelError
from webtunnel_pt.tor import keycert
from webtunnel_pt.tor.authorities import DirAuthority, parse_dir_authority
from webtunnel_pt.tor.keycert import (
    check_for_authority,
    check_validity,
    parse_key_certificate,
    parse_key_certificates,
    verify_key_certificate,
)

DATA = Path(__file__).parents[2] / "data" / "dir"
#: Made by tor-gencert 0.4.9.11 (3072-bit identity, 2048-bit signing keys), see README.md.
GENCERT = (DATA / "gencert-authority.cert").read_bytes()
GENCERT_2 = (DATA / "gencert-authority-2.cert").read_bytes()
GENCERT_FP = bytes.fromhex("253F96533BF6576AEA56E03E34EF1F6CE9A9F706")
GENCERT_PUBLISHED = 1796245327.0  # 2026-12-02 21:02:07 UTC
GENCERT_EXPIRES = 1827781327.0  # 2027-12-02 21:02:07 UTC

PUBLISHED = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
EXPIRES = PUBLISHED + 365 * 86400
NOW = PUBLISHED + 86400

IDENTITY = dirauth.rsa_key(dirauth.TEST_IDENTITY_BITS)
SIGNING = dirauth.rsa_key(dirauth.TEST_SIGNING_BITS)
OTHER_IDENTITY = dirauth.rsa_key(dirauth.TEST_IDENTITY_BITS, 1)
OTHER_SIGNING = dirauth.rsa_key(dirauth.TEST_SIGNING_BITS, 1)


def make(**kwargs: object) -> bytes:
    args: dict[str, object] = {"published": PUBLISHED, "expires": EXPIRES} | kwargs
    return dirauth.make_key_certificate(IDENTITY, SIGNING, **args)  # type: ignore[arg-type]


GOOD = make(address="192.0.2.7:7000")


def authority_for(identity: object) -> DirAuthority:
    return parse_dir_authority(dirauth.authority_line(identity))  # type: ignore[arg-type]


# -- real certificates ------------------------------------------------------------------------


def test_tor_gencert_certificate() -> None:
    cert = parse_key_certificate(GENCERT)
    assert cert.identity_fingerprint == GENCERT_FP
    assert (cert.identity_key.key_size, cert.signing_key.key_size) == (3072, 2048)
    assert (cert.published, cert.expires) == (GENCERT_PUBLISHED, GENCERT_EXPIRES)
    assert cert.dir_address == ("127.0.0.1", 7000)
    assert cert.raw == GENCERT
    assert cert.signing_key_digest == hashlib.sha1(dirauth.public_der(cert.signing_key)).digest()
    assert hashlib.sha1(dirauth.public_der(cert.identity_key)).digest() == GENCERT_FP
    # Hashable and comparable by value (a cache may keep certificates in a set).
    assert {cert, parse_key_certificate(GENCERT)} == {cert}


def test_two_concatenated_certificates_of_one_authority() -> None:
    first, second = parse_key_certificates(GENCERT + GENCERT_2)
    assert first.raw == GENCERT and second.raw == GENCERT_2
    assert first.identity_fingerprint == second.identity_fingerprint == GENCERT_FP
    assert first.signing_key_digest != second.signing_key_digest
    assert second.dir_address is None
    assert parse_key_certificates(b"") == []
    # Empty lines between documents are allowed by the meta-format and belong to neither.
    spaced = parse_key_certificates(GENCERT + b"\n" + GENCERT_2 + b"\n")
    assert [c.raw for c in spaced] == [GENCERT, GENCERT_2]


def test_tor_gencert_certificate_every_signed_byte_matters() -> None:
    """Flip one bit at a sample of offsets across the whole certificate: never accepted as is."""
    for offset in range(0, len(GENCERT), 7):
        mutated = bytearray(GENCERT)
        mutated[offset] ^= 0x01
        with pytest.raises(KeyCertificateError):
            parse_key_certificate(bytes(mutated))


# -- built certificates -----------------------------------------------------------------------


def test_built_certificate_parses() -> None:
    cert = parse_key_certificate(GOOD)
    assert cert.identity_fingerprint == dirauth.key_digest(IDENTITY)
    assert cert.signing_key_digest == dirauth.key_digest(SIGNING)
    assert dirauth.public_der(cert.signing_key) == dirauth.public_der(SIGNING)
    assert (cert.published, cert.expires) == (PUBLISHED, EXPIRES)
    assert cert.dir_address == ("192.0.2.7", 7000)
    verify_key_certificate(cert, authority_for(IDENTITY), NOW)


def test_old_crosscert_label_and_unknown_items_accepted() -> None:
    cert = parse_key_certificate(
        make(crosscert_label="SIGNATURE", extra=b"future-item 1 2\n" + pem(b"x", "SOME OBJECT"))
    )
    assert cert.identity_fingerprint == dirauth.key_digest(IDENTITY)


def pem(data: bytes, label: str) -> bytes:
    return dirauth.pem_object(label, data)


def test_validity_window() -> None:
    cert = parse_key_certificate(GOOD)
    check_validity(cert, PUBLISHED)
    check_validity(cert, EXPIRES)
    with pytest.raises(KeyCertificateError, match="future"):
        check_validity(cert, PUBLISHED - 1)
    check_validity(cert, PUBLISHED - 60, skew_s=60)
    with pytest.raises(KeyCertificateError, match="expired at 2024-11-13 22:13:20"):
        check_validity(cert, EXPIRES + 1)
    with pytest.raises(KeyCertificateError, match="expired"):
        verify_key_certificate(cert, authority_for(IDENTITY), EXPIRES + 1)


def test_wrong_authority() -> None:
    cert = parse_key_certificate(GOOD)
    check_for_authority(cert, authority_for(IDENTITY))
    with pytest.raises(KeyCertificateError, match="testauth"):
        check_for_authority(cert, authority_for(OTHER_IDENTITY))
    with pytest.raises(KeyCertificateError, match="v3ident differs"):
        verify_key_certificate(cert, authority_for(OTHER_IDENTITY), NOW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param(
            {"fingerprint": dirauth.key_digest(OTHER_IDENTITY)}, "not its identity", id="wrong fp"
        ),
        pytest.param(
            {"certification_key": OTHER_IDENTITY}, "certification does not verify", id="wrong id"
        ),
        pytest.param(
            {"crosscert": dirauth.rsa_sign_digest(OTHER_SIGNING, dirauth.key_digest(IDENTITY))},
            "crosscert does not verify",
            id="crosscert by another signing key",
        ),
        pytest.param(
            {"crosscert": dirauth.rsa_sign_digest(SIGNING, dirauth.key_digest(OTHER_IDENTITY))},
            "crosscert does not verify",
            id="crosscert of another identity",
        ),
        pytest.param(
            {"crosscert": dirauth.rsa_sign_digest(SIGNING, hashlib.sha1(b"x").digest()[:19])},
            "crosscert does not verify",
            id="crosscert of a short digest",
        ),
        pytest.param({"crosscert": b"\x01" * 127}, "crosscert", id="crosscert short"),
        pytest.param({"crosscert_label": "RSA PUBLIC KEY"}, "crosscert", id="crosscert label"),
        pytest.param({"expires": PUBLISHED}, "expires before", id="expires at published"),
        pytest.param({"address": "192.0.2.256:7000"}, "dir-address", id="bad address"),
        pytest.param({"address": "192.0.2.7"}, "dir-address", id="address without port"),
        pytest.param({"address": "192.0.2.7:0"}, "dir-address", id="port 0"),
        pytest.param({"address": "[::1]:70"}, "dir-address", id="IPv6 address"),
        pytest.param({"extra": b"fingerprint " + b"A" * 40 + b"\n"}, "repeats", id="two fps"),
        pytest.param({"extra": b"dir-key-certificate-version 3\n"}, "has no", id="second version"),
    ],
)
def test_bad_built_certificates(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(KeyCertificateError, match=match):
        parse_key_certificate(make(**kwargs))


def test_flipped_signature_bytes() -> None:
    cert = GOOD
    sig_start = cert.index(b"-----BEGIN SIGNATURE-----\n") + len(b"-----BEGIN SIGNATURE-----\n")
    body = cert[sig_start : cert.index(b"-----END SIGNATURE-----")]
    signature = base64.b64decode(body)
    for index in (0, 1, len(signature) // 2, len(signature) - 1):
        flipped = bytearray(signature)
        flipped[index] ^= 0x80
        mutated = cert[:sig_start] + dirauth.pem_object("SIGNATURE", bytes(flipped))[26:-24]
        mutated += cert[cert.index(b"-----END SIGNATURE-----") :]
        with pytest.raises(KeyCertificateError, match="certification does not verify"):
            parse_key_certificate(mutated)


def test_signed_span_is_exactly_through_the_certification_line() -> None:
    """Changing any byte before the SIGNATURE object breaks the signature; re-signing the
    change with the identity key makes it valid again (the span is what tor-gencert signs)."""
    prefix = GOOD[: GOOD.index(b"dir-key-certification\n") + len(b"dir-key-certification\n")]
    changed = prefix.replace(b"dir-address 192.0.2.7:7000", b"dir-address 192.0.2.8:7000")
    with pytest.raises(KeyCertificateError, match="certification does not verify"):
        parse_key_certificate(changed + GOOD[len(prefix) :])
    resigned = parse_key_certificate(dirauth.certify(changed, IDENTITY))
    assert resigned.dir_address == ("192.0.2.8", 7000)


def _without_item(cert: bytes, keyword: bytes) -> bytes:
    start = cert.index(b"\n" + keyword + b"\n") + 1
    end = cert.index(b"-----\n", cert.index(b"-----END", start)) + len(b"-----\n")
    return cert[:start] + cert[end:]


@pytest.mark.parametrize("keyword", [b"dir-key-crosscert", b"dir-signing-key"])
def test_missing_object_items(keyword: bytes) -> None:
    prefix = GOOD[: GOOD.index(b"dir-key-certification\n") + len(b"dir-key-certification\n")]
    with pytest.raises(KeyCertificateError, match=f"no {keyword.decode()}"):
        parse_key_certificate(dirauth.certify(_without_item(prefix, keyword), IDENTITY))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"dir-key-certificate-version 3\n", b"dir-key-certificate-version 4\n", "version 3"),
        (b"dir-key-certificate-version 3\n", b"dir-key-certificate-version\n", "version 3"),
        (b"dir-key-certificate-version 3\n", b"dir-key-certificate-version 30\n", "version 3"),
        (b"dir-key-published ", b"dir-key-published 2023-11-14 ", "malformed"),
        (b"fingerprint ", b"fingerprint\n", "malformed"),
        (b"dir-signing-key\n", b"dir-signing-key 1\n", "RSA PUBLIC KEY"),
        (b"dir-key-crosscert\n", b"dir-key-crosscert 1\n", "crosscert has no"),
        (b"dir-key-published ", b"dir-key-published 1 ", "malformed"),
        (b"dir-key-published 2023-11-14", b"dir-key-published 2023-13-14", "not a date"),
        (b"dir-key-expires 2024-11-13", b"dir-key-expires 2024-11-1", "YYYY-MM-DD"),
        (b"fingerprint ", b"fingerprint X", "40 hex"),
        (b"dir-identity-key\n", b"dir-identity-key x\n", "RSA PUBLIC KEY"),
        (b"dir-key-certification\n", b"dir-key-certification \n", "has arguments"),
        (b"dir-address 192.0.2.7:7000\n", b"", "certification does not verify"),
    ],
)
def test_line_mutations_resigned(old: bytes, new: bytes, match: str) -> None:
    """Each mutation is re-signed, so only the structural check can refuse it."""
    end = GOOD.index(b"dir-key-certification\n") + len(b"dir-key-certification\n")
    prefix = GOOD[:end].replace(old, new, 1)
    if match == "certification does not verify":
        mutated = prefix + GOOD[end:]  # not re-signed
    elif old == b"dir-key-certification\n":
        mutated = prefix + GOOD[end:]
    else:
        mutated = dirauth.certify(prefix, IDENTITY)
    with pytest.raises(KeyCertificateError, match=match):
        parse_key_certificate(mutated)


def test_extra_arguments_allowed_where_dir_spec_allows_them() -> None:
    end = GOOD.index(b"dir-key-certification\n") + len(b"dir-key-certification\n")
    prefix = GOOD[:end]
    for old, new in [
        (b"dir-key-certificate-version 3\n", b"dir-key-certificate-version 3 future\n"),
        (b"dir-address 192.0.2.7:7000\n", b"dir-address 192.0.2.7:7000 x y\n"),
    ]:
        prefix = prefix.replace(old, new, 1)
    fp = dirauth.key_digest(IDENTITY).hex().upper().encode()
    prefix = prefix.replace(b"fingerprint " + fp, b"fingerprint " + fp + b" extra", 1)
    cert = parse_key_certificate(dirauth.certify(prefix, IDENTITY))
    assert cert.identity_fingerprint == dirauth.key_digest(IDENTITY)
    assert cert.dir_address == ("192.0.2.7", 7000)


def test_key_size_and_exponent_rules() -> None:
    small_identity = dirauth.rsa_key(1024, 7)
    cert = dirauth.make_key_certificate(
        small_identity, SIGNING, published=PUBLISHED, expires=EXPIRES
    )
    with pytest.raises(KeyCertificateError, match="2048-8192 bits"):
        parse_key_certificate(cert)
    from cryptography.hazmat.primitives.asymmetric import rsa

    odd_e = rsa.generate_private_key(public_exponent=3, key_size=1024)
    cert = dirauth.make_key_certificate(IDENTITY, odd_e, published=PUBLISHED, expires=EXPIRES)
    with pytest.raises(KeyCertificateError, match="exponent 65537"):
        parse_key_certificate(cert)


def test_not_a_certificate() -> None:
    with pytest.raises(KeyCertificateError, match="expected one"):
        parse_key_certificate(b"")
    with pytest.raises(KeyCertificateError, match="expected one"):
        parse_key_certificate(GOOD + GOOD)
    with pytest.raises(KeyCertificateError, match="does not parse"):
        parse_key_certificates(b"fingerprint x\n" + GOOD)
    with pytest.raises(KeyCertificateError, match="does not parse"):
        parse_key_certificates(GOOD[:-1])
    with pytest.raises(KeyCertificateError, match="does not end with"):
        parse_key_certificates(GOOD + b"trailer\n")


def test_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keycert, "MAX_KEY_CERTIFICATES", 1)
    with pytest.raises(KeyCertificateError, match="over 1 key certificates"):
        parse_key_certificates(GOOD + GOOD)
    monkeypatch.setattr(keycert, "MAX_KEY_CERTIFICATE_BYTES", len(GOOD) - 1)
    with pytest.raises(KeyCertificateError, match="over"):
        parse_key_certificates(GOOD)
    monkeypatch.setattr(keycert, "MAX_KEY_CERTIFICATES_BYTES", len(GOOD) - 1)
    with pytest.raises(KeyCertificateError, match="response is"):
        parse_key_certificates(GOOD)


def test_error_is_a_directory_error() -> None:
    assert issubclass(KeyCertificateError, DirectoryError)


def test_rsa_sign_digest_matches_cryptography_for_a_digest_info() -> None:
    """The helper's raw signature equals cryptography's PKCS#1 v1.5 when the 'digest' is a
    DigestInfo: same padding, same exponentiation."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    message = b"abc"
    digest_info = bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(message).digest()
    expected = SIGNING.sign(message, padding.PKCS1v15(), hashes.SHA1())
    assert dirauth.rsa_sign_digest(SIGNING, digest_info) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_key_certificate_errors(data: bytes) -> None:
    try:
        parse_key_certificates(data)
    except KeyCertificateError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.integers(min_value=0, max_value=255))
def test_mutated_certificates_fail_closed(offset: int, value: int) -> None:
    mutated = GOOD[:offset] + bytes([value]) + GOOD[offset + 1 :]
    """Every byte is signed or structural: any change is refused, only with our error."""
    try:
        parse_key_certificate(mutated)
    except WebtunnelError as exc:
        assert isinstance(exc, KeyCertificateError)
        return
    assert mutated == GOOD
