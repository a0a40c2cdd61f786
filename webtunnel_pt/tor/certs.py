"""CERTS cell verification for a client that does not authenticate (tor-link.md §4.2,
cert-spec §2.1, §2.2.1, appendix A.1).

    parse_certs_cell(payload)  -> {cert type: bytes}        duplicates rejected
    parse_ed25519_cert(bytes)  -> Ed25519Cert               types 4, 5 (cert-spec §2.1)
    parse_rsa_cross_cert(bytes) -> RsaCrossCert             type 7 (cert-spec §2.2.1)
    verify_certs(...)          -> RelayIdentity             the Ed25519 path, steps 1-6

Every failure raises a :class:`~webtunnel_pt.errors.CertificateError` subclass naming
what is wrong. The clock is a parameter (``now``, seconds since the epoch).

Sans-I/O: needs ``cryptography``, nothing touches the network.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.utils import CryptographyDeprecationWarning

from webtunnel_pt.errors import (
    BadCertificateSignature,
    CertificateExpired,
    IdentityMismatch,
    LinkCertMismatch,
    MalformedCertificate,
    MissingCertificate,
)

#: Signed-message prefix of the RSA->Ed25519 cross-certificate (cert-spec §2.2.1; no NUL).
CROSS_CERT_PREFIX = b"Tor TLS RSA/Ed25519 cross-certificate"
#: The RSA identity key must be exactly this size (§4.2 step 4).
RSA_IDENTITY_BITS = 1024
#: tor's tolerance for the X.509 identity cert's validity window (§4.2 step 4).
X509_NOT_BEFORE_SLACK_S = 30 * 24 * 3600
X509_NOT_AFTER_SLACK_S = 2 * 24 * 3600
ED25519_KEY_LEN = 32
ED25519_SIG_LEN = 64


class CertType(IntEnum):
    """CERTS cell certificate types (§4.2)."""

    LINK_X509 = 1
    RSA_IDENTITY_X509 = 2
    AUTH_X509 = 3
    ED_ID_SIGNING = 4
    ED_SIGNING_LINK = 5
    ED_SIGNING_AUTH = 6
    RSA_ED_CROSS = 7


class KeyType(IntEnum):
    """CERT_KEY_TYPE of an Ed25519 cert (cert-spec §2.1)."""

    ED25519 = 1
    SHA256_OF_RSA = 2
    SHA256_OF_X509 = 3


class ExtensionType(IntEnum):
    SIGNED_WITH_ED25519_KEY = 4


#: ExtFlags bit: an unknown extension with it makes the cert invalid.
EXT_AFFECTS_VALIDATION = 0x01


@dataclass(frozen=True)
class Ed25519Extension:
    ext_type: int
    flags: int
    data: bytes


@dataclass(frozen=True)
class Ed25519Cert:
    """A Tor Ed25519 certificate (cert-spec §2.1); ``signed`` is what the signature covers."""

    cert_type: int
    expiration_hours: int
    key_type: int
    certified_key: bytes
    extensions: tuple[Ed25519Extension, ...]
    signature: bytes
    signed: bytes

    @property
    def signing_key(self) -> bytes | None:
        """The key named by extension 04, if present."""
        for ext in self.extensions:
            if ext.ext_type == ExtensionType.SIGNED_WITH_ED25519_KEY:
                return ext.data
        return None

    @property
    def expires(self) -> float:
        return self.expiration_hours * 3600.0


@dataclass(frozen=True)
class RsaCrossCert:
    """RSA->Ed25519 cross-certificate (cert-spec §2.2.1)."""

    ed25519_key: bytes
    expiration_hours: int
    signature: bytes
    signed: bytes

    @property
    def expires(self) -> float:
        return self.expiration_hours * 3600.0


@dataclass(frozen=True)
class RelayIdentity:
    """What a verified CERTS cell proves about the relay at the other end of the link."""

    rsa_fingerprint: str  # 40 upper-case hex digits: SHA-1 of the PKCS#1 DER identity key
    ed25519_identity: bytes  # 32 bytes
    link_cert_sha256: bytes  # SHA-256 of the TLS leaf certificate, certified by type 5
    expires: float  # earliest expiry of the Ed25519 certs and the cross-cert (epoch seconds)
    rsa_identity_key: bytes  # the RSA identity key itself, PKCS#1 DER (hashes to the fingerprint)

    @property
    def ed25519_base64(self) -> str:
        """The form used in descriptors (``master-key-ed25519``): base64 without ``=``."""
        return base64.b64encode(self.ed25519_identity).decode("ascii").rstrip("=")


def _fmt_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---- parsing --------------------------------------------------------------------------------


def parse_certs_cell(payload: bytes) -> dict[int, bytes]:
    """``N [1]`` then N x (type, length, body); trailing bytes ignored; duplicates rejected."""
    if not payload:
        raise MalformedCertificate("CERTS cell is empty")
    count, offset = payload[0], 1
    certs: dict[int, bytes] = {}
    for _ in range(count):
        if offset + 3 > len(payload):
            raise MalformedCertificate("CERTS cell truncated")
        cert_type, length = struct.unpack_from(">BH", payload, offset)
        offset += 3
        if offset + length > len(payload):
            raise MalformedCertificate("CERTS cell truncated")
        if cert_type in certs:
            raise MalformedCertificate(f"CERTS cell has two certificates of type {cert_type}")
        certs[cert_type] = payload[offset : offset + length]
        offset += length
    return certs


def _parse_extensions(data: bytes, offset: int, count: int) -> tuple[list[Ed25519Extension], int]:
    extensions: list[Ed25519Extension] = []
    for _ in range(count):
        if offset + 4 > len(data):
            raise MalformedCertificate("Ed25519 certificate extension truncated")
        length, ext_type, flags = struct.unpack_from(">HBB", data, offset)
        offset += 4
        if offset + length > len(data):
            raise MalformedCertificate("Ed25519 certificate extension truncated")
        ext = Ed25519Extension(ext_type, flags, data[offset : offset + length])
        offset += length
        if ext_type == ExtensionType.SIGNED_WITH_ED25519_KEY:
            if length != ED25519_KEY_LEN:
                raise MalformedCertificate("signed-with-ed25519-key extension is not 32 bytes")
        elif flags & EXT_AFFECTS_VALIDATION:
            raise MalformedCertificate(f"unknown critical Ed25519 cert extension {ext_type}")
        extensions.append(ext)
    return extensions, offset


def parse_ed25519_cert(data: bytes) -> Ed25519Cert:
    """Parse a Tor Ed25519 certificate; it must use exactly ``len(data)`` bytes."""
    if len(data) < 40 or data[0] != 1:
        raise MalformedCertificate("not a version-1 Tor Ed25519 certificate")
    cert_type, hours, key_type = struct.unpack_from(">BIB", data, 1)
    certified = data[7:39]
    extensions, offset = _parse_extensions(data, 40, data[39])
    if len(data) - offset != ED25519_SIG_LEN:
        raise MalformedCertificate("Ed25519 certificate length does not match its contents")
    return Ed25519Cert(
        cert_type, hours, key_type, certified, tuple(extensions), data[offset:], data[:offset]
    )


def parse_rsa_cross_cert(data: bytes) -> RsaCrossCert:
    """``ED25519_KEY [32] | EXPIRATION [4] | SIGLEN [1] | SIGNATURE``, exactly."""
    if len(data) < 37:
        raise MalformedCertificate("RSA->Ed25519 cross-certificate truncated")
    siglen = data[36]
    if len(data) != 37 + siglen:
        raise MalformedCertificate("RSA->Ed25519 cross-certificate length mismatch")
    (hours,) = struct.unpack_from(">I", data, 32)
    return RsaCrossCert(data[:32], hours, data[37:], data[:36])


#: What ``cryptography`` raises, at load or lazily on field access, for a malformed X.509.
_X509_ERRORS = (ValueError, UnsupportedAlgorithm, x509.InvalidVersion)


def _load_x509(der: bytes, what: str) -> x509.Certificate:
    """Parse ``der``; what ``cryptography`` only warns about today (a serial number that is
    not positive, against RFC 5280) and will refuse in a later release is refused now, so
    hostile input neither prints a warning nor changes meaning with an upgrade."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except CryptographyDeprecationWarning as exc:
        raise MalformedCertificate(f"{what} breaks RFC 5280: {exc}") from exc
    except _X509_ERRORS as exc:
        raise MalformedCertificate(f"{what} is not a DER X.509 certificate") from exc


