"""Errors of the built-in mode, under the package tree of :mod:`webtunnel_pt.errors`.

RemoteProtocolError
└─ LinkProtocolError                    the relay broke the link protocol (tor-link.md §3-§8)
   ├─ CertificateError                  CERTS cell not acceptable (§4.2)
   │  ├─ MalformedCertificate           a certificate or the cell does not parse
   │  ├─ MissingCertificate             a required certificate type is absent
   │  ├─ CertificateExpired             outside its validity window at "now"
   │  ├─ BadCertificateSignature        a signature does not verify
   │  ├─ LinkCertMismatch               type-5 cert does not certify the TLS leaf we saw
   │  └─ IdentityMismatch               relay identity is not the bridge line's fingerprint
   ├─ CircuitHandshakeError             CREATED_FAST key hash wrong (§5)
   └─ DirectoryError                    bad HTTP answer or server descriptor (§10)
      └─ DescriptorSignatureError       a descriptor signature, or its signing cert, fails (§10.1)
WebtunnelError
├─ ChannelClosed (also ConnectionError) the link (TLS stream) ended
├─ CircuitDestroyed                     the relay sent DESTROY; carries the reason (§9)
└─ StreamEnded                          the relay sent END on a stream; carries the reason
"""

from __future__ import annotations

from webtunnel_pt.errors import RemoteProtocolError, TlsError, WebtunnelError


class LinkProtocolError(RemoteProtocolError):
    """The relay sent cells that violate the Tor link or circuit protocol."""


class CertificateError(LinkProtocolError):
    """The relay's CERTS cell does not prove the identity we expect (tor-link.md §4.2)."""


class MalformedCertificate(CertificateError):
    """A certificate, or the CERTS cell itself, does not parse."""


class MissingCertificate(CertificateError):
    """A certificate type the verification needs is not in the CERTS cell."""


class CertificateExpired(CertificateError):
    """A certificate is outside its validity window at the verification time."""


class BadCertificateSignature(CertificateError):
    """A certificate signature does not verify under the key that should have made it."""


class LinkCertMismatch(CertificateError):
    """The type-5 certificate does not certify the TLS certificate the relay presented."""


class IdentityMismatch(CertificateError):
    """The relay's identity is valid but is not the one the bridge line names."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class CircuitHandshakeError(LinkProtocolError):
    """The circuit handshake reply does not match what we sent (CREATED_FAST KH)."""


class DirectoryError(LinkProtocolError):
    """A directory answer over BEGIN_DIR is not usable (HTTP status, encoding, descriptor)."""


class DescriptorSignatureError(DirectoryError):
    """A server-descriptor signature is missing, misplaced or does not verify, or the
    ``identity-ed25519`` certificate that vouches for the Ed25519 signing key is bad or expired."""


class InnerTlsError(TlsError):
    """The TLS handshake with the relay, inside the WebTunnel stream, failed."""


class ChannelClosed(WebtunnelError, ConnectionError):
    """The channel's underlying stream closed or failed."""


class CircuitDestroyed(WebtunnelError):
    """The relay destroyed the circuit; ``reason`` is the DESTROY reason code (§9)."""

    def __init__(self, reason: int, message: str | None = None) -> None:
        super().__init__(message or f"circuit destroyed by the relay (reason {reason})")
        self.reason = reason


class StreamEnded(WebtunnelError):
    """The relay ended a stream; ``reason`` is the END reason code (§8.3)."""

    def __init__(self, reason: int, message: str | None = None) -> None:
        super().__init__(message or f"stream ended by the relay (reason {reason})")
        self.reason = reason
