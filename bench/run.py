"""``make bench``: webtunnel-pt against a C relay doing the same work, on loopback, in one run.

Set-up (everything on 127.0.0.1, torn down at the end)::

    bench client ──SOCKS5──> webtunnel-pt ──TLS + upgrade──┐
    bench client ──HTTP upgrade──> socat ──TLS────────────┴─> nginx (test CA) ──> bench.backend

nginx terminates TLS with a certificate from a test CA made for the run and proxies the secret
path with the ``Upgrade`` headers to :mod:`bench.backend` (sink / source / echo). The baseline is
``socat TCP-LISTEN:…,fork OPENSSL:…``; for it the bench client writes the upgrade request itself
and reads the ``101``, which is the work the PT does for tor. PT and baseline runs alternate so
that load from other processes on the machine falls on both; the headline is PT / baseline.

Measured: bulk throughput each way; set-up time (SOCKS connect → first echoed byte); exec →
``CMETHODS DONE``; idle RSS and RSS with many idle tunnels.

    python -m bench.run [--quick] [--pt PATH] [--update-doc docs/performance.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
#: Start-up of the PyInstaller builds is measured too when they exist.
BINARIES = {
    "startup_onefile": ROOT / "dist" / "webtunnel-pt",
    "startup_onedir": ROOT / "dist" / "onedir" / "webtunnel-pt" / "webtunnel-pt",
}
DOC_BEGIN = "<!-- bench:begin -->"
DOC_END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Plan:
    transfer_bytes: int = 256 * MIB
    transfer_rounds: int = 7
    setup_connections: int = 60
    startup_runs: int = 20
    idle_tunnels: int = 1000


QUICK = Plan(
    transfer_bytes=64 * MIB,
    transfer_rounds=3,
    setup_connections=20,
    startup_runs=5,
    idle_tunnels=200,
)


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


# ---- measurements --------------------------------------------------------------------------


@dataclass
class Results:
    started: datetime.datetime
    plan: Plan
    command: list[str]
    #: name -> samples (bytes/s for throughput, seconds for times)
    samples: dict[str, list[float]] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure_relays(stage: Stage, pt: RunningPt, plan: Plan, results: Results) -> None:
    relays = {"pt": pt_opener(stage, pt.socks_port), "socat": socat_opener(stage)}
    for opener in relays.values():  # warm-up: CA store, first fork, nginx upstream
        setup_time(opener)
        upload(opener, 8 * MIB)
        download(opener, 8 * MIB)
    time.sleep(0.2)
    socat_cpu = stage.socat_cpu_s()
    pt_cpu = {"up": 0.0, "down": 0.0}
    for _ in range(plan.transfer_rounds):
        for direction, transfer in (("up", upload), ("down", download)):
            for name, opener in relays.items():
                before = pt.cpu_s()
                results.add(f"{direction}_{name}", transfer(opener, plan.transfer_bytes))
                if name == "pt":
                    pt_cpu[direction] += pt.cpu_s() - before
    time.sleep(0.2)  # socat's children are counted once the parent has reaped them
    gib_each_way = plan.transfer_rounds * plan.transfer_bytes / (1024 * MIB)
    results.figures["socat_cpu_s_per_gib"] = (stage.socat_cpu_s() - socat_cpu) / (2 * gib_each_way)
    for direction, seconds in pt_cpu.items():
        results.figures[f"pt_cpu_s_per_gib_{direction}"] = seconds / gib_each_way
    for _ in range(plan.setup_connections):
        for name, opener in relays.items():
            results.add(f"setup_{name}", setup_time(opener))


def measure_startup(
    command: Sequence[str], env: dict[str, str], log: Path, runs: int
) -> list[float]:
    times = []
    for _ in range(runs):
        pt = start_pt(command, env, log)
        times.append(pt.startup_s)
        pt.stop()
    return times


def measure_memory(
    stage: Stage, command: Sequence[str], env: dict[str, str], log: Path, tunnels: int
) -> dict[str, float]:
    pt = start_pt(command, env, log)
    held: list[socket.socket] = []
    try:
        time.sleep(0.5)  # let start-up garbage settle; nothing else is waited on
        idle = pt.rss_kib()
        opener = pt_opener(stage, pt.socks_port)

        def open_idle() -> socket.socket:
            sock = opener()
            sock.sendall(b"E.")
            if recv_exactly(sock, 1) != b".":
                raise RuntimeError("echo returned something else")
            return sock

        held.append(open_idle())
        one = pt.rss_kib()
        with ThreadPoolExecutor(max_workers=8) as pool:
            held.extend(pool.map(lambda _: open_idle(), range(tunnels - 1)))
        time.sleep(0.5)
        many = pt.rss_kib()
        return {
            "rss_idle_kib": idle,
            "rss_one_kib": one,
            "rss_many_kib": many,
            "per_tunnel_kib": (many - one) / (tunnels - 1),
            "tunnels": tunnels,
        }
    finally:
        for sock in held:
            close_now(sock)
        pt.stop()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(plan: Plan, command: list[str], workdir: Path) -> Results:
    results = Results(datetime.datetime.now(datetime.UTC), plan, command)
    raise_fd_limit()
    log = workdir / "pt.log"
    with running_stage(workdir) as stage:
        env = pt_environment(workdir / "state", stage.tls.ca_pem, workdir / "pycache")
        start_pt(command, env, log).stop()  # compile the byte code once
        pt = start_pt(command, env, log)
        try:
            measure_relays(stage, pt, plan, results)
        finally:
            pt.stop()
        results.samples["startup"] = measure_startup(command, env, log, plan.startup_runs)
        if command == installed_pt() and "WEBTUNNEL_PT" not in os.environ:
            cold = pt_environment(workdir / "state", stage.tls.ca_pem, None)
            results.samples["startup_no_bytecode"] = measure_startup(
                command, cold, log, max(5, plan.startup_runs // 4)
            )
        for name, binary in BINARIES.items():
            if binary.exists():  # `make binary` / `make binary-onedir` were run
                results.samples[name] = measure_startup([str(binary)], env, log, plan.startup_runs)
        results.figures.update(measure_memory(stage, command, env, log, plan.idle_tunnels))
    return results


# ---- report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    socat = subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "OpenSSL (Python ssl)": ssl.OPENSSL_VERSION,
        "socat": next((ln.split()[2] for ln in socat.splitlines() if "version" in ln), "?"),
        "nginx": nginx.strip().rsplit("/", 1)[-1],
    }


def render(results: Results) -> str:
    s = results.samples
    med = statistics.median
    up_pt, up_socat = med(s["up_pt"]) / MIB, med(s["up_socat"]) / MIB
    down_pt, down_socat = med(s["down_pt"]) / MIB, med(s["down_socat"]) / MIB
    # Each PT transfer is paired with the socat transfer right after it: the median of the
    # pair ratios is steadier than a ratio of medians when other jobs load the machine.
    up_ratio = med(a / b for a, b in zip(s["up_pt"], s["up_socat"], strict=True))
    pt_cpu = (results.figures["pt_cpu_s_per_gib_up"] + results.figures["pt_cpu_s_per_gib_down"]) / 2
    cpu_ratio = pt_cpu / results.figures["socat_cpu_s_per_gib"]
    down_ratio = med(a / b for a, b in zip(s["down_pt"], s["down_socat"], strict=True))
    set_pt, set_socat = med(s["setup_pt"]) * 1000, med(s["setup_socat"]) * 1000
    p95_pt, p95_socat = (percentile(s[k], 0.95) * 1000 for k in ("setup_pt", "setup_socat"))
    start = med(s["startup"]) * 1000
    f = results.figures
    plan = results.plan
    lines = [
        f"Run of {results.started:%Y-%m-%d %H:%M} UTC, PT: `{' '.join(results.command)}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine().items()),
        "",
        "| figure | webtunnel-pt | socat baseline | PT / baseline | target |",
        "|---|---|---|---|---|",
        f"| upload (tor → bridge), MiB/s | {up_pt:.0f} | {up_socat:.0f} "
        f"| **{up_ratio:.2f}** | ≥ 0.80 |",
        f"| download (bridge → tor), MiB/s | {down_pt:.0f} | {down_socat:.0f} "
        f"| **{down_ratio:.2f}** | ≥ 0.80 |",
        f"| set-up, median ms | {set_pt:.2f} | {set_socat:.2f} "
        f"| **{set_pt - set_socat:+.2f} ms** | ≤ +1 ms |",
        f"| set-up, p95 ms | {p95_pt:.2f} | {p95_socat:.2f} | {p95_pt - p95_socat:+.2f} ms | |",
        f"| CPU s per GiB relayed, up / down | {f['pt_cpu_s_per_gib_up']:.2f} / "
        f"{f['pt_cpu_s_per_gib_down']:.2f} | {f['socat_cpu_s_per_gib']:.2f} (both ways) "
        f"| {cpu_ratio:.2f} | |",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| exec → CMETHODS DONE, median of {len(s['startup'])} | {start:.0f} ms | ≤ 150 ms |",
    ]
    if "startup_no_bytecode" in s:
        cold = med(s["startup_no_bytecode"]) * 1000
        lines.append(
            f"| same without byte-code cache (PYTHONDONTWRITEBYTECODE, editable install), "
            f"median of {len(s['startup_no_bytecode'])} | {cold:.0f} ms | |"
        )
    for name, label in (("startup_onefile", "one-file"), ("startup_onedir", "one-folder")):
        if name in s:
            lines.append(
                f"| exec → CMETHODS DONE, PyInstaller {label} build, median of {len(s[name])} "
                f"| {med(s[name]) * 1000:.0f} ms | ≤ 400 ms |"
            )
    lines += [
        f"| idle RSS | {f['rss_idle_kib'] / 1024:.1f} MiB | ≤ 30 MiB |",
        f"| RSS with 1 tunnel | {f['rss_one_kib'] / 1024:.1f} MiB | |",
        f"| RSS with {f['tunnels']:.0f} idle tunnels | {f['rss_many_kib'] / 1024:.1f} MiB | |",
        f"| per idle tunnel | {f['per_tunnel_kib']:.0f} KiB | ≤ 128 KiB |",
        "",
        f"Throughput: median of {plan.transfer_rounds} transfers of "
        f"{plan.transfer_bytes // MIB} MiB each way, PT and socat alternating. Set-up: "
        f"{plan.setup_connections} connections each, alternating. Samples (MiB/s): "
        + "; ".join(
            f"{k} " + ", ".join(f"{v / MIB:.0f}" for v in s[k])
            for k in ("up_pt", "up_socat", "down_pt", "down_socat")
        ),
    ]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, text: str) -> None:
    doc = path.read_text()
    head, sep, rest = doc.partition(DOC_BEGIN)
    _, sep2, tail = rest.partition(DOC_END)
    if not (sep and sep2):
        raise SystemExit(f"{path} has no {DOC_BEGIN} … {DOC_END} block")
    path.write_text(f"{head}{DOC_BEGIN}\n{text}{DOC_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, for trying things")
    parser.add_argument("--pt", help="PT command (default: $WEBTUNNEL_PT or the installed one)")
    parser.add_argument("--update-doc", type=Path, help="rewrite the results block of this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    command = [os.path.abspath(args.pt)] if args.pt else installed_pt()
    workdir = Path(tempfile.mkdtemp(prefix="webtunnel-bench-"))
    try:
        results = run(QUICK if args.quick else Plan(), command, workdir)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(results)
    print(text)
    if args.update_doc:
        update_doc(args.update_doc, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
