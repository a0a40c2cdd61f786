"""The exception tree of webtunnel-pt, all of it, and its mapping to SOCKS replies and PT LOG
severities.

    WebtunnelError
    ├─ ConfigError                          bad TOR_PT_* environment or command line
    │  ├─ VersionError                      no common managed-proxy version (VERSION-ERROR)
    │  ├─ EnvError                          malformed TOR_PT_* variable (ENV-ERROR)
    │  ├─ ProxyConfigError                  TOR_PT_PROXY refused (PROXY-ERROR)
    │  └─ DirAuthorityError                 a DirAuthority line does not parse
    ├─ BridgeArgsError (also ValueError)    bad bridge arguments: url=, servername=, addr=, ...
    │  └─ ArgsError                         the k=v;k=v string itself does not parse
    ├─ ClientGone (also ConnectionError)    tor hung up before its tunnel was ready
    ├─ ProtocolError
    │  ├─ LocalProtocolError                we were asked to do something illegal (a bug)
    │  └─ RemoteProtocolError               a peer sent something illegal
    │     ├─ SocksProtocolError             tor's SOCKS client (carries the reply to send)
    │     ├─ UpgradeRejected                the web server answered something other than 101
    │     ├─ UpgradeError                   the web server's answer was not valid HTTP
    │     ├─ ProxyProtocolError             the upstream proxy's answer is not SOCKS / HTTP
    │     └─ LinkProtocolError              a relay broke the Tor link protocol (tor-link.md)
    │        ├─ CertificateError            CERTS cell not acceptable (§4.2)
    │        │  ├─ MalformedCertificate     a certificate or the cell does not parse
    │        │  ├─ MissingCertificate       a required certificate type is absent
    │        │  ├─ CertificateExpired       outside its validity window at "now"
    │        │  ├─ BadCertificateSignature  a signature does not verify
    │        │  ├─ LinkCertMismatch         type-5 cert does not certify the TLS leaf we saw
    │        │  └─ IdentityMismatch         relay identity is not the bridge line's fingerprint
    │        ├─ CircuitHandshakeError       CREATED_FAST key hash or ntor / ntor v3 AUTH wrong
    │        ├─ LinkSpecifierError          a link specifier list does not parse (§7.4)
    │        ├─ CircuitProtocolError        bad relay cell, window or SENDME: circuit destroyed
    │        └─ DirectoryError              bad HTTP answer or server descriptor (§10)
    │           ├─ DescriptorSignatureError a descriptor signature or its signing cert fails
    │           │  └─ OnionKeyCrosscertError the ntor-onion-key-crosscert does not vouch
    │           ├─ NetdocError              not Tor network-document syntax (dir-spec §1.2)
    │           ├─ KeyCertificateError      an authority key certificate is bad (dir-spec §3.1)
    │           ├─ ConsensusError           a microdesc consensus does not parse (§10.2)
    │           ├─ ConsensusSignatureError  too few configured authorities signed it validly
    │           ├─ ConsensusNotLive         outside its lifetime at "now"
    │           │  ├─ ConsensusNotYetValid  valid-after (minus the allowed skew) is ahead
    │           │  └─ ConsensusStale        more than 24 h past valid-until
    │           └─ MicrodescError           a microdescriptor response does not parse (§10.3)
    ├─ BridgeConnectError (also ConnectionError)
    │  ├─ BridgeUnreachable                 DNS or TCP failed (carries the SOCKS reply)
    │  │  └─ ProxyError                     the bridge could not be reached through TOR_PT_PROXY
    │  │     ├─ ProxyUnreachable            TCP to the proxy itself failed (reply by errno)
    │  │     ├─ ProxyAuthRefused            the proxy refused our credentials or wants some
    │  │     └─ ProxyTargetUnreachable      the proxy could not connect to the bridge
    │  └─ TlsError                          outer TLS handshake or verification failed
    │     └─ InnerTlsError                  the TLS with the relay, inside the tunnel, failed
    ├─ HandshakeTimeout (also TimeoutError) a deadline passed (SOCKS, TCP, TLS, upgrade, link)
    │  ├─ CircuitBuildTimeout               a circuit step (CREATE2, EXTEND2) passed its deadline
    │  └─ StreamTimeout                     no CONNECTED/RESOLVED before the deadline
    ├─ ChannelClosed (also ConnectionError) the Tor channel's stream ended
    ├─ CircuitDestroyed                     the relay sent DESTROY (carries the reason, §9)
    │  ├─ CircuitTruncated                  a hop sent TRUNCATED: the path behind it is gone
    │  └─ ConfluxSetEnded                   another leg of the circuit's conflux set ended
    ├─ StreamEnded                          the relay sent END on a stream (carries the reason)
    │  ├─ StreamRefused                     END before CONNECTED: the exit refused or failed
    │  └─ ResolveFailed                     RESOLVED with only errors, or END on a RESOLVE
    ├─ CircuitBuildFailed                   every attempt on a fresh path failed (last cause)
    ├─ TorClientClosed                      the built-in client was closed, or never started
    └─ NoPathError                          no middle or exit fits the path rules (tor/path.py)

An error out of a bridge dial carries the :class:`DialStage` it failed in (``exc.stage``).

Every class knows the SOCKS5 reply code (RFC 1928 §6) it maps to and the severity of the PT
``LOG`` line that reports it (pt-spec §3.3.4). :func:`describe_failure` is the one place that
turns any exception into that triple. Sans-I/O: importing this module loads no ``ssl``,
``socket`` or ``asyncio``.
"""

