"""Everything a WebTunnel client needs on 127.0.0.1, started and stopped together:

    tor network (authorities, relays, bridge) <- webtunnel server <- nginx (TLS, secret path)

plus a second test CA that nginx does *not* use (for the untrusted-certificate case), the
exits' name server (`serving_names`: `EXIT_ONLY_NAME` is 127.0.0.1, every other name is
NXDOMAIN; nothing outside the exits asks it) and a local HTTP page with random content to
fetch through tor (`serving_page`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import webtunnel_server
from .network import TorNetwork, start_network
from .nginx import Nginx, TestCA, make_test_ca, start_nginx
from .ports import LOOPBACK, free_port, wait_accepting
from .procs import SocketEntry, foreign_sockets

WEBTUNNEL_SERVER_START_TIMEOUT_S = 20.0
#: A name only the exits can resolve (through the stack's name server): 127.0.0.1.
EXIT_ONLY_NAME = "page.e2e.test"
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
    names: NameServer  # the exits' resolver

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
    with serving_names({EXIT_ONLY_NAME: LOOPBACK}) as names:
        with _running_stack(base_dir, names) as stack:
            yield stack


@contextmanager
def _running_stack(base_dir: Path, names: NameServer) -> Iterator[Stack]:
    t0 = time.monotonic()
    net = start_network(base_dir / "tor", nameserver=(LOOPBACK, names.port))
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
        stack = Stack(base_dir, net, nginx, wt_port, make_test_ca(base_dir / "other-tls"), names)
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
class Visit:
    """One request the page server answered: the path, the peer's (address, port), and what
    `identify_peer` said about that connection while it was open."""

    path: str
    peer: tuple[str, int]
    who: object


@dataclass(frozen=True)
class Page:
    port: int
    body: bytes  # served at /
    big_body: bytes  # served at /big: enough to exercise flow control in tor and the PT
    visits: list[Visit] = field(default_factory=list)  # appended to by the server thread

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def visit_paths(self) -> list[str]:
        return [v.path for v in list(self.visits)]


@contextmanager
def serving_page(
    size: int = 4096,
    big_size: int = 3 << 20,
    *,
    identify_peer: Callable[[tuple[str, int], tuple[str, int]], object] | None = None,
) -> Iterator[Page]:
    """A thread serving random content on http://127.0.0.1:<port>/ and /big.

    Every request is recorded in `Page.visits`; with `identify_peer(peer, our_end)` (e.g.
    the network's `node_of_socket`), the connection's owner is identified before the response
    is sent, while the connection is certainly open.
    """
    body = secrets.token_hex(size // 2).encode()
    big_body = os.urandom(big_size)
    visits: list[Visit] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = (str(self.client_address[0]), int(self.client_address[1]))
            here = self.connection.getsockname()
            ours = (str(here[0]), int(here[1]))
            who = identify_peer(peer, ours) if identify_peer is not None else None
            visits.append(Visit(self.path, peer, who))
            data = big_body if self.path == "/big" else body
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            """The SHA-256 (hex) of the request body: uploads checked end to end."""
            length = int(self.headers.get("Content-Length", "0"))
            digest = hashlib.sha256(self.rfile.read(length)).hexdigest().encode()
            visits.append(Visit(self.path, (str(self.client_address[0]), 0), None))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(digest)))
            self.end_headers()
            self.wfile.write(digest)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-page", daemon=True)
    thread.start()
    try:
        yield Page(server.server_address[1], body, big_body, visits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---- the exits' name server ----------------------------------------------------------------

_DNS_HEADER = struct.Struct(">HHHHHH")  # id, flags, qd, an, ns, ar counts (RFC 1035 §4.1.1)
_QTYPE_A, _QCLASS_IN, _RCODE_NXDOMAIN = 1, 1, 3
_NAME_TTL_S = 60


@dataclass(frozen=True)
class NameServer:
    port: int
    names: Mapping[str, str]  # lower-case name -> IPv4 address
    queries: list[str] = field(default_factory=list)  # names asked, as asked (0x20 case)


def dns_answer(query: bytes, names: Mapping[str, str]) -> tuple[str, bytes] | None:
    """(name asked, response) for one standard query; None for anything else (dropped).

    A for a known name: its address; another type for a known name: no answer (NOERROR);
    an unknown name: NXDOMAIN.  The question goes back as asked (tor randomises its case).
    """
    if len(query) < _DNS_HEADER.size:
        return None
    ident, flags, qdcount, _, _, _ = _DNS_HEADER.unpack_from(query)
    if flags & 0xF800 or qdcount != 1:  # a response, or an opcode other than QUERY
        return None
    labels, pos = [], _DNS_HEADER.size
    while pos < len(query) and query[pos] != 0:
        length = query[pos]
        if length > 63 or pos + 1 + length > len(query):
            return None
        labels.append(query[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if pos + 5 > len(query):
        return None
    qtype, qclass = struct.unpack_from(">HH", query, pos + 1)
    question = query[_DNS_HEADER.size : pos + 5]
    name = ".".join(labels)
    address = names.get(name.lower())
    answers = b""
    if address is not None and qtype == _QTYPE_A and qclass == _QCLASS_IN:
        rdata = socket.inet_aton(address)
        answers = struct.pack(">HHHIH", 0xC00C, _QTYPE_A, _QCLASS_IN, _NAME_TTL_S, len(rdata))
        answers += rdata
    rcode = _RCODE_NXDOMAIN if address is None else 0
    reply_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
    header = _DNS_HEADER.pack(ident, reply_flags, 1, 1 if answers else 0, 0, 0)
    return name, header + question + answers


@contextmanager
def serving_names(names: Mapping[str, str]) -> Iterator[NameServer]:
    """A UDP name server on 127.0.0.1:<port> for the exits' resolv.conf (tor's evdns takes
    `nameserver 127.0.0.1:<port>`), answering from `names` and NXDOMAIN otherwise, so that
    a resolution never waits for a timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.25)  # how often the thread looks at `stop`
    server = NameServer(sock.getsockname()[1], {k.lower(): v for k, v in names.items()})
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = dns_answer(query, server.names)
            if reply is not None:
                server.queries.append(reply[0])
                sock.sendto(reply[1], peer)

    thread = threading.Thread(target=serve, name="e2e-dns", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=10)
        sock.close()


def probe_exits(stack: Stack) -> str:
    """The network's exits as probe counts them ("1 exit", "2 exits")."""
    count = len(stack.network.exits)
    return f"{count} exit" if count == 1 else f"{count} exits"