# ---- signatures -----------------------------------------------------------------------------


def verify_ed25519_cert(cert: Ed25519Cert, key: bytes, what: str) -> None:
    """Signature over every byte before it, under ``key`` (cert-spec §2.1)."""
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(cert.signature, cert.signed)
    except (InvalidSignature, ValueError) as exc:
        raise BadCertificateSignature(f"{what}: Ed25519 signature does not verify") from exc


def rsa_raw_verify(key: rsa.RSAPublicKey, signature: bytes, digest: bytes) -> bool:
    """PKCS#1 v1.5 type-1 padding of the bare digest, no DigestInfo (§4.2, type 7).

    ``cryptography``'s ``verify`` insists on DigestInfo, so the modular exponentiation is
    done here.
    """
    numbers = key.public_numbers()
    size = (key.key_size + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) > size or value >= numbers.n:
        return False
    message = pow(value, numbers.e, numbers.n).to_bytes(size, "big")
    expected = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    return hmac.compare_digest(message, expected)


def rsa_public_der(key: rsa.RSAPublicKey) -> bytes:
    """The PKCS#1 ``RSAPublicKey`` DER: what fingerprints hash and descriptors carry."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def rsa_fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-1 of the PKCS#1 ``RSAPublicKey`` DER, upper-case hex (§4.2 step 6)."""
    return hashlib.sha1(rsa_public_der(key)).hexdigest().upper()


