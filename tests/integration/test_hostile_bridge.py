"""Hostile bridge-side peers against the PT subprocess: each ends in the right SOCKS reply and
a LOG line naming the cause, and the PT goes on serving."""

from __future__ import annotations

import socket

import pytest

from tests.support.certs import Pki, bad_certificate_context
from tests.support.pt_process import PtProcess
from tests.support.raw_server import RawServer, read_head, reset
from tests.support.secrets import SecretPathServer, secret_path
from tests.support.socks_client import recv_exactly, socks_connect
from tests.support.upgrade_server import SWITCHING, ScriptedWebServer

# A fatal TLS alert record: content type 21, TLS 1.2, length 2, level fatal (2), handshake_failure (40).
TLS_ALERT_HANDSHAKE_FAILURE = bytes([21, 3, 3, 0, 2, 2, 40])


def bridge_url(
    server: RawServer | ScriptedWebServer, path: str = "/", scheme: str = "https"
) -> str:
    """The bridge URL of ``path`` on ``server``, behind a fresh secret path segment."""
    return f"{scheme}://127.0.0.1:{server.port}{secret_path(path)}"


def assert_still_serving(pt: PtProcess, tls_server: ScriptedWebServer) -> None:
    rep, sock = socks_connect(pt.socks_port(), {"url": bridge_url(tls_server, "/echo")})
    assert rep == 0
    with sock:
        sock.sendall(b"ok?")
        assert recv_exactly(sock, 3) == b"ok?"


def test_tls_alert_mid_handshake(pt: PtProcess, tls_server: ScriptedWebServer) -> None:
    def alert(conn: socket.socket) -> None:
        conn.recv(4096)  # the ClientHello
        conn.sendall(TLS_ALERT_HANDSHAKE_FAILURE)
        conn.close()

    with RawServer(alert) as server:
        rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url(server)})
    assert rep == 1
    pt.wait_for_log("HANDSHAKE_FAILURE")
    assert_still_serving(pt, tls_server)


def test_tcp_closed_right_after_accept(pt: PtProcess, tls_server: ScriptedWebServer) -> None:
    with RawServer(lambda conn: conn.close()) as server:
        rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url(server)})
    assert rep == 1
    pt.wait_for_log("TLS handshake with 127.0.0.1 failed")
    assert_still_serving(pt, tls_server)


def test_bridge_closes_right_after_101(pt: PtProcess, tls_server: ScriptedWebServer) -> None:
    rep, sock = socks_connect(pt.socks_port(), {"url": bridge_url(tls_server, "/close-after-101")})
    assert rep == 0
    with sock:
        assert sock.recv(100) == b""
    assert_still_serving(pt, tls_server)


def test_bridge_resets_mid_stream(pt: PtProcess, tls_server: ScriptedWebServer) -> None:
    def upgrade_then_reset(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(SWITCHING + b"partial")
        conn.recv(10)  # wait for tor's first bytes, then reset
        reset(conn)

    with RawServer(upgrade_then_reset) as server:
        rep, sock = socks_connect(pt.socks_port(), {"url": bridge_url(server, scheme="http")})
        assert rep == 0
        with sock:
            assert recv_exactly(sock, 7) == b"partial"
            sock.sendall(b"hello")
            try:
                rest = sock.recv(100)
            except ConnectionResetError:
                rest = b""
            assert rest == b""
    assert_still_serving(pt, tls_server)


def test_plain_http_server_speaking_tls_garbage(
    pt: PtProcess, tls_server: ScriptedWebServer
) -> None:
    """http:// to a TLS port: the server's TLS alert is not an HTTP response."""
    rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url(tls_server, "/echo", "http")})
    assert rep == 1
    pt.wait_for_log("invalid HTTP response")
    assert_still_serving(pt, tls_server)


def test_invalid_credentials_never_dial_out(pt: PtProcess) -> None:
    accepted: list[int] = []
    with RawServer(lambda conn: accepted.append(1)) as server:
        for bad in (
            f"url={bridge_url(server)};",
            f"url={bridge_url(server)}\\",
        ):
            rep, _ = socks_connect(pt.socks_port(), bad)
            assert rep == -1
        rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url(server, scheme="ftp")})
        assert rep == 1
        pt.wait_for_log("url= must start with https:// or http://")
    assert server.accepted == 0


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("expired", "certificate has expired"),
        ("self-signed", "unable to get local issuer certificate"),
    ],
)
def test_bad_certificates_through_the_pt(
    pt: PtProcess, pki: Pki, tls_server: ScriptedWebServer, kind: str, reason: str
) -> None:
    server = SecretPathServer(bad_certificate_context(pki, kind))
    server.start()
    try:
        rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url(server, "/echo")})
        assert rep == 1
        pt.wait_for_log(reason)
        assert server.request_heads == []  # fail closed: nothing sent to an unverified server
    finally:
        server.stop()
    assert_still_serving(pt, tls_server)


def test_tor_resetting_during_a_flood_ends_quietly(
    pt: PtProcess, tls_server: ScriptedWebServer
) -> None:
    """tor vanishes (RST) while the bridge floods: the tunnel ends with one log line, not one
    asyncio complaint per chunk that was still arriving."""
    rep, sock = socks_connect(pt.socks_port(), {"url": bridge_url(tls_server, "/flood")})
    assert rep == 0
    recv_exactly(sock, 256 * 1024)
    reset_at = pt.mark()
    reset(sock)
    pt.wait_for_line(lambda line: "closed after" in line, since=reset_at)
    assert_still_serving(pt, tls_server)
    assert "socket.send() raised exception" not in pt.all_output()