from __future__ import annotations

import errno
import os
import sys
from enum import StrEnum
from typing import Literal

# SocksReply is a wire code (socks.codes); re-exported here, where every error maps to one.
from webtunnel_pt.socks.codes import SocksReply as SocksReply

LogSeverity = Literal["error", "warning", "notice", "info", "debug"]


class DialStage(StrEnum):
    """The steps of a bridge dial, in order; the value is how messages name it
    ("... during TLS handshake"). Through ``TOR_PT_PROXY`` the two proxy steps replace DNS and
    TCP connect."""

    DNS = "DNS"
    TCP_CONNECT = "TCP connect"
    PROXY_CONNECT = "proxy connect"
    PROXY_HANDSHAKE = "proxy handshake"
    TLS_HANDSHAKE = "TLS handshake"
    UPGRADE = "upgrade"


class WebtunnelError(Exception):
    """Base class of every error this package raises on purpose."""

    socks_reply: SocksReply = SocksReply.GENERAL_FAILURE
    log_severity: LogSeverity = "warning"
    #: The dial step that failed, set by :func:`webtunnel_pt.webtunnel.dial.dial_bridge` on
    #: every error it raises; None for errors from anywhere else.
    stage: DialStage | None = None


class ConfigError(WebtunnelError):
    """The environment or command line given to the program is unusable."""

    log_severity: LogSeverity = "error"


class VersionError(ConfigError):
    """TOR_PT_MANAGED_TRANSPORT_VER names no version we speak."""


class EnvError(ConfigError):
    """A TOR_PT_* variable is missing or malformed."""


class ProxyConfigError(ConfigError):
    """TOR_PT_PROXY is malformed or names an unsupported proxy."""


class DirAuthorityError(ConfigError):
    """A torrc-style ``DirAuthority`` line given by the user does not parse, or names no v3
    authority (webtunnel_pt.tor.authorities)."""


class BridgeArgsError(WebtunnelError, ValueError):
    """The bridge line's arguments are missing, malformed or contradictory: a configuration
    error only the user can fix, so tor logs it at ``error``."""

    log_severity: LogSeverity = "error"


class ArgsError(BridgeArgsError):
    """The bridge argument string tor sent is not valid ``k=v;k=v`` syntax (pt-spec §3.5)."""


class ClientGone(WebtunnelError, ConnectionError):
    """tor closed its SOCKS connection before the tunnel was ready."""

    log_severity: LogSeverity = "info"


