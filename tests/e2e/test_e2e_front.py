"""What nginx in front of the bridge shows to anyone who is not a WebTunnel client: the site's
normal page on every other path, with or without upgrade headers; only the secret path with
the upgrade reaches the tunnel."""

from __future__ import annotations

import socket
import ssl

import pytest

from .nginx import INDEX_HTML, TLS_NAME
from .ports import LOOPBACK
from .stack import Stack

pytestmark = pytest.mark.e2e

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1 << 20


def https_exchange(stack: Stack, request: bytes) -> tuple[bytes, bytes]:
    """Send one HTTP/1.1 request to nginx over TLS (trusting the test CA); (head, body).
    For a 101 the body is whatever the tunnel sent before the timeout (nothing, here)."""
    context = ssl.create_default_context(cafile=str(stack.ca_pem))
    with (
        socket.create_connection((LOOPBACK, stack.nginx.port), timeout=TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname=TLS_NAME) as tls,
    ):
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(body) < length and len(body) < MAX_RESPONSE_BYTES:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                body += chunk
        return head, body


def request(path: str, *, upgrade: bool) -> bytes:
    headers = [f"GET {path} HTTP/1.1", f"Host: {TLS_NAME}"]
    if upgrade:
        headers += ["Connection: upgrade", "Upgrade: websocket"]
    else:
        headers += ["Connection: close"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


@pytest.mark.parametrize("upgrade", [False, True], ids=["plain", "with-upgrade-headers"])
@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_other_paths_get_the_sites_normal_page(path: str, upgrade: bool, e2e_stack: Stack) -> None:
    head, body = https_exchange(e2e_stack, request(path, upgrade=upgrade))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == INDEX_HTML.encode()
    assert e2e_stack.secret_path not in body.decode()


def test_a_guessed_path_with_upgrade_headers_is_not_the_tunnel(e2e_stack: Stack) -> None:
    wrong = "/" + e2e_stack.secret_path[::-1]
    head, _ = https_exchange(e2e_stack, request(wrong, upgrade=True))
    assert head.startswith(b"HTTP/1.1 404"), head


def test_only_the_secret_path_with_the_upgrade_reaches_the_tunnel(e2e_stack: Stack) -> None:
    head, _ = https_exchange(e2e_stack, request("/" + e2e_stack.secret_path, upgrade=True))
    assert head.startswith(b"HTTP/1.1 101"), head
