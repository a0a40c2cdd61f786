"""A synthetic Tor network, signed like the real one, for tests and benchmarks.

    net = make_network(50, seed=1)          # 50 relays, 3 authorities, all signing
    net.consensus                           # microdesc consensus, bytes, signed
    net.microdescs                          # every microdescriptor, concatenated as served
    net.certificates                        # the authorities' key certificates, concatenated
    net.dir_authority_lines                 # torrc DirAuthority lines naming the authorities
    net.valid_after                         # a time (epoch s) at which the consensus is live

    sign_consensus(body, authorities)       # re-sign an edited document (mutation tests)
    make_key_certificate(keys, ...)         # a certificate with other dates (expired ...)
    next_network(net, relays=...)           # the next period's consensus (cache tests)

Relay fields come from ``random.Random(seed)``: the same seed gives the same relays and the
same unsigned document. The authorities' RSA keys (3072-bit identity, 2048-bit signing, as
tor-gencert makes them) are generated once per process and cached, since key generation is
slow; signatures therefore differ between processes.

Formats follow what tor 0.4.9 emits (compare tests/data/dir, captured from it; tor's
dirvote.c for the order of lines), consensus method 35:

- microdescriptor (dir-spec "Computing microdescriptors"): ``onion-key`` (with a PEM RSA key,
  or bare when ``tap_keys=False`` as after prop 350), ``ntor-onion-key``, ``family`` (canonical:
  ``$HEX`` sorted, the relay itself included), ``family-ids``, ``p``, ``p6``, ``id ed25519``;
  keys and digests in base64 without ``=``;
- consensus entries (dir-spec §3.4.1), sorted by RSA identity: ``r`` (published
  2038-01-01 00:00:00, as tor now writes it), ``a``, ``m``, ``s``, ``v``, ``pr``, ``w``;
- signatures: SHA-256 over the document from its start through the space after the first
  ``directory-signature``; ``directory-signature sha256 <v3ident> <signing key digest>`` then a
  SIGNATURE object holding the raw PKCS#1 v1.5 type-1 signature of the digest (no DigestInfo)
  by the signing key; sorted by v3ident.
- key certificates (dir-spec §3.1): SHA-1 of the text through the newline after
  ``dir-key-certification``, signed by the identity key; ``dir-key-crosscert`` signs
  SHA-1(identity key DER) with the signing key.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_RELAYS = 8000  # about the size of the real network
IDENTITY_KEY_BITS = 3072  # tor-gencert's authority identity keys
SIGNING_KEY_BITS = 2048  # tor-gencert's authority signing keys
CONSENSUS_METHOD = 35  # what tor 0.4.9 authorities agree on (tests/data/dir)
#: 2026-01-01 12:00:00 UTC: a fixed default, so tests pass "now" explicitly.
DEFAULT_VALID_AFTER = calendar.timegm((2026, 1, 1, 12, 0, 0, 0, 0, 0))
FRESH_S = 3600  # fresh-until - valid-after on the real network
VALID_S = 3 * 3600  # valid-until - valid-after on the real network
PUBLISHED = "2038-01-01 00:00:00"  # tor's fixed r-line "published" since consensus method 33
KNOWN_FLAGS = (
    "Authority BadExit Exit Fast Guard HSDir MiddleOnly NoEdConsensus Running Stable "
    "StaleDesc Sybil V2Dir Valid"
)
RELAY_PROTOCOLS = (  # tor 0.4.9.11's pr line (tests/data/dir)
    "Conflux=1 Cons=1-2 Desc=1-4 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 "
    "Link=3-5 LinkAuth=3 Microdesc=1-3 Padding=2 Relay=2-6"
)
#: A pr line per release series: the real network has a few dozen distinct ones, not one.
_PROTOCOLS_BY_SERIES = {
    "0.4.8": "Conflux=1 Cons=1-2 Desc=1-2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 "
    "HSRend=1-2 Link=1-5 LinkAuth=1,3 Microdesc=1-2 Padding=2 Relay=1-4",
    "0.4.9": RELAY_PROTOCOLS,
}
_PROTOCOL_LINES = (
    "recommended-client-protocols Cons=2 Desc=2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4 "
    "HSRend=2 Link=4-5 Microdesc=2 Relay=2-4",
    "recommended-relay-protocols Cons=2 Desc=2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 "
    "HSRend=2 Link=4-5 LinkAuth=3 Microdesc=2 Relay=2-4",
    "required-client-protocols Cons=2 Desc=2 FlowCtrl=1 Link=4 Microdesc=2 Relay=2",
    "required-relay-protocols Cons=2 Desc=2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 "
    "HSRend=2 Link=4-5 LinkAuth=3 Microdesc=2 Relay=2-4",
)
PARAMS = {
    "AuthDirMaxServersPerAddr": 8,
    "CircuitPriorityHalflifeMsec": 30000,
    "DoSCircuitCreationEnabled": 1,
    "DoSConnectionEnabled": 1,
    "DoSConnectionMaxConcurrentCount": 50,
    "DoSRefuseSingleHopClientRendezvous": 1,
    "ExtendByEd25519ID": 1,
    "KISTSchedRunInterval": 3,
    "UseOptimisticData": 1,
    "bwauthpid": 1,
    "cbttestfreq": 10,
    "cc_alg": 2,
    "circwindow": 1000,
    "guard-n-primary-dir-guards-to-use": 2,
    "hs_service_max_rdv_failures": 1,
    "sendme_emit_min_version": 1,
}
_VERSIONS = ("0.4.8.12", "0.4.8.13", "0.4.8.14", "0.4.8.16", "0.4.9.1-alpha", "0.4.9.11")
_EXIT_SUMMARIES = (
    "reject 25,119,135-139,445,563,1214,4661-4666,6346-6429,6699,6881-6999",
    "accept 80,443",
    "accept 1-65535",
    "accept 20-23,43,53,79-81,88,110,143,194,220,389,443,464-465,531,543-544,554,563,587,636,"
    "706,749,853,873,902-904,981,989-995,1194,1220,1293,1500,1533,1677,1723,1755,1863,"
    "2082-2083,2086-2087,2095-2096,2102-2104,3128,3389,3690,4321,4643,5050,5190,5222-5223,"
    "5228,5900,6660-6669,6679,6697,8000,8008,8074,8080,8082,8087-8088,8232-8233,8332-8333,"
    "8443,8888,9418,9999-10000,11371,19294,19638,50002,64738",
)
_SYLLABLES = ("tor", "relay", "node", "onion", "ex", "mid", "quux", "zeta", "nyx", "ka", "lo")
_PEM_LINE = 64  # tor wraps base64 in PEM objects at 64 characters


# ---- encodings -----------------------------------------------------------------------------


def b64(data: bytes) -> str:
    """Base64 without the trailing ``=`` (how tor writes keys and digests in directories)."""
    return base64.b64encode(data).decode().rstrip("=")


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def pem_object(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + _PEM_LINE] for i in range(0, len(body), _PEM_LINE)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def rsa_public_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def rsa_key_digest(key: rsa.RSAPublicKey) -> str:
    """SHA-1 of the PKCS#1 DER, upper-case hex: a v3ident or a signing-key digest."""
    return hashlib.sha1(rsa_public_der(key)).hexdigest().upper()


