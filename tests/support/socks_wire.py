"""An independent SOCKS client encoder for the server-core tests, written from RFC 1928/1929 and
the SOCKS4a description, not from the module under test."""

from __future__ import annotations

import ipaddress
import struct


def greeting(*methods: int) -> bytes:
    return bytes([5, len(methods), *methods])


def auth(username: bytes, password: bytes) -> bytes:
    return bytes([1, len(username)]) + username + bytes([len(password)]) + password


def connect(host: str, port: int, cmd: int = 1, rsv: int = 0) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        address = bytes([3, len(name)]) + name
    else:
        address = bytes([1 if ip.version == 4 else 4]) + ip.packed
    return bytes([5, cmd, rsv]) + address + struct.pack("!H", port)


def socks4(ip: str, port: int, userid: bytes, hostname: bytes | None = None, cmd: int = 1) -> bytes:
    out = bytes([4, cmd]) + struct.pack("!H", port) + ipaddress.IPv4Address(ip).packed
    out += userid + b"\x00"
    if hostname is not None:
        out += hostname + b"\x00"
    return out
