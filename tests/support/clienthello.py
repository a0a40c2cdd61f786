"""TLS ClientHello capture and fingerprinting for tests: parse, JA3, JA4.

:func:`parse_client_hello` reads the TLS records a client sends first (RFC 8446 §5.1 record
layer, §4.1.2 ClientHello) and returns a :class:`ClientHello` with everything the common
fingerprints look at. :func:`ja3` and :func:`ja4` compute the two fingerprints:

- JA3 (Salesforce, 2017): ``version,ciphers,extensions,groups,point_formats`` in decimal, values
  joined with ``-``, GREASE removed, MD5 of that string.
- JA4 (FoxIO JA4+ spec, TLS client): ``a_b_c`` where ``a`` = protocol ``t``, the highest TLS
  version offered, ``d``/``i`` for SNI present/absent, two-digit cipher and extension counts
  (GREASE excluded, SNI and ALPN included) and the first and last character of the first ALPN
  value; ``b`` = first 12 hex digits of SHA-256 over the sorted cipher list; ``c`` = the same over
  the sorted extension list without SNI and ALPN, ``_``, and the signature algorithms in the
  order sent.

:class:`HelloRecorder` is a loopback TCP server that keeps the first ClientHello of each
connection and then closes it (the client sees a failed handshake, which is all a fingerprint
test needs).

Written for this project from the RFCs and the published JA3/JA4 descriptions.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: RFC 8701 GREASE values: 0x?A?A with both bytes equal.
GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))

EXT_SERVER_NAME = 0x0000
EXT_SUPPORTED_GROUPS = 0x000A
EXT_EC_POINT_FORMATS = 0x000B
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_ALPN = 0x0010
EXT_PADDING = 0x0015
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_KEY_SHARE = 0x0033

#: Names of the extensions seen from the clients we compare with (IANA registry).
EXTENSION_NAMES = {
    0: "server_name",
    5: "status_request",
    10: "supported_groups",
    11: "ec_point_formats",
    13: "signature_algorithms",
    16: "alpn",
    18: "signed_certificate_timestamp",
    21: "padding",
    22: "encrypt_then_mac",
    23: "extended_master_secret",
    27: "compress_certificate",
    28: "record_size_limit",
    34: "delegated_credentials",
    35: "session_ticket",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    45: "psk_key_exchange_modes",
    49: "post_handshake_auth",
    50: "signature_algorithms_cert",
    51: "key_share",
    17513: "application_settings_old",
    17613: "application_settings",
    65037: "encrypted_client_hello",
    65281: "renegotiation_info",
}

_VERSION_CODES = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class HelloParseError(ValueError):
    """The bytes are not (yet) a complete TLS ClientHello."""


class NeedMoreData(HelloParseError):
    """The bytes are a valid prefix of a ClientHello; read more."""


@dataclass(frozen=True)
class ClientHello:
    """The fields of one ClientHello that fingerprints use, in wire order."""

    record_version: int
    legacy_version: int
    session_id_length: int
    cipher_suites: list[int]
    compression_methods: list[int]
    extensions: list[int]
    server_name: str | None = None
    supported_groups: list[int] = field(default_factory=list)
    ec_point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    key_share_groups: list[int] = field(default_factory=list)
    padding_length: int | None = None
    #: Total handshake-message length (type and length header included).
    length: int = 0

    @property
    def has_grease(self) -> bool:
        return any(
            value in GREASE
            for value in (
                *self.cipher_suites,
                *self.extensions,
                *self.supported_groups,
                *self.supported_versions,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientHello:
        return cls(**data)


# -- parsing -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise HelloParseError(f"{self.what}: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def vector(self, length_bytes: int) -> _Reader:
        n = int.from_bytes(self.take(length_bytes), "big")
        return _Reader(self.take(n), self.what)

    def u16_list(self) -> list[int]:
        raw = self.take(len(self.data) - self.pos)
        if len(raw) % 2:
            raise HelloParseError(f"{self.what}: odd length")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def handshake_bytes(data: bytes) -> tuple[int, bytes]:
    """Join the handshake records at the start of ``data``: (first record version, message).

    Raises :class:`NeedMoreData` while the first handshake message is incomplete."""
    pos, body, record_version = 0, b"", -1
    while True:
        if len(body) >= 4:
            need = 4 + int.from_bytes(body[1:4], "big")
            if len(body) >= need:
                return record_version, body[:need]
        if len(data) < pos + 5:
            raise NeedMoreData("record header incomplete")
        content_type, version, length = struct.unpack(">BHH", data[pos : pos + 5])
        if content_type != 22:
            raise HelloParseError(f"record type {content_type} is not handshake (22)")
        if record_version < 0:
            record_version = version
        if len(data) < pos + 5 + length:
            raise NeedMoreData("record body incomplete")
        body += data[pos + 5 : pos + 5 + length]
        pos += 5 + length


def parse_client_hello(data: bytes) -> ClientHello:
    """Parse the ClientHello at the start of a client's byte stream (record layer included)."""
    record_version, message = handshake_bytes(data)
    if message[0] != 1:
        raise HelloParseError(f"handshake type {message[0]} is not ClientHello (1)")
    r = _Reader(message[4:], "ClientHello")
    legacy_version = r.u16()
    r.take(32)  # random
    session_id = r.vector(1)
    ciphers = r.vector(2).u16_list()
    compression = list(r.vector(1).data)
    fields: dict[str, Any] = {}
    extensions: list[int] = []
    if not r.done:
        exts = r.vector(2)
        while not exts.done:
            ext_type = exts.u16()
            body = exts.vector(2)
            extensions.append(ext_type)
            _parse_extension(ext_type, body, fields)
    return ClientHello(
        record_version=record_version,
        legacy_version=legacy_version,
        session_id_length=len(session_id.data),
        cipher_suites=ciphers,
        compression_methods=compression,
        extensions=extensions,
        length=len(message),
        **fields,
    )


