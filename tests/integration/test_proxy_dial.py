"""outbound.proxy_dial: TCP to an upstream proxy and its handshake, over real loopback sockets.

Each proxy here is a :class:`RawServer` function that answers in one write: its reply *and*
the tunnel's first bytes. The dial must hand back a socket from which those bytes can still be
read (it never reads past the reply), and must map each failure to the right proxy error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import pytest

from tests.support.raw_server import RawServer, read_head
from webtunnel_pt.errors import (
    BridgeUnreachable,
    DialStage,
    ProxyAuthRefused,
    ProxyProtocolError,
    ProxyTargetUnreachable,
    ProxyUnreachable,
    SocksReply,
)
from webtunnel_pt.outbound.proxy_dial import connect_via_proxy
from webtunnel_pt.outbound.proxy_uri import parse_proxy_uri
from webtunnel_pt.socks.client import ProxyConnected

EARLY = b"\x16\x03\x01 first tunnel bytes"
WAIT_S = 10.0


async def connect(addresses: list[str], port: int) -> socket.socket:
    """The dial's Connector, reduced: the first address, or BridgeUnreachable by errno."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (addresses[0], port))
    except OSError as exc:
        sock.close()
        reason = f"TCP connect failed: {exc.strerror}"
        raise BridgeUnreachable(reason, SocksReply.CONNECTION_REFUSED) from exc
    return sock


def dial(
    uri: str, host: str = "bridge.test", port: int = 443, connector=connect
) -> tuple[bytes, ProxyConnected, list[DialStage]]:
    """Dial through ``uri``; return the bytes still waiting in the socket, the event and the
    stages the dial went through."""
    stages: list[DialStage] = []

    async def main() -> tuple[bytes, ProxyConnected]:
        sock, event = await connect_via_proxy(
            parse_proxy_uri(uri), host, port, connector, stages.append
        )
        with sock:
            loop = asyncio.get_running_loop()
            waiting = await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT_S)
        return waiting, event

    try:
        waiting, event = asyncio.run(main())
    except BaseException as exc:
        exc.add_note(f"stage: {stages[-1] if stages else None}")
        raise
    return waiting, event, stages


def socks5_proxy(received: list[bytes], reply: bytes) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        greeting = conn.recv(3)
        conn.sendall(b"\x05\x00")
        request = recv_exactly(conn, 5)
        request += recv_exactly(conn, request[4] + 2)
        received.append(greeting + request)
        conn.sendall(reply)  # reply and tunnel bytes in one write
        conn.recv(1)  # hold the connection until the client closes it

    return behaviour


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@contextlib.contextmanager
def serving(behaviour: Callable[[socket.socket], None]) -> Iterator[RawServer]:
    with RawServer(behaviour) as server:
        yield server


def test_socks5_keeps_the_tunnel_bytes_in_the_socket() -> None:
    received: list[bytes] = []
    reply = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40"
    with serving(socks5_proxy(received, reply + EARLY)) as proxy:
        waiting, event, stages = dial(f"socks5://127.0.0.1:{proxy.port}")
    assert waiting == EARLY
    assert event == ProxyConnected("127.0.0.1:40000")
    assert received == [b"\x05\x01\x00" + b"\x05\x01\x00\x03\x0bbridge.test\x01\xbb"]
    assert stages == [DialStage.PROXY_CONNECT, DialStage.PROXY_HANDSHAKE]


def http_proxy(heads: list[bytes], answer: bytes) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        heads.append(read_head(conn))
        conn.sendall(answer)
        conn.recv(1)

    return behaviour


@pytest.mark.parametrize(
    "reply_head",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\n",
        b"HTTP/1.1 200 OK\n\n",
    ],
)
def test_http_connect_keeps_the_tunnel_bytes_in_the_socket(reply_head: bytes) -> None:
    heads: list[bytes] = []
    with serving(http_proxy(heads, reply_head + EARLY)) as proxy:
        waiting, event, _ = dial(f"http://u:p@127.0.0.1:{proxy.port}", "192.0.2.7", 8443)
    assert waiting == EARLY
    assert event == ProxyConnected()
    assert heads == [
        b"CONNECT 192.0.2.7:8443 HTTP/1.1\r\nHost: 192.0.2.7:8443\r\n"
        b"Proxy-Authorization: Basic dTpw\r\n\r\n"
    ]


def test_socks4a_keeps_the_tunnel_bytes_in_the_socket() -> None:
    requests: list[bytes] = []

    def behaviour(conn: socket.socket) -> None:
        data = b""
        while data.count(b"\x00", 8) < 2:
            data += conn.recv(4096)
        requests.append(data)
        conn.sendall(b"\x00\x5a\x01\xbb\x7f\x00\x00\x01" + EARLY)
        conn.recv(1)

    with serving(behaviour) as proxy:
        waiting, event, _ = dial(f"socks4a://me@127.0.0.1:{proxy.port}")
    assert waiting == EARLY
    assert event == ProxyConnected("127.0.0.1:443")
    assert requests == [b"\x04\x01\x01\xbb\x00\x00\x00\x01me\x00bridge.test\x00"]


@pytest.mark.parametrize(
    ("answer", "error", "reply"),
    [
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", ProxyTargetUnreachable, SocksReply.NOT_ALLOWED),
        (b"HTTP/1.1 407 Auth\r\n\r\n", ProxyAuthRefused, SocksReply.NOT_ALLOWED),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", ProxyProtocolError, SocksReply.GENERAL_FAILURE),
        (b"HTTP/1.1 200 OK\r\n", ProxyProtocolError, SocksReply.GENERAL_FAILURE),  # then EOF
    ],
)
def test_http_proxy_failures(answer: bytes, error: type[Exception], reply: SocksReply) -> None:
    def behaviour(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)

    with serving(behaviour) as proxy, pytest.raises(error) as info:
        dial(f"http://127.0.0.1:{proxy.port}")
    assert info.value.socks_reply is reply  # type: ignore[attr-defined]
    assert "stage: proxy handshake" in info.value.__notes__


def test_closed_proxy_port_is_proxy_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    with pytest.raises(ProxyUnreachable) as info:
        dial(f"socks5://127.0.0.1:{port}")
    assert str(info.value).startswith(f"cannot reach socks5 proxy 127.0.0.1:{port}: ")
    assert info.value.socks_reply is SocksReply.CONNECTION_REFUSED
    assert "stage: proxy connect" in info.value.__notes__


def test_proxy_given_by_name_is_resolved_here() -> None:
    """tor always writes an IP literal; a hand-written name is looked up (the bridge never)."""
    asked: list[list[str]] = []

    async def recording(addresses: list[str], port: int) -> socket.socket:
        asked.append(addresses)
        return await connect(addresses, port)

    received: list[bytes] = []
    with serving(socks5_proxy(received, b"\x05\x00\x00\x01" + bytes(6) + EARLY)) as proxy:
        waiting, _, _ = dial(f"socks5://localhost:{proxy.port}", connector=recording)
    assert waiting == EARLY
    assert asked and "127.0.0.1" in asked[0]
    assert received[0].endswith(b"\x03\x0bbridge.test\x01\xbb")  # the bridge name, unresolved


def test_unresolvable_proxy_name() -> None:
    with pytest.raises(ProxyUnreachable) as info:
        dial("socks5://name.invalid:1080")
    assert str(info.value).startswith("cannot resolve socks5 proxy name.invalid:1080: ")
    assert info.value.socks_reply is SocksReply.HOST_UNREACHABLE