def sign_digest(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """tor's signature on directory objects: PKCS#1 v1.5 type-1 padding of the bare digest
    (no DigestInfo), then the private-key operation (``cryptography`` always adds a
    DigestInfo, so the exponentiation is done here)."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    size = (key.key_size + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    return pow(int.from_bytes(block, "big"), numbers.d, n).to_bytes(size, "big")


# ---- authorities ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorityKeys:
    identity: rsa.RSAPrivateKey
    signing: rsa.RSAPrivateKey

    @property
    def v3ident(self) -> str:
        return rsa_key_digest(self.identity.public_key())

    @property
    def signing_key_digest(self) -> str:
        return rsa_key_digest(self.signing.public_key())


@functools.cache
def authority_keys(index: int) -> AuthorityKeys:
    """The keys of authority ``index``: made on first use, then the same for this process."""
    return AuthorityKeys(
        rsa.generate_private_key(public_exponent=65537, key_size=IDENTITY_KEY_BITS),
        rsa.generate_private_key(public_exponent=65537, key_size=SIGNING_KEY_BITS),
    )


@functools.cache
def signing_key(index: int) -> rsa.RSAPrivateKey:
    """Spare signing keys (a rotated or forged signing key in mutation tests)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=SIGNING_KEY_BITS)


def make_key_certificate(
    keys: AuthorityKeys,
    *,
    published: float,
    expires: float,
    dir_address: str | None = None,
) -> bytes:
    """An authority key certificate (dir-spec §3.1) as tor-gencert writes it."""
    identity = keys.identity.public_key()
    signing = keys.signing.public_key()
    crosscert = sign_digest(keys.signing, hashlib.sha1(rsa_public_der(identity)).digest())
    text = "".join(
        [
            "dir-key-certificate-version 3\n",
            f"dir-address {dir_address}\n" if dir_address else "",
            f"fingerprint {keys.v3ident}\n",
            f"dir-key-published {iso_time(published)}\n",
            f"dir-key-expires {iso_time(expires)}\n",
            "dir-identity-key\n",
            pem_object("RSA PUBLIC KEY", rsa_public_der(identity)),
            "dir-signing-key\n",
            pem_object("RSA PUBLIC KEY", rsa_public_der(signing)),
            "dir-key-crosscert\n",
            pem_object("ID SIGNATURE", crosscert),
            "dir-key-certification\n",
        ]
    ).encode()
    signature = sign_digest(keys.identity, hashlib.sha1(text).digest())
    return text + pem_object("SIGNATURE", signature).encode()