def _parse_extension(ext_type: int, body: _Reader, out: dict[str, Any]) -> None:
    if ext_type == EXT_SERVER_NAME and body.data:
        names = body.vector(2)
        while not names.done:
            kind = names.u8()
            name = names.vector(2).data
            if kind == 0:
                out["server_name"] = name.decode("ascii", "replace")
    elif ext_type == EXT_SUPPORTED_GROUPS:
        out["supported_groups"] = body.vector(2).u16_list()
    elif ext_type == EXT_EC_POINT_FORMATS:
        out["ec_point_formats"] = list(body.vector(1).data)
    elif ext_type == EXT_SIGNATURE_ALGORITHMS:
        out["signature_algorithms"] = body.vector(2).u16_list()
    elif ext_type == EXT_ALPN:
        protocols = body.vector(2)
        names: list[str] = []
        while not protocols.done:
            names.append(protocols.vector(1).data.decode("latin-1"))
        out["alpn"] = names
    elif ext_type == EXT_SUPPORTED_VERSIONS:
        out["supported_versions"] = body.vector(1).u16_list()
    elif ext_type == EXT_KEY_SHARE:
        shares = body.vector(2)
        groups: list[int] = []
        while not shares.done:
            groups.append(shares.u16())
            shares.vector(2)
        out["key_share_groups"] = groups
    elif ext_type == EXT_PADDING:
        out["padding_length"] = len(body.data)


# -- fingerprints ----------------------------------------------------------------------------


def _strip_grease(values: list[int]) -> list[int]:
    return [v for v in values if v not in GREASE]


def ja3_string(hello: ClientHello) -> str:
    parts = [
        [hello.legacy_version],
        _strip_grease(hello.cipher_suites),
        _strip_grease(hello.extensions),
        _strip_grease(hello.supported_groups),
        hello.ec_point_formats,
    ]
    return ",".join("-".join(str(v) for v in part) for part in parts)


def ja3(hello: ClientHello) -> str:
    return hashlib.md5(ja3_string(hello).encode(), usedforsecurity=False).hexdigest()


def _ja4_version(hello: ClientHello) -> str:
    versions = _strip_grease(hello.supported_versions)
    top = max(versions) if versions else hello.legacy_version
    return _VERSION_CODES.get(top, "00")


def _ja4_alpn(hello: ClientHello) -> str:
    if not hello.alpn or not hello.alpn[0]:
        return "00"
    first = hello.alpn[0].encode("latin-1")
    if first[0] in _ALNUM and first[-1] in _ALNUM:
        return chr(first[0]) + chr(first[-1])
    text = first.hex()
    return text[0] + text[-1]


