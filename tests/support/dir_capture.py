"""Directory documents captured from the private network's tor 0.4.9 (tests/data/dir, made by
tests/data/capture_directory.py), and test-side checks written independently of
webtunnel_pt.tor (hashlib, base64 and a raw RSA public operation), usable on them and on the
synthetic network of tests/support/fake_network.py.

The documents expire seconds after the capture: tests use ``CAPTURED_AT`` as "now".
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DIR = Path(__file__).resolve().parent.parent / "data" / "dir"
CAPTURE: dict[str, Any] = json.loads((DIR / "capture.json").read_text())
CAPTURED_AT: int = CAPTURE["captured_at"]
TOR_VERSION: str = CAPTURE["tor_version"]
AUTHORITY_LINES: list[str] = [a["dir_authority_line"] for a in CAPTURE["authorities"]]
V3IDENTS: list[str] = [a["v3ident"] for a in CAPTURE["authorities"]]

CONSENSUS = (DIR / "consensus-microdesc").read_bytes()
CONSENSUS_DEFLATE = (DIR / "consensus-microdesc.z").read_bytes()
CONSENSUS_LZMA = (DIR / "consensus-microdesc.lzma").read_bytes()
MICRODESCS = (DIR / "microdescs").read_bytes()
KEYS_ALL = (DIR / "keys-all").read_bytes()
KEYS_FP = (DIR / "keys-fp").read_bytes()

SIGNATURE_KEYWORD = b"directory-signature "
_M_LINE = re.compile(rb"^m (\S+)$", re.MULTILINE)
_SIGNATURE = re.compile(
    rb"^directory-signature (?:(\S+) )?([0-9A-F]{40}) ([0-9A-F]{40})\n"
    rb"-----BEGIN SIGNATURE-----\n([A-Za-z0-9+/=\n]+?)-----END SIGNATURE-----\n",
    re.MULTILINE,
)
_PEM = re.compile(
    rb"^(dir-identity-key|dir-signing-key)\n"
    rb"(-----BEGIN RSA PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+?-----END RSA PUBLIC KEY-----\n)",
    re.MULTILINE,
)
_CERT_SIGNATURE = re.compile(
    rb"^dir-key-certification\n-----BEGIN SIGNATURE-----\n([A-Za-z0-9+/=\n]+?)"
    rb"-----END SIGNATURE-----\n",
    re.MULTILINE,
)


def b64_unpadded(data: bytes) -> str:
    """Base64 without the trailing ``=``, as tor writes digests and keys (dir-spec §1.2)."""
    return base64.b64encode(data).decode().rstrip("=")


def split_microdescs(raw: bytes) -> list[bytes]:
    """Each microdescriptor's exact bytes. One begins with its ``onion-key`` line, "exactly
    once, at start" (dir-spec "Computing microdescriptors"), and runs to the next one."""
    starts = [m.start() for m in re.finditer(rb"^onion-key(?=[ \n])", raw, re.MULTILINE)]
    if not starts or starts[0] != 0:
        raise ValueError("microdescriptors must begin with onion-key")
    return [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]


def microdesc_digest(microdesc: bytes) -> str:
    """What the consensus ``m`` line carries: SHA-256, base64 without ``=``."""
    return b64_unpadded(hashlib.sha256(microdesc).digest())


def m_digests(consensus: bytes) -> list[str]:
    return [d.decode() for d in _M_LINE.findall(consensus)]


def signed_digest(consensus: bytes) -> bytes:
    """SHA-256 of the document from its start through the space after the first
    ``directory-signature`` keyword (dir-spec §3.4.1): the same for every signature."""
    at = consensus.find(b"\n" + SIGNATURE_KEYWORD)
    if at < 0:
        raise ValueError("no directory-signature")
    return hashlib.sha256(consensus[: at + 1 + len(SIGNATURE_KEYWORD)]).digest()


def signatures(document: bytes) -> list[tuple[str, str, str, bytes]]:
    """(algorithm, identity hex, signing key digest hex, signature) of each
    ``directory-signature``; a missing algorithm reads as sha1 (dir-spec §3.4.1)."""
    return [
        ((alg or b"sha1").decode(), ident.decode(), skd.decode(), base64.b64decode(body))
        for alg, ident, skd, body in _SIGNATURE.findall(document)
    ]


def rsa_recover(key: rsa.RSAPublicKey, signature: bytes) -> bytes | None:
    """The digest inside a PKCS#1 v1.5 type-1 block with no DigestInfo (tor's signatures on
    directory objects), by the raw public operation; None if the padding is wrong."""
    numbers = key.public_numbers()
    size = (key.key_size + 7) // 8
    block = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(size, "big")
    match = re.fullmatch(rb"\x00\x01\xff{8,}\x00(.+)", block, re.DOTALL)
    return match.group(1) if match else None


def key_digest(key: rsa.RSAPublicKey) -> str:
    """SHA-1 of the PKCS#1 DER, upper-case hex: a v3ident or a signing-key digest."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.sha1(der).hexdigest().upper()


def split_certificates(raw: bytes) -> list[bytes]:
    starts = [m.start() for m in re.finditer(rb"^dir-key-certificate-version ", raw, re.MULTILINE)]
    return [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]


def certificate_keys(cert: bytes) -> tuple[rsa.RSAPublicKey, rsa.RSAPublicKey]:
    """(identity key, signing key) of one key certificate."""
    keys = {}
    for name, pem in _PEM.findall(cert):
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, rsa.RSAPublicKey)
        keys[name] = key
    return keys[b"dir-identity-key"], keys[b"dir-signing-key"]


def certificate_signed_digest(cert: bytes) -> tuple[bytes, bytes]:
    """(SHA-1 of the text from the start through the newline after
    ``dir-key-certification``, the certification signature) (dir-spec §3.1)."""
    match = _CERT_SIGNATURE.search(cert)
    if match is None:
        raise ValueError("no dir-key-certification")
    end = match.start() + len(b"dir-key-certification\n")
    return hashlib.sha1(cert[:end]).digest(), base64.b64decode(match.group(1))
