"""link.descriptor_sig: both signatures of a server descriptor (dir-spec §2.1.1), checked on the
descriptor captured from a real tor 0.4.9.11 bridge and on descriptors signed here with keys
made for the test (to reach the cases a real relay would never sign)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from tests.support.link_capture import CAPTURED_AT, DESCRIPTOR_BYTES, relay_identity
from webtunnel_pt.errors import DescriptorSignatureError, IdentityMismatch
from webtunnel_pt.tor.certs import RelayIdentity, parse_ed25519_cert, rsa_fingerprint
from webtunnel_pt.tor.descriptor_sig import (
    ED_SIGNATURE_PREFIX,
    split_signed,
    verify_descriptor_signatures,
)
from webtunnel_pt.tor.directory import check_descriptor_identity, parse_server_descriptor

IDENTITY = relay_identity()
_CERT = parse_server_descriptor(DESCRIPTOR_BYTES).identity_cert
assert _CERT is not None
CERT_EXPIRES = _CERT.expires
ED_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def check(raw: bytes, now: float = CAPTURED_AT, identity: RelayIdentity = IDENTITY) -> None:
    """What the probe does with the body of /tor/server/authority."""
    check_descriptor_identity(parse_server_descriptor(raw), identity, now=now)


def replace_once(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) == 1, old
    return raw.replace(old, new)


def rsa_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def ed_pub(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(*ED_RAW)


def pem_lines(der: bytes) -> bytes:
    text = base64.b64encode(der)
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))


def pem(label: bytes, der: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, pem_lines(der), label)


def flip_b64(raw: bytes, at: int) -> bytes:
    """Change the base64 character at ``at`` to another one (a different 6-bit value)."""
    char = raw[at : at + 1]
    assert char.isalnum()
    return raw[:at] + (b"B" if char == b"A" else b"A") + raw[at + 1 :]


# ---- the captured descriptor ----------------------------------------------------------------


def test_captured_descriptor_signatures_verify() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_BYTES)
    verify_descriptor_signatures(
        DESCRIPTOR_BYTES,
        signing_key=desc.signing_key,
        identity_cert=desc.identity_cert,
        now=CAPTURED_AT,
    )
    check(DESCRIPTOR_BYTES)


def test_captured_descriptor_signed_parts() -> None:
    """The digests match the spec's description, cross-checked with cryptography's own RSA
    signature recovery (PKCS#1 v1.5, no DigestInfo)."""
    signed = split_signed(DESCRIPTOR_BYTES)
    rsa_end = DESCRIPTOR_BYTES.index(b"\nrouter-signature\n") + len(b"\nrouter-signature\n")
    ed_end = DESCRIPTOR_BYTES.index(b"\nrouter-sig-ed25519 ") + len(b"\nrouter-sig-ed25519 ")
    assert signed.rsa_digest == hashlib.sha1(DESCRIPTOR_BYTES[:rsa_end]).digest()
    assert (
        signed.ed25519_digest
        == hashlib.sha256(ED_SIGNATURE_PREFIX + DESCRIPTOR_BYTES[:ed_end]).digest()
    )
    key = serialization.load_der_public_key(IDENTITY.rsa_identity_key)
    assert isinstance(key, rsa.RSAPublicKey)
    recovered = key.recover_data_from_signature(signed.rsa_signature, padding.PKCS1v15(), None)
    assert recovered == signed.rsa_digest
    assert len(signed.ed25519_signature) == 64


@pytest.mark.parametrize(
    "tail", [b"", b"\n", b"\n\n\n"], ids=["no-blank-line", "one-blank-line", "three"]
)
def test_blank_lines_after_the_signature_are_tolerated(tail: bytes) -> None:
    check(DESCRIPTOR_BYTES.rstrip(b"\n") + b"\n" + tail)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"router LinkCapture ", b"router LinkCapturf "),
        (b"platform Tor 0.4.9.11 on Linux", b"platform Tor 0.4.9.12 on Linux"),
        (b"uptime 0\n", b"uptime 1\n"),
        (b"contact capture@link.test", b"contact capture@link.tesu"),
        (b"reject *:*", b"accept *:*"),
        (b"\ntunnelled-dir-server\n", b"\ntunnelled-dir-servex\n"),
    ],
)
def test_flipped_byte_in_signed_body(old: bytes, new: bytes) -> None:
    with pytest.raises(DescriptorSignatureError, match="router-sig-ed25519 does not verify"):
        check(replace_once(DESCRIPTOR_BYTES, old, new))