def ja4_a(hello: ClientHello) -> str:
    ciphers = _strip_grease(hello.cipher_suites)
    extensions = _strip_grease(hello.extensions)
    sni = "d" if EXT_SERVER_NAME in extensions else "i"
    return (
        f"t{_ja4_version(hello)}{sni}{min(len(ciphers), 99):02d}"
        f"{min(len(extensions), 99):02d}{_ja4_alpn(hello)}"
    )


def ja4_raw_parts(hello: ClientHello, original_order: bool = False) -> tuple[str, str, str]:
    """JA4_r (or JA4_ro): part a, the cipher list, and the extension + sigalg list, unhashed."""
    ciphers = _strip_grease(hello.cipher_suites)
    extensions = _strip_grease(hello.extensions)
    if not original_order:
        ciphers = sorted(ciphers)
        extensions = sorted(e for e in extensions if e not in (EXT_SERVER_NAME, EXT_ALPN))
    b = ",".join(f"{c:04x}" for c in ciphers)
    c = ",".join(f"{e:04x}" for e in extensions)
    sigalgs = _strip_grease(hello.signature_algorithms)  # FoxIO drops GREASE here too
    if sigalgs:
        c += "_" + ",".join(f"{s:04x}" for s in sigalgs)
    return ja4_a(hello), b, c


def _hash12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ja4(hello: ClientHello) -> str:
    a, b, c = ja4_raw_parts(hello)
    ext_part = c.split("_", 1)[0]
    return f"{a}_{_hash12(b)}_{_hash12(c) if ext_part else '000000000000'}"


def ja4_r(hello: ClientHello) -> str:
    return "_".join(ja4_raw_parts(hello))


def _hex(values: list[int]) -> list[str]:
    return [f"{v:04x}" for v in _strip_grease(values)]


def describe(hello: ClientHello) -> dict[str, Any]:
    """A human-friendly summary (hex lists, GREASE left out) for docs and assertion messages."""
    return {
        "ja4": ja4(hello),
        "ja3": ja3(hello),
        "ciphers": _hex(hello.cipher_suites),
        "extensions": [EXTENSION_NAMES.get(e, f"{e:04x}") for e in _strip_grease(hello.extensions)],
        "groups": _hex(hello.supported_groups),
        "sigalgs": _hex(hello.signature_algorithms),
        "alpn": hello.alpn,
        "versions": _hex(hello.supported_versions),
        "key_shares": _hex(hello.key_share_groups),
        "padding": hello.padding_length,
        "grease": hello.has_grease,
    }


def diff(ours: ClientHello, theirs: ClientHello) -> dict[str, tuple[Any, Any]]:
    """The summary fields that differ, as (ours, theirs)."""
    a, b = describe(ours), describe(theirs)
    return {key: (a[key], b[key]) for key in a if a[key] != b[key] and key != "ja3"}


# -- the loopback recorder -------------------------------------------------------------------

#: Bound on what one client may send before its hello is complete.
MAX_HELLO_BYTES = 64 * 1024


class HelloRecorder:
    """Listen on 127.0.0.1, record the first ClientHello of each connection, then close it.

    Use as a context manager; :meth:`wait_hello` returns the next recorded hello in order."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.hellos: list[ClientHello] = []
        self.raw: list[bytes] = []
        self.errors: list[str] = []
        self._taken = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HelloRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._read_one(conn)

    def _read_one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while len(data) < MAX_HELLO_BYTES:
            try:
                chunk = conn.recv(65536)
            except OSError as exc:
                self._note_error(f"recv: {exc}")
                return
            if not chunk:
                self._note_error(f"closed after {len(data)} bytes")
                return
            data += chunk
            try:
                hello = parse_client_hello(data)
            except NeedMoreData:
                continue
            except HelloParseError as exc:
                self._note_error(str(exc))
                return
            with self._cond:
                self.hellos.append(hello)
                self.raw.append(data)
                self._cond.notify_all()
            return

    def _note_error(self, text: str) -> None:
        with self._cond:
            self.errors.append(text)
            self._cond.notify_all()

    def wait_hello(self, timeout: float = 20.0) -> ClientHello:
        """The next hello not yet returned, waiting up to ``timeout`` seconds."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.hellos) > self._taken, timeout)
            if not ok:
                raise AssertionError(f"no ClientHello within {timeout} s; errors: {self.errors}")
            hello = self.hellos[self._taken]
            self._taken += 1
            return hello

    @property
    def last_raw(self) -> bytes:
        """The bytes behind the hello :meth:`wait_hello` returned last."""
        with self._cond:
            return self.raw[self._taken - 1]
