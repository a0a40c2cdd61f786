"""Outer-TLS ClientHello profiles: the ``utls=`` name table and the context builders.

A censor sees the ClientHello in clear; ``docs/fingerprint.md`` has the measured JA4 of each
profile next to the clients it imitates. Profiles:

- ``none`` (default, also for an absent ``utls=``): the stdlib :mod:`ssl` stack configured to
  send what Debian's ``curl --http1.1`` sends through the same OpenSSL: OpenSSL's default cipher
  list and order, no session-ticket extension, post-handshake auth offered, ALPN ``http/1.1``.
  Same JA3 and JA4; the one difference is ``supported_versions`` (TLS 1.3 and 1.2 only where curl
  also offers 1.1 and 1.0), which neither fingerprint includes.
- ``firefox`` and ``chrome``: pyOpenSSL (with the OpenSSL that ``cryptography`` bundles) set
  up with the browser's cipher suites in order, groups and key shares, signature algorithms,
  ``status_request``, ``signed_certificate_timestamp``, GREASE ECH and (Chrome) ALPS. ALPN is
  ``http/1.1`` only: WebTunnel is an HTTP/1.1 upgrade and must never be offered ``h2``. What
  OpenSSL cannot send (certificate compression, delegated credentials, record size limit, GREASE
  in lists, the browser's extension order) is listed in the doc; the asyncio glue lives in
  :mod:`webtunnel_pt.outbound.tls_transport`.

``utls=`` values follow lyrebird 0.8's names, case-insensitively (``webtunnel-wire.md`` §6.2):
Firefox templates select ``firefox``; Chrome and the Chromium-based Edge, 360 and QQ templates
select ``chrome``; the randomized, iOS, Safari and Android templates have no counterpart here and
fall back to ``none``; every name but ``none``, ``hellofirefox_auto`` and ``hellochrome_auto``
gets a notice once per process (:mod:`webtunnel_pt.outbound.utls`); anything else is refused,
as lyrebird refuses it.

Certificate names: the usual contexts let the TLS stack check the SNI name. Only when the
certificate must name another host (``utls-authority=``) does a dial use a stdlib context with
``check_hostname=False`` (chain still required) or a pyOpenSSL connection without a host set,
and check the name itself after the handshake (:mod:`webtunnel_pt.outbound.certnames`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

from webtunnel_pt.errors import TlsError
from webtunnel_pt.outbound.utls import (
    CHROME_PROFILE,
    DEFAULT_PROFILE,
    FIREFOX_PROFILE,
    UTLS_NAMES,
    resolve_utls,
)

#: The profile used without ``utls=`` and for ``utls=none``.
#: The only ALPN value any profile offers: the tunnel is an HTTP/1.1 upgrade (never ``h2``).
ALPN_PROTOCOLS = ("http/1.1",)


@dataclass(frozen=True)
class BrowserProfile:
    """What a browser's ClientHello offers, in OpenSSL's names and in the browser's order."""

    name: str
    #: TLS 1.2 suites (OpenSSL names), in order.
    tls12_ciphers: tuple[str, ...]
    #: TLS 1.3 suites, in order.
    tls13_ciphers: tuple[str, ...]
    #: Groups in order; a leading ``*`` sends a key share for that group.
    groups: tuple[str, ...]
    #: Signature algorithms in order (OpenSSL names).
    sigalgs: tuple[str, ...]
    #: ALPS (application_settings, 17613) protocols; inert here since ``h2`` is never offered.
    alps: tuple[str, ...] = ()


