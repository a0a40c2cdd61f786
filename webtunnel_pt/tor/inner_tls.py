"""Inner TLS: the TLS session with the relay itself, inside the WebTunnel (or plain TCP) stream
(tor-link.md §2; webtunnel-wire.md §7). asyncio glue.

    tls = await start_inner_tls(writer, timeout_s=10, reader=reader)   # TLS-in-TLS, start_tls

The context trusts no WebPKI (the CERTS cell authenticates the relay), offers no ALPN and no
session tickets, and the SNI is random as tor's own client sends it. :class:`InnerTls` carries
what the channel handshake needs from it: the relay's leaf certificate.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import string
from collections.abc import Callable
from dataclasses import dataclass

from webtunnel_pt.deadlines import INNER_TLS_TIMEOUT_S, Deadline
from webtunnel_pt.errors import HandshakeTimeout, InnerTlsError, LinkProtocolError

_SNI_ALPHABET = string.ascii_lowercase + string.digits


def random_sni(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """``www.<4-25 random chars>.com`` like tor's own TLS client (tor-link.md §2)."""
    length = 4 + randbelow(22)
    return (
        "www."
        + "".join(_SNI_ALPHABET[randbelow(len(_SNI_ALPHABET))] for _ in range(length))
        + ".com"
    )


def inner_tls_context() -> ssl.SSLContext:
    """No WebPKI (CERTS authenticates), no ALPN, no session resumption (tor-link.md §2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


@dataclass(frozen=True)
class InnerTls:
    """What the inner TLS handshake showed: the leaf DER is what CERTS type 5 must certify."""

    leaf_der: bytes
    version: str | None
    cipher: str | None
    server_hostname: str


def _check_nothing_buffered(reader: asyncio.StreamReader | None) -> None:
    """A relay speaks only after our ClientHello (webtunnel-wire.md §7): bytes already waiting
    behind the 101 cannot belong to the inner TLS, and ``start_tls`` would hand them on as if
    they were decrypted. ``StreamReader`` has no public way to ask, hence the attribute."""
    waiting = len(getattr(reader, "_buffer", b"")) if reader is not None else 0
    if waiting:
        raise LinkProtocolError(
            f"bridge sent {waiting} bytes before the inner TLS handshake; a relay speaks only "
            "after the client's ClientHello"
        )


async def start_inner_tls(
    writer: asyncio.StreamWriter,
    *,
    timeout_s: float = INNER_TLS_TIMEOUT_S,
    server_hostname: str | None = None,
    reader: asyncio.StreamReader | None = None,
    deadline: Deadline | None = None,
) -> InnerTls:
    """Upgrade the stream in place to TLS with the relay (works on a TLS transport, 3.11+).

    Pass ``reader`` to refuse bytes the bridge sent before our ClientHello. With a
    ``deadline`` the handshake gets what is left of it, at most ``timeout_s``.
    """
    _check_nothing_buffered(reader)
    if deadline is not None:
        timeout_s = deadline.cap(timeout_s)
    if timeout_s <= 0:
        raise HandshakeTimeout("no time left for the inner TLS handshake")
    sni = server_hostname or random_sni()
    try:
        await writer.start_tls(
            inner_tls_context(), server_hostname=sni, ssl_handshake_timeout=timeout_s
        )
    except TimeoutError as exc:
        raise HandshakeTimeout(f"inner TLS handshake timed out after {timeout_s:g} s") from exc
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        detail = getattr(exc, "reason", None) or type(exc).__name__
        raise InnerTlsError(f"inner TLS handshake with the relay failed: {detail}") from exc
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise InnerTlsError("relay presented no TLS certificate")
    cipher = ssl_object.cipher()
    return InnerTls(bytes(der), ssl_object.version(), cipher[0] if cipher else None, sni)
