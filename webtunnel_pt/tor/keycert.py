"""Directory authority key certificates (dir-spec §3.1, "dir-key-certificate-version 3"): what
binds an authority's long-term v3 identity key to the medium-term signing key that signs the
consensus.

    parse_key_certificates(data) -> list[KeyCertificate]   one or more, concatenated
    parse_key_certificate(data)  -> KeyCertificate         exactly one
    check_validity(cert, now)                              published <= now <= expires
    check_for_authority(cert, authority)                   fingerprint is the v3ident
    verify_key_certificate(cert, authority, now)           both checks

A certificate is a network document (:mod:`webtunnel_pt.tor.netdoc`)::

    dir-key-certificate-version 3               first, exactly once
    dir-address IPv4:port                       at most once
    fingerprint HEX40                           exactly once: SHA-1 of dir-identity-key
    dir-key-published YYYY-MM-DD HH:MM:SS       exactly once
    dir-key-expires YYYY-MM-DD HH:MM:SS         exactly once
    dir-identity-key + RSA PUBLIC KEY           exactly once, >= 2048 bits (see below)
    dir-signing-key + RSA PUBLIC KEY            exactly once, >= 1024 bits (spec MUST)
    dir-key-crosscert + ID SIGNATURE            exactly once
    dir-key-certification + SIGNATURE           last, exactly once

Unknown items are ignored (dir-spec §1.2) but still covered by the signature, and so are
extra arguments at the end of the version, ``fingerprint`` and ``dir-address`` lines (§1.2's
forward-compatibility rule); the key, signature and time lines take none.

Parsing verifies everything that does not depend on time or configuration, as tor does when
it reads a certificate (tor's authority_cert_parse_from_string), so a :class:`KeyCertificate`
only exists for a self-consistent certificate:

- ``fingerprint`` is the SHA-1 of the identity key's PKCS#1 DER;
- ``dir-key-certification``: the identity key's RSA signature, PKCS#1 v1.5 type-1 padding of
  the bare SHA-1 digest (no DigestInfo), of the bytes from the start of the
  ``dir-key-certificate-version`` line through the newline ending the
  ``dir-key-certification`` line (tor-gencert and dir-spec §3.1);
- ``dir-key-crosscert``: the signing key's signature, same padding, of the SHA-1 of the
  identity key's DER (the fingerprint), so a signing key cannot be claimed by another
  identity. The label is ``ID SIGNATURE`` (tor-gencert) or ``SIGNATURE`` (older certificates).

Stricter than tor, to fail closed: the identity key must have 2048 bits or more (dir-spec:
SHOULD be 2048, MUST NOT be under 1024; tor-gencert makes 3072); keys must be canonical DER
with exponent 65537 and at most 8192 bits; signatures exactly the key's size; the decrypted
signature exactly the padded digest (tor compares only a prefix). Time and authority checks
are separate calls, since a cache keeps certificates beyond a single "now". Sans-I/O.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from webtunnel_pt.errors import KeyCertificateError, NetdocError
from webtunnel_pt.tor.authorities import DirAuthority
from webtunnel_pt.tor.certs import rsa_public_der, rsa_raw_verify
from webtunnel_pt.tor.netdoc import NetdocItem, parse_items, split_documents

#: One certificate: tor rejects anything over 128 KiB (MAX_CERT_SIZE); a real one is ~2.5 KiB.
MAX_KEY_CERTIFICATE_BYTES = 128 * 1024
#: A whole /tor/keys/ response: 9 real authorities' certificates are ~25 KiB; room for test
#: networks and old certificates served alongside, bounded.
MAX_KEY_CERTIFICATES_BYTES = 1024 * 1024
#: Certificates in one response: more than anyone needs for MAX_DIR_AUTHORITIES (64).
MAX_KEY_CERTIFICATES = 128
#: dir-spec §3.1: the identity key SHOULD be at least 2048 bits (every authority's is 3072),
#: the signing key MUST be at least 1024.
MIN_IDENTITY_KEY_BITS = 2048
MIN_SIGNING_KEY_BITS = 1024
#: Largest key accepted: tor-gencert's signature buffer handles up to 8192-bit keys, and the
#: bound keeps a hostile key's verification cost small.
MAX_KEY_BITS = 8192
#: Every tor RSA key uses this public exponent; requiring it bounds verification cost.
RSA_EXPONENT = 65537

FIRST_KEYWORD = "dir-key-certificate-version"
_CERTIFICATION_LINE = b"dir-key-certification\n"
_REQUIRED = (
    "fingerprint",
    "dir-key-published",
    "dir-key-expires",
    "dir-identity-key",
    "dir-signing-key",
    "dir-key-crosscert",
    "dir-key-certification",
)
_KNOWN = frozenset((FIRST_KEYWORD, "dir-address", *_REQUIRED))
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_IPV4_PORT = re.compile(r"((?:[0-9]{1,3}\.){3}[0-9]{1,3}):([0-9]{1,5})")


@dataclass(frozen=True, slots=True)
class KeyCertificate:
    """A parsed, self-consistent authority key certificate (see the module docstring)."""

    identity_fingerprint: bytes  #: SHA-1 of the identity key's DER: the authority's v3ident
    #: The keys take no part in == and hash (key objects are unhashable); ``raw`` covers them.
    identity_key: rsa.RSAPublicKey = field(compare=False)
    #: The key that signs the authority's consensus signatures.
    signing_key: rsa.RSAPublicKey = field(compare=False)
    signing_key_digest: bytes  #: SHA-1 of its DER, as ``directory-signature`` names it
    published: float  #: epoch seconds (UTC)
    expires: float  #: epoch seconds (UTC)
    dir_address: tuple[str, int] | None  #: optional ``dir-address`` (IPv4, port)
    raw: bytes  #: the certificate's exact bytes, as received (for a cache)


def parse_key_certificates(data: bytes) -> list[KeyCertificate]:
    """Parse and self-verify every certificate of a ``/tor/keys/...`` response, in order; any
    bad certificate fails the whole response. An empty response has none."""
    if len(data) > MAX_KEY_CERTIFICATES_BYTES:
        raise KeyCertificateError(
            f"key certificates response is {len(data)} bytes, over {MAX_KEY_CERTIFICATES_BYTES}"
        )
    try:
        documents = split_documents(parse_items(data), FIRST_KEYWORD)
    except NetdocError as exc:
        raise KeyCertificateError(f"key certificate does not parse: {exc}") from exc
    if len(documents) > MAX_KEY_CERTIFICATES:
        raise KeyCertificateError(f"over {MAX_KEY_CERTIFICATES} key certificates in a response")
    return [_certificate(data, items) for items in documents]


def parse_key_certificate(data: bytes) -> KeyCertificate:
    """Parse and self-verify exactly one certificate."""
    certs = parse_key_certificates(data)
    if len(certs) != 1:
        raise KeyCertificateError(f"expected one key certificate, found {len(certs)}")
    return certs[0]


def check_validity(cert: KeyCertificate, now: float, *, skew_s: float = 0.0) -> None:
    """Raise unless ``published - skew_s <= now <= expires``: a certificate from the future
    (beyond the allowed clock skew) or an expired one is not used."""
    if now + skew_s < cert.published:
        raise KeyCertificateError(
            f"key certificate of {_name(cert)} is published in the future ({_fmt(cert.published)})"
        )
    if now > cert.expires:
        raise KeyCertificateError(
            f"key certificate of {_name(cert)} expired at {_fmt(cert.expires)}"
        )


def check_for_authority(cert: KeyCertificate, authority: DirAuthority) -> None:
    """Raise unless ``cert`` is the configured authority's: its identity fingerprint equals the
    authority's v3ident."""
    if cert.identity_fingerprint != authority.v3ident:
        who = authority.nickname or authority.v3ident.hex().upper()
        raise KeyCertificateError(
            f"key certificate of {_name(cert)} is not authority {who}'s (v3ident differs)"
        )


