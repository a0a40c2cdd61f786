"""Directory requests over a BEGIN_DIR stream and the bridge's server descriptor
(tor-link.md §10, §10.1; dir-spec §2.1.1, §4.3).

    dir_request(path)               -> HTTP/1.0 request bytes
    parse_dir_response(raw)         -> DirResponse(status, headers, body)  (decoded body)
    parse_server_descriptor(raw)    -> ServerDescriptor
    check_descriptor_identity(desc, identity, now=...)
        raises DescriptorSignatureError, then IdentityMismatch

The descriptor is trusted only if both its signatures verify under the keys it names
(:mod:`webtunnel_pt.tor.descriptor_sig`) and those keys are the ones the CERTS cell proved
for the link: ``signing-key`` is the RSA identity key, ``master-key-ed25519`` and the identity
in the ``identity-ed25519`` certificate are the Ed25519 identity, ``fingerprint`` is the RSA
fingerprint. The ``ntor-onion-key`` is used only once
:func:`webtunnel_pt.tor.crosscert.verify_ntor_onion_key_crosscert` has checked it. Sans-I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import lzma
import zlib
from dataclasses import dataclass, field

from webtunnel_pt.errors import (
    CertificateError,
    DirectoryError,
    IdentityMismatch,
)
from webtunnel_pt.tor.certs import Ed25519Cert, RelayIdentity, parse_ed25519_cert
from webtunnel_pt.tor.descriptor_sig import verify_descriptor_signatures

#: The directory server's own descriptor: how a bridge client learns its bridge (§10).
SERVER_AUTHORITY_PATH = "/tor/server/authority"
#: Default bound on a body, decoded (and on the bytes read before decoding): a server descriptor
#: is a few KiB, a batch of 500 microdescriptors ~250 KiB. Callers fetching larger documents
#: pass their own bound (``max_body``); the consensus gets 16 MiB (tor/dirmgr.py).
MAX_DIR_RESPONSE_BYTES = 4 * 1024 * 1024
#: A server descriptor is a few KiB (tor's directory authorities take at most 20 000 bytes);
#: anything far larger is refused before it is parsed.
MAX_DESCRIPTOR_BYTES = 64 * 1024
ACCEPT_ENCODING = "deflate, x-tor-lzma, gzip, identity"
#: Memory the x-tor-lzma decoder may use, whatever dictionary size the stream's header asks
#: for: tor's own limit (MEMORY_LIMIT in src/lib/compress/compress_lzma.c, 16 MiB); the
#: captured consensus uses an 8 MiB dictionary.
LZMA_MEMORY_LIMIT_BYTES = 16 * 1024 * 1024


def _is_decimal(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "¹" or "٣", which ``int`` then refuses
    or reads as a number no relay wrote."""
    return text.isascii() and text.isdigit()


def dir_request(path: str, host: str | None = None) -> bytes:
    """``GET <path> HTTP/1.0`` as tor sends it over BEGIN_DIR (§10)."""
    lines = [f"GET {path} HTTP/1.0"]
    if host:
        lines.append(f"Host: {host}")
    lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass(frozen=True)
class DirResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


#: zlib window bits: zlib container for ``deflate`` (what tor sends), gzip container for ``gzip``.
_WBITS = {"deflate": zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}
#: tor's ``x-tor-lzma`` is the legacy ``.lzma`` ("LZMA alone") container, not xz (tor's
#: compress_lzma.c: lzma_alone_encoder / lzma_alone_decoder).
_LZMA = "x-tor-lzma"


def _decompressor(encoding: str) -> zlib._Decompress | lzma.LZMADecompressor:
    if encoding == _LZMA:
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMORY_LIMIT_BYTES)
    if encoding in _WBITS:
        return zlib.decompressobj(_WBITS[encoding])
    raise DirectoryError(f"unsupported directory Content-Encoding {encoding!r}")


def _decode_body(body: bytes, encoding: str, max_body: int = MAX_DIR_RESPONSE_BYTES) -> bytes:
    """Identity or a decompressed body; never more than ``max_body`` decoded: the decompressor
    stops one byte past the bound, so a decompression bomb costs no more."""
    if encoding in ("", "identity"):
        if len(body) > max_body:
            raise DirectoryError(f"directory body exceeds {max_body} bytes")
        return body
    decompressor = _decompressor(encoding)
    try:
        # One byte over the bound tells "exactly at the bound" from "too large".
        decoded = decompressor.decompress(body, max_body + 1)
    except (zlib.error, lzma.LZMAError) as exc:
        raise DirectoryError(f"directory body is not valid {encoding}") from exc
    if len(decoded) > max_body:
        raise DirectoryError(f"decoded directory body exceeds {max_body} bytes")
    if not decompressor.eof:
        raise DirectoryError(f"directory body is not valid {encoding}: truncated")
    return decoded