def test_flipped_byte_in_ed25519_signature() -> None:
    at = DESCRIPTOR_BYTES.index(b"router-sig-ed25519 ") + len(b"router-sig-ed25519 ") + 10
    with pytest.raises(DescriptorSignatureError, match="router-sig-ed25519 does not verify"):
        check(flip_b64(DESCRIPTOR_BYTES, at))


def test_flipped_byte_in_rsa_signature() -> None:
    at = (
        DESCRIPTOR_BYTES.index(b"-----BEGIN SIGNATURE-----\n")
        + len(b"-----BEGIN SIGNATURE-----\n")
        + 10
    )
    with pytest.raises(DescriptorSignatureError, match="router-signature does not verify"):
        check(flip_b64(DESCRIPTOR_BYTES, at))


def test_flipped_byte_in_identity_cert_signature() -> None:
    """The last base64 line of identity-ed25519 holds the certificate's own signature."""
    at = DESCRIPTOR_BYTES.index(b"\n-----END ED25519 CERT-----") - 10
    with pytest.raises(DescriptorSignatureError, match="identity-ed25519 certificate"):
        check(flip_b64(DESCRIPTOR_BYTES, at))


def test_signing_key_replaced_by_another_key() -> None:
    desc = parse_server_descriptor(DESCRIPTOR_BYTES)
    assert desc.signing_key is not None
    other = OTHER.rsa_key.public_key()
    raw = replace_once(DESCRIPTOR_BYTES, pem_lines(desc.signing_key), pem_lines(rsa_der(other)))
    assert parse_server_descriptor(raw).signing_key == rsa_der(other)
    with pytest.raises(DescriptorSignatureError, match="does not verify"):
        check(raw)


def test_expired_identity_cert() -> None:
    check(DESCRIPTOR_BYTES, now=CERT_EXPIRES)  # valid up to and including its expiry
    with pytest.raises(DescriptorSignatureError, match="identity-ed25519 certificate expired"):
        check(DESCRIPTOR_BYTES, now=CERT_EXPIRES + 1)


def _drop_line(raw: bytes, line: bytes) -> bytes:
    return replace_once(raw, b"\n" + line + b"\n", b"\n")


