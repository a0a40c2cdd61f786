"""The SSLSocket transport of the default profile (``webtunnel_pt.outbound.ssl_socket_transport``)
against real TLS peers on loopback: closing with and without close_notify, a corrupted record,
a peer that stops reading (flow control, writes OpenSSL must retry), plaintext OpenSSL holds
while the fd is quiet, and the handshake's failures. Test CA, no sleeps."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.certs import Pki
from tests.support.clienthello import NeedMoreData, handshake_bytes, parse_client_hello
from tests.support.raw_server import RawServer
from webtunnel_pt.outbound import ssl_socket_transport, tls_profiles
from webtunnel_pt.outbound.ssl_socket_transport import (
    SslSocketTransport,
    open_ssl_socket_connection,
)

#: Deadline for each test's conversation (a hang fails the test instead of stalling the run).
DEADLINE_S = 10.0


@pytest.fixture(autouse=True)
def trust_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    tls_profiles._STDLIB_CONTEXTS.clear()  # contexts read SSL_CERT_FILE when they are made
    yield
    tls_profiles._STDLIB_CONTEXTS.clear()


def client_context(pki: Pki) -> ssl.SSLContext:
    """The default profile's context, as the dial uses it."""
    return tls_profiles.stdlib_context(pinned=False)


async def dial(pki: Pki, port: int, name: str = "127.0.0.1") -> tuple[Any, Any]:
    sock = socket.create_connection(("127.0.0.1", port))
    return await open_ssl_socket_connection(
        sock, client_context(pki), name, limit=64 * 1024, handshake_timeout_s=DEADLINE_S
    )


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, DEADLINE_S))