@dataclass(frozen=True)
class FakeAuthority:
    nickname: str
    address: str
    dir_port: int
    or_port: int
    fingerprint: str  # the authority's relay RSA identity, 40 upper-case hex
    keys: AuthorityKeys
    certificate: bytes

    @property
    def v3ident(self) -> str:
        return self.keys.v3ident

    def dir_authority_line(self) -> str:
        return (
            f"DirAuthority {self.nickname} orport={self.or_port} no-v2 v3ident={self.v3ident} "
            f"{self.address}:{self.dir_port} {self.fingerprint}"
        )


def make_authorities(
    count: int, *, seed: int = 0, published: float = DEFAULT_VALID_AFTER - 30 * 86400
) -> list[FakeAuthority]:
    """``count`` authorities on 127.0.0.1 (keys cached per index), certificates valid for a
    year from ``published``."""
    rng = random.Random(f"authorities-{seed}")
    authorities = []
    for i in range(count):
        keys = authority_keys(i)
        dir_port, or_port = 7000 + 2 * i, 7001 + 2 * i
        cert = make_key_certificate(
            keys,
            published=published,
            expires=published + 365 * 86400,
            dir_address=f"127.0.0.1:{dir_port}",
        )
        fingerprint = rng.randbytes(20).hex().upper()
        authorities.append(
            FakeAuthority(f"fakeauth{i}", "127.0.0.1", dir_port, or_port, fingerprint, keys, cert)
        )
    return authorities


def sign_consensus(
    body: bytes, signers: Sequence[FakeAuthority | AuthorityKeys], algorithm: str = "sha256"
) -> bytes:
    """Append one ``directory-signature`` per signer to ``body`` (the document up to, not
    including, the first ``directory-signature``), sorted by v3ident as tor writes them."""
    digest = hashlib.new(algorithm, body + b"directory-signature ").digest()
    keys = sorted(
        (s.keys if isinstance(s, FakeAuthority) else s for s in signers),
        key=lambda k: k.v3ident,
    )
    parts = [body]
    for k in keys:
        parts.append(
            f"directory-signature {algorithm} {k.v3ident} {k.signing_key_digest}\n".encode()
        )
        parts.append(pem_object("SIGNATURE", sign_digest(k.signing, digest)).encode())
    return b"".join(parts)