def _drop_object(raw: bytes, keyword: bytes, end: bytes) -> bytes:
    start = raw.index(b"\n" + keyword + b"\n")
    stop = raw.index(end, start) + len(end)
    return raw[:start] + raw[stop:]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: _drop_line(r, next(x for x in r.split(b"\n") if b"sig-ed25519 " in x)),
            "no router-sig-ed25519",
        ),
        (
            lambda r: r[: r.index(b"router-signature\n")],
            "no router-signature",
        ),
        (
            lambda r: r[: r.index(b"router-signature\n") + len(b"router-signature\n")],
            "not followed by exactly one SIGNATURE object",
        ),
        (
            lambda r: _drop_object(r, b"identity-ed25519", b"-----END ED25519 CERT-----"),
            "identity-ed25519 certificate is missing",
        ),
    ],
    ids=["router-sig-ed25519", "router-signature", "signature-object", "identity-ed25519"],
)
def test_missing_signature(mutate: Callable[[bytes], bytes], message: str) -> None:
    raw = mutate(DESCRIPTOR_BYTES)
    assert raw != DESCRIPTOR_BYTES
    with pytest.raises(DescriptorSignatureError, match=message):
        check(raw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: b"@purpose bridge\n" + r, "does not start with its router line"),
        (lambda r: r + b"uptime 99\n", "exactly one SIGNATURE object"),
        (lambda r: r + r, "exactly one SIGNATURE object"),
    ],
    ids=["text-before-router", "field-after-signature", "two-descriptors"],
)
def test_unsigned_text_is_refused(mutate: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(DescriptorSignatureError, match=message):
        check(mutate(DESCRIPTOR_BYTES))


def test_ed25519_signature_must_be_next_to_last() -> None:
    lines = DESCRIPTOR_BYTES.split(b"\n")
    ed = next(i for i, line in enumerate(lines) if line.startswith(b"router-sig-ed25519 "))
    lines[ed - 1], lines[ed] = lines[ed], lines[ed - 1]  # swap with tunnelled-dir-server
    with pytest.raises(DescriptorSignatureError, match="not one line, just before"):
        check(b"\n".join(lines))


def test_ed25519_signature_only_once() -> None:
    """tor hashes up to the first router-sig-ed25519: a second one is refused, not guessed."""
    raw = replace_once(
        DESCRIPTOR_BYTES, b"\nreject *:*\n", b"\nrouter-sig-ed25519 AAAA\nreject *:*\n"
    )
    with pytest.raises(DescriptorSignatureError, match="not one line, just before"):
        check(raw)


def test_ed25519_signature_must_be_64_bytes() -> None:
    at = DESCRIPTOR_BYTES.index(b"\nrouter-signature\n")
    with pytest.raises(DescriptorSignatureError, match="64 bytes"):
        check(DESCRIPTOR_BYTES[: at - 4] + DESCRIPTOR_BYTES[at:])
    with pytest.raises(DescriptorSignatureError, match="not base64"):
        check(DESCRIPTOR_BYTES[: at - 1] + b"!" + DESCRIPTOR_BYTES[at:])


# ---- descriptors signed here -----------------------------------------------------------------

NOW = CAPTURED_AT
HOURS = int(NOW // 3600) + 24


def raw_rsa_sign(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 padding of the bare digest, as tor signs (no DigestInfo)."""
    size = key.key_size // 8
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    numbers = key.private_numbers()
    value = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(size, "big")


def ed_cert(
    certified: bytes, signer: ed25519.Ed25519PrivateKey, *, cert_type: int = 4, hours: int = HOURS
) -> bytes:
    """cert-spec §2.1: version 1, type, expiry, key type 1, key, extension 04 naming signer."""
    body = struct.pack(">BBIB", 1, cert_type, hours, 1) + certified
    body += b"\x01" + struct.pack(">HBB", 32, 4, 0) + ed_pub(signer)
    return body + signer.sign(body)


@dataclasses.dataclass
class Relay:
    rsa_key: rsa.RSAPrivateKey
    identity: ed25519.Ed25519PrivateKey
    signing: ed25519.Ed25519PrivateKey

    def link_identity(self) -> RelayIdentity:
        """What a CERTS cell from this relay would prove."""
        public = self.rsa_key.public_key()
        return RelayIdentity(
            rsa_fingerprint=rsa_fingerprint(public),
            ed25519_identity=ed_pub(self.identity),
            link_cert_sha256=bytes(32),
            expires=NOW + 86400,
            rsa_identity_key=rsa_der(public),
        )


def new_relay() -> Relay:
    return Relay(
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ed25519.Ed25519PrivateKey.generate(),
        ed25519.Ed25519PrivateKey.generate(),
    )


RELAY = new_relay()
OTHER = new_relay()


def make_descriptor(
    relay: Relay = RELAY,
    *,
    cert: bytes | None = None,
    signing_key: rsa.RSAPublicKey | None = None,
    omit_signing_key: bool = False,
    ed_signer: ed25519.Ed25519PrivateKey | None = None,
    rsa_sign: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """A descriptor laid out as tor 0.4.9 writes one, signed by ``relay`` unless overridden:
    ``cert`` (identity-ed25519 object), ``signing_key`` (the key written in the descriptor),
    ``ed_signer`` (makes router-sig-ed25519), ``rsa_sign`` (signed text -> router-signature)."""
    fingerprint = rsa_fingerprint(relay.rsa_key.public_key())
    spaced = " ".join(fingerprint[i : i + 4] for i in range(0, 40, 4))
    key = signing_key or relay.rsa_key.public_key()
    text = b"router Synthetic 127.0.0.1 9001 0 0\nidentity-ed25519\n"
    text += pem(b"ED25519 CERT", cert or ed_cert(ed_pub(relay.signing), relay.identity))
    text += b"master-key-ed25519 %s\n" % base64.b64encode(ed_pub(relay.identity)).rstrip(b"=")
    text += b"platform Tor 0.4.9.11 on Linux\npublished 2026-11-25 10:13:38\n"
    text += b"fingerprint %s\nuptime 7\nbandwidth 1 1 0\n" % spaced.encode()
    if not omit_signing_key:
        text += b"signing-key\n" + pem(b"RSA PUBLIC KEY", rsa_der(key))
    text += b"reject *:*\ntunnelled-dir-server\nrouter-sig-ed25519 "
    digest = hashlib.sha256(ED_SIGNATURE_PREFIX + text).digest()
    ed_sig = (ed_signer or relay.signing).sign(digest)
    text += base64.b64encode(ed_sig).rstrip(b"=") + b"\nrouter-signature\n"
    sign = rsa_sign or (lambda signed: raw_rsa_sign(relay.rsa_key, hashlib.sha1(signed).digest()))
    return text + pem(b"SIGNATURE", sign(text))


def check_synthetic(raw: bytes, relay: Relay = RELAY, now: float = NOW) -> None:
    check(raw, now=now, identity=relay.link_identity())


def test_synthetic_descriptor_verifies() -> None:
    check_synthetic(make_descriptor())
    check_synthetic(make_descriptor(OTHER), OTHER)


def test_signed_by_another_relay_is_an_identity_mismatch() -> None:
    """Valid signatures, but by a relay other than the one on the link: exit 16, not 18."""
    with pytest.raises(IdentityMismatch, match="fingerprint"):
        check_synthetic(make_descriptor(OTHER), RELAY)


def test_signing_key_of_another_relay_with_matching_signature() -> None:
    """Re-signed by a different RSA key that the descriptor names: the signatures verify, the
    key is not the link's."""
    other_key = OTHER.rsa_key
    raw = make_descriptor(
        signing_key=other_key.public_key(),
        rsa_sign=lambda signed: raw_rsa_sign(other_key, hashlib.sha1(signed).digest()),
    )
    with pytest.raises(IdentityMismatch, match="signing-key"):
        check_synthetic(raw)


def test_router_signature_by_a_key_other_than_signing_key() -> None:
    raw = make_descriptor(
        rsa_sign=lambda signed: raw_rsa_sign(OTHER.rsa_key, hashlib.sha1(signed).digest())
    )
    with pytest.raises(DescriptorSignatureError, match="router-signature does not verify"):
        check_synthetic(raw)


def test_router_signature_over_other_text() -> None:
    """The RSA signature must cover the whole text through router-signature (the Ed25519 one,
    correct here, stops earlier)."""
    raw = make_descriptor(
        rsa_sign=lambda signed: raw_rsa_sign(RELAY.rsa_key, hashlib.sha1(signed[:-1]).digest())
    )
    with pytest.raises(DescriptorSignatureError, match="router-signature does not verify"):
        check_synthetic(raw)


def test_router_signature_with_digest_info_is_refused() -> None:
    """tor signs the bare digest: a standard PKCS#1 v1.5 SHA-1 signature is not the same."""
    raw = make_descriptor(
        rsa_sign=lambda signed: RELAY.rsa_key.sign(signed, padding.PKCS1v15(), hashes.SHA1())
    )
    with pytest.raises(DescriptorSignatureError, match="router-signature does not verify"):
        check_synthetic(raw)


def test_missing_signing_key() -> None:
    with pytest.raises(DescriptorSignatureError, match="no signing-key"):
        check_synthetic(make_descriptor(omit_signing_key=True))


def test_signing_key_must_be_rsa_1024() -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raw = make_descriptor(
        signing_key=big.public_key(),
        rsa_sign=lambda signed: raw_rsa_sign(big, hashlib.sha1(signed).digest()),
    )
    with pytest.raises(DescriptorSignatureError, match="1024-bit"):
        check_synthetic(raw)


def test_ed25519_signature_by_the_identity_key() -> None:
    """router-sig-ed25519 is made by the certified signing key, not the identity key."""
    with pytest.raises(DescriptorSignatureError, match="router-sig-ed25519 does not verify"):
        check_synthetic(make_descriptor(ed_signer=RELAY.identity))


def test_identity_cert_signed_by_another_key() -> None:
    cert = bytearray(ed_cert(ed_pub(RELAY.signing), OTHER.identity))
    cert[-96:-64] = ed_pub(RELAY.identity)  # claims RELAY's identity, signed by OTHER's
    with pytest.raises(DescriptorSignatureError, match="Ed25519 signature does not verify"):
        check_synthetic(make_descriptor(cert=bytes(cert)))


def test_identity_cert_certifies_another_signing_key() -> None:
    cert = ed_cert(ed_pub(OTHER.signing), RELAY.identity)
    with pytest.raises(DescriptorSignatureError, match="router-sig-ed25519 does not verify"):
        check_synthetic(make_descriptor(cert=cert))


def test_identity_cert_must_be_type_4() -> None:
    cert = ed_cert(ed_pub(RELAY.signing), RELAY.identity, cert_type=5)
    with pytest.raises(DescriptorSignatureError, match="type 4"):
        check_synthetic(make_descriptor(cert=cert))


def test_expired_identity_cert_signed_here() -> None:
    expired = ed_cert(ed_pub(RELAY.signing), RELAY.identity, hours=HOURS - 48)
    raw = make_descriptor(cert=expired)
    check_synthetic(raw, now=(HOURS - 48) * 3600)
    with pytest.raises(DescriptorSignatureError, match="expired") as info:
        check_synthetic(raw)
    assert "identity-ed25519" in str(info.value)


def test_parsed_certificate_is_the_one_signed() -> None:
    cert = ed_cert(ed_pub(RELAY.signing), RELAY.identity)
    desc = parse_server_descriptor(make_descriptor(cert=cert))
    assert desc.identity_cert == parse_ed25519_cert(cert)
    assert desc.identity_cert_key == ed_pub(RELAY.identity)
