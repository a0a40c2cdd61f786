"""asyncio glue: TLS to a destination over any stream pair, through ``ssl.MemoryBIO``.

    tls = TlsStream(reader, writer, ssl.create_default_context(), "example.com")
    await tls.handshake(); await tls.write(request); data = await tls.read()

Used by ``fetch`` for ``https://`` over a Tor stream. The client's stream objects need only
``read(n)``, ``write(data)`` and ``drain()``: no transport is required, so this works whatever
``open_connection`` returns. The context decides the validation: ``ssl.create_default_context()``
checks the chain against the system store (or ``SSL_CERT_FILE``, which OpenSSL reads) and the
host name. A peer closing without close_notify is EOF (the HTTP layer knows whether the body was
complete). Each read holds at most :data:`READ_CHUNK_BYTES` of ciphertext.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["READ_CHUNK_BYTES", "TlsStream"]

READ_CHUNK_BYTES = 64 * 1024


class TlsStream:
    def __init__(self, reader: Any, writer: Any, context: ssl.SSLContext, server_name: str):
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_name
        )

    @property
    def version(self) -> str | None:
        return self._tls.version()

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _fill(self) -> None:
        data = await self._reader.read(READ_CHUNK_BYTES)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def handshake(self) -> None:
        """Run the handshake; ``ssl.SSLError`` (``SSLCertVerificationError`` for a refused
        certificate) or ``ConnectionError`` if it fails."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if self._incoming.eof:
                    raise ConnectionError("the server closed the connection during TLS") from None
                await self._fill()
        await self._flush()

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    async def read(self, size: int = READ_CHUNK_BYTES) -> bytes:
        """Up to ``size`` bytes of plaintext; ``b""`` at the end of the stream."""
        while True:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._flush()
                if self._incoming.eof:
                    return b""
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
