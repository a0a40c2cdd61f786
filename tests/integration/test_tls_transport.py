"""The pyOpenSSL transport of the browser profiles (``webtunnel_pt.outbound.tls_transport``) against
TLS peers doing what ``asyncio``'s own TLS transport copes with: a closing ``close_notify``, a
renegotiation request, a corrupted record. Real loopback sockets, test CA, no sleeps."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import Pki
from tests.support.raw_server import RawServer
from webtunnel_pt.outbound import tls_profiles
from webtunnel_pt.outbound.tls_transport import open_tls_connection

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("OpenSSL") is None, reason="browser profiles need pyOpenSSL"
)

#: Deadline for each test's conversation (a hang fails the test instead of stalling the run).
DEADLINE_S = 10.0


@pytest.fixture(autouse=True)
def trust_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    tls_profiles._OPENSSL_CONTEXTS.clear()  # contexts read SSL_CERT_FILE when they are made
    yield
    tls_profiles._OPENSSL_CONTEXTS.clear()


async def dial(port: int, profile: str = "chrome") -> tuple[Any, Any]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    context = tls_profiles.openssl_context(profile, pinned=False)
    return await open_tls_connection(
        sock, context, "127.0.0.1", limit=64 * 1024, handshake_timeout_s=DEADLINE_S
    )


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, DEADLINE_S))


@pytest.mark.parametrize("profile", ["chrome", "firefox"])
def test_peer_close_notify_ends_the_connection(pki: Pki, profile: str) -> None:
    """The server says ``bye``, sends close_notify and waits for ours (``unwrap``): the app
    sees the data, then EOF, then ``connection_lost``, and the server gets our close_notify
    (as with the stdlib transport, which answers and closes; a TLS transport cannot stay
    half-open for the relay, whose legs return False from ``eof_received``)."""
    server_saw: dict[str, Any] = {}
    unwrapped = threading.Event()

    def close_politely(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.recv(100)
        tls.sendall(b"bye")
        try:
            tls.unwrap()  # sends close_notify, then waits for the client's
            server_saw["close_notify"] = True
        except (OSError, ssl.SSLError) as exc:
            server_saw["close_notify"] = exc
        unwrapped.set()

    async def scenario() -> list[Any]:
        with RawServer(close_politely) as server:
            _reader, writer = await dial(server.port, profile)
            stream_protocol = writer.transport.get_protocol()
            events: list[Any] = []

            class Recorder(asyncio.Protocol):
                def data_received(self, data: bytes) -> None:
                    events.append(data)

                def eof_received(self) -> bool:
                    events.append("eof")
                    return False

                def connection_lost(self, exc: Exception | None) -> None:
                    events.append(("lost", exc))
                    stream_protocol.connection_lost(exc)

            writer.transport.set_protocol(Recorder())
            writer.write(b"hello")
            await writer.wait_closed()
            assert writer.transport.is_closing()
            await asyncio.get_running_loop().run_in_executor(None, unwrapped.wait)
            return events

    assert run(scenario()) == [b"bye", "eof", ("lost", None)]
    assert server_saw["close_notify"] is True


def _pyopenssl_tls12_server(pki: Pki, directory: Path) -> Any:
    from OpenSSL import SSL

    cert = pki.ca.issue_cert("127.0.0.1")
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)  # renegotiation is TLS 1.2 only
    context.use_privatekey_file(str(key_file))
    context.use_certificate_file(str(cert_file))
    return context


def test_server_renegotiation_is_refused_cleanly(pki: Pki, tmp_path: Path) -> None:
    """A TLS 1.2 server asks to renegotiate (HelloRequest) and then sends ``ping``; the app
    answers ``pong`` at once. The client refuses renegotiation as Go's crypto/tls client does
    (RenegotiateNever): a no_renegotiation alert, and the write goes out as usual. It must not
    tear the connection down itself with a TLS error without a reason, as a write that OpenSSL
    answers with WANT_READ in the middle of a renegotiation did."""
    from OpenSSL import SSL

    server_context = _pyopenssl_tls12_server(pki, tmp_path)
    server_saw: dict[str, Any] = {}

    def renegotiate(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = SSL.Connection(server_context, conn)
        tls.set_accept_state()
        tls.do_handshake()
        tls.recv(100)  # hello
        tls.renegotiate()
        tls.do_handshake()  # sends the HelloRequest
        tls.sendall(b"ping")
        try:
            server_saw["read"] = tls.recv(100)
        except SSL.Error as exc:
            server_saw["read"] = exc

    async def scenario() -> BaseException | bytes:
        with RawServer(renegotiate) as server:
            reader, writer = await dial(server.port)
            writer.write(b"hello")
            assert await reader.readexactly(4) == b"ping"
            writer.write(b"pong")
            try:
                return await reader.read()
            except ssl.SSLError as exc:
                return exc
            finally:
                writer.close()

    outcome = run(scenario())
    # The server (OpenSSL) insists: it ends the connection with a handshake_failure alert,
    # which the client reports by name.
    assert isinstance(outcome, ssl.SSLError)
    assert "handshake failure" in (outcome.reason or ""), repr(outcome)
    assert "no renegotiation" in str(server_saw["read"])


def test_the_first_tls_error_is_the_one_reported(pki: Pki) -> None:
    """A corrupted record fails the connection; a write in the same event-loop iteration (the
    relay forwarding what tor sent) must neither be encrypted on the failed connection nor
    replace the cause the reader reports."""
    done = threading.Event()

    def corrupt_record(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.recv(100)
        tls.sendall(b"fine")
        done.wait(DEADLINE_S)

    async def scenario() -> BaseException:
        with RawServer(corrupt_record) as server:
            reader, writer = await dial(server.port)
            writer.write(b"hello")
            assert await reader.readexactly(4) == b"fine"
            tls = writer.transport._tls
            # What the event loop does with a record whose MAC fails, followed in the same
            # iteration by a write from the other side of the relay.
            tls.data_received(b"\x17\x03\x03\x00\x20" + os.urandom(32))
            writer.write(b"more")
            try:
                await reader.read()
            except ssl.SSLError as exc:
                return exc
            finally:
                done.set()
            raise AssertionError("the corrupted record was not reported")

    error = run(scenario())
    assert "bad record mac" in str(error) or "record layer failure" in str(error), repr(error)