# ---- relays --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRelay:
    nickname: str
    rsa_id: bytes  # 20 bytes
    ed25519_id: bytes  # 32 bytes
    ntor_key: bytes  # 32 bytes
    address: str
    or_port: int
    dir_port: int
    ipv6: str | None  # "[2001:db8::1]:443"
    flags: tuple[str, ...]  # sorted, as in the s line
    version: str  # "Tor 0.4.9.11"
    protocols: str  # the pr line's value
    bandwidth: int  # kB/s
    unmeasured: bool
    family: tuple[str, ...]  # "$HEX" of every member, this relay included, sorted
    family_ids: tuple[str, ...]  # "ed25519:<base64>"
    policy: str | None  # p summary ("accept 80,443"); None: rejects everything
    policy6: str | None
    microdesc: bytes

    @property
    def fingerprint(self) -> str:
        return self.rsa_id.hex().upper()

    @property
    def microdesc_digest(self) -> str:
        """The consensus ``m`` value: SHA-256, base64 without ``=``."""
        return b64(hashlib.sha256(self.microdesc).digest())

    def consensus_entry(self) -> str:
        lines = [
            f"r {self.nickname} {b64(self.rsa_id)} {PUBLISHED} {self.address} {self.or_port} "
            f"{self.dir_port}\n",
            f"a {self.ipv6}\n" if self.ipv6 else "",
            f"m {self.microdesc_digest}\n",
            f"s {' '.join(self.flags)}\n",
            f"v {self.version}\n",
            f"pr {self.protocols}\n",
            f"w Bandwidth={self.bandwidth}{' Unmeasured=1' if self.unmeasured else ''}\n",
        ]
        return "".join(lines)


def _fake_tap_key(rng: random.Random) -> bytes:
    """A PKCS#1 RSAPublicKey DER with a random odd 1024-bit modulus: the shape and size of
    the obsolete TAP onion key tor still serves (nobody uses it; making 8,000 real keys
    would take minutes)."""
    modulus = (
        bytes([0x80 | rng.randrange(128)])
        + rng.randbytes(126)
        + bytes([rng.randrange(128) * 2 + 1])
    )
    n_field = b"\x02\x81\x81\x00" + modulus  # INTEGER, 129 bytes (leading zero)
    e_field = b"\x02\x03\x01\x00\x01"  # INTEGER 65537
    return b"\x30\x81\x89" + n_field + e_field


def make_microdesc(
    *,
    ntor_key: bytes,
    ed25519_id: bytes,
    tap_key_der: bytes | None,
    family: Sequence[str] = (),
    family_ids: Sequence[str] = (),
    policy: str | None = None,
    policy6: str | None = None,
) -> bytes:
    """One microdescriptor, lines in the order tor's authorities write them."""
    lines = ["onion-key\n"]
    if tap_key_der is not None:
        lines.append(pem_object("RSA PUBLIC KEY", tap_key_der))
    lines.append(f"ntor-onion-key {b64(ntor_key)}\n")
    if family:
        lines.append(f"family {' '.join(family)}\n")
    if family_ids:
        lines.append(f"family-ids {' '.join(family_ids)}\n")
    if policy:
        lines.append(f"p {policy}\n")
    if policy6:
        lines.append(f"p6 {policy6}\n")
    lines.append(f"id ed25519 {b64(ed25519_id)}\n")
    return "".join(lines).encode()


