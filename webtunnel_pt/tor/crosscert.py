"""The ``ntor-onion-key-crosscert`` of a server descriptor (dir-spec §2.1.1, proposal 228,
cert-spec §2.1): proof that whoever holds the ntor onion key vouches for the relay's Ed25519
identity, so a descriptor cannot borrow another relay's onion key.

    desc = parse_server_descriptor(raw)
    check_descriptor_identity(desc, identity, now=now)     # the descriptor's own signatures
    verify_ntor_onion_key_crosscert(desc, now)              # then desc.ntor_onion_key is usable

The certificate is a Tor Ed25519 certificate of type 0x0A whose certified key is the master
Ed25519 identity. It is signed by the Ed25519 key that corresponds to the Curve25519 onion key:
the Montgomery u-coordinate maps to the Edwards y-coordinate as ``y = (u - 1) / (u + 1) mod p``
and the ``ntor-onion-key-crosscert`` line gives the sign bit of x, which goes into the top bit
of the encoded key (:func:`ed25519_from_curve25519`). Every failure is an
:class:`~webtunnel_pt.errors.OnionKeyCrosscertError`. Sans-I/O.
"""

from __future__ import annotations

import hmac

from webtunnel_pt.errors import CertificateError, OnionKeyCrosscertError
from webtunnel_pt.tor.certs import (
    Ed25519Cert,
    KeyType,
    check_expiry,
    parse_ed25519_cert,
    verify_ed25519_cert,
)
from webtunnel_pt.tor.directory import ServerDescriptor

#: CERT_TYPE of the ntor onion key cross-certificate (cert-spec §A.1, tor's CERT_TYPE_ONION_ID).
CERT_TYPE_NTOR_ONION_KEY_CROSSCERT = 0x0A
#: The prime of Curve25519 / Ed25519's field.
P25519 = 2**255 - 19
KEY_LEN = 32

_WHAT = "descriptor ntor-onion-key-crosscert"


def ed25519_from_curve25519(public: bytes, sign_bit: int) -> bytes:
    """The Ed25519 public key birationally equivalent to the Curve25519 key ``public``, with
    ``sign_bit`` (0 or 1) as the sign of x (proposal 228; tor's
    ``ed25519_public_from_curve25519_public``). The top bit of ``public`` is ignored, as X25519
    ignores it."""
    if len(public) != KEY_LEN or sign_bit not in (0, 1):
        raise OnionKeyCrosscertError("ntor onion key must be 32 bytes and its sign bit 0 or 1")
    u = (int.from_bytes(public, "little") & ((1 << 255) - 1)) % P25519
    if (u + 1) % P25519 == 0:
        raise OnionKeyCrosscertError("ntor onion key has no Ed25519 equivalent (u = -1)")
    y = (u - 1) * pow(u + 1, P25519 - 2, P25519) % P25519
    encoded = bytearray(y.to_bytes(KEY_LEN, "little"))
    encoded[31] |= sign_bit << 7
    return bytes(encoded)


def _parsed(der: bytes) -> Ed25519Cert:
    try:
        cert = parse_ed25519_cert(der)
    except CertificateError as exc:
        raise OnionKeyCrosscertError(f"{_WHAT} does not parse: {exc}") from exc
    if cert.cert_type != CERT_TYPE_NTOR_ONION_KEY_CROSSCERT:
        raise OnionKeyCrosscertError(f"{_WHAT} has type {cert.cert_type}, not 10")
    if cert.key_type != KeyType.ED25519:
        raise OnionKeyCrosscertError(f"{_WHAT} does not certify an Ed25519 key")
    return cert


def _check_identity(cert: Ed25519Cert, descriptor: ServerDescriptor) -> None:
    """The certified key is the master identity (and the identity-ed25519 cert's signer)."""
    identities = [descriptor.master_key_ed25519]
    if descriptor.identity_cert_key is not None:
        identities.append(descriptor.identity_cert_key)
    for identity in identities:
        if not hmac.compare_digest(cert.certified_key, identity):
            raise OnionKeyCrosscertError(
                f"{_WHAT} certifies another key than the relay's Ed25519 identity"
            )


def verify_ntor_onion_key_crosscert(descriptor: ServerDescriptor, now: float) -> None:
    """The descriptor's ``ntor-onion-key`` cross-certifies its Ed25519 identity at ``now``.

    Call it after the descriptor's own signatures are verified (they cover the crosscert and
    the onion key); raises :class:`OnionKeyCrosscertError` saying what is wrong.
    """
    onion_key = descriptor.ntor_onion_key
    sign_bit = descriptor.ntor_onion_key_crosscert_sign
    der = descriptor.ntor_onion_key_crosscert
    if onion_key is None:
        raise OnionKeyCrosscertError("descriptor has no ntor-onion-key")
    if der is None or sign_bit is None:
        raise OnionKeyCrosscertError(f"{_WHAT} is missing")
    cert = _parsed(der)
    _check_identity(cert, descriptor)
    signer = ed25519_from_curve25519(onion_key, sign_bit)
    if cert.signing_key is not None and not hmac.compare_digest(cert.signing_key, signer):
        raise OnionKeyCrosscertError(f"{_WHAT} names a signing key other than the onion key's")
    try:
        verify_ed25519_cert(cert, signer, _WHAT)
        check_expiry(cert.expires, now, _WHAT)
    except CertificateError as exc:
        raise OnionKeyCrosscertError(str(exc)) from exc