def parse_dir_response(raw: bytes, max_body: int = MAX_DIR_RESPONSE_BYTES) -> DirResponse:
    """Split an HTTP/1.0 response read to the end of the stream; decode the body, at most
    ``max_body`` bytes once decoded."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise DirectoryError("directory response has no complete HTTP head")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _is_decimal(parts[1]):
        raise DirectoryError("directory response does not start with an HTTP status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    encoding = headers.get("content-encoding", "identity").lower()
    reason = parts[2] if len(parts) > 2 else ""
    status = int(parts[1])
    decoded = _decode_body(body, encoding, max_body) if status == 200 else body
    return DirResponse(status, reason, headers, decoded)


@dataclass(frozen=True)
class ServerDescriptor:
    """The fields of a server descriptor (dir-spec §2.1.1) the probe reports or checks."""

    nickname: str
    address: str
    or_port: int
    fingerprint: str  # 40 upper-case hex, spaces removed
    master_key_ed25519: bytes  # 32 bytes
    identity_cert: Ed25519Cert | None  # identity-ed25519: Ed25519 identity -> signing key
    signing_key: bytes | None  # signing-key: the RSA identity key, PKCS#1 DER
    platform: str | None
    published: str | None
    uptime: int | None
    raw: bytes = field(repr=False)  # the document as received: what the signatures cover
    bandwidth: tuple[int, ...] = ()
    #: ntor-onion-key (32-byte Curve25519); trusted only after tor.crosscert verifies it.
    ntor_onion_key: bytes | None = None
    #: ntor-onion-key-crosscert: its sign bit (0 or 1) and its Ed25519 certificate's bytes.
    ntor_onion_key_crosscert_sign: int | None = None
    ntor_onion_key_crosscert: bytes | None = field(default=None, repr=False)

    @property
    def identity_cert_key(self) -> bytes | None:
        """The Ed25519 identity that signed the identity-ed25519 cert (its extension 04)."""
        return self.identity_cert.signing_key if self.identity_cert else None

    @property
    def tor_version(self) -> str | None:
        """``0.4.9.11`` from ``Tor 0.4.9.11 on Linux``."""
        if self.platform is None:
            return None
        words = self.platform.split()
        return words[1] if len(words) > 1 and words[0] == "Tor" else None


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DirectoryError(f"descriptor {what} is not base64") from exc


def _keyword_lines(text: str) -> dict[str, str]:
    """First occurrence of each keyword -> its arguments; object blocks are skipped."""
    found: dict[str, str] = {}
    in_object = False
    for line in text.splitlines():
        if line.startswith("-----BEGIN "):
            in_object = True
        elif line.startswith("-----END "):
            in_object = False
        elif not in_object and line:
            keyword, _, rest = line.partition(" ")
            found.setdefault(keyword, rest.strip())
    return found


def _object_after(text: str, keyword: str) -> bytes | None:
    """The base64 object that follows the first ``keyword`` line, decoded; one pass over the
    text (an object without its END line is an error, not a reason to search on)."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip() != keyword:
            continue
        if not next(lines, "").startswith("-----BEGIN "):
            return None
        body: list[str] = []
        for inner in lines:
            if inner.startswith("-----END "):
                return _b64("".join(body), keyword)
            body.append(inner.strip())
        raise DirectoryError(f"descriptor {keyword} object has no END line")
    return None


def _identity_cert(text: str) -> Ed25519Cert | None:
    der = _object_after(text, "identity-ed25519")
    if der is None:
        return None
    try:
        return parse_ed25519_cert(der)
    except CertificateError as exc:
        raise DirectoryError("descriptor identity-ed25519 certificate does not parse") from exc


def _ntor_onion_key(fields: dict[str, str]) -> bytes | None:
    if "ntor-onion-key" not in fields:
        return None
    key = _b64(fields["ntor-onion-key"], "ntor-onion-key")
    if len(key) != 32:
        raise DirectoryError("descriptor ntor-onion-key is not 32 bytes")
    return key