def _nickname(rng: random.Random, index: int) -> str:
    if rng.random() < 0.05:
        return "Unnamed"
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
    return (name.capitalize() if rng.random() < 0.5 else name) + str(index)[: 19 - len(name)]


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([n for n in range(5, 224) if n not in (10, 100, 127, 169, 172, 192)])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random, port: int) -> str:
    groups = ":".join(f"{rng.randrange(0x10000):x}" for _ in range(6))
    return f"[2a01:{groups}:{rng.randrange(1, 0x10000):x}]:{port}"


def _flags(rng: random.Random, *, is_exit: bool, is_authority: bool) -> tuple[str, ...]:
    flags = {"Running", "Valid"}
    fast = rng.random() < 0.9
    stable = rng.random() < 0.75
    odds = [
        ("Fast", fast),
        ("Stable", stable),
        ("Guard", fast and stable and rng.random() < 0.8),
        ("HSDir", stable and rng.random() < 0.8),
        ("V2Dir", rng.random() < 0.9),
        ("Exit", is_exit),
        ("BadExit", is_exit and rng.random() < 0.01),
        ("StaleDesc", rng.random() < 0.02),
        ("MiddleOnly", not is_exit and rng.random() < 0.005),
        ("Authority", is_authority),
    ]
    flags.update(name for name, on in odds if on)
    return tuple(sorted(flags))


def _families(rng: random.Random, count: int) -> dict[int, int]:
    """relay index -> family number: about 15 % of relays in families of 2-8."""
    members: dict[int, int] = {}
    free = list(range(count))
    rng.shuffle(free)
    family = 0
    while len(members) < count * 0.15 and len(free) >= 2:
        size = min(len(free), rng.randint(2, 8))
        for _ in range(size):
            members[free.pop()] = family
        family += 1
    return members


def make_relays(
    count: int,
    *,
    seed: int = 0,
    authorities: Sequence[FakeAuthority] = (),
    tap_keys: bool = True,
) -> list[FakeRelay]:
    """``count`` relays (the authorities' own relays among them), sorted by RSA identity."""
    rng = random.Random(f"relays-{seed}")
    ids = [rng.randbytes(20) for _ in range(count)]
    for i, auth in enumerate(authorities[:count]):
        ids[i] = bytes.fromhex(auth.fingerprint)
    family_of = _families(rng, count)
    groups: dict[int, list[int]] = {}
    for index, number in family_of.items():
        groups.setdefault(number, []).append(index)
    family_ids = {n: f"ed25519:{b64(rng.randbytes(32))}" for n in groups if rng.random() < 0.5}
    relays = []
    for i in range(count):
        is_authority = i < len(authorities)
        is_exit = not is_authority and rng.random() < 0.2
        or_port = rng.choice([443, 9001, 9001, 9001, rng.randrange(1024, 65536)])
        ipv6 = _ipv6(rng, or_port) if rng.random() < 0.3 else None
        fam = family_of.get(i)
        family = (
            () if fam is None else tuple(sorted(f"${ids[j].hex().upper()}" for j in groups[fam]))
        )
        fids = (family_ids[fam],) if fam in family_ids else ()
        policy = rng.choice(_EXIT_SUMMARIES) if is_exit else None
        policy6 = rng.choice(_EXIT_SUMMARIES[:3]) if is_exit and ipv6 else None
        ntor_key, ed25519_id = rng.randbytes(32), rng.randbytes(32)
        tap = _fake_tap_key(rng) if tap_keys else None
        if is_authority:
            auth = authorities[i]
            address, or_port, dir_port = auth.address, auth.or_port, auth.dir_port
            nickname = auth.nickname
        else:
            address = _ipv4(rng)
            dir_port = rng.choice([0, 0, 0, 80, 9030])
            nickname = _nickname(rng, i)
        version = rng.choice(_VERSIONS)
        unmeasured = rng.random() < 0.05
        bandwidth = 20 if unmeasured else int(rng.lognormvariate(8, 1.6))
        relays.append(
            FakeRelay(
                nickname=nickname,
                rsa_id=ids[i],
                ed25519_id=ed25519_id,
                ntor_key=ntor_key,
                address=address,
                or_port=or_port,
                dir_port=dir_port,
                ipv6=ipv6,
                flags=_flags(rng, is_exit=is_exit, is_authority=is_authority),
                version=f"Tor {version}",
                protocols=_PROTOCOLS_BY_SERIES[version[:5]],
                bandwidth=bandwidth,
                unmeasured=unmeasured,
                family=family,
                family_ids=fids,
                policy=policy,
                policy6=policy6,
                microdesc=make_microdesc(
                    ntor_key=ntor_key,
                    ed25519_id=ed25519_id,
                    tap_key_der=tap,
                    family=family,
                    family_ids=fids,
                    policy=policy,
                    policy6=policy6,
                ),
            )
        )
    relays.sort(key=lambda r: r.rsa_id)
    return relays