def _verify_x509_self_signed(cert: x509.Certificate, key: rsa.RSAPublicKey) -> None:
    try:
        algorithm = cert.signature_hash_algorithm
    except _X509_ERRORS as exc:
        raise MalformedCertificate("RSA identity certificate has an unusable signature") from exc
    if algorithm is None:
        raise MalformedCertificate("RSA identity certificate has no signature hash")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise BadCertificateSignature("RSA identity certificate is not self-signed") from exc


def _x509_key_and_validity(cert: x509.Certificate) -> tuple[rsa.RSAPublicKey, float, float]:
    """The fields cryptography decodes lazily, each of which may fail on hostile DER."""
    try:
        key = cert.public_key()
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
    except _X509_ERRORS as exc:
        raise MalformedCertificate("RSA identity certificate is malformed") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != RSA_IDENTITY_BITS:
        raise MalformedCertificate("RSA identity key is not 1024-bit RSA")
    return key, not_before, not_after


# ---- the procedure (§4.2 steps 1-6) ---------------------------------------------------------


def _require(certs: Mapping[int, bytes], cert_type: CertType) -> bytes:
    if cert_type not in certs:
        raise MissingCertificate(f"CERTS cell lacks a type-{int(cert_type)} certificate")
    return certs[cert_type]


def check_expiry(expires: float, now: float, what: str) -> None:
    """Raise :class:`CertificateExpired` naming ``what`` if ``now`` is past ``expires``."""
    if now > expires:
        raise CertificateExpired(f"{what} expired at {_fmt_time(expires)}")


