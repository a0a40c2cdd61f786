"""A tor client configured like a real WebTunnel user, and a SOCKS5 fetch through it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.socks_client import socks_connect

from .network import TorNetwork
from .ports import free_port
from .procs import Child, ProcessGroup, read_text, tail, wait_until
from .readiness import BOOTSTRAPPED_100

PT_ENV_VAR = "WEBTUNNEL_PT"
PT_NAME = "webtunnel-pt"
BOOTSTRAP_TIMEOUT_S = 90.0  # measured ≈ 3.5 s on this kind of machine
SOCKS_TIMEOUT_S = 60.0
MAX_PAGE_BYTES = 16 << 20
BOOTSTRAP_LINE = re.compile(r"Bootstrapped \d+%.*")
#: tor (info level) names why an exit ended a stream before it connected.
STREAM_END_REASON = re.compile(r"refused due to '([^']*)'")


def find_pt() -> str | None:
    """`$WEBTUNNEL_PT` (e.g. a PyInstaller binary), else `webtunnel-pt` next to this Python
    (pyenv/venv scripts dir, often not on PATH) or on PATH; as an absolute path."""
    explicit = os.environ.get(PT_ENV_VAR)
    if explicit:
        return os.path.abspath(explicit)
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(PT_NAME, path=search)
    return os.path.abspath(found) if found else None


@dataclass
class TorClient:
    data_dir: Path
    socks_port: int
    child: Child
    processes: ProcessGroup = field(repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "tor.log"

    @property
    def pt_log_path(self) -> Path:
        return self.data_dir / "pt.log"

    def log_text(self) -> str:
        return read_text(self.log_path)

    def bootstrap_lines(self) -> list[str]:
        return [m.group(0) for m in BOOTSTRAP_LINE.finditer(self.log_text())]

    def wait_log(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """Wait until tor's log matches `pattern` (a regex); fail early if tor exits."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def matched() -> bool:
            m = regex.search(self.log_text())
            if m:
                found.append(m)
            return m is not None

        try:
            wait_until(matched, timeout_s, f"tor log /{pattern}/", alive=self.child.check_alive)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; tor log tail:\n{tail(self.log_path)}") from None
        return found[0]

    def wait_bootstrapped(self, timeout_s: float = BOOTSTRAP_TIMEOUT_S) -> float:
        start = time.monotonic()
        self.wait_log(re.escape(BOOTSTRAPPED_100), timeout_s)
        return time.monotonic() - start

    def fetch(self, host: str, port: int, path: str = "/") -> bytes:
        """GET through this client's SocksPort; a failure names the reasons tor logged."""
        try:
            return http_get_via_socks(self.socks_port, host, port, path)
        except ConnectionError as exc:  # SocksError, or tor closing mid-handshake
            reasons = sorted(set(STREAM_END_REASON.findall(self.log_text())))
            raise SocksError(f"{exc}; stream end reasons in tor's log: {reasons}") from None

    def pt_pids(self) -> list[int]:
        return self.processes.pids()[1:] if self.child.running() else []

    def stop(self) -> None:
        self.processes.stop_all()


def start_client(
    net: TorNetwork,
    data_dir: Path,
    bridge_lines: Sequence[str],
    pt_argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    torrc_lines: Sequence[str] = (),
) -> TorClient:
    """Start tor with `UseBridges 1` and our PT; `env` is added to this process's environment
    (tor hands its environment on to the PT, so `SSL_CERT_FILE` goes here); `torrc_lines` are
    appended to the client's torrc."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    socks_port = free_port()
    torrc = data_dir / "torrc"
    torrc.write_text(
        net.client_torrc(
            data_dir,
            socks_port=socks_port,
            bridge_lines=bridge_lines,
            pt_argv=pt_argv,
            log_path=data_dir / "tor.log",
            extra_lines=torrc_lines,
        )
    )
    full_env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    full_env.update(env or {})
    processes = ProcessGroup()
    child = processes.start(
        "client-tor", net.tor_argv(torrc), log_path=data_dir / "stdout.log", env=full_env
    )
    return TorClient(data_dir, socks_port, child, processes)


@contextmanager
def running_client(
    net: TorNetwork,
    data_dir: Path,
    bridge_lines: Sequence[str],
    pt_argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    torrc_lines: Sequence[str] = (),
) -> Iterator[TorClient]:
    client = start_client(net, data_dir, bridge_lines, pt_argv, env=env, torrc_lines=torrc_lines)
    try:
        yield client
    finally:
        client.stop()


def pt_argv(pt: str, data_dir: Path, level: str = "debug") -> list[str]:
    return [pt, "--log-level", level, "--log-file", str(data_dir / "pt.log")]


# ---- SOCKS5 (RFC 1928) through tor ---------------------------------------------------------


class SocksError(ConnectionError):
    pass


def socks5_connect(
    socks_port: int, host: str, port: int, timeout_s: float = SOCKS_TIMEOUT_S
) -> socket.socket:
    """CONNECT to ``host:port`` (IPv4) through tor's SocksPort; SocksError unless granted."""
    rep, sock = socks_connect(socks_port, None, timeout_s, target=(host, port))
    if rep != 0:
        raise SocksError(f"SOCKS5 CONNECT failed: REP={rep}")
    return sock


#: A stream can still fail in a network of a few minutes' age (a relay restarting its
#: circuits, a consensus turning over); a browser would retry, so the fetch does too.  The
#: one cause seen so far, an exit refusing streams from relays not in its consensus, is
#: ruled out in `network.py` (`RefuseUnknownExits 0`, and `wait_ready`).
FETCH_ATTEMPTS = 3


def http_get_via_socks(socks_port: int, host: str, port: int, path: str = "/") -> bytes:
    """GET http://host:port/path through SOCKS5; returns the body of a 200 response."""
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            return _http_get_once(socks_port, host, port, path)
        except SocksError as exc:
            if attempt == FETCH_ATTEMPTS or "REP=" not in str(exc):
                raise
            print(f"[e2e] fetch attempt {attempt} failed ({exc}); retrying", file=sys.stderr)
    raise AssertionError("unreachable")


def _http_get_once(socks_port: int, host: str, port: int, path: str) -> bytes:
    with socks5_connect(socks_port, host, port) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if len(data) > MAX_PAGE_BYTES:
                raise SocksError("response too large")
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.") or status.split()[1] != b"200":
        raise SocksError(f"unexpected HTTP status line {status!r}")
    return body
