"""Microdesc consensuses and microdescriptors written and signed by the tests (dir-spec §3.3,
§3.4.1), with test authorities whose keys are made here: small, readable documents for the
parsers' unit tests, including the ones no real authority would sign."""

from __future__ import annotations

import base64
import calendar
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: 2026-01-01 12:00:00 UTC, the valid-after of every test consensus unless told otherwise.
VALID_AFTER = calendar.timegm((2026, 1, 1, 12, 0, 0, 0, 0, 0))
HOUR = 3600


def b64(raw: bytes) -> str:
    """Base64 without ``=``, as consensus and microdescriptor lines write it."""
    return base64.b64encode(raw).decode().rstrip("=")


def fmt_time(when: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


def pem(label: str, der: bytes) -> str:
    text = base64.b64encode(der).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


def der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def raw_sign(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 padding of the bare digest, no DigestInfo (dir-spec §1.3)."""
    numbers = key.private_numbers()
    size = (key.key_size + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    value = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(size, "big")


@dataclass(frozen=True)
class FakeCertificate:
    """What verification reads from a key certificate (the AuthorityCertificate protocol)."""

    identity_fingerprint: bytes
    signing_key: rsa.RSAPublicKey
    signing_key_digest: bytes
    expires: float


@dataclass(frozen=True)
class FakeAuthority:
    nickname: str
    identity: rsa.RSAPrivateKey
    signing: rsa.RSAPrivateKey
    v3ident: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "v3ident", hashlib.sha1(der(self.identity.public_key())).digest())

    def certificate(self, expires: float = VALID_AFTER + 365 * 24 * HOUR) -> FakeCertificate:
        public = self.signing.public_key()
        return FakeCertificate(self.v3ident, public, hashlib.sha1(der(public)).digest(), expires)

    @property
    def signing_key_digest(self) -> bytes:
        return hashlib.sha1(der(self.signing.public_key())).digest()


@cache
def authorities() -> tuple[FakeAuthority, ...]:
    """Five test authorities (1024-bit keys: fast to make, and the parser does not care)."""

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)

    return tuple(FakeAuthority(f"auth{i}", key(), key()) for i in range(5))


@dataclass(frozen=True)
class Microdesc:
    """A microdescriptor's text and the ``m`` value that names it."""

    text: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.text).digest()


def microdesc(
    seed: int,
    *,
    tap: bool = True,
    family: str | None = None,
    family_ids: str | None = None,
    policy: str | None = "accept 80,443",
    policy6: str | None = None,
    ed25519: bool = True,
    extra: str = "",
) -> Microdesc:
    ntor = hashlib.sha256(b"ntor%d" % seed).digest()
    ed = hashlib.sha256(b"ed%d" % seed).digest()
    lines = []
    tap_key = pem("RSA PUBLIC KEY", hashlib.sha512(b"%d" % seed).digest()) if tap else ""
    lines.append("onion-key\n" + tap_key)
    lines.append(f"ntor-onion-key {b64(ntor)}\n")
    if family is not None:
        lines.append(f"family {family}\n")
    if family_ids is not None:
        lines.append(f"family-ids {family_ids}\n")
    if policy is not None:
        lines.append(f"p {policy}\n")
    if policy6 is not None:
        lines.append(f"p6 {policy6}\n")
    if ed25519:
        lines.append(f"id ed25519 {b64(ed)}\n")
    return Microdesc(("".join(lines) + extra).encode())


def router_identity(seed: int) -> bytes:
    return hashlib.sha1(b"relay%d" % seed).digest()


def router_entry(
    seed: int,
    digest: bytes,
    *,
    flags: str = "Fast Running Stable Valid",
    bandwidth: str = "Bandwidth=1000",
    extra: str = "",
) -> str:
    return (
        f"r relay{seed} {b64(router_identity(seed))} 2026-01-01 11:30:00 "
        f"10.0.{seed // 250}.{seed % 250 + 1} 9001 0\n"
        f"a [2001:db8::{seed + 1:x}]:9001\n"
        f"m {b64(digest)}\n"
        f"s {flags}\n"
        f"v Tor 0.4.9.11\n"
        f"pr Cons=1-2 Desc=1-4 Link=1-5 Microdesc=1-3 Relay=1-4\n"
        f"w {bandwidth}\n"
        f"{extra}"
    )


KNOWN_FLAGS = "BadExit Exit Fast Guard HSDir MiddleOnly NoEdConsensus Running Stable V2Dir Valid"


def consensus_body(
    entries: Sequence[str],
    *,
    valid_after: int = VALID_AFTER,
    authority_list: Sequence[FakeAuthority] | None = None,
    params: str = "circwindow=800 bwweightscale=10000",
    header_extra: str = "",
    footer_extra: str = "",
) -> str:
    """Everything up to the first ``directory-signature`` (exclusive)."""
    authority_list = authorities()[:3] if authority_list is None else authority_list
    sources = "".join(
        f"dir-source {a.nickname} {a.v3ident.hex().upper()} 127.0.0.{i + 1} 127.0.0.{i + 1} "
        f"7000 5000\ncontact auth{i}@example.org\nvote-digest {'AB' * 20}\n"
        for i, a in enumerate(authority_list)
    )
    return (
        "network-status-version 3 microdesc\n"
        "vote-status consensus\n"
        "consensus-method 34\n"
        f"valid-after {fmt_time(valid_after)}\n"
        f"fresh-until {fmt_time(valid_after + HOUR)}\n"
        f"valid-until {fmt_time(valid_after + 3 * HOUR)}\n"
        "voting-delay 300 300\n"
        "client-versions 0.4.8.1,0.4.9.11\n"
        f"known-flags {KNOWN_FLAGS}\n"
        "recommended-client-protocols Cons=2 Desc=2 Link=4 Microdesc=2 Relay=2\n"
        f"params {params}\n"
        "shared-rand-current-value 9 " + b64(bytes(32)) + "=\n"
        f"{header_extra}"
        f"{sources}" + "".join(entries) + "directory-footer\n"
        "bandwidth-weights Wbd=0 Wbe=0 Wbg=4194 Wbm=10000 Wdb=10000 Web=10000 Wed=10000 "
        "Wee=10000 Weg=10000 Wem=10000 Wgb=10000 Wgd=0 Wgg=5806 Wgm=5806 Wmb=10000 Wmd=0 "
        "Wme=0 Wmg=4194 Wmm=10000\n"
        f"{footer_extra}"
    )


def sign_consensus(
    body: str,
    signers: Sequence[tuple[FakeAuthority, str | None]],
    *,
    corrupt: Sequence[int] = (),
) -> bytes:
    """Append one ``directory-signature`` per (authority, algorithm); algorithm None writes
    the two-argument (SHA-1) form. Signatures at the ``corrupt`` indexes get one bit flipped."""
    signed = (body + "directory-signature ").encode()
    out = body.encode()
    for index, (authority, algorithm) in enumerate(signers):
        digest = (hashlib.sha1 if algorithm in (None, "sha1") else hashlib.sha256)(signed)
        signature = bytearray(raw_sign(authority.signing, digest.digest()))
        if index in corrupt:
            signature[-1] ^= 1
        alg = "" if algorithm is None else f"{algorithm} "
        out += (
            f"directory-signature {alg}{authority.v3ident.hex().upper()} "
            f"{authority.signing_key_digest.hex().upper()}\n" + pem("SIGNATURE", bytes(signature))
        ).encode()
    return out


def network(count: int = 4) -> tuple[bytes, list[Microdesc]]:
    """A consensus of ``count`` relays signed by the first three test authorities (SHA-256),
    and the relays' microdescriptors."""
    micros = [microdesc(i, tap=i % 2 == 0) for i in range(count)]
    order = sorted(range(count), key=router_identity)
    entries = [router_entry(i, micros[i].digest) for i in order]
    signers = [(a, "sha256") for a in authorities()[:3]]
    return sign_consensus(consensus_body(entries), signers), micros
