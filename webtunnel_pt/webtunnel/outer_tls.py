"""The outer TLS of a bridge dial: the handshake with the bridge's web server (fail closed), the
names it is checked against, and the ``cert=`` pin.

The SNI is the dial's current ``servername=`` (or the URL host). The certificate is checked
against the SNI by the TLS stack, or, with ``utls-authority=``, against that other name by
:mod:`webtunnel_pt.outbound.certnames` after the handshake (the chain is still verified by the
stack); ``cert=`` replaces both checks with the official client's chain hash. asyncio glue over
:mod:`webtunnel_pt.outbound.tls_profiles` and :mod:`webtunnel_pt.outbound.tls_transport`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import ssl
from typing import Any, NamedTuple

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import TlsError
from webtunnel_pt.outbound.certnames import check_certificate_name
from webtunnel_pt.outbound.ssl_socket_transport import loop_supported, open_ssl_socket_connection
from webtunnel_pt.outbound.tls_profiles import OpenSSLContext, tls_context
from webtunnel_pt.outbound.tls_transport import open_tls_connection
from webtunnel_pt.webtunnel.bridge import BridgeConfig

#: The stdlib profile's TLS runs on the socket itself
#: (:mod:`webtunnel_pt.outbound.ssl_socket_transport`); False: on asyncio's TLS transport, as
#: before issue 16, kept so that ``docs/performance.md``'s comparison can be repeated. Loops
#: without ``add_reader`` (Windows' proactor) keep asyncio's TLS.
SSL_SOCKET_TRANSPORT = True

#: StreamReader limit: bounds one head line and, with flow control, the buffered bytes.
STREAM_LIMIT_BYTES = 64 * 1024

#: asyncio refuses a TLS handshake timeout of 0; the dial's deadline ends the wait anyway.
MIN_HANDSHAKE_TIMEOUT_S = 0.001

#: Value of _ssl.ENCODING_DER (private in 3.11; Certificate.public_bytes takes it).
_ENCODING_DER = 2


class TlsSummary(NamedTuple):
    """What the outer TLS handshake negotiated, for logs and ``probe``."""

    version: str | None
    cipher: str | None
    peer_certificate: dict[str, Any] | None


def chain_pin(der_chain: list[bytes]) -> bytes:
    """The official client's chain hash (``webtunnel-wire.md`` §4.3), leaf first."""
    digest = hashlib.sha256(der_chain[0]).digest()
    for der in der_chain[1:]:
        digest = hashlib.sha256(digest + hashlib.sha256(der).digest()).digest()
    return digest


def _unverified_chain(ssl_object: Any) -> list[bytes]:
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        raise TlsError("cert= pinning needs a Python whose ssl module exposes the peer chain")
    chain = getter() or []
    out = []
    for cert in chain:
        der = cert.public_bytes(_ENCODING_DER) if hasattr(cert, "public_bytes") else cert
        out.append(bytes(der))
    if not out:
        raise TlsError("server sent no certificate")
    return out


def _tls_error(exc: BaseException, name: str) -> TlsError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or getattr(exc, "reason", None) or "verification failed"
        return TlsError(f"TLS certificate of {name} not accepted: {detail}")
    if isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS handshake with {name} failed: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, ConnectionError | EOFError):
        return TlsError(f"TLS handshake with {name} failed: connection closed")
    return TlsError(f"TLS handshake with {name} failed: {exc}")


def _other_name_to_verify(config: BridgeConfig, server_name: str) -> str | None:
    """The name to check the certificate against ourselves, when it is not the SNI
    (``utls-authority=``) and no pin replaces the check; else None (the TLS stack checks the
    SNI, or the pin decides)."""
    if not config.use_tls or config.cert_pin is not None or config.verify_name is None:
        return None
    return None if config.verify_name == server_name else config.verify_name


async def open_stream(
    sock: socket.socket, config: BridgeConfig, server_name: str, deadline: Deadline
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap the connected socket in a stream: TLS with the bridge's profile, or plain. The
    handshake gets what is left of the dial's budget; the dial's own deadline, which falls
    first, reports the timeout."""
    handshake_timeout = max(deadline.remaining(), MIN_HANDSHAKE_TIMEOUT_S)
    name = server_name
    check_hostname = _other_name_to_verify(config, name) is None
    try:
        ssl_ctx = (
            tls_context(config.cert_pin is not None, config.tls_profile, check_hostname)
            if config.use_tls
            else None
        )
        if isinstance(ssl_ctx, OpenSSLContext):
            return await open_tls_connection(
                sock,
                ssl_ctx,
                name,
                limit=STREAM_LIMIT_BYTES,
                handshake_timeout_s=handshake_timeout,
                check_hostname=check_hostname,
            )
        if (
            ssl_ctx is not None
            and SSL_SOCKET_TRANSPORT
            and loop_supported(asyncio.get_running_loop())
        ):
            return await open_ssl_socket_connection(
                sock,
                ssl_ctx,
                name,
                limit=STREAM_LIMIT_BYTES,
                handshake_timeout_s=handshake_timeout,
            )
        return await asyncio.open_connection(
            sock=sock,
            ssl=ssl_ctx,
            server_hostname=name if ssl_ctx else None,
            ssl_handshake_timeout=handshake_timeout if ssl_ctx else None,
            limit=STREAM_LIMIT_BYTES,
        )
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        sock.close()
        raise _tls_error(exc, name) from exc
    except BaseException:
        sock.close()
        raise


def check_tls(writer: asyncio.StreamWriter, config: BridgeConfig, server_name: str) -> TlsSummary:
    """What was negotiated; with ``cert=`` the chain is checked against the pin, with
    ``utls-authority=`` the (verified) certificate's names against that name."""
    ssl_object = writer.get_extra_info("ssl_object")
    cipher = ssl_object.cipher()
    # asyncio's TLS decoded the certificate into "peercert" when the handshake completed;
    # decoding it again costs tens of microseconds per tunnel (the pyOpenSSL transport has none).
    peercert = writer.get_extra_info("peercert")
    if peercert is None:
        peercert = ssl_object.getpeercert()
    summary = TlsSummary(ssl_object.version(), cipher[0] if cipher else None, peercert or None)
    other_name = _other_name_to_verify(config, server_name)
    if other_name is not None:
        check_certificate_name(other_name, summary.peer_certificate)
    if config.cert_pin is not None:
        pin = chain_pin(_unverified_chain(ssl_object))
        if pin != config.cert_pin:
            raise TlsError(
                "TLS certificate chain does not match the cert= pin "
                f"(server chain hashes to {base64.b64encode(pin).decode()})"
            )
    return summary