def bandwidth_weights(relays: Sequence[FakeRelay]) -> dict[str, int]:
    """A plausible ``bandwidth-weights`` set (dir-spec §3.8.3's keys, scale 10000), roughly
    balancing guard and middle use of Guard-only bandwidth; not tor's full case analysis."""
    guard = sum(r.bandwidth for r in relays if "Guard" in r.flags and "Exit" not in r.flags)
    total = sum(r.bandwidth for r in relays) or 1
    wgg = max(0, min(10000, round(10000 * (total / 3) / (guard or 1))))
    weights = {
        "Wbd": 0, "Wbe": 0, "Wbg": 10000 - wgg, "Wbm": 10000, "Wdb": 10000, "Web": 10000,
        "Wed": 10000, "Wee": 10000, "Weg": 10000, "Wem": 10000, "Wgb": 10000, "Wgd": 0,
        "Wgg": wgg, "Wgm": wgg, "Wmb": 10000, "Wmd": 0, "Wme": 0, "Wmg": 10000 - wgg,
        "Wmm": 10000,
    }  # fmt: skip
    return weights


# ---- the network ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeNetwork:
    relays: tuple[FakeRelay, ...]
    authorities: tuple[FakeAuthority, ...]
    signers: tuple[FakeAuthority, ...]
    valid_after: int
    fresh_until: int
    valid_until: int
    params: dict[str, int]
    weights: dict[str, int]
    unsigned_consensus: bytes  # up to, not including, the first directory-signature
    consensus: bytes = field(repr=False)

    @property
    def microdescs(self) -> bytes:
        """Every microdescriptor, concatenated as a /tor/micro/d/ response carries them."""
        return b"".join(r.microdesc for r in self.relays)

    @property
    def certificates(self) -> bytes:
        """Every authority's key certificate, as /tor/keys/all serves them."""
        return b"".join(a.certificate for a in self.authorities)

    @property
    def dir_authority_lines(self) -> list[str]:
        return [a.dir_authority_line() for a in self.authorities]

    def microdesc(self, digest: str) -> bytes:
        for relay in self.relays:
            if relay.microdesc_digest == digest:
                return relay.microdesc
        raise KeyError(digest)