def verify_key_certificate(
    cert: KeyCertificate, authority: DirAuthority, now: float, *, skew_s: float = 0.0
) -> None:
    """Both checks: the certificate is ``authority``'s and is valid at ``now``."""
    check_for_authority(cert, authority)
    check_validity(cert, now, skew_s=skew_s)


def _certificate(data: bytes, items: list[NetdocItem]) -> KeyCertificate:
    start, end = items[0].start, items[-1].end
    if end - start > MAX_KEY_CERTIFICATE_BYTES:
        raise KeyCertificateError(f"key certificate is over {MAX_KEY_CERTIFICATE_BYTES} bytes")
    if items[0].args[:1] != ("3",) or items[0].obj is not None:
        raise KeyCertificateError("key certificate is not dir-key-certificate-version 3")
    by_keyword: dict[str, NetdocItem] = {}
    for item in items[1:]:
        if item.keyword in _KNOWN:
            if item.keyword in by_keyword or item.keyword == FIRST_KEYWORD:
                raise KeyCertificateError(f"key certificate repeats {item.keyword}")
            by_keyword[item.keyword] = item
    for keyword in _REQUIRED:
        if keyword not in by_keyword:
            raise KeyCertificateError(f"key certificate has no {keyword}")
    certification = items[-1]
    if certification.keyword != "dir-key-certification":
        raise KeyCertificateError("key certificate does not end with dir-key-certification")

    fingerprint = _fingerprint(by_keyword["fingerprint"])
    identity_key, identity_der = _rsa_key(by_keyword["dir-identity-key"], MIN_IDENTITY_KEY_BITS)
    signing_key, signing_der = _rsa_key(by_keyword["dir-signing-key"], MIN_SIGNING_KEY_BITS)
    published = _time(by_keyword["dir-key-published"])
    expires = _time(by_keyword["dir-key-expires"])
    if expires <= published:
        raise KeyCertificateError("key certificate expires before it is published")
    address = _address(by_keyword.get("dir-address"))

    if hashlib.sha1(identity_der).digest() != fingerprint:
        raise KeyCertificateError("key certificate fingerprint is not its identity key's")
    signature = _signature(certification, ("SIGNATURE",))
    signed_end = certification.start + len(_CERTIFICATION_LINE)
    if certification.args or data[certification.start : signed_end] != _CERTIFICATION_LINE:
        raise KeyCertificateError("key certificate dir-key-certification line has arguments")
    digest = hashlib.sha1(data[start:signed_end]).digest()
    if not _verify(identity_key, signature, digest):
        raise KeyCertificateError(
            f"key certificate of {fingerprint.hex().upper()}: dir-key-certification does not "
            "verify under its identity key"
        )
    crosscert = _signature(by_keyword["dir-key-crosscert"], ("ID SIGNATURE", "SIGNATURE"))
    if not _verify(signing_key, crosscert, fingerprint):
        raise KeyCertificateError(
            f"key certificate of {fingerprint.hex().upper()}: dir-key-crosscert does not "
            "verify under its signing key"
        )
    return KeyCertificate(
        identity_fingerprint=fingerprint,
        identity_key=identity_key,
        signing_key=signing_key,
        signing_key_digest=hashlib.sha1(signing_der).digest(),
        published=published,
        expires=expires,
        dir_address=address,
        raw=data[start:end],
    )


