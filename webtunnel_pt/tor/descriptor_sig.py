"""The two signatures of a server descriptor (dir-spec §2.1.1 ``router-sig-ed25519``,
``router-signature``, ``signing-key``, ``identity-ed25519``; tor-link.md §10.1).

    split_signed(raw)                 -> SignedDescriptor   the signed prefixes' digests, sigs
    verify_descriptor_signatures(...) -> None               raises DescriptorSignatureError

The descriptor must be one document: it starts with its ``router`` line, ends with
``router-sig-ed25519 <sig>`` then ``router-signature`` and its SIGNATURE object (blank lines
may follow), so every field the parser reads is covered by both signatures.

- ``router-sig-ed25519``: Ed25519 over SHA-256(``ED_SIGNATURE_PREFIX`` + the text from the start
  through the space after the keyword), base64 without ``=``, made by the signing key that the
  ``identity-ed25519`` certificate (type 4, not expired) certifies; the certificate is signed by
  the identity it names in extension 04.
- ``router-signature``: RSA PKCS#1 v1.5 type-1 padding of the bare SHA-1 digest (no DigestInfo)
  of the text from the start through the newline after the keyword, under ``signing-key``
  (1024-bit RSA).

This checks that the descriptor is signed by the keys it names; that those keys are the ones
the link proved is :func:`webtunnel_pt.tor.directory.check_descriptor_identity`'s job.
Works on the bytes as received. Sans-I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from webtunnel_pt.errors import CertificateError, DescriptorSignatureError
from webtunnel_pt.tor.certs import (
    ED25519_SIG_LEN,
    RSA_IDENTITY_BITS,
    CertType,
    Ed25519Cert,
    KeyType,
    check_expiry,
    rsa_raw_verify,
    verify_ed25519_cert,
)

#: Prepended to the signed text before hashing for ``router-sig-ed25519`` (dir-spec §2.1.1).
ED_SIGNATURE_PREFIX = b"Tor router descriptor signature v1"

_ROUTER = b"router "
_ED_KEYWORD = b"router-sig-ed25519"
_RSA_KEYWORD = b"router-signature"
_SIG_BEGIN = b"-----BEGIN SIGNATURE-----"
_SIG_END = b"-----END SIGNATURE-----"


@dataclass(frozen=True)
class SignedDescriptor:
    """What each signature covers (as a digest) and the signature itself."""

    ed25519_digest: bytes  # SHA-256(prefix + start .. the space after router-sig-ed25519)
    ed25519_signature: bytes  # 64 bytes
    rsa_digest: bytes  # SHA-1(start .. the newline after router-signature)
    rsa_signature: bytes


def _b64(data: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DescriptorSignatureError(f"descriptor {what} is not base64") from exc


def _rsa_signature_end(raw: bytes) -> int:
    """Offset just past the newline that ends the ``router-signature`` line."""
    at = raw.find(b"\n" + _RSA_KEYWORD)
    end = at + 1 + len(_RSA_KEYWORD)
    if at < 0 or raw[end : end + 1] != b"\n":
        raise DescriptorSignatureError("descriptor has no router-signature line")
    return end + 1


def _ed25519_line(raw: bytes, rsa_line: int) -> tuple[int, bytes]:
    """Start and text of the ``router-sig-ed25519`` line, which must be the one just before
    ``router-signature`` and the only one."""
    first = raw.find(b"\n" + _ED_KEYWORD, 0, rsa_line)
    if first < 0:
        raise DescriptorSignatureError("descriptor has no router-sig-ed25519 line")
    start = raw.rfind(b"\n", 0, rsa_line - 1) + 1
    line = raw[start : rsa_line - 1]
    if first + 1 != start or not line.startswith(_ED_KEYWORD + b" "):
        raise DescriptorSignatureError(
            "descriptor router-sig-ed25519 is not one line, just before router-signature"
        )
    return start, line


def _rsa_signature_object(tail: bytes) -> bytes:
    """The SIGNATURE object after ``router-signature``: nothing but blank lines may follow."""
    lines = tail.rstrip().split(b"\n")
    only_at_end = lines[-1] == _SIG_END and lines.count(_SIG_END) == 1
    if len(lines) < 3 or lines[0] != _SIG_BEGIN or not only_at_end:
        raise DescriptorSignatureError(
            "descriptor router-signature is not followed by exactly one SIGNATURE object"
        )
    return _b64(b"".join(lines[1:-1]), "router-signature")


def split_signed(raw: bytes) -> SignedDescriptor:
    """Locate both signatures and hash what each covers; raise if either is missing."""
    if not raw.startswith(_ROUTER):
        raise DescriptorSignatureError("descriptor does not start with its router line")
    rsa_end = _rsa_signature_end(raw)
    rsa_line = rsa_end - len(_RSA_KEYWORD) - 1
    ed_start, ed_line = _ed25519_line(raw, rsa_line)
    ed_end = ed_start + len(_ED_KEYWORD) + 1
    words = ed_line[len(_ED_KEYWORD) + 1 :].split()
    if len(words) != 1:
        raise DescriptorSignatureError("descriptor router-sig-ed25519 needs one argument")
    ed_sig = _b64(words[0], "router-sig-ed25519")
    if len(ed_sig) != ED25519_SIG_LEN:
        raise DescriptorSignatureError("descriptor router-sig-ed25519 is not 64 bytes")
    return SignedDescriptor(
        ed25519_digest=hashlib.sha256(ED_SIGNATURE_PREFIX + raw[:ed_end]).digest(),
        ed25519_signature=ed_sig,
        rsa_digest=hashlib.sha1(raw[:rsa_end]).digest(),
        rsa_signature=_rsa_signature_object(raw[rsa_end:]),
    )


def verify_identity_cert(cert: Ed25519Cert | None, now: float) -> bytes:
    """The ``identity-ed25519`` cert: type 4, self-consistent, unexpired; its signing key."""
    what = "descriptor identity-ed25519 certificate"
    if cert is None:
        raise DescriptorSignatureError(f"{what} is missing")
    identity = cert.signing_key
    if cert.cert_type != CertType.ED_ID_SIGNING or cert.key_type != KeyType.ED25519:
        raise DescriptorSignatureError(f"{what} is not an identity->signing (type 4) certificate")
    if identity is None:
        raise DescriptorSignatureError(f"{what} does not name the identity that signed it")
    try:
        verify_ed25519_cert(cert, identity, what)
        check_expiry(cert.expires, now, what)
    except CertificateError as exc:
        raise DescriptorSignatureError(str(exc)) from exc
    return cert.certified_key


def verify_ed25519_signature(signed: SignedDescriptor, signing_key: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(
            signed.ed25519_signature, signed.ed25519_digest
        )
    except (InvalidSignature, ValueError) as exc:
        raise DescriptorSignatureError(
            "descriptor router-sig-ed25519 does not verify under the certified signing key"
        ) from exc


def load_signing_key(der: bytes | None) -> rsa.RSAPublicKey:
    """The descriptor's ``signing-key`` (PKCS#1 DER): the relay's 1024-bit RSA identity."""
    if der is None:
        raise DescriptorSignatureError("descriptor has no signing-key")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DescriptorSignatureError("descriptor signing-key is not a public key") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != RSA_IDENTITY_BITS:
        raise DescriptorSignatureError("descriptor signing-key is not 1024-bit RSA")
    return key


def verify_rsa_signature(signed: SignedDescriptor, key: rsa.RSAPublicKey) -> None:
    if not rsa_raw_verify(key, signed.rsa_signature, signed.rsa_digest):
        raise DescriptorSignatureError(
            "descriptor router-signature does not verify under its signing-key"
        )


def verify_descriptor_signatures(
    raw: bytes, *, signing_key: bytes | None, identity_cert: Ed25519Cert | None, now: float
) -> None:
    """Both signatures of the descriptor ``raw`` verify under the keys it names (``signing-key``
    as PKCS#1 DER, the parsed ``identity-ed25519`` certificate), the certificate at ``now``.

    Ed25519 first, as tor does; every failure is a :class:`DescriptorSignatureError`.
    """
    signed = split_signed(raw)
    verify_ed25519_signature(signed, verify_identity_cert(identity_cert, now))
    verify_rsa_signature(signed, load_signing_key(signing_key))
