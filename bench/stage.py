"""The bench's moving parts: the PT and the official Go client as tor runs them, the stage
(nginx with a test CA, :mod:`bench.backend`, socat) and the bench client's tunnels and transfers.

    with running_stage(workdir) as stage:
        pt = start_pt(installed_pt(), pt_environment(state, stage.tls.ca_pem, None), log)
        rate = upload(pt_opener(stage, pt.socks_port), 64 * MIB)  # bytes/s
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.nginx import TestCA, make_test_ca, random_secret_path, render_conf
from tests.e2e.ports import LOOPBACK, free_port, wait_accepting
from tests.e2e.procs import ProcessGroup
from tests.support.socks_client import recv_exactly, socks_connect

MIB = 1024 * 1024
CLIENT_BUFFER_BYTES = 1024 * 1024
#: nginx's default (256) is too few for the idle-tunnel test: each tunnel is two connections.
NGINX_WORKER_CONNECTIONS = 8192
START_TIMEOUT_S = 20.0
#: A PT that needs longer than this to print CMETHODS DONE is broken, not slow.
CMETHODS_TIMEOUT_S = 30.0
_LENGTH = struct.Struct(">Q")
_LINGER_RESET = struct.pack("ii", 1, 0)
_PAYLOAD = memoryview(bytes(range(256)) * (CLIENT_BUFFER_BYTES // 256))
ROOT = Path(__file__).resolve().parent.parent
#: The official WebTunnel client (Go), a second baseline when present (../shared/peers/README.md).
GO_CLIENT_ENV = "WEBTUNNEL_GO_CLIENT"
DEFAULT_GO_CLIENT = ROOT.parent / "shared" / "peers" / "bin" / "webtunnel-client"

# ---- the PT as tor runs it -----------------------------------------------------------------


def installed_pt() -> list[str]:
    """``$WEBTUNNEL_PT``, else the ``webtunnel-pt`` script next to this Python (not a shim)."""
    override = os.environ.get("WEBTUNNEL_PT")
    if override:
        return [os.path.abspath(override)]
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which("webtunnel-pt", path=search)
    if found is None:
        raise SystemExit("no webtunnel-pt: pip install -e . or set WEBTUNNEL_PT")
    return [found]


def go_client() -> Path | str:
    """The official Go client: ``$WEBTUNNEL_GO_CLIENT``, else ``../shared/peers/bin/
    webtunnel-client`` next to the repository; a string saying what is missing if neither is an
    executable file."""
    path = Path(os.environ.get(GO_CLIENT_ENV) or DEFAULT_GO_CLIENT).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        return f"no official Go client at {path} (set {GO_CLIENT_ENV} to measure it)"
    return path


def pt_environment(state: Path, ca_pem: Path | None, pycache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOR_PT_")}
    env.update(
        TOR_PT_MANAGED_TRANSPORT_VER="1",
        TOR_PT_CLIENT_TRANSPORTS="webtunnel",
        TOR_PT_STATE_LOCATION=f"{state}/",
        TOR_PT_EXIT_ON_STDIN_CLOSE="1",
    )
    if ca_pem is not None:
        env["SSL_CERT_FILE"] = str(ca_pem)
    if pycache is not None:
        # As after `pip install`: byte code compiled once and reused (this sandbox sets
        # PYTHONDONTWRITEBYTECODE, and an editable install has no byte code of its own).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@dataclass
class RunningPt:
    proc: subprocess.Popen[bytes]
    socks_port: int
    startup_s: float

    def rss_kib(self) -> int:
        return _status_kib(self.proc.pid, "VmRSS")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_pt(command: Sequence[str], env: dict[str, str], stderr: Path) -> RunningPt:
    """Exec the PT and read stdout up to ``CMETHODS DONE``; the time between is start-up."""
    with stderr.open("ab") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    port = 0
    timer = threading.Timer(CMETHODS_TIMEOUT_S, proc.kill)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith("CMETHOD webtunnel "):
                port = int(line.rsplit(":", 1)[1])
            elif line == "CMETHODS DONE":
                elapsed = time.perf_counter() - started
                break
        else:
            raise RuntimeError(f"PT exited before CMETHODS DONE; see {stderr}")
    finally:
        timer.cancel()
    if not port:
        raise RuntimeError("PT printed no CMETHOD webtunnel line")
    return RunningPt(proc, port, elapsed)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


# ---- the servers ---------------------------------------------------------------------------


@dataclass
class Stage:
    """nginx + backend (+ socat), with the files they need."""

    workdir: Path
    processes: ProcessGroup
    tls: TestCA
    secret: str
    nginx_port: int
    socat_port: int = 0
    socat_pid: int = 0

    def socat_cpu_s(self) -> float:
        """CPU time of socat's reaped children (one per connection) and of socat itself."""
        stat = Path(f"/proc/{self.socat_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in stat[11:15]) / os.sysconf("SC_CLK_TCK")

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.nginx_port}/{self.secret}"

    def upgrade_request(self) -> bytes:
        return (
            f"GET /{self.secret} HTTP/1.1\r\nHost: {LOOPBACK}:{self.nginx_port}\r\n"
            "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        ).encode()


@contextlib.contextmanager
def running_stage(workdir: Path) -> Iterator[Stage]:
    processes = ProcessGroup()
    try:
        tls = make_test_ca(workdir / "tls")
        backend_port = free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "bench.backend", "--listen", f"{LOOPBACK}:{backend_port}"],
            log_path=workdir / "backend.log",
            cwd=ROOT,
        )
        wait_accepting(backend_port, START_TIMEOUT_S, "backend", alive=backend.check_alive)

        prefix = workdir / "nginx"
        for sub in ("html", "temp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        stage = Stage(workdir, processes, tls, random_secret_path(), free_port())
        conf = render_conf(
            prefix,
            port=stage.nginx_port,
            secret_path=stage.secret,
            upstream_port=backend_port,
            tls=tls,
        )
        conf = conf.replace(
            "worker_connections 256;", f"worker_connections {NGINX_WORKER_CONNECTIONS};"
        )
        conf = conf.replace("access_log ", "access_log off; # ", 1)
        (prefix / "nginx.conf").write_text(conf)
        nginx = processes.start(
            "nginx",
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
            log_path=workdir / "nginx.log",
        )
        wait_accepting(stage.nginx_port, START_TIMEOUT_S, "nginx", alive=nginx.check_alive)

        stage.socat_port = free_port()
        socat = processes.start(
            "socat",
            [
                "socat",
                f"TCP-LISTEN:{stage.socat_port},bind={LOOPBACK},reuseaddr,fork,backlog=1024",
                f"OPENSSL:{LOOPBACK}:{stage.nginx_port},cafile={tls.ca_pem},verify=1,nodelay",
            ],
            log_path=workdir / "socat.log",
        )
        wait_accepting(stage.socat_port, START_TIMEOUT_S, "socat", alive=socat.check_alive)
        stage.socat_pid = socat.pid
        yield stage
    finally:
        processes.stop_all()


# ---- tunnels -------------------------------------------------------------------------------

Opener = Callable[[], socket.socket]


def pt_opener(stage: Stage, socks_port: int) -> Opener:
    """Tunnels through a PT 2.0 client (ours or the Go one): SOCKS5 with the bridge line's
    arguments as username/password. The Go client ignores ``addr=`` and dials the URL host."""
    args = {"url": stage.url}

    def open_tunnel() -> socket.socket:
        reply, sock = socks_connect(socks_port, args, timeout=30.0)
        if reply != 0:
            raise RuntimeError(f"PT refused the tunnel: SOCKS reply {reply}")
        return sock

    return open_tunnel


def socat_opener(stage: Stage) -> Opener:
    request = stage.upgrade_request()

    def open_tunnel() -> socket.socket:
        sock = socket.create_connection((LOOPBACK, stage.socat_port), timeout=30.0)
        try:
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"socat path closed during the upgrade: {head!r}")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101 "):
                raise RuntimeError(f"upgrade refused: {head[:80]!r}")
            if not head.endswith(b"\r\n\r\n"):
                raise RuntimeError("bytes behind the 101 (the backend sends none)")
        except BaseException:
            sock.close()
            raise
        return sock

    return open_tunnel


