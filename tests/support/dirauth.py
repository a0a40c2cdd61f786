"""A directory authority made by the tests: RSA keys, tor's raw PKCS#1 v1.5 signatures and
authority key certificates (dir-spec §3.1), written independently of the parser in
webtunnel_pt.tor.keycert, after tor-gencert's output format.

    rsa_sign_digest(key, digest)                 tor's "RSA signature" of a digest
    make_key_certificate(identity, signing, ...) -> bytes  a certificate tor-gencert would write
    certify(prefix, identity)                    -> bytes  prefix + its dir-key-certification
    authority_line(identity, ...)                a DirAuthority line naming the identity

Tor signs with ``RSA_private_encrypt(..., RSA_PKCS1_PADDING)`` over a bare digest:
``00 01 FF..FF 00 || digest`` raised to the private exponent, with no DigestInfo. Consensus
``directory-signature`` objects are the same operation with the signing key over the
consensus digest (SHA-1 or SHA-256), so this helper serves those too.
"""

from __future__ import annotations

import base64
import hashlib
import time
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: tor-gencert's key sizes (IDENTITY_KEY_BITS, SIGNING_KEY_BITS); tests mostly use the
#: smallest sizes dir-spec §3.1 allows, for speed.
GENCERT_IDENTITY_BITS = 3072
GENCERT_SIGNING_BITS = 2048
TEST_IDENTITY_BITS = 2048
TEST_SIGNING_BITS = 1024


def rsa_key(bits: int, index: int = 0) -> rsa.RSAPrivateKey:
    """A fresh RSA key (e = 65537) per (bits, index), cached for the test run."""
    return _cached_key(bits, index)


@cache
def _cached_key(bits: int, index: int) -> rsa.RSAPrivateKey:
    del index  # only part of the cache key: distinct keys of the same size
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_sign_digest(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """Tor's RSA signature of ``digest``: PKCS#1 v1.5 type-1 padding of the bare digest (no
    DigestInfo), raised to the private exponent; as long as the modulus."""
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    size = (key.key_size + 7) // 8
    padded = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    return pow(int.from_bytes(padded, "big"), d, n).to_bytes(size, "big")


def public_der(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """PKCS#1 ``RSAPublicKey`` DER of the key (what tor's digests hash)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def key_digest(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """SHA-1 of the PKCS#1 DER: a v3ident for an identity key, the signing-key digest."""
    return hashlib.sha1(public_der(key)).digest()


def pem_object(label: str, data: bytes) -> bytes:
    """An object as tor writes it: BEGIN line, base64 in 64-character lines, END line."""
    encoded = base64.b64encode(data)
    lines = b"".join(encoded[i : i + 64] + b"\n" for i in range(0, len(encoded), 64))
    return f"-----BEGIN {label}-----\n".encode() + lines + f"-----END {label}-----\n".encode()


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def certify(prefix: bytes, identity: rsa.RSAPrivateKey) -> bytes:
    """``prefix`` (everything through ``dir-key-certification\\n``) and the identity key's
    SIGNATURE over its SHA-1."""
    signature = rsa_sign_digest(identity, hashlib.sha1(prefix).digest())
    return prefix + pem_object("SIGNATURE", signature)


def make_key_certificate(
    identity: rsa.RSAPrivateKey,
    signing: rsa.RSAPrivateKey,
    *,
    published: float,
    expires: float,
    address: str | None = None,
    fingerprint: bytes | None = None,
    crosscert: bytes | None = None,
    crosscert_label: str = "ID SIGNATURE",
    extra: bytes = b"",
    certification_key: rsa.RSAPrivateKey | None = None,
) -> bytes:
    """A key certificate in tor-gencert's layout, signed as tor-gencert signs it.

    The keyword arguments make bad ones: ``fingerprint`` replaces the identity's digest,
    ``crosscert`` replaces the cross-certification signature, ``extra`` is inserted before
    ``dir-key-crosscert``, ``certification_key`` signs instead of the identity key.
    """
    fp = key_digest(identity) if fingerprint is None else fingerprint
    body = b"dir-key-certificate-version 3\n"
    if address is not None:
        body += f"dir-address {address}\n".encode()
    body += f"fingerprint {fp.hex().upper()}\n".encode()
    body += f"dir-key-published {iso_time(published)}\n".encode()
    body += f"dir-key-expires {iso_time(expires)}\n".encode()
    body += b"dir-identity-key\n" + pem_object("RSA PUBLIC KEY", public_der(identity))
    body += b"dir-signing-key\n" + pem_object("RSA PUBLIC KEY", public_der(signing))
    body += extra
    cross = rsa_sign_digest(signing, key_digest(identity)) if crosscert is None else crosscert
    body += b"dir-key-crosscert\n" + pem_object(crosscert_label, cross)
    body += b"dir-key-certification\n"
    return certify(body, certification_key or identity)


def authority_line(
    identity: rsa.RSAPrivateKey,
    *,
    nickname: str = "testauth",
    address: str = "127.0.0.1:7000",
    fingerprint: bytes = bytes(range(20)),
) -> str:
    """A ``DirAuthority`` line whose v3ident is ``identity``'s digest."""
    return (
        f"{nickname} orport=5000 no-v2 v3ident={key_digest(identity).hex().upper()} "
        f"{address} {fingerprint.hex().upper()}"
    )