class ProtocolError(WebtunnelError):
    """A protocol was violated."""


class LocalProtocolError(ProtocolError):
    """Our own code asked a protocol core for something illegal: a bug."""

    log_severity: LogSeverity = "error"


class RemoteProtocolError(ProtocolError):
    """A peer sent bytes that violate the protocol."""


class SocksProtocolError(RemoteProtocolError):
    """tor's SOCKS client sent something we cannot accept."""

    def __init__(self, message: str, reply: SocksReply = SocksReply.GENERAL_FAILURE) -> None:
        super().__init__(message)
        self.socks_reply = reply


class UpgradeRejected(RemoteProtocolError):
    """The web server answered the upgrade with something other than a usable 101."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        text = f"web server refused the upgrade: HTTP {status} {reason}".rstrip()
        if detail:
            text = f"{text} ({detail})"
        super().__init__(text)
        self.status = status
        self.reason = reason


class UpgradeError(RemoteProtocolError):
    """The web server's answer to the upgrade is not well-formed HTTP/1.1."""


class BridgeConnectError(WebtunnelError, ConnectionError):
    """The bridge's web server could not be reached or authenticated."""


class BridgeUnreachable(BridgeConnectError):
    """DNS resolution or every TCP connection attempt failed."""

    def __init__(self, message: str, reply: SocksReply = SocksReply.GENERAL_FAILURE) -> None:
        super().__init__(message)
        self.socks_reply = reply


class TlsError(BridgeConnectError):
    """The outer TLS handshake failed or the server could not be verified."""


class HandshakeTimeout(WebtunnelError, TimeoutError):
    """A handshake step did not finish before its deadline."""

    socks_reply = SocksReply.TTL_EXPIRED


# -- upstream proxies (TOR_PT_PROXY, webtunnel_pt.outbound) -----------------------------------
# Each carries the SOCKS reply tor gets; no message contains the proxy password.


class ProxyError(BridgeUnreachable):
    """The bridge could not be reached through the upstream proxy."""


class ProxyUnreachable(ProxyError):
    """The TCP connection to the proxy itself failed."""


class ProxyAuthRefused(ProxyError):
    """The proxy refused our credentials, or wants credentials we do not have."""

    def __init__(self, message: str) -> None:
        super().__init__(message, SocksReply.NOT_ALLOWED)


class ProxyTargetUnreachable(ProxyError):
    """The proxy answered, but could not (or would not) connect to the bridge."""


class ProxyProtocolError(RemoteProtocolError):
    """The proxy's answer is not valid SOCKS or HTTP."""


# -- the Tor link and circuit protocols (built-in mode, webtunnel_pt.tor) -----------------------


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
    """The circuit handshake reply does not match what we sent (CREATED_FAST KH, ntor or ntor v3
    AUTH), is too short, or the Diffie-Hellman gave the all-zero secret of a low-order point."""


class LinkSpecifierError(LinkProtocolError):
    """A list of link specifiers (EXTEND2, tor-spec §5.1.2) is truncated, a known specifier has
    the wrong length, or an identity specifier appears twice."""


#: The attribute a failed directory fetch (``tor.dirmgr.fetch_network_view``) sets on the
#: exception it raises: how many directory requests it made before it stopped.
DIRECTORY_REQUESTS_ATTRIBUTE = "directory_requests"


class CircuitProtocolError(LinkProtocolError):
    """A relay on a circuit sent something the circuit protocol forbids: a malformed or
    unrecognized relay cell, DATA past a window, a SENDME that does not authenticate or would
    overfill a window, a cell for a stream that does not exist, an ntor v3 message whose
    extension list is malformed or answers what was not asked. The circuit is destroyed; the
    channel and its other circuits live on."""


class DirectoryError(LinkProtocolError):
    """A directory answer over BEGIN_DIR is not usable (HTTP status, encoding, descriptor)."""


class DescriptorSignatureError(DirectoryError):
    """A server-descriptor signature is missing, misplaced or does not verify, or the
    ``identity-ed25519`` certificate that vouches for the Ed25519 signing key is bad or expired."""