def close_now(sock: socket.socket) -> None:
    """Close with a reset so both relays tear down at once (TLS cannot carry a half-close)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def setup_time(open_tunnel: Opener) -> float:
    started = time.perf_counter()
    sock = open_tunnel()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"E!")
        if recv_exactly(sock, 1) != b"!":
            raise RuntimeError("echo returned something else")
        return time.perf_counter() - started
    finally:
        close_now(sock)


def upload(open_tunnel: Opener, size: int) -> float:
    sock = open_tunnel()
    try:
        started = time.perf_counter()
        sock.sendall(b"U" + _LENGTH.pack(size))
        left = size
        while left > 0:
            chunk = _PAYLOAD[: min(left, len(_PAYLOAD))]
            sock.sendall(chunk)
            left -= len(chunk)
        if recv_exactly(sock, 1) != b"K":
            raise RuntimeError("sink did not confirm")
        return size / (time.perf_counter() - started)
    finally:
        close_now(sock)


def download(open_tunnel: Opener, size: int) -> float:
    buf = bytearray(CLIENT_BUFFER_BYTES)
    sock = open_tunnel()
    try:
        started = time.perf_counter()
        sock.sendall(b"D" + _LENGTH.pack(size))
        left = size
        while left > 0:
            n = sock.recv_into(buf, min(left, len(buf)))
            if not n:
                raise ConnectionError(f"download cut short, {left} bytes missing")
            left -= n
        return size / (time.perf_counter() - started)
    finally:
        close_now(sock)
