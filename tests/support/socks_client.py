"""A SOCKS5 client that speaks exactly like tor does to a client PT (pt-protocol.md §6.1)."""

from __future__ import annotations

import asyncio
import socket
import struct

from webtunnel_pt.pt.args import encode_socks_credentials, escape_args


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


#: The bridge line's placeholder address, which tor sends to a client PT (ATYP 01).
PLACEHOLDER_TARGET = ("192.0.2.3", 443)


def socks_connect(
    port: int,
    args: str | dict[str, str] | None,
    timeout: float = 60.0,
    target: tuple[str, int] = PLACEHOLDER_TARGET,
) -> tuple[int, socket.socket]:
    """Run tor's SOCKS5 handshake for an IPv4 ``target``; return (REP, socket). The socket is
    open only if REP == 0. Without ``args``, no authentication is offered (as an application
    talking to tor's own SocksPort does)."""
    if isinstance(args, dict):
        args = escape_args(args.items())
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if args:
            sock.sendall(b"\x05\x02\x00\x02")
            assert recv_exactly(sock, 2) == b"\x05\x02"
            user, password = encode_socks_credentials(args)
            sock.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
            auth = recv_exactly(sock, 2)
            if auth != b"\x01\x00":
                sock.close()
                return -1, sock
        else:
            sock.sendall(b"\x05\x01\x00")
            assert recv_exactly(sock, 2) == b"\x05\x00"
        host, target_port = target
        sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", target_port))
        reply = recv_exactly(sock, 10)
    except BaseException:
        sock.close()
        raise
    if reply[1] != 0:
        sock.close()
    return reply[1], sock


async def send_bridge_request(
    port: int, args: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """tor's SOCKS5 handshake in asyncio, up to the CONNECT request for the placeholder target;
    the reply is left unread, so a test can look at it, or not, while the PT dials."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    user, password = encode_socks_credentials(escape_args(args.items()))
    writer.write(b"\x05\x02\x00\x02")
    assert await reader.readexactly(2) == b"\x05\x02"
    writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    assert await reader.readexactly(2) == b"\x01\x00"
    host, target_port = PLACEHOLDER_TARGET
    writer.write(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", target_port))
    return reader, writer
