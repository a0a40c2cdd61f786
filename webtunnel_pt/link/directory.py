"""Directory requests over a BEGIN_DIR stream and the bridge's server descriptor
(tor-link.md §10, §10.1; dir-spec §2.1.1, §4.3).

    dir_request(path)               -> HTTP/1.0 request bytes
    parse_dir_response(raw)         -> DirResponse(status, headers, body)  (decoded body)
    parse_server_descriptor(text)   -> ServerDescriptor
    check_descriptor_identity(desc, fingerprint, ed25519)   -> raises IdentityMismatch

Signatures inside the descriptor are not checked: it arrives over the link whose identity
the CERTS cell already proved, and its identity fields are compared with that link.
Sans-I/O.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

from webtunnel_pt.link.certs import parse_ed25519_cert
from webtunnel_pt.link.errors import (
    CertificateError,
    DirectoryError,
    IdentityMismatch,
)

#: The directory server's own descriptor: how a bridge client learns its bridge (§10).
SERVER_AUTHORITY_PATH = "/tor/server/authority"
#: Bodies are bounded: a server descriptor is a few KiB; consensus documents are larger.
MAX_DIR_RESPONSE_BYTES = 4 * 1024 * 1024
ACCEPT_ENCODING = "deflate, gzip, identity"


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


def _decode_body(body: bytes, encoding: str) -> bytes:
    """Identity or a decompressed body; never more than ``MAX_DIR_RESPONSE_BYTES`` decoded."""
    if encoding in ("", "identity"):
        return body
    if encoding not in _WBITS:
        raise DirectoryError(f"unsupported directory Content-Encoding {encoding!r}")
    decompressor = zlib.decompressobj(_WBITS[encoding])
    try:
        # One byte over the bound tells "exactly at the bound" from "too large".
        decoded = decompressor.decompress(body, MAX_DIR_RESPONSE_BYTES + 1)
    except zlib.error as exc:
        raise DirectoryError(f"directory body is not valid {encoding}") from exc
    if len(decoded) > MAX_DIR_RESPONSE_BYTES:
        raise DirectoryError(f"decoded directory body exceeds {MAX_DIR_RESPONSE_BYTES} bytes")
    if not decompressor.eof:
        raise DirectoryError(f"directory body is not valid {encoding}: truncated")
    return decoded


def parse_dir_response(raw: bytes) -> DirResponse:
    """Split an HTTP/1.0 response read to the end of the stream; decode the body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise DirectoryError("directory response has no complete HTTP head")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise DirectoryError("directory response does not start with an HTTP status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    encoding = headers.get("content-encoding", "identity").lower()
    reason = parts[2] if len(parts) > 2 else ""
    status = int(parts[1])
    decoded = _decode_body(body, encoding) if status == 200 else body
    return DirResponse(status, reason, headers, decoded)


@dataclass(frozen=True)
class ServerDescriptor:
    """The fields of a server descriptor (dir-spec §2.1.1) the probe reports or checks."""

    nickname: str
    address: str
    or_port: int
    fingerprint: str  # 40 upper-case hex, spaces removed
    master_key_ed25519: bytes  # 32 bytes
    identity_cert_key: bytes | None  # the signing key of the identity-ed25519 cert
    platform: str | None
    published: str | None
    uptime: int | None
    bandwidth: tuple[int, ...] = ()

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
    """The base64 object that follows the ``keyword`` line, decoded."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if (
            line.strip() == keyword
            and index + 1 < len(lines)
            and lines[index + 1].startswith("-----BEGIN ")
        ):
            body: list[str] = []
            for inner in lines[index + 2 :]:
                if inner.startswith("-----END "):
                    return _b64("".join(body), keyword)
                body.append(inner.strip())
    return None


def _identity_cert_key(text: str) -> bytes | None:
    der = _object_after(text, "identity-ed25519")
    if der is None:
        return None
    try:
        return parse_ed25519_cert(der).signing_key
    except CertificateError as exc:
        raise DirectoryError("descriptor identity-ed25519 certificate does not parse") from exc


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def parse_server_descriptor(text: str) -> ServerDescriptor:
    """Parse the parts of a server descriptor that identify and describe the relay."""
    fields = _keyword_lines(text)
    router = fields.get("router", "").split()
    if len(router) < 3 or not router[2].isdigit():
        raise DirectoryError("descriptor has no valid router line")
    if "fingerprint" not in fields or "master-key-ed25519" not in fields:
        raise DirectoryError("descriptor lacks fingerprint or master-key-ed25519")
    fingerprint = fields["fingerprint"].replace(" ", "").upper()
    if len(fingerprint) != 40:
        raise DirectoryError("descriptor fingerprint is not 40 hex digits")
    master = _b64(fields["master-key-ed25519"], "master-key-ed25519")
    if len(master) != 32:
        raise DirectoryError("descriptor master-key-ed25519 is not 32 bytes")
    bandwidth = tuple(int(w) for w in fields.get("bandwidth", "").split() if w.isdigit())
    return ServerDescriptor(
        nickname=router[0],
        address=router[1],
        or_port=int(router[2]),
        fingerprint=fingerprint,
        master_key_ed25519=master,
        identity_cert_key=_identity_cert_key(text),
        platform=fields.get("platform"),
        published=fields.get("published"),
        uptime=_int_or_none(fields.get("uptime")),
        bandwidth=bandwidth,
    )


def check_descriptor_identity(
    descriptor: ServerDescriptor, fingerprint: str, ed25519_identity: bytes
) -> None:
    """The descriptor must describe the relay at the other end of the link (§10.1)."""
    if descriptor.fingerprint != fingerprint.upper():
        raise IdentityMismatch(
            "descriptor fingerprint differs from the link identity",
            expected=fingerprint.upper(),
            actual=descriptor.fingerprint,
        )
    for what, key in (
        ("master-key-ed25519", descriptor.master_key_ed25519),
        ("identity-ed25519 certificate", descriptor.identity_cert_key),
    ):
        if key != ed25519_identity:
            raise IdentityMismatch(
                f"descriptor {what} differs from the link Ed25519 identity",
                expected=ed25519_identity.hex(),
                actual=key.hex() if key else "none",
            )