# Recorded from Debian's Chromium 156 and Firefox ESR 153 (tests/data/hellos/).
CHROME = BrowserProfile(
    name=CHROME_PROFILE,
    tls12_ciphers=(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
    ),
    tls13_ciphers=(
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    groups=("*X25519MLKEM768", "*X25519", "secp256r1", "secp384r1"),
    sigalgs=(
        "mldsa44",
        "mldsa65",
        "mldsa87",
        "ecdsa_secp256r1_sha256",
        "rsa_pss_rsae_sha256",
        "rsa_pkcs1_sha256",
        "ecdsa_secp384r1_sha384",
        "rsa_pss_rsae_sha384",
        "rsa_pkcs1_sha384",
        "rsa_pss_rsae_sha512",
        "rsa_pkcs1_sha512",
    ),
    alps=("h2",),
)

FIREFOX = BrowserProfile(
    name=FIREFOX_PROFILE,
    tls12_ciphers=(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
    ),
    tls13_ciphers=(
        "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_256_GCM_SHA384",
    ),
    groups=(
        "*X25519MLKEM768",
        "*X25519",
        "*secp256r1",
        "secp384r1",
        "secp521r1",
        "ffdhe2048",
        "ffdhe3072",
    ),
    # Firefox also offers ecdsa_sha1 and rsa_pkcs1_sha1: OpenSSL sends those only at security
    # level 0, which would also accept them from the server, so they are left out.
    sigalgs=(
        "ecdsa_secp256r1_sha256",
        "ecdsa_secp384r1_sha384",
        "ecdsa_secp521r1_sha512",
        "rsa_pss_rsae_sha256",
        "rsa_pss_rsae_sha384",
        "rsa_pss_rsae_sha512",
        "rsa_pkcs1_sha256",
        "rsa_pkcs1_sha384",
        "rsa_pkcs1_sha512",
    ),
)

BROWSER_PROFILES: dict[str, BrowserProfile] = {p.name: p for p in (CHROME, FIREFOX)}
PROFILE_NAMES = frozenset({DEFAULT_PROFILE, *BROWSER_PROFILES})

__all__ = ["PROFILE_NAMES", "UTLS_NAMES", "resolve_utls"]


# -- stdlib context: the default profile ---------------------------------------------------------

_STDLIB_CONTEXTS: dict[tuple[bool, bool], ssl.SSLContext] = {}


def stdlib_context(pinned: bool, check_hostname: bool = True) -> ssl.SSLContext:
    """The default profile: system CA store (``SSL_CERT_FILE`` honoured), TLS >= 1.2, and the
    hello Debian's ``curl --http1.1`` sends through the same OpenSSL. ``pinned`` turns CA and
    hostname checks off because the ``cert=`` pin replaces them and is checked after the
    handshake. ``check_hostname=False`` keeps the chain check (``CERT_REQUIRED``) but leaves the
    name to the caller: for ``utls-authority=``, where the certificate must name another host
    than the SNI (:mod:`webtunnel_pt.outbound.certnames`, checked by the dial after the
    handshake); only that case gets this context, the usual one keeps OpenSSL's check. Built
    once per process and kind: loading the CA store is the slow part."""
    key = (pinned, check_hostname and not pinned)
    ctx = _STDLIB_CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # OpenSSL's own default list and order (Python's narrower list is a Python tell).
        ctx.set_ciphers("DEFAULT")
        # curl's OpenSSL backend sends no session_ticket and offers post_handshake_auth.
        ctx.options |= ssl.OP_NO_TICKET
        ctx.post_handshake_auth = True
        ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
        # A TCP FIN without close_notify is EOF, as asyncio's TLS treats it, instead of a fatal
        # error OpenSSL answers with a decode_error alert: this context's connections read the
        # socket themselves (outbound/ssl_socket_transport.py). Local only: not in the hello.
        ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        if pinned:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif not check_hostname:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_REQUIRED  # the chain is still verified, fail closed
        _STDLIB_CONTEXTS[key] = ctx
    return ctx


def tls_context(
    pinned: bool, profile: str = DEFAULT_PROFILE, check_hostname: bool = True
) -> ssl.SSLContext | OpenSSLContext:
    """The outer TLS context for ``profile``: a stdlib context for the default profile, a
    pyOpenSSL one (used through :mod:`webtunnel_pt.outbound.tls_transport`) for a browser
    profile. ``check_hostname=False``: see :func:`stdlib_context`; for a pyOpenSSL context the
    name check is set per connection (``open_tls_connection(check_hostname=...)``)."""
    if profile == DEFAULT_PROFILE:
        return stdlib_context(pinned, check_hostname)
    return openssl_context(profile, pinned)


# -- pyOpenSSL context: the browser profiles -----------------------------------------------------

#: OpenSSL option bits the ``cryptography`` bindings do not name (stable in OpenSSL 3.x/4.x).
_OP_NO_ENCRYPT_THEN_MAC = 1 << 19
#: SSL_OP_ECH_GREASE as OpenSSL 4.0 defines it (bit 37); checked by the fingerprint tests.
_OP_ECH_GREASE = 1 << 37
_OPENSSL_4_0 = 0x40000000
_OPENSSL_3_5 = 0x30500000
_EXT_SCT = 18
_EXT_ALPS = 17613
_PQ_SIGALGS = frozenset({"mldsa44", "mldsa65", "mldsa87"})


@dataclass
class OpenSSLContext:
    """A pyOpenSSL context for one profile, and what each connection must add to it."""

    context: Any  # OpenSSL.SSL.Context
    profile: BrowserProfile
    pinned: bool
    #: cffi callbacks and buffers that must outlive the context.
    keepalive: list[Any]


_OPENSSL_CONTEXTS: dict[tuple[str, bool], OpenSSLContext] = {}


def openssl_context(profile_name: str, pinned: bool) -> OpenSSLContext:
    """The pyOpenSSL context of a browser profile; raises :class:`TlsError` if pyOpenSSL is
    missing. Built once per (profile, pinned)."""
    key = (profile_name, pinned)
    built = _OPENSSL_CONTEXTS.get(key)
    if built is None:
        built = _build_openssl_context(BROWSER_PROFILES[profile_name], pinned)
        _OPENSSL_CONTEXTS[key] = built
    return built


def _check(result: int, what: str) -> None:
    if result != 1:
        raise TlsError(f"the bundled OpenSSL refused the {what} of this TLS profile")


def _build_openssl_context(profile: BrowserProfile, pinned: bool) -> OpenSSLContext:
    try:
        from cryptography.hazmat.bindings.openssl.binding import Binding
        from OpenSSL import SSL
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise TlsError(
            f"utls profile {profile.name!r} needs pyOpenSSL (pip install 'webtunnel-pt[utls]')"
        ) from exc
    ffi, lib = Binding.ffi, Binding.lib
    version = lib.OpenSSL_version_num()
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    raw = ctx._context  # the SSL_CTX *, for what pyOpenSSL does not wrap
    # No renegotiation, as Go's crypto/tls client (RenegotiateNever): a HelloRequest gets a
    # no_renegotiation alert and the server decides. Accepting one would need the transport to
    # hold writes while OpenSSL waits for the server's answer; no WebTunnel server asks.
    options = SSL.OP_NO_COMPRESSION | _OP_NO_ENCRYPT_THEN_MAC | SSL.OP_NO_RENEGOTIATION
    if version >= _OPENSSL_4_0:
        options |= _OP_ECH_GREASE
    ctx.set_options(options)
    ctx.set_cipher_list(":".join(profile.tls12_ciphers).encode())
    ctx.set_tls13_ciphersuites(":".join(profile.tls13_ciphers).encode())
    groups = [g if version >= _OPENSSL_3_5 else "?" + g.lstrip("*") for g in profile.groups]
    _check(lib.SSL_CTX_set1_curves_list(raw, ":".join(groups).encode()), "group list")
    sigalgs = [s for s in profile.sigalgs if version >= _OPENSSL_3_5 or s not in _PQ_SIGALGS]
    _check(lib.SSL_CTX_set1_sigalgs_list(raw, ":".join(sigalgs).encode()), "signature list")
    ctx.set_alpn_protos([p.encode() for p in ALPN_PROTOCOLS])
    # status_request is sent per connection (request_ocsp); the answer is not needed.
    ctx.set_ocsp_client_callback(lambda conn, data, arg: True)
    keepalive: list[Any] = []
    _add_static_extension(ffi, lib, raw, _EXT_SCT, b"", keepalive)
    if profile.alps:
        names = b"".join(bytes([len(p)]) + p.encode() for p in profile.alps)
        _add_static_extension(
            ffi, lib, raw, _EXT_ALPS, len(names).to_bytes(2, "big") + names, keepalive
        )
    if pinned:
        ctx.set_verify(SSL.VERIFY_NONE)
    else:
        ctx.set_verify(SSL.VERIFY_PEER)
        _load_system_cas(ctx)
    return OpenSSLContext(ctx, profile, pinned, keepalive)


def _add_static_extension(
    ffi: Any, lib: Any, raw_ctx: Any, ext_type: int, payload: bytes, keepalive: list[Any]
) -> None:
    """Send ``ext_type`` with a fixed body in every ClientHello (a client custom extension);
    whatever the server answers in it is ignored."""
    buffer = ffi.new("unsigned char[]", payload or b"\0")
    size = len(payload)

    def add(ssl_: Any, ext: int, out: Any, outlen: Any, alert: Any, arg: Any) -> int:
        out[0] = buffer
        outlen[0] = size
        return 1

    add_cb = ffi.callback(
        "int(SSL *, unsigned int, unsigned char **, size_t *, int *, void *)", add
    )
    keepalive += [buffer, add_cb]
    _check(
        lib.SSL_CTX_add_client_custom_ext(
            raw_ctx, ext_type, add_cb, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL
        ),
        f"extension {ext_type}",
    )


def _load_system_cas(ctx: Any) -> None:
    """The CA store the stdlib would use (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured): the
    bundled OpenSSL's compiled-in paths do not point at the system store."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    if cafile is None and capath is None:
        raise TlsError("no system CA store found (set SSL_CERT_FILE)")
    ctx.load_verify_locations(cafile, capath)