class OnionKeyCrosscertError(DescriptorSignatureError):
    """The descriptor's ``ntor-onion-key-crosscert`` is missing, malformed or expired, or does
    not prove that the holder of the ``ntor-onion-key`` vouches for the Ed25519 identity
    (dir-spec §2.1.1): the onion key must not be trusted."""


class NetdocError(DirectoryError):
    """A network document (consensus, microdescriptor, key certificate) does not follow the
    document meta-format of dir-spec §1.2, or is over its size bounds."""


class KeyCertificateError(DirectoryError):
    """An authority key certificate does not parse, is not signed by its identity key, its
    signing key does not cross-certify that identity, it is outside its validity window, or it
    is not the configured authority's (dir-spec §3.1)."""


# -- consensus and microdescriptors (webtunnel_pt.tor.consensus, .consensus_verify, .microdesc) --


class ConsensusError(DirectoryError):
    """A microdescriptor consensus is malformed, oversized, or not the microdesc flavour."""


class ConsensusSignatureError(DirectoryError):
    """Fewer than the required number of configured authorities signed the consensus validly.

    ``failures`` maps each configured authority (v3ident, upper-case hex) that did not count to
    why (no signature, no certificate, expired certificate, bad signature, ...); ``valid`` and
    ``needed`` are the counts.
    """

    def __init__(self, message: str, *, valid: int, needed: int, failures: dict[str, str]) -> None:
        super().__init__(message)
        self.valid = valid
        self.needed = needed
        self.failures = failures


class ConsensusNotLive(DirectoryError):
    """The consensus is outside the time window in which a client may use it."""


class ConsensusNotYetValid(ConsensusNotLive):
    """``valid-after``, less the allowed clock skew, is still in the future."""


class ConsensusStale(ConsensusNotLive):
    """More than the "reasonably live" margin has passed since ``valid-until``."""


class MicrodescError(DirectoryError):
    """A microdescriptor, or a response of concatenated ones, does not parse."""


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


# -- built-in client: circuits and streams (webtunnel_pt.tor.client, .circuit_pool, .stream_io) --
# END reasons (tor-spec §6.3) -> the SOCKS5 reply tor's stream_end_reason_to_socks5_response()
# gives; numbers, not EndReason, because this module imports nothing from tor/.
_END_REPLIES: dict[int, SocksReply] = {
    1: SocksReply.GENERAL_FAILURE,  # MISC
    2: SocksReply.HOST_UNREACHABLE,  # RESOLVEFAILED
    3: SocksReply.CONNECTION_REFUSED,  # CONNECTREFUSED
    4: SocksReply.NOT_ALLOWED,  # EXITPOLICY
    5: SocksReply.GENERAL_FAILURE,  # DESTROY
    6: SocksReply.SUCCEEDED,  # DONE
    7: SocksReply.TTL_EXPIRED,  # TIMEOUT
    8: SocksReply.HOST_UNREACHABLE,  # NOROUTE
    9: SocksReply.TTL_EXPIRED,  # HIBERNATING
    10: SocksReply.GENERAL_FAILURE,  # INTERNAL
    11: SocksReply.GENERAL_FAILURE,  # RESOURCELIMIT
    12: SocksReply.CONNECTION_REFUSED,  # CONNRESET
    13: SocksReply.GENERAL_FAILURE,  # TORPROTOCOL
    14: SocksReply.GENERAL_FAILURE,  # NOTDIRECTORY
}


def end_reason_reply(reason: int) -> SocksReply:
    """The SOCKS5 reply for a RELAY_END reason (unknown reasons: general failure)."""
    return _END_REPLIES.get(reason, SocksReply.GENERAL_FAILURE)


class CircuitTruncated(CircuitDestroyed):
    """A hop of the circuit sent RELAY_TRUNCATED: the part of the path behind it is gone and the
    circuit is no longer usable; ``reason`` is the DESTROY reason it reported (§9)."""