def _crosscert(text: str, fields: dict[str, str]) -> tuple[int | None, bytes | None]:
    """``ntor-onion-key-crosscert SIGNBIT`` and the certificate object that follows it."""
    sign = fields.get("ntor-onion-key-crosscert")
    if sign is None:
        return None, None
    if sign not in ("0", "1"):
        raise DirectoryError("descriptor ntor-onion-key-crosscert sign bit is not 0 or 1")
    return int(sign), _object_after(text, f"ntor-onion-key-crosscert {sign}")


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and _is_decimal(text) else None


def parse_server_descriptor(raw: bytes | str) -> ServerDescriptor:
    """Parse the parts of a server descriptor that identify and describe the relay.

    Pass the bytes as received: the signatures cover them (a ``str`` stands for its UTF-8).
    Nothing here is trusted before :func:`check_descriptor_identity`.
    """
    if isinstance(raw, str):
        text, raw = raw, raw.encode("utf-8", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        raise DirectoryError(f"descriptor is larger than {MAX_DESCRIPTOR_BYTES} bytes")
    fields = _keyword_lines(text)
    router = fields.get("router", "").split()
    if len(router) < 3 or not _is_decimal(router[2]):
        raise DirectoryError("descriptor has no valid router line")
    if "fingerprint" not in fields or "master-key-ed25519" not in fields:
        raise DirectoryError("descriptor lacks fingerprint or master-key-ed25519")
    fingerprint = fields["fingerprint"].replace(" ", "").upper()
    if len(fingerprint) != 40:
        raise DirectoryError("descriptor fingerprint is not 40 hex digits")
    master = _b64(fields["master-key-ed25519"], "master-key-ed25519")
    if len(master) != 32:
        raise DirectoryError("descriptor master-key-ed25519 is not 32 bytes")
    bandwidth = tuple(int(w) for w in fields.get("bandwidth", "").split() if _is_decimal(w))
    crosscert_sign, crosscert = _crosscert(text, fields)
    return ServerDescriptor(
        nickname=router[0],
        address=router[1],
        or_port=int(router[2]),
        fingerprint=fingerprint,
        master_key_ed25519=master,
        identity_cert=_identity_cert(text),
        signing_key=_object_after(text, "signing-key"),
        platform=fields.get("platform"),
        published=fields.get("published"),
        uptime=_int_or_none(fields.get("uptime")),
        raw=raw,
        bandwidth=bandwidth,
        ntor_onion_key=_ntor_onion_key(fields),
        ntor_onion_key_crosscert_sign=crosscert_sign,
        ntor_onion_key_crosscert=crosscert,
    )


def match_descriptor_identity(descriptor: ServerDescriptor, identity: RelayIdentity) -> None:
    """The keys the descriptor names are the ones the link proved (§10.1)."""
    if descriptor.fingerprint != identity.rsa_fingerprint.upper():
        raise IdentityMismatch(
            "descriptor fingerprint differs from the link identity",
            expected=identity.rsa_fingerprint.upper(),
            actual=descriptor.fingerprint,
        )
    signing_key = descriptor.signing_key or b""
    if not hmac.compare_digest(signing_key, identity.rsa_identity_key):
        raise IdentityMismatch(
            "descriptor signing-key differs from the link RSA identity key",
            expected=identity.rsa_fingerprint.upper(),
            actual=hashlib.sha1(signing_key).hexdigest().upper() if signing_key else "none",
        )
    for what, key in (
        ("master-key-ed25519", descriptor.master_key_ed25519),
        ("identity-ed25519 certificate", descriptor.identity_cert_key),
    ):
        if key != identity.ed25519_identity:
            raise IdentityMismatch(
                f"descriptor {what} differs from the link Ed25519 identity",
                expected=identity.ed25519_identity.hex(),
                actual=key.hex() if key else "none",
            )


def check_descriptor_identity(
    descriptor: ServerDescriptor, identity: RelayIdentity, *, now: float
) -> None:
    """The descriptor is authentic and describes the relay at the other end of the link.

    First its signatures, under the keys it names, with the identity-ed25519 certificate
    checked at ``now`` (:class:`DescriptorSignatureError`); then those keys against the link
    (:class:`IdentityMismatch`).
    """
    verify_descriptor_signatures(
        descriptor.raw,
        signing_key=descriptor.signing_key,
        identity_cert=descriptor.identity_cert,
        now=now,
    )
    match_descriptor_identity(descriptor, identity)
