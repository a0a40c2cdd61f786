"""Free TCP ports on 127.0.0.1 and waiting until a port accepts."""

from __future__ import annotations

import socket
from collections.abc import Callable

from .procs import wait_until

LOOPBACK = "127.0.0.1"
_handed_out: set[int] = set()


def free_port() -> int:
    """A port that was free a moment ago and that this process has not handed out before.

    Tor needs its ports in the torrc before it starts (the DirAuthority lines name them), so
    the tiny race between this probe and tor's bind is accepted.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_accepting(
    port: int, timeout_s: float, what: str, *, alive: Callable[[], None] | None = None
) -> float:
    return wait_until(
        lambda: accepts(port), timeout_s, f"{what} to accept on port {port}", alive=alive
    )