def _verify_ed25519_chain(
    certs: Mapping[int, bytes], tls_leaf_der: bytes, now: float
) -> tuple[bytes, Ed25519Cert, Ed25519Cert]:
    """Steps 1-3: identity -> signing key -> SHA-256 of the TLS leaf, none expired."""
    id_cert = parse_ed25519_cert(_require(certs, CertType.ED_ID_SIGNING))
    identity = id_cert.signing_key
    if id_cert.cert_type != CertType.ED_ID_SIGNING or identity is None:
        raise MalformedCertificate("type-4 certificate does not name its signing identity")
    verify_ed25519_cert(id_cert, identity, "identity->signing certificate (type 4)")
    link_cert = parse_ed25519_cert(_require(certs, CertType.ED_SIGNING_LINK))
    if link_cert.cert_type != CertType.ED_SIGNING_LINK:
        raise MalformedCertificate("type-5 slot holds a different certificate type")
    verify_ed25519_cert(link_cert, id_cert.certified_key, "signing->link certificate (type 5)")
    if not hmac.compare_digest(link_cert.certified_key, hashlib.sha256(tls_leaf_der).digest()):
        raise LinkCertMismatch("type-5 certificate does not certify the TLS certificate we saw")
    check_expiry(id_cert.expires, now, "identity->signing certificate (type 4)")
    check_expiry(link_cert.expires, now, "signing->link certificate (type 5)")
    return identity, id_cert, link_cert


def _verify_rsa_identity(certs: Mapping[int, bytes], now: float) -> rsa.RSAPublicKey:
    """Step 4: self-signed RSA-1024 X.509 certificate within tor's tolerant window."""
    cert = _load_x509(_require(certs, CertType.RSA_IDENTITY_X509), "RSA identity certificate")
    key, not_before, not_after = _x509_key_and_validity(cert)
    _verify_x509_self_signed(cert, key)
    if not_before > now + X509_NOT_BEFORE_SLACK_S:
        raise CertificateExpired(
            f"RSA identity certificate not valid before {_fmt_time(not_before)}"
        )
    check_expiry(not_after + X509_NOT_AFTER_SLACK_S, now, "RSA identity certificate")
    return key


def _verify_cross_cert(
    certs: Mapping[int, bytes], key: rsa.RSAPublicKey, identity: bytes, now: float
) -> RsaCrossCert:
    """Step 5: the RSA identity vouches for the Ed25519 identity."""
    cross = parse_rsa_cross_cert(_require(certs, CertType.RSA_ED_CROSS))
    if not hmac.compare_digest(cross.ed25519_key, identity):
        raise BadCertificateSignature("RSA->Ed25519 cross-certificate names another identity")
    digest = hashlib.sha256(CROSS_CERT_PREFIX + cross.signed).digest()
    if not rsa_raw_verify(key, cross.signature, digest):
        raise BadCertificateSignature("RSA->Ed25519 cross-certificate signature does not verify")
    check_expiry(cross.expires, now, "RSA->Ed25519 cross-certificate")
    return cross


def verify_certs(
    certs: Mapping[int, bytes],
    *,
    tls_leaf_der: bytes,
    expected_fingerprint: str | None,
    now: float,
    expected_ed25519: bytes | None = None,
) -> RelayIdentity:
    """Verify a relay's CERTS as a non-authenticating client (§4.2 steps 1-6).

    The Ed25519 path is required: relays without type-4 certs are refused. Compare the RSA
    identity with ``expected_fingerprint`` (hex, any case) and, when given, the Ed25519
    identity with ``expected_ed25519``.
    """
    identity, id_cert, link_cert = _verify_ed25519_chain(certs, tls_leaf_der, now)
    rsa_key = _verify_rsa_identity(certs, now)
    cross = _verify_cross_cert(certs, rsa_key, identity, now)
    fingerprint = rsa_fingerprint(rsa_key)
    if expected_fingerprint is not None and fingerprint != expected_fingerprint.upper():
        raise IdentityMismatch(
            "relay RSA identity does not match the bridge line fingerprint",
            expected=expected_fingerprint.upper(),
            actual=fingerprint,
        )
    if expected_ed25519 is not None and not hmac.compare_digest(identity, expected_ed25519):
        raise IdentityMismatch(
            "relay Ed25519 identity is not the expected one",
            expected=expected_ed25519.hex(),
            actual=identity.hex(),
        )
    expires = min(id_cert.expires, link_cert.expires, cross.expires)
    return RelayIdentity(
        rsa_fingerprint=fingerprint,
        ed25519_identity=identity,
        link_cert_sha256=link_cert.certified_key,
        expires=expires,
        rsa_identity_key=rsa_public_der(rsa_key),
    )