class Recorder(asyncio.Protocol):
    """Takes over a stream's transport and records what the transport reports."""

    def __init__(self, stream_protocol: asyncio.BaseProtocol) -> None:
        self.events: list[Any] = []
        self.stream_protocol = stream_protocol

    def data_received(self, data: bytes) -> None:
        assert type(data) is bytes  # never a view of the transport's reused buffer
        self.events.append(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        self.stream_protocol.connection_lost(exc)


def joined(events: list[Any]) -> list[Any]:
    """Adjacent data events merged: how records are grouped into reads is not the point."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += event
        else:
            out.append(event)
    return out


def test_handshake_facts_and_a_round_trip(pki: Pki) -> None:
    def echo(conn: socket.socket) -> None:
        with pki.server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(100))

    async def scenario() -> None:
        with RawServer(echo) as server:
            reader, writer = await dial(pki, server.port)
            assert isinstance(writer.transport, SslSocketTransport)
            sslsock = writer.get_extra_info("ssl_object")
            assert sslsock.version() == "TLSv1.3"
            assert writer.get_extra_info("cipher") == sslsock.cipher()
            assert ("DNS", "bridge.test") in writer.get_extra_info("peercert")["subjectAltName"]
            assert writer.get_extra_info("sslcontext") is not None
            assert writer.get_extra_info("peername")[1] == server.port
            assert not writer.can_write_eof()
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            assert await reader.read() == b""  # the server closed
            writer.close()
            await writer.wait_closed()
            assert writer.get_extra_info("socket") is None

    run(scenario())


@pytest.mark.parametrize("polite", [True, False], ids=["close_notify", "tcp_fin"])
def test_peer_close_ends_the_connection(pki: Pki, polite: bool) -> None:
    """The server says ``bye`` and closes, with close_notify (and waits for ours) or with a
    bare TCP FIN: the protocol sees the data, then EOF, then ``connection_lost(None)``; TLS
    cannot stay half-open, so the transport closes itself (with our close_notify)."""
    server_saw: dict[str, Any] = {}
    finished = threading.Event()

    def close(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.recv(100)
        tls.sendall(b"bye")
        try:
            if polite:
                tls.unwrap()  # sends close_notify, then waits for the client's
                server_saw["close_notify"] = True
            else:
                socket.socket.shutdown(tls, socket.SHUT_WR)  # FIN under the TLS layer
                server_saw["after"] = tls.recv(100)  # our close_notify, then EOF
        except (OSError, ssl.SSLError) as exc:
            server_saw["error"] = exc
        finished.set()

    async def scenario() -> list[Any]:
        with RawServer(close) as server:
            _reader, writer = await dial(pki, server.port)
            recorder = Recorder(writer.transport.get_protocol())
            writer.transport.set_protocol(recorder)
            writer.write(b"hello")
            await writer.wait_closed()
            assert writer.transport.is_closing()
            await asyncio.get_running_loop().run_in_executor(None, finished.wait)
            return recorder.events

    assert joined(run(scenario())) == [b"bye", "eof", ("lost", None)]
    assert "error" not in server_saw, server_saw
    if polite:
        assert server_saw["close_notify"] is True
    else:
        assert server_saw["after"] == b""


def test_a_corrupted_record_is_reported(pki: Pki) -> None:
    done = threading.Event()

    def corrupt_record(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.recv(100)
        tls.sendall(b"fine")
        # A record whose authentication fails, written under the TLS layer.
        socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + os.urandom(32))
        done.wait(DEADLINE_S)

    async def scenario() -> BaseException:
        with RawServer(corrupt_record) as server:
            reader, writer = await dial(pki, server.port)
            writer.write(b"hello")
            assert await reader.readexactly(4) == b"fine"
            try:
                await reader.read()
            except ssl.SSLError as exc:
                writer.write(b"ignored after the failure")  # neither raises nor is sent
                return exc
            finally:
                done.set()
            raise AssertionError("the corrupted record was not reported")

    error = run(scenario())
    assert "bad record mac" in str(error) or "record layer failure" in str(error), repr(error)


def test_a_peer_that_stops_reading_pauses_the_writer(pki: Pki) -> None:
    """Writes OpenSSL cannot finish wait in the queue (and are retried with the same bytes);
    past the high-water mark the protocol is paused, ``drain()`` waits, and nothing is lost or
    reordered once the peer reads again. The queue never holds more than the mark plus one
    write."""
    total, chunk = 16 * 1024 * 1024, 256 * 1024
    start_reading = threading.Event()
    digest: dict[str, Any] = {}

    def slow_sink(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        start_reading.wait(DEADLINE_S)
        h, got = hashlib.sha256(), 0
        while got < total:
            data = tls.recv(1 << 20)
            if not data:
                break
            h.update(data)
            got += len(data)
        digest["server"] = (got, h.hexdigest())
        tls.sendall(b"done")

    async def scenario() -> tuple[int, int, bool]:
        with RawServer(slow_sink) as server:
            reader, writer = await dial(pki, server.port)
            transport = writer.transport
            h, largest, paused = hashlib.sha256(), 0, False
            for i in range(total // chunk):
                data = bytes([i % 251]) * chunk
                h.update(data)
                writer.write(data)
                largest = max(largest, transport.get_write_buffer_size())
                if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
                    paused = True
                    start_reading.set()
                await writer.drain()
            start_reading.set()
            assert await reader.readexactly(4) == b"done"
            digest["client"] = (total, h.hexdigest())
            writer.close()
            await writer.wait_closed()
            return largest, transport.get_write_buffer_limits()[1], paused

    largest, high, paused = run(scenario())
    assert paused  # the peer's silence was felt
    assert largest <= high + chunk
    assert digest["server"] == digest["client"]


def test_plaintext_held_by_openssl_is_delivered_without_more_socket_data(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a read buffer smaller than a record, most of the record's plaintext stays in
    OpenSSL (``pending()``) while the socket has nothing more to read: it must still arrive,
    also after reading was paused and resumed."""
    monkeypatch.setattr(ssl_socket_transport, "READ_BUFFER_BYTES", 1000)
    record = bytes(range(256)) * 64  # 16 KiB: one record
    hold = threading.Event()

    def one_record_then_silence(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.sendall(record)
        hold.wait(DEADLINE_S)

    async def scenario() -> None:
        with RawServer(one_record_then_silence) as server:
            reader, writer = await dial(pki, server.port)
            try:
                first = await reader.readexactly(500)
                writer.transport.pause_reading()
                assert not writer.transport.is_reading()
                writer.transport.resume_reading()
                rest = await reader.readexactly(len(record) - 500)
                assert first + rest == record
            finally:
                hold.set()
                writer.close()
                await writer.wait_closed()

    run(scenario())


def test_handshake_refuses_an_untrusted_certificate(pki: Pki) -> None:
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    import trustme

    trustme.CA().issue_cert("127.0.0.1").configure_cert(untrusted)

    def serve(conn: socket.socket) -> None:
        try:
            untrusted.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            pass

    async def scenario() -> ssl.SSLCertVerificationError:
        with RawServer(serve) as server:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await dial(pki, server.port)
            return info.value

    error = run(scenario())
    assert error.verify_message == "unable to get local issuer certificate"


def test_handshake_checks_the_name(pki: Pki) -> None:
    def serve(conn: socket.socket) -> None:
        try:
            pki.server_context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            pass

    async def scenario() -> ssl.SSLCertVerificationError:
        with RawServer(serve) as server:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await dial(pki, server.port, name="wrong.test")
            return info.value

    assert "wrong.test" in run(scenario()).verify_message


def test_a_peer_hanging_up_in_the_handshake_is_a_lost_connection(pki: Pki) -> None:
    def hang_up(conn: socket.socket) -> None:
        conn.recv(100)  # the ClientHello
        conn.close()

    async def scenario() -> None:
        with RawServer(hang_up) as server:
            with pytest.raises(ConnectionError):
                await dial(pki, server.port)

    run(scenario())


def test_handshake_deadline_closes_the_socket(pki: Pki) -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        release.wait(DEADLINE_S)

    async def scenario() -> None:
        with RawServer(silent) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            try:
                with pytest.raises(TimeoutError):
                    await open_ssl_socket_connection(
                        sock, client_context(pki), "127.0.0.1", limit=1024, handshake_timeout_s=0.2
                    )
                assert sock.fileno() == -1  # taken over, and closed
            finally:
                release.set()

    run(scenario())


def test_a_failing_protocol_aborts_the_connection(pki: Pki) -> None:
    """As with asyncio's transports: the loop's exception handler hears of it, the connection
    is aborted, and ``connection_lost`` carries the protocol's exception."""
    done = threading.Event()

    def talk(conn: socket.socket) -> None:
        tls = pki.server_context.wrap_socket(conn, server_side=True)
        tls.sendall(b"boom")
        done.wait(DEADLINE_S)

    class Failing(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ValueError("protocol bug")

    async def scenario() -> tuple[list[Any], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        with RawServer(talk) as server:
            _reader, writer = await dial(pki, server.port)
            recorder = Failing(writer.transport.get_protocol())
            writer.transport.set_protocol(recorder)
            try:
                await writer.wait_closed()
            except ValueError:
                pass
            finally:
                done.set()
            return recorder.events, reported

    events, reported = run(scenario())
    assert len(events) == 1 and events[0][0] == "lost"
    assert isinstance(events[0][1], ValueError)
    assert [c["message"] for c in reported] == [
        "Fatal error: protocol.data_received() call failed."
    ]


def test_the_hello_is_the_one_asyncios_tls_sends(pki: Pki) -> None:
    """The default profile's ClientHello is the one asyncio's TLS sent with that context before
    (which had no ``OP_IGNORE_UNEXPECTED_EOF``, a local option): every field the parser knows
    (cipher suites, extensions in order, groups, key shares, signature algorithms, ALPN, SNI,
    padding) and the length are equal; only per-connection random values differ (the random,
    the session id, the X25519 key share): no other byte."""
    hellos: list[bytes] = []

    def record_hello(conn: socket.socket) -> None:
        data = b""
        while True:
            try:
                handshake_bytes(data)
                break
            except NeedMoreData:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        hellos.append(data)
        conn.close()

    context = client_context(pki)
    # asyncio's path as it was before the SSLSocket transport: without the EOF option.
    tls_profiles._STDLIB_CONTEXTS.clear()
    before = tls_profiles.stdlib_context(pinned=False)
    before.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    assert context is not before

    async def scenario() -> None:
        with RawServer(record_hello) as server:
            for direct in (True, False):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.setblocking(False)
                with pytest.raises((ConnectionError, ssl.SSLError)):
                    if direct:
                        await open_ssl_socket_connection(
                            sock, context, "bridge.test", limit=1024, handshake_timeout_s=5
                        )
                    else:
                        await asyncio.open_connection(
                            sock=sock, ssl=before, server_hostname="bridge.test"
                        )
                sock.close()

    run(scenario())
    ours, asyncios = (parse_client_hello(h) for h in hellos)
    assert ours == asyncios
    assert ours.server_name == "bridge.test" and ours.alpn == ["http/1.1"]
    assert len(hellos[0]) == len(hellos[1])
    differing = [i for i, (a, b) in enumerate(zip(*hellos, strict=True)) if a != b]
    # Record header 5, handshake header 4, legacy version 2: the random is bytes 11-42, the
    # session id (after its length byte) 44-75.
    key = min(i for i in differing if i >= 76)  # the X25519 key share's 32 bytes
    assert hellos[0][key - 4 : key] == hellos[1][key - 4 : key] == b"\x00\x1d\x00\x20"
    random_values = {*range(11, 43), *range(44, 76), *range(key, key + 32)}
    assert set(differing) <= random_values


def test_tls_inside_start_tls(pki: Pki) -> None:
    """The built-in client runs the relay's TLS inside the tunnel with ``start_tls`` (asyncio's
    ``SSLProtocol``, a ``BufferedProtocol``, over this transport): a round trip in TLS in TLS,
    then EOF when the server closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await writer.start_tls(pki.server_context)
        writer.write(await reader.readexactly(5) * 1000)
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=pki.server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await dial(pki, port)
            outer = writer.transport
            await writer.start_tls(client_context(pki), server_hostname="bridge.test")
            assert writer.transport is not outer
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            writer.write(b"inner")
            assert await reader.readexactly(5000) == b"inner" * 1000
            assert await reader.read() == b""
            writer.close()

    run(scenario())


def test_only_loops_that_watch_file_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows' proactor loop has no ``add_reader``: the dial keeps asyncio's TLS there."""
    loop = asyncio.new_event_loop()
    try:
        assert ssl_socket_transport.loop_supported(loop)
        monkeypatch.setattr(asyncio, "ProactorEventLoop", type(loop), raising=False)
        assert not ssl_socket_transport.loop_supported(loop)
    finally:
        loop.close()
