"""TLS over asyncio through pyOpenSSL memory BIOs, for the browser ClientHello profiles.

The stdlib :mod:`ssl` module cannot set groups, signature algorithms, TLS 1.3 suites or custom
extensions, so the browser profiles of :mod:`webtunnel_pt.outbound.tls_profiles` run on pyOpenSSL.
This module is the asyncio glue, the same shape as asyncio's own ``sslproto``::

    socket transport  <->  _TlsProtocol (pyOpenSSL Connection, memory BIOs)
                                 |
                           TlsTransport  <->  StreamReaderProtocol  (StreamReader/StreamWriter)

What it promises to :mod:`webtunnel_pt.webtunnel.dial` is what ``asyncio.open_connection(ssl=...)``
gives: handshake failures raise :class:`ssl.SSLError` (``SSLCertVerificationError`` with a
``verify_message`` for a refused certificate) or ``ConnectionError``; the writer's
``get_extra_info("ssl_object")`` answers ``version()``, ``cipher()``, ``getpeercert()`` and
``get_unverified_chain()``. TLS cannot half-close: ``can_write_eof()`` is false, and as with
asyncio's TLS a peer's close_notify is EOF for the application and then closes the connection
(answering with ours); a TCP FIN without close_notify is EOF as well. Reads and writes are
bounded by the socket transport's flow control, which is passed through both ways.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from typing import Any

from webtunnel_pt.outbound.tls_profiles import OpenSSLContext

#: Plaintext asked for per ``recv``: one TLS record holds at most 16 KiB, and pyOpenSSL
#: allocates (and zeroes) this much on every call.
READ_CHUNK_BYTES = 16 * 1024
#: Largest ciphertext chunk taken from the outgoing BIO per transport write.
WRITE_CHUNK_BYTES = 256 * 1024


def _ssl_module() -> Any:
    from OpenSSL import SSL

    return SSL


def _binding() -> tuple[Any, Any]:
    from cryptography.hazmat.bindings.openssl.binding import Binding

    return Binding.ffi, Binding.lib


class TlsInfo:
    """The parts of :class:`ssl.SSLObject` that the dial reads, for a pyOpenSSL connection."""

    def __init__(self, conn: Any, verified: bool) -> None:
        self._conn = conn
        self._verified = verified

    def version(self) -> str | None:
        name: str = self._conn.get_protocol_version_name()
        return None if name == "Unknown" else name

    def cipher(self) -> tuple[str, str, int] | None:
        name = self._conn.get_cipher_name()
        if name is None:
            return None
        return name, self._conn.get_cipher_version(), self._conn.get_cipher_bits()

    def selected_alpn_protocol(self) -> str | None:
        chosen: bytes = self._conn.get_alpn_proto_negotiated()
        return chosen.decode("ascii", "replace") or None

    def get_unverified_chain(self) -> list[bytes]:
        from cryptography.hazmat.primitives.serialization import Encoding

        chain = self._conn.get_peer_cert_chain(as_cryptography=True) or []
        return [cert.public_bytes(Encoding.DER) for cert in chain]

    def getpeercert(self) -> dict[str, Any]:
        """Like :meth:`ssl.SSLSocket.getpeercert`: empty when the chain was not verified."""
        if not self._verified:
            return {}
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        return {} if cert is None else _cert_dict(cert)


def _cert_dict(cert: Any) -> dict[str, Any]:
    from cryptography import x509

    def name(value: Any) -> tuple[tuple[tuple[str, str], ...], ...]:
        out = []
        for rdn in value.rdns:
            out.append(tuple((attr.oid._name, str(attr.value)) for attr in rdn))
        return tuple(out)

    result: dict[str, Any] = {
        "subject": name(cert.subject),
        "issuer": name(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": f"{cert.serial_number:X}",
        "notBefore": cert.not_valid_before_utc.strftime("%b %d %H:%M:%S %Y GMT"),
        "notAfter": cert.not_valid_after_utc.strftime("%b %d %H:%M:%S %Y GMT"),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return result
    entries: list[tuple[str, str]] = [("DNS", n) for n in san.get_values_for_type(x509.DNSName)]
    entries += [("IP Address", str(a)) for a in san.get_values_for_type(x509.IPAddress)]
    result["subjectAltName"] = tuple(entries)
    return result


def _as_ssl_error(exc: Exception, conn: Any) -> ssl.SSLError:
    """Turn a pyOpenSSL error into the :mod:`ssl` exception the stdlib path would raise."""
    ffi, lib = _binding()
    reasons = [str(part[2]) for part in exc.args[0] if len(part) == 3] if exc.args else []
    reason = reasons[-1] if reasons else str(exc)
    code = lib.SSL_get_verify_result(conn._ssl)
    if "certificate verify failed" in reason and code != 0:
        message = ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace")
        error: ssl.SSLError = ssl.SSLCertVerificationError(1, f"{reason}: {message}")
        error.verify_code = code  # type: ignore[attr-defined]
        error.verify_message = message  # type: ignore[attr-defined]
    else:
        error = ssl.SSLError(1, reason)
    error.reason = reason
    return error


class TlsTransport(asyncio.Transport):
    """The application's view of the TLS connection (what ``StreamWriter`` holds)."""

    def __init__(self, tls: _TlsProtocol) -> None:
        super().__init__()
        self._tls = tls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls.info
        if name == "sslcontext":
            return self._tls.context
        return self._tls.raw.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tls.write_app(bytes(data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    def is_closing(self) -> bool:
        return self._tls.closing or self._tls.raw.is_closing()

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.raw.abort()

    def pause_reading(self) -> None:
        self._tls.raw.pause_reading()

    def resume_reading(self) -> None:
        self._tls.raw.resume_reading()

    def is_reading(self) -> bool:
        reading: bool = self._tls.raw.is_reading()
        return reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        size: int = self._tls.raw.get_write_buffer_size()
        return size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        limits: tuple[int, int] = self._tls.raw.get_write_buffer_limits()
        return limits

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls.app_protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls.app_protocol


class _TlsProtocol(asyncio.Protocol):
    """Ciphertext side: feeds the socket's bytes to OpenSSL and OpenSSL's bytes to the socket."""

    def __init__(self, conn: Any, context: OpenSSLContext, app_protocol: asyncio.Protocol) -> None:
        self.conn = conn
        self.context = context
        self.app_protocol = app_protocol
        self.info = TlsInfo(conn, verified=not context.pinned)
        self.handshake: asyncio.Future[TlsTransport] = asyncio.get_running_loop().create_future()
        self.raw: asyncio.Transport = None  # type: ignore[assignment]
        self.closing = False
        self._app_transport: TlsTransport | None = None
        self._error: BaseException | None = None
        self._eof_delivered = False

    # -- socket side ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport
        self._step_handshake()

    def data_received(self, data: bytes) -> None:
        self.conn.bio_write(data)
        if self._app_transport is None:
            self._step_handshake()
            if self._app_transport is None:
                return
        self._read_plaintext()

    def eof_received(self) -> bool:
        if self._app_transport is None:
            self._fail_handshake(ConnectionResetError("connection closed during TLS handshake"))
        elif not self._eof_delivered:
            self._eof_delivered = True
            self.app_protocol.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._app_transport is None:
            self._fail_handshake(exc or ConnectionResetError("connection closed during TLS"))
            return
        error = self._error or exc
        self.app_protocol.connection_lost(error if isinstance(error, Exception) else None)

    def pause_writing(self) -> None:
        if self._app_transport is not None:
            self.app_protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._app_transport is not None:
            self.app_protocol.resume_writing()

    # -- TLS ------------------------------------------------------------------------------
    def _step_handshake(self) -> None:
        SSL = _ssl_module()
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return
        except SSL.Error as exc:
            self._flush()  # the alert, if OpenSSL wrote one
            self._fail_handshake(_as_ssl_error(exc, self.conn))
            return
        self._flush()
        self._app_transport = TlsTransport(self)
        self.app_protocol.connection_made(self._app_transport)
        if not self.handshake.done():
            self.handshake.set_result(self._app_transport)

    def _fail_handshake(self, exc: BaseException) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        if self.raw is not None:
            self.raw.abort()

    def _read_plaintext(self) -> None:
        SSL = _ssl_module()
        while not self._eof_delivered:
            try:
                data = self.conn.recv(READ_CHUNK_BYTES)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # close_notify: answer it and close, as asyncio's TLS
                self._eof_delivered = True
                self.app_protocol.eof_received()
                self.close()
                return
            except SSL.Error as exc:
                self._fail(exc)
                return
            self.app_protocol.data_received(data)
        self._flush()

    def write_app(self, data: bytes) -> None:
        if self.closing or self._error is not None or not data:
            return
        SSL = _ssl_module()
        try:
            self.conn.sendall(data)
        except SSL.Error as exc:
            self._fail(exc)
            return
        self._flush()

    def _fail(self, exc: Exception) -> None:
        """A fatal TLS error after the handshake: send the alert, abort; the first cause is
        the one ``connection_lost`` reports."""
        if self._error is None:
            self._error = _as_ssl_error(exc, self.conn)
        self._flush()
        self.raw.abort()

    def _flush(self) -> None:
        SSL = _ssl_module()
        while True:
            try:
                chunk = self.conn.bio_read(WRITE_CHUNK_BYTES)
            except SSL.WantReadError:
                return
            if not chunk:
                return
            self.raw.write(chunk)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        SSL = _ssl_module()
        try:
            self.conn.shutdown()  # queue close_notify
        except SSL.Error:
            pass
        self._flush()
        self.raw.close()


def _prepare_connection(
    context: OpenSSLContext, server_hostname: str, check_hostname: bool = True
) -> Any:
    SSL = _ssl_module()
    _ffi, lib = _binding()
    conn = SSL.Connection(context.context, None)  # None: memory BIOs
    conn.set_connect_state()
    try:
        address = ipaddress.ip_address(server_hostname)
    except ValueError:
        address = None
    if address is None:
        conn.set_tlsext_host_name(server_hostname.encode("idna"))
    conn.request_ocsp()
    if not context.pinned and check_hostname:
        param = lib.SSL_get0_param(conn._ssl)
        lib.X509_VERIFY_PARAM_set_hostflags(param, lib.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)
        if address is None:
            name = server_hostname.encode("idna")
            ok = lib.X509_VERIFY_PARAM_set1_host(param, name, len(name))
        else:
            packed = address.packed
            ok = lib.X509_VERIFY_PARAM_set1_ip(param, packed, len(packed))
        if ok != 1:
            raise ssl.SSLError(1, f"cannot check the certificate against {server_hostname!r}")
    return conn


async def open_tls_connection(
    sock: Any,
    context: OpenSSLContext,
    server_hostname: str,
    *,
    limit: int,
    handshake_timeout_s: float,
    check_hostname: bool = True,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection(sock=sock, ssl=...)`` with a pyOpenSSL context.
    ``check_hostname=False`` verifies the chain only (VERIFY_PEER stays on) and leaves the name
    to the caller, for ``utls-authority=`` (:mod:`webtunnel_pt.outbound.certnames`)."""
    loop = asyncio.get_running_loop()
    conn = _prepare_connection(context, server_hostname, check_hostname)
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    app_protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    tls = _TlsProtocol(conn, context, app_protocol)
    await loop.create_connection(lambda: tls, sock=sock)
    try:
        async with asyncio.timeout(handshake_timeout_s):
            transport = await tls.handshake
    except BaseException:
        if tls.raw is not None:
            tls.raw.abort()
        raise
    writer = asyncio.StreamWriter(transport, app_protocol, reader, loop)
    return reader, writer