class ConfluxSetEnded(CircuitDestroyed):
    """Another circuit ("leg") of this circuit's conflux set ended (prop 329): the exit may have
    sent the set's data on it, so the whole set and its streams end. ``reason`` is that leg's
    DESTROY reason when the relays destroyed it, else 0 (NONE)."""


class StreamRefused(StreamEnded):
    """The exit ended a stream before CONNECTED: it refused (exit policy), could not resolve
    the name, or could not connect; ``reason`` is the END reason (§8.3) and ``socks_reply``
    the one tor would give."""

    def __init__(self, reason: int, message: str | None = None) -> None:
        super().__init__(reason, message)
        self.socks_reply = end_reason_reply(reason)


class ResolveFailed(StreamEnded):
    """A RESOLVE got no usable answer: only error answers, or an END (``reason``)."""

    socks_reply = SocksReply.HOST_UNREACHABLE


class CircuitBuildTimeout(HandshakeTimeout):
    """A circuit step (CREATE2, an EXTEND2) or the whole build passed its deadline."""


class StreamTimeout(HandshakeTimeout):
    """The exit did not answer a BEGIN (CONNECTED) or RESOLVE (RESOLVED) before the deadline."""


class CircuitBuildFailed(WebtunnelError):
    """No circuit could be built in ``attempts`` tries, each on a fresh path; the last
    attempt's error is the ``__cause__``."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class TorClientClosed(WebtunnelError):
    """The built-in client was used before :meth:`bootstrap` finished, or after it closed."""


class NoPathError(WebtunnelError):
    """Path selection found no exit or no middle for a circuit; the message names what was
    missing (no exit allows the port, every candidate excluded or in the bridge's family...)."""


_ERRNO_REPLIES: dict[int, SocksReply] = {
    errno.ECONNREFUSED: SocksReply.CONNECTION_REFUSED,
    errno.ECONNRESET: SocksReply.CONNECTION_REFUSED,
    errno.ENETUNREACH: SocksReply.NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: SocksReply.HOST_UNREACHABLE,
    errno.ETIMEDOUT: SocksReply.TTL_EXPIRED,
    errno.EADDRNOTAVAIL: SocksReply.ADDRESS_TYPE_NOT_SUPPORTED,
}


def reply_for_os_error(exc: OSError) -> SocksReply:
    """The SOCKS reply for a failed TCP connect, as lyrebird's ErrorToReplyCode maps errno."""
    if exc.errno is None:
        return SocksReply.GENERAL_FAILURE
    return _ERRNO_REPLIES.get(exc.errno, SocksReply.GENERAL_FAILURE)


def _is_ssl_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``ssl.SSLError``, without importing :mod:`ssl` here.

    This module is sans-I/O, and every core module imports it. An ``SSLError`` can only exist
    once something has imported :mod:`ssl`, so the class is looked up in ``sys.modules``.
    """
    ssl_module = sys.modules.get("ssl")
    ssl_error = getattr(ssl_module, "SSLError", None)
    return isinstance(ssl_error, type) and isinstance(exc, ssl_error)


def describe_failure(exc: BaseException) -> tuple[SocksReply, LogSeverity, str]:
    """Map any exception to (SOCKS reply, LOG severity, message without secrets).

    Messages of our own errors are written so that they never contain the bridge URL path or
    fingerprint; foreign exceptions are summarised by type and text.
    """
    if isinstance(exc, WebtunnelError):
        return exc.socks_reply, exc.log_severity, str(exc)
    if isinstance(exc, TimeoutError):
        return SocksReply.TTL_EXPIRED, "warning", "timed out"
    if _is_ssl_error(exc):
        reason = getattr(exc, "reason", None) or exc
        return SocksReply.GENERAL_FAILURE, "warning", f"TLS error: {reason}"
    if isinstance(exc, OSError):
        text = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
        return reply_for_os_error(exc), "warning", text
    return SocksReply.GENERAL_FAILURE, "error", f"internal error: {type(exc).__name__}: {exc}"