def _plain(item: NetdocItem, nargs: int, *, extra: bool = False) -> tuple[str, ...]:
    """The first ``nargs`` arguments of an item without object; more only if ``extra``."""
    if item.obj is not None or len(item.args) < nargs or (len(item.args) > nargs and not extra):
        raise KeyCertificateError(f"key certificate {item.keyword} line is malformed")
    return item.args[:nargs]


def _fingerprint(item: NetdocItem) -> bytes:
    (text,) = _plain(item, 1, extra=True)
    if not _HEX40.fullmatch(text):
        raise KeyCertificateError("key certificate fingerprint is not 40 hex digits")
    return bytes.fromhex(text)


def _time(item: NetdocItem) -> float:
    """``YYYY-MM-DD HH:MM:SS`` in UTC (dir-spec §1.2 ISOTimeSP) as epoch seconds."""
    date, clock = _plain(item, 2)
    if not _DATE.fullmatch(date) or not _TIME.fullmatch(clock):
        raise KeyCertificateError(f"key certificate {item.keyword} is not YYYY-MM-DD HH:MM:SS")
    try:
        parsed = time.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise KeyCertificateError(f"key certificate {item.keyword} is not a date") from exc
    return float(calendar.timegm(parsed))


def _address(item: NetdocItem | None) -> tuple[str, int] | None:
    if item is None:
        return None
    (text,) = _plain(item, 1, extra=True)
    match = _IPV4_PORT.fullmatch(text)
    octets = match.group(1).split(".") if match else []
    if (
        match is None
        or any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets)
        or not 1 <= int(match.group(2)) <= 65535
    ):
        raise KeyCertificateError("key certificate dir-address is not IPv4:port")
    return match.group(1), int(match.group(2))


def _rsa_key(item: NetdocItem, min_bits: int) -> tuple[rsa.RSAPublicKey, bytes]:
    if item.args or item.obj is None or item.obj.label != "RSA PUBLIC KEY":
        raise KeyCertificateError(f"key certificate {item.keyword} is not an RSA PUBLIC KEY")
    der = item.obj.data
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyCertificateError(f"key certificate {item.keyword} does not parse") from exc
    if (
        not isinstance(key, rsa.RSAPublicKey)
        or not min_bits <= key.key_size <= MAX_KEY_BITS
        or key.public_numbers().e != RSA_EXPONENT
        or rsa_public_der(key) != der
    ):
        raise KeyCertificateError(
            f"key certificate {item.keyword} is not a canonical PKCS#1 RSA key of "
            f"{min_bits}-{MAX_KEY_BITS} bits with exponent {RSA_EXPONENT}"
        )
    return key, der


def _signature(item: NetdocItem, labels: tuple[str, ...]) -> bytes:
    if item.args or item.obj is None or item.obj.label not in labels:
        raise KeyCertificateError(f"key certificate {item.keyword} has no {labels[0]} object")
    return item.obj.data


def _verify(key: rsa.RSAPublicKey, signature: bytes, digest: bytes) -> bool:
    return len(signature) == (key.key_size + 7) // 8 and rsa_raw_verify(key, signature, digest)


def _name(cert: KeyCertificate) -> str:
    return cert.identity_fingerprint.hex().upper()


def _fmt(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
