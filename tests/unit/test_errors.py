"""errors: the exception tree and describe_failure (pt-protocol.md §6.2 reply mapping)."""

from __future__ import annotations

import errno
import os
import ssl

import pytest
import trustme

from webtunnel_pt.errors import (
    BridgeArgsError,
    BridgeConnectError,
    BridgeUnreachable,
    ConfigError,
    EnvError,
    HandshakeTimeout,
    LocalProtocolError,
    ProtocolError,
    ProxyConfigError,
    RemoteProtocolError,
    SocksProtocolError,
    SocksReply,
    TlsError,
    UpgradeError,
    UpgradeRejected,
    VersionError,
    WebtunnelError,
    describe_failure,
    reply_for_os_error,
)


def os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (errno.ECONNREFUSED, 0x05),
        (errno.ECONNRESET, 0x05),
        (errno.ENETUNREACH, 0x03),
        (errno.EHOSTUNREACH, 0x04),
        (errno.ETIMEDOUT, 0x06),
        (errno.EADDRNOTAVAIL, 0x08),
        (errno.EACCES, 0x01),
        (errno.EPIPE, 0x01),
    ],
)
def test_os_errors_map_like_lyrebird(code, reply):
    exc = os_error(code)
    assert reply_for_os_error(exc) == reply
    got_reply, severity, message = describe_failure(exc)
    assert got_reply == reply
    assert severity == "warning"
    assert message


def test_os_error_without_errno_is_general_failure():
    assert reply_for_os_error(OSError("no errno")) == SocksReply.GENERAL_FAILURE
    assert describe_failure(OSError("no errno"))[0] == SocksReply.GENERAL_FAILURE


def test_refused_message_is_the_strerror():
    assert describe_failure(os_error(errno.ECONNREFUSED))[2] == os.strerror(errno.ECONNREFUSED)


def test_timeouts_are_06():
    assert describe_failure(TimeoutError()) == (SocksReply.TTL_EXPIRED, "warning", "timed out")
    assert describe_failure(HandshakeTimeout("SOCKS handshake"))[:2] == (0x06, "warning")


def genuine_verify_failure() -> ssl.SSLError:
    """Run a TLS handshake over memory BIOs against a certificate the client does not trust."""
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("bridge.example").configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded: verification fails
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="bridge.example")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side is client:
                    return exc
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    raise AssertionError("handshake did not fail")


def test_tls_error_from_openssl_is_01():
    exc = genuine_verify_failure()
    reply, severity, message = describe_failure(exc)
    assert (reply, severity) == (0x01, "warning")
    assert message == "TLS error: CERTIFICATE_VERIFY_FAILED"


def test_tls_error_constructed_in_python_is_01():
    # ssl.py itself builds SSLError/CertificateError objects (e.g. SSLSocket.__init__,
    # match_hostname); those have no .reason attribute. describe_failure must still answer.
    for exc in (ssl.SSLError(1, "handshake failed"), ssl.CertificateError("hostname mismatch")):
        reply, severity, message = describe_failure(exc)
        assert (reply, severity) == (0x01, "warning")
        assert message.startswith("TLS error")


def test_unexpected_exception_is_01_error():
    reply, severity, message = describe_failure(KeyError("boom"))
    assert (reply, severity) == (0x01, "error")
    assert "KeyError" in message


@pytest.mark.parametrize("reply", list(SocksReply))
def test_socks_protocol_error_carries_its_reply(reply):
    exc = SocksProtocolError("bad request", reply)
    assert exc.socks_reply == reply
    assert describe_failure(exc) == (reply, "warning", "bad request")


def test_socks_protocol_error_defaults_to_01():
    assert SocksProtocolError("x").socks_reply == SocksReply.GENERAL_FAILURE


def test_bridge_unreachable_carries_its_reply():
    exc = BridgeUnreachable("could not find any valid IP", SocksReply.HOST_UNREACHABLE)
    assert describe_failure(exc) == (0x04, "warning", "could not find any valid IP")


def test_upgrade_rejected_carries_status_and_reason():
    exc = UpgradeRejected(403, "Forbidden")
    assert (exc.status, exc.reason) == (403, "Forbidden")
    assert str(exc) == "web server refused the upgrade: HTTP 403 Forbidden"
    assert describe_failure(exc)[0] == SocksReply.GENERAL_FAILURE
    detailed = UpgradeRejected(101, "Switching Protocols", "Upgrade header is 'h2c'")
    assert str(detailed).endswith("(Upgrade header is 'h2c')")
    assert str(UpgradeRejected(101, "")) == "web server refused the upgrade: HTTP 101"


@pytest.mark.parametrize(
    ("exc", "severity"),
    [
        (EnvError("x"), "error"),
        (VersionError("x"), "error"),
        (ProxyConfigError("x"), "error"),
        (LocalProtocolError("x"), "error"),
        (UpgradeError("x"), "warning"),
        (TlsError("x"), "warning"),
        (BridgeArgsError("x"), "error"),  # only the user can fix a bridge line
    ],
)
def test_severities(exc, severity):
    assert describe_failure(exc) == (SocksReply.GENERAL_FAILURE, severity, "x")


def test_tree_and_builtin_bases():
    assert issubclass(BridgeArgsError, ValueError)
    assert issubclass(BridgeConnectError, ConnectionError)
    assert issubclass(HandshakeTimeout, TimeoutError)
    for cls in (VersionError, EnvError, ProxyConfigError):
        assert issubclass(cls, ConfigError)
    for cls in (SocksProtocolError, UpgradeRejected, UpgradeError):
        assert issubclass(cls, RemoteProtocolError)
        assert issubclass(cls, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    for cls in (BridgeUnreachable, TlsError):
        assert issubclass(cls, BridgeConnectError)
    for cls in (ConfigError, BridgeArgsError, ProtocolError, BridgeConnectError, HandshakeTimeout):
        assert issubclass(cls, WebtunnelError)


def test_handshake_timeout_wins_over_timeout_error_mapping():
    # HandshakeTimeout is both a WebtunnelError and a TimeoutError: its own message is kept.
    assert describe_failure(HandshakeTimeout("TLS handshake"))[2] == "TLS handshake"


def test_socks_reply_values():
    assert [int(r) for r in SocksReply] == list(range(9))