def consensus_body(
    relays: Sequence[FakeRelay],
    authorities: Sequence[FakeAuthority],
    *,
    valid_after: int,
    fresh_until: int,
    valid_until: int,
    params: dict[str, int],
    weights: dict[str, int],
    seed: int = 0,
) -> bytes:
    """The microdesc consensus up to, not including, the first ``directory-signature``."""
    rng = random.Random(f"consensus-{seed}")
    versions = ",".join(v for v in _VERSIONS if "alpha" not in v)
    head = [
        "network-status-version 3 microdesc\n",
        "vote-status consensus\n",
        f"consensus-method {CONSENSUS_METHOD}\n",
        f"valid-after {iso_time(valid_after)}\n",
        f"fresh-until {iso_time(fresh_until)}\n",
        f"valid-until {iso_time(valid_until)}\n",
        "voting-delay 300 300\n",
        f"client-versions {versions}\n",
        f"server-versions {versions}\n",
        f"known-flags {KNOWN_FLAGS}\n",
        *(line + "\n" for line in _PROTOCOL_LINES),
        "params " + " ".join(f"{k}={v}" for k, v in sorted(params.items())) + "\n",
        f"shared-rand-previous-value {len(authorities)} "
        f"{base64.b64encode(rng.randbytes(32)).decode()}\n",
        f"shared-rand-current-value {len(authorities)} "
        f"{base64.b64encode(rng.randbytes(32)).decode()}\n",
    ]
    for auth in sorted(authorities, key=lambda a: a.v3ident):
        head.append(
            f"dir-source {auth.nickname} {auth.v3ident} {auth.address} {auth.address} "
            f"{auth.dir_port} {auth.or_port}\n"
            f"contact {auth.nickname} <{auth.nickname}@example.invalid>\n"
            f"vote-digest {rng.randbytes(20).hex().upper()}\n"
        )
    entries = [r.consensus_entry() for r in relays]
    footer = [
        "directory-footer\n",
        "bandwidth-weights " + " ".join(f"{k}={v}" for k, v in sorted(weights.items())) + "\n",
    ]
    return "".join([*head, *entries, *footer]).encode()


def make_network(
    n_relays: int = DEFAULT_RELAYS,
    *,
    seed: int = 0,
    n_authorities: int = 3,
    signers: Sequence[int] | None = None,
    valid_after: int = DEFAULT_VALID_AFTER,
    tap_keys: bool = True,
    algorithm: str = "sha256",
) -> FakeNetwork:
    """A signed microdesc consensus of ``n_relays`` relays and their microdescriptors.

    ``signers``: indices of the authorities that sign (default all); the others are still
    named in DirAuthority lines, dir-source blocks and certificates.
    """
    authorities = make_authorities(n_authorities, seed=seed)
    chosen = [authorities[i] for i in (range(n_authorities) if signers is None else signers)]
    relays = make_relays(n_relays, seed=seed, authorities=authorities, tap_keys=tap_keys)
    weights = bandwidth_weights(relays)
    fresh_until, valid_until = valid_after + FRESH_S, valid_after + VALID_S
    body = consensus_body(
        relays,
        authorities,
        valid_after=valid_after,
        fresh_until=fresh_until,
        valid_until=valid_until,
        params=dict(PARAMS),
        weights=weights,
        seed=seed,
    )
    return FakeNetwork(
        relays=tuple(relays),
        authorities=tuple(authorities),
        signers=tuple(chosen),
        valid_after=valid_after,
        fresh_until=fresh_until,
        valid_until=valid_until,
        params=dict(PARAMS),
        weights=weights,
        unsigned_consensus=body,
        consensus=sign_consensus(body, chosen, algorithm),
    )


def next_network(
    net: FakeNetwork,
    *,
    relays: Sequence[FakeRelay] | None = None,
    valid_after: int | None = None,
) -> FakeNetwork:
    """The consensus after ``net``'s: one period later (``valid_after``, default net's
    fresh-until), signed by the same authorities, listing ``relays`` (default the same ones).
    The relays it shares with ``net`` keep their microdescriptors: what a cache can reuse."""
    listed = sorted(net.relays if relays is None else relays, key=lambda r: r.rsa_id)
    start = net.fresh_until if valid_after is None else valid_after
    weights = bandwidth_weights(listed)
    body = consensus_body(
        listed,
        net.authorities,
        valid_after=start,
        fresh_until=start + FRESH_S,
        valid_until=start + VALID_S,
        params=dict(net.params),
        weights=weights,
        seed=start,
    )
    return FakeNetwork(
        relays=tuple(listed),
        authorities=net.authorities,
        signers=net.signers,
        valid_after=start,
        fresh_until=start + FRESH_S,
        valid_until=start + VALID_S,
        params=dict(net.params),
        weights=weights,
        unsigned_consensus=body,
        consensus=sign_consensus(body, net.signers),
    )
