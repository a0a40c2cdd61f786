"""Everything a WebTunnel client needs on 127.0.0.1, started and stopped together:

    tor network (authorities, relays, bridge) <- webtunnel server <- nginx (TLS, secret path)

plus a second test CA that nginx does *not* use (for the untrusted-certificate case) and a
local HTTP page with random content to fetch through tor.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import webtunnel_server
from .network import TorNetwork, start_network
from .nginx import Nginx, TestCA, make_test_ca, start_nginx
from .ports import LOOPBACK, free_port, wait_accepting
from .procs import SocketEntry, foreign_sockets

WEBTUNNEL_SERVER_START_TIMEOUT_S = 20.0
REQUIRED_BINARIES = ("tor", "tor-gencert", "nginx")


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]


@dataclass
class Stack:
    base_dir: Path
    network: TorNetwork
    nginx: Nginx
    webtunnel_port: int
    other_ca: TestCA  # a CA nginx's certificate does not chain to

    @property
    def ca_pem(self) -> Path:
        return self.nginx.tls.ca_pem

    @property
    def secret_path(self) -> str:
        return self.nginx.secret_path

    def url(self, path: str | None = None, host: str = LOOPBACK) -> str:
        return self.nginx.url(path, host)

    def bridge_line(self, url: str | None = None, **kwargs: str) -> str:
        return self.network.bridge_line(self.url() if url is None else url, **kwargs)

    def foreign_sockets(self) -> list[SocketEntry]:
        return foreign_sockets(self.network.processes.pids())


@contextmanager
def running_stack(base_dir: Path) -> Iterator[Stack]:
    t0 = time.monotonic()
    net = start_network(base_dir / "tor")
    try:
        wt_port = free_port()
        wt = net.processes.start(
            "webtunnel-server",
            [
                sys.executable,
                webtunnel_server.__file__,
                "--listen",
                f"{LOOPBACK}:{wt_port}",
                "--target",
                net.bridge.or_address,
            ],
            log_path=base_dir / "webtunnel-server.log",
        )
        wait_accepting(
            wt_port, WEBTUNNEL_SERVER_START_TIMEOUT_S, "webtunnel server", alive=wt.check_alive
        )
        tls = make_test_ca(base_dir / "tls")
        nginx = start_nginx(net.processes, base_dir / "nginx", upstream_port=wt_port, tls=tls)
        stack = Stack(base_dir, net, nginx, wt_port, make_test_ca(base_dir / "other-tls"))
        print(
            f"[e2e] stack ready in {time.monotonic() - t0:.1f}s: nginx {nginx.url('…')}",
            file=sys.stderr,
            flush=True,
        )
        yield stack
    finally:
        net.stop()


# ---- a page to fetch through tor -----------------------------------------------------------


@dataclass(frozen=True)
class Page:
    port: int
    body: bytes  # served at /
    big_body: bytes  # served at /big: enough to exercise flow control in tor and the PT

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"


@contextmanager
def serving_page(size: int = 4096, big_size: int = 3 << 20) -> Iterator[Page]:
    """A thread serving random content on http://127.0.0.1:<port>/ and /big."""
    body = secrets.token_hex(size // 2).encode()
    big_body = os.urandom(big_size)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = big_body if self.path == "/big" else body
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-page", daemon=True)
    thread.start()
    try:
        yield Page(server.server_address[1], body, big_body)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
