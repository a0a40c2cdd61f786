"""TOR_PT_PROXY against real proxy servers from Debian, each started here on 127.0.0.1 with its
own configuration in a temporary directory: microsocks (SOCKS5, with and without RFC 1929
auth), Dante's danted (SOCKS5 and SOCKS4), OpenSSH's dynamic forwarding ``ssh -D`` to a
private ``sshd`` (SOCKS4a and SOCKS5), tinyproxy (HTTP CONNECT with Basic auth). Each success
case carries a full tunnel (PT subprocess → proxy → TLS → upgrade → echo) with checked data;
each failure case checks the SOCKS reply tor gets and the PT's LOG line.

Dante 1.4.2 does not implement the SOCKS4a host-name extension: it takes ``0.0.0.1`` for an
address and answers 0x5B. So danted carries SOCKS4 with an IP literal target, and its
refusal of a host name is the "SOCKS4 0x5B" failure case. The SOCKS4a host-name form runs
against ``ssh -D``, which takes it and hands the name to sshd (its log shows the name it was
asked to connect to); the bytes themselves are checked in ``tests/unit/socks/test_client.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.certs import Pki
from tests.support.pt_process import PtProcess, tor_environment
from tests.support.secrets import SecretPathServer, secret_path
from tests.support.socks_client import recv_exactly, socks_connect
from tests.support.upgrade_server import ScriptedWebServer
from webtunnel_pt.errors import SocksReply
from webtunnel_pt.outbound.proxy_uri import parse_proxy_uri
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.dial import DialOptions, dial_bridge

START_TIMEOUT_S = 10.0
POLL_S = 0.02  # port polling while a proxy starts: it has no readiness signal we can wait on
USER, PASSWORD = "wtuser", "Pr0xy-S3cret-pw"


def free_port() -> int:
    """A port that was free a moment ago (the proxies need theirs in the config file)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_accepting(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited with {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(POLL_S)
    raise AssertionError(
        f"proxy did not listen on {port} within {START_TIMEOUT_S} s: {log.read_text()}"
    )


@dataclass
class ProxyServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def wait_for_log(self, text: str) -> str:
        return wait_for_text(self.log, text)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def running(binary: str, argv: Callable[[int], list[str]], workdir: Path) -> Iterator[ProxyServer]:
    if shutil.which(binary) is None:
        pytest.skip(
            f"{binary} is not installed (apt-get install microsocks dante-server tinyproxy)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / f"{binary}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv(port), stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = ProxyServer(port, proc, log)
    try:
        wait_accepting(port, proc, log)
        yield server
    finally:
        server.stop()


def danted_config(directory: Path, port: int) -> list[str]:
    conf = directory / "danted.conf"
    conf.write_text(
        f"logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n"
        "clientmethod: none\nsocksmethod: none\n"
        "client pass {\n  from: 127.0.0.1/32 to: 0.0.0.0/0\n  log: error connect\n}\n"
        "socks pass {\n  from: 127.0.0.1/32 to: 0.0.0.0/0\n  command: connect\n"
        "  protocol: tcp\n  log: error connect\n}\n"
    )
    return ["danted", "-f", str(conf), "-p", str(directory / "danted.pid")]


def tinyproxy_config(directory: Path, port: int, connect_ports: list[int]) -> list[str]:
    conf = directory / "tinyproxy.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 20",
        "LogLevel Info",
        f"BasicAuth {USER} {PASSWORD}",
        "DisableViaHeader Yes",
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    conf.write_text("\n".join(lines) + "\n")
    return ["tinyproxy", "-d", "-c", str(conf)]


def wait_for_text(log: Path, text: str, timeout: float = START_TIMEOUT_S) -> str:
    """The first line of ``log`` containing ``text``, once a server has written it."""
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace")
        for line in content.splitlines():
            if text in line:
                return line
        if time.monotonic() >= deadline:
            raise AssertionError(f"{text!r} not in {log.name} within {timeout} s:\n{content}")
        time.sleep(POLL_S)


def sshd_binary() -> str | None:
    """``sshd`` lives in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")


@dataclass
class OpenSshProxy:
    """``ssh -D`` (a SOCKS4/4a/5 server on ``port``) logged in to a private ``sshd``: the
    client decodes each SOCKS request and asks sshd, over a direct-tcpip channel, to connect
    to the host and port it names; sshd resolves and connects (and logs the target)."""

    sshd: ProxyServer
    ssh: ProxyServer

    @property
    def port(self) -> int:
        return self.ssh.port

    def logs(self) -> str:
        return (
            f"sshd log:\n{self.sshd.log.read_text(errors='replace')}\n"
            f"ssh log:\n{self.ssh.log.read_text(errors='replace')}"
        )

    def wait_for_log(self, text: str) -> str:
        """The sshd log: it names the target of each forwarded connection."""
        return wait_for_text(self.sshd.log, text)


def start_openssh(sshd: str, directory: Path) -> OpenSshProxy:
    """sshd on 127.0.0.1 with a fresh host key, accepting one fresh client key for the current
    user; then ``ssh -N -D`` logged in to it. Raises with both logs if either fails to start."""
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(directory / key)],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
    authorized = directory / "authorized_keys"
    authorized.write_bytes((directory / "client_key.pub").read_bytes())
    authorized.chmod(0o600)
    sshd_port, socks_port = free_port(), free_port()
    conf = directory / "sshd_config"
    conf.write_text(
        f"ListenAddress 127.0.0.1\nPort {sshd_port}\nHostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\nStrictModes no\n"
        "AllowTcpForwarding yes\nPermitRootLogin prohibit-password\n"
        # DEBUG1, not VERBOSE: only debug1 names the target of a successful direct-tcpip open
        # ("server_request_direct_tcpip: ... target localhost port N"), which the tests read.
        "LogLevel DEBUG1\n"
    )
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        Path("/run/sshd").mkdir(mode=0o755)  # the privilege separation directory sshd needs
    sshd_log = directory / "sshd.log"
    with sshd_log.open("wb") as out:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(conf)],  # sshd re-executes itself: absolute path
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ProxyServer(sshd_port, proc, sshd_log)
    try:
        wait_accepting(sshd_port, proc, sshd_log)
    except AssertionError as exc:
        stop_sshd(server)
        raise AssertionError(f"sshd did not start: {exc}") from None
    options = [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "ExitOnForwardFailure=yes",
        f"ConnectTimeout={START_TIMEOUT_S:.0f}",
    ]
    argv = ["ssh", "-F", "none", "-N", "-D", f"127.0.0.1:{socks_port}", "-p", str(sshd_port)]
    argv += ["-i", str(directory / "client_key")]
    argv += [arg for option in options for arg in ("-o", option)]
    argv.append(f"{pwd.getpwuid(os.getuid()).pw_name}@127.0.0.1")
    ssh_log = directory / "ssh.log"
    with ssh_log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    proxy = OpenSshProxy(server, ProxyServer(socks_port, proc, ssh_log))
    try:
        wait_accepting(socks_port, proc, ssh_log)
    except AssertionError as exc:
        stop_openssh(proxy)
        raise AssertionError(f"ssh -D did not start: {exc}\n{proxy.logs()}") from None
    return proxy


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc; none where there is no /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def stop_sshd(server: ProxyServer) -> None:
    """Stop sshd once its per-connection processes have ended (each ends with its client
    connection, and sshd reaps it); one still there after the timeout is terminated. sshd
    puts each in a session of its own, and they outlive sshd, so they are looked up first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (children := child_pids(server.proc.pid)) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    server.stop()


def stop_openssh(proxy: OpenSshProxy) -> None:
    """The client first: its sshd session process ends with the connection; then sshd."""
    proxy.ssh.stop()
    stop_sshd(proxy.sshd)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxies")


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def localhost_server(pki: Pki) -> Iterator[ScriptedWebServer]:
    """The test web server with a certificate for ``localhost``: a bridge URL whose host is a
    name the proxy, not the PT, must resolve."""
    server = SecretPathServer(pki.server_context_for("localhost"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def microsocks(workdir: Path) -> Iterator[ProxyServer]:
    def argv(port: int) -> list[str]:
        return ["microsocks", "-i", "127.0.0.1", "-p", str(port)]

    with running("microsocks", argv, workdir / "microsocks") as server:
        yield server


@pytest.fixture(scope="module")
def microsocks_auth(workdir: Path) -> Iterator[ProxyServer]:
    def argv(port: int) -> list[str]:
        return ["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", USER, "-P", PASSWORD]

    with running("microsocks", argv, workdir / "microsocks-auth") as server:
        yield server


@pytest.fixture(scope="module")
def danted(workdir: Path) -> Iterator[ProxyServer]:
    directory = workdir / "danted"
    directory.mkdir()
    with running("danted", lambda port: danted_config(directory, port), directory) as server:
        yield server


@pytest.fixture(scope="module")
def openssh(workdir: Path) -> Iterator[OpenSshProxy]:
    sshd = sshd_binary()
    if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs openssh-server and openssh-client (Debian packages)")
    directory = workdir / "openssh"
    directory.mkdir()
    proxy = start_openssh(sshd, directory)
    try:
        yield proxy
    finally:
        stop_openssh(proxy)


@pytest.fixture(scope="module")
def tinyproxy(
    workdir: Path, tls_server: ScriptedWebServer, closed_port: int
) -> Iterator[ProxyServer]:
    directory = workdir / "tinyproxy"
    directory.mkdir()

    def argv(port: int) -> list[str]:
        return tinyproxy_config(directory, port, [tls_server.port, closed_port])

    with running("tinyproxy", argv, directory) as server:
        yield server


@pytest.fixture
def start_pt(pki: Pki, tmp_path: Path) -> Iterator[Callable[[str], PtProcess]]:
    """Start the PT as tor would with ``TOR_PT_PROXY``; check its exit and output at the end."""
    started: list[PtProcess] = []

    def start(proxy_uri: str) -> PtProcess:
        env = tor_environment(tmp_path, SSL_CERT_FILE=str(pki.ca_file), TOR_PT_PROXY=proxy_uri)
        process = PtProcess(env, ["--log-level", "info"])
        started.append(process)
        process.socks_port()
        protocol = [line for line in process.lines if not line.startswith("LOG ")]
        assert protocol[0] == "VERSION 1"
        assert protocol[1].startswith("STATUS TYPE=version ")
        assert protocol[2] == "PROXY DONE"
        assert protocol[3].startswith("CMETHOD webtunnel socks5 127.0.0.1:")
        assert protocol[4] == "CMETHODS DONE"
        return process

    yield start
    for process in started:
        assert process.stop() == 0
        output = process.all_output()
        assert PASSWORD not in output, "proxy password reached the PT's output"
        assert "Traceback" not in output


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (f"socks5://{USER}:{PASSWORD}@127.0.0.1:99999", "needs a port from 1 to 65535"),
        (f"socks4a://{USER}:{PASSWORD}@127.0.0.1:1080", "takes a user id but no password"),
        (f"https://{USER}:{PASSWORD}@127.0.0.1:443", "scheme 'https' is not supported"),
    ],
)
def test_bad_proxy_uri_is_a_proxy_error(uri: str, reason: str, tmp_path: Path) -> None:
    process = PtProcess(tor_environment(tmp_path, TOR_PT_PROXY=uri))
    try:
        line = process.wait_for_line(lambda line: line.startswith("PROXY-ERROR "))
        assert reason in line
        assert process.proc.wait(timeout=10) == 1
    finally:
        process.stop()
    assert not any(line.startswith(("CMETHOD", "PROXY DONE")) for line in process.lines)
    assert PASSWORD not in process.all_output()


def url(server: ScriptedWebServer, host: str = "127.0.0.1", port: int | None = None) -> str:
    """The echo bridge URL on ``server``, behind a fresh secret path segment."""
    return f"https://{host}:{server.port if port is None else port}{secret_path('/echo')}"


def checked_echo(pt: PtProcess, bridge_url: str, size: int = 512 * 1024) -> None:
    """A tunnel through the PT; ``size`` random bytes out and back, compared by hash."""
    rep, sock = socks_connect(pt.socks_port(), {"url": bridge_url}, timeout=30)
    assert rep == 0, f"SOCKS reply {rep}; {pt.all_output()}"
    payload = random.Random(size).randbytes(size)
    received = hashlib.sha256()
    with sock:
        reader = threading.Thread(
            target=lambda: received.update(recv_exactly(sock, size)), daemon=True
        )
        reader.start()
        sock.sendall(payload)
        reader.join(timeout=30)
        assert not reader.is_alive(), "echo did not come back within 30 s"
    assert received.digest() == hashlib.sha256(payload).digest()


def refused(pt: PtProcess, bridge_url: str, reply: SocksReply, log_text: str) -> None:
    rep, _ = socks_connect(pt.socks_port(), {"url": bridge_url}, timeout=30)
    assert rep == reply, f"expected SOCKS reply {reply:#04x}, got {rep}; {pt.all_output()}"
    line = pt.wait_for_log(log_text)
    assert "SEVERITY=warning" in line, line


# -- one table of cases, run against each proxy ------------------------------------------------
# Templates: {port} is the proxy's port; {user}/{password} the credentials the proxy expects.


@dataclass(frozen=True)
class Tunnel:
    """A tunnel through ``fixture`` that must carry checked data. ``host`` is the bridge URL's
    host: ``localhost`` is a name the proxy (never the PT) resolves, so the web server must see
    it in the request. ``proxy_log`` is a line the proxy logs for it (``{host}``, ``{bridge}``:
    the bridge's host and port), with ``proxy_log_also`` more of that line."""

    fixture: str
    uri: str
    host: str = "127.0.0.1"
    proxy_log: str | None = None
    proxy_log_also: str = ""


SSHD_OPENED = "server_request_direct_tcpip: originator 127.0.0.1 port "
TUNNELS = {
    "microsocks": Tunnel("microsocks", "socks5://127.0.0.1:{port}"),
    "microsocks-host-name": Tunnel("microsocks", "socks5://127.0.0.1:{port}", "localhost"),
    "microsocks-auth": Tunnel("microsocks_auth", "socks5://{user}:{password}@127.0.0.1:{port}"),
    "danted-socks5": Tunnel("danted", "socks5://127.0.0.1:{port}"),
    "danted-socks5-host-name": Tunnel("danted", "socks5://127.0.0.1:{port}", "localhost"),
    "danted-socks4": Tunnel("danted", "socks4a://127.0.0.1:{port}"),
    # The SOCKS4a host-name form against a real server: the PT sends ``localhost`` unresolved
    # (``0.0.0.1`` + name), ssh hands the name to sshd, sshd resolves it (from /etc/hosts) and
    # connects. Had the PT resolved the name itself, sshd would log "target 127.0.0.1 port ...".
    "openssh-socks4a-host-name": Tunnel(
        "openssh",
        "socks4a://127.0.0.1:{port}",
        "localhost",
        ", target {host} port {bridge}",
        SSHD_OPENED,
    ),
    "openssh-socks5": Tunnel(
        "openssh",
        "socks5://127.0.0.1:{port}",
        "127.0.0.1",
        ", target {host} port {bridge}",
        SSHD_OPENED,
    ),
    "tinyproxy-basic-auth": Tunnel(
        "tinyproxy", "http://{user}:{password}@127.0.0.1:{port}", proxy_log="CONNECT"
    ),
}


@pytest.mark.parametrize("case", TUNNELS.values(), ids=TUNNELS.keys())
def test_tunnel_through_proxy(
    case: Tunnel, request: pytest.FixtureRequest, start_pt: Callable[[str], PtProcess]
) -> None:
    proxy: ProxyServer | OpenSshProxy = request.getfixturevalue(case.fixture)
    fixture = "tls_server" if case.host == "127.0.0.1" else "localhost_server"
    server: ScriptedWebServer = request.getfixturevalue(fixture)
    uri = case.uri.format(port=proxy.port, user=USER, password=PASSWORD)
    pt = start_pt(uri)
    path = secret_path("/echo")
    checked_echo(pt, f"https://{case.host}:{server.port}{path}")
    expected = f"GET {path} HTTP/1.1\r\nHost: {case.host}\r\n".encode()
    assert server.request_heads[-1].startswith(expected)
    line = pt.wait_for_log("tunnel up")
    scheme = uri.partition(":")[0]
    assert f"{case.host}:{server.port} via {scheme} proxy 127.0.0.1:{proxy.port}" in line, line
    if case.proxy_log is not None:
        line = proxy.wait_for_log(case.proxy_log.format(host=case.host, bridge=server.port))
        assert case.proxy_log_also in line, line


@dataclass(frozen=True)
class Refusal:
    """A dial through ``fixture`` that fails: tor gets ``reply`` and a warning with ``log``.
    ``target`` is the bridge: ``tls`` (the web server), ``tls-name`` (the same by name),
    ``plain`` (a port the proxy's rules forbid), ``closed`` / ``closed-name`` (nothing
    listens). ``proxy_log`` is a line the proxy must log (``{closed}``: the closed port)."""

    fixture: str
    uri: str
    target: str
    reply: SocksReply
    log: str
    proxy_log: str | None = None


REFUSALS = {
    "microsocks-wrong-password": Refusal(
        "microsocks_auth",
        "socks5://{user}:{wrong}@127.0.0.1:{port}",
        "tls",
        SocksReply.NOT_ALLOWED,
        "refused the user name and password",
    ),
    "microsocks-without-credentials": Refusal(
        "microsocks_auth",
        "socks5://127.0.0.1:{port}",
        "tls",
        SocksReply.NOT_ALLOWED,
        "wants credentials",
    ),
    "microsocks-target-refused": Refusal(
        "microsocks",
        "socks5://127.0.0.1:{port}",
        "closed",
        SocksReply.CONNECTION_REFUSED,
        "connection refused (SOCKS5 reply 0x05)",
    ),
    # Dante answers the SOCKS4a form with 0x5B: tor gets "general failure" and a LOG line.
    "danted-refuses-socks4a-host-names": Refusal(
        "danted",
        "socks4a://127.0.0.1:{port}",
        "tls-name",
        SocksReply.GENERAL_FAILURE,
        "rejected or failed (SOCKS4 0x5b)",
    ),
    # ssh answers a SOCKS request only once sshd has connected; when sshd cannot, ssh closes
    # the connection without a reply, and tor gets "general failure".
    "openssh-socks4a-target-refused": Refusal(
        "openssh",
        "socks4a://127.0.0.1:{port}",
        "closed-name",
        SocksReply.GENERAL_FAILURE,
        "socks4a proxy 127.0.0.1:{port} closed the connection during the SOCKS4a handshake",
        "connect_to localhost port {closed}: failed.",
    ),
    "tinyproxy-wrong-password": Refusal(
        "tinyproxy",
        "http://{user}:{wrong}@127.0.0.1:{port}",
        "tls",
        SocksReply.NOT_ALLOWED,
        "refused the credentials (HTTP 401",
    ),
    "tinyproxy-without-credentials": Refusal(
        "tinyproxy",
        "http://127.0.0.1:{port}",
        "tls",
        SocksReply.NOT_ALLOWED,
        "wants credentials (HTTP 407",
    ),
    # Not a ConnectPort: the proxy's rules forbid it.
    "tinyproxy-forbidden-port": Refusal(
        "tinyproxy",
        "http://{user}:{password}@127.0.0.1:{port}",
        "plain",
        SocksReply.NOT_ALLOWED,
        "HTTP 403",
    ),
    # Allowed, but nothing listens: tinyproxy answers 500 "Unable to connect".
    "tinyproxy-target-refused": Refusal(
        "tinyproxy",
        "http://{user}:{password}@127.0.0.1:{port}",
        "closed",
        SocksReply.GENERAL_FAILURE,
        "HTTP 500 Unable to connect",
    ),
}
WRONG_PASSWORD = f"wrong-{PASSWORD[::-1]}"


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_through_proxy(
    case: Refusal,
    request: pytest.FixtureRequest,
    closed_port: int,
    start_pt: Callable[[str], PtProcess],
) -> None:
    proxy: ProxyServer | OpenSshProxy = request.getfixturevalue(case.fixture)
    uri = case.uri.format(port=proxy.port, user=USER, password=PASSWORD, wrong=WRONG_PASSWORD)
    pt = start_pt(uri)
    if case.target.startswith("closed"):
        port = closed_port
    else:
        port = request.getfixturevalue(
            "plain_server" if case.target == "plain" else "tls_server"
        ).port
    host = "localhost" if case.target.endswith("-name") else "127.0.0.1"
    refused(
        pt, f"https://{host}:{port}{secret_path()}", case.reply, case.log.format(port=proxy.port)
    )
    assert WRONG_PASSWORD not in pt.all_output()
    if case.proxy_log is not None:
        proxy.wait_for_log(case.proxy_log.format(closed=closed_port))


def test_proxy_port_closed(
    closed_port: int, tls_server: ScriptedWebServer, start_pt: Callable[[str], PtProcess]
) -> None:
    pt = start_pt(f"socks5://127.0.0.1:{closed_port}")
    refused(
        pt,
        url(tls_server),
        SocksReply.CONNECTION_REFUSED,
        f"cannot reach socks5 proxy 127.0.0.1:{closed_port}: TCP connect to 127.0.0.1:"
        f"{closed_port} failed: Connection refused",
    )


# -- the bridge name reaches the proxy unresolved -----------------------------------------------


@dataclass
class RecordingSocks5Proxy:
    """A tiny SOCKS5 proxy (no auth) that records each CONNECT request's ATYP and address and
    connects every request to one fixed upstream, whatever name it asked for."""

    upstream_port: int
    requests: list[tuple[int, bytes, int]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the listener, end every connection it is serving, then the loop and thread."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            greeting = await reader.readexactly(2)
            await reader.readexactly(greeting[1])
            writer.write(b"\x05\x00")
            _, _, _, atyp = await reader.readexactly(4)
            size = {1: 4, 4: 16}.get(atyp) or (await reader.readexactly(1))[0]
            address = await reader.readexactly(size)
            port = int.from_bytes(await reader.readexactly(2), "big")
            self.requests.append((atyp, address, port))
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


@pytest.fixture
def recording_proxy(tls_server: ScriptedWebServer) -> Iterator[RecordingSocks5Proxy]:
    proxy = RecordingSocks5Proxy(tls_server.port)
    proxy.start()
    yield proxy
    proxy.stop()


def test_bridge_host_name_is_sent_to_the_proxy(
    recording_proxy: RecordingSocks5Proxy,
    tls_server: ScriptedWebServer,
    start_pt: Callable[[str], PtProcess],
) -> None:
    """``bridge.test`` does not resolve here; the tunnel works because only the proxy sees it,
    as a SOCKS5 domain name (ATYP 03)."""
    pt = start_pt(f"socks5://127.0.0.1:{recording_proxy.port}")
    checked_echo(pt, f"https://bridge.test:{tls_server.port}{secret_path('/echo')}")
    assert recording_proxy.requests == [(3, b"bridge.test", tls_server.port)]


def test_addr_literal_is_sent_as_an_address(
    recording_proxy: RecordingSocks5Proxy,
    tls_server: ScriptedWebServer,
    start_pt: Callable[[str], PtProcess],
) -> None:
    pt = start_pt(f"socks5://127.0.0.1:{recording_proxy.port}")
    rep, sock = socks_connect(
        pt.socks_port(),
        {
            "url": f"https://bridge.test{secret_path('/echo')}",
            "addr": f"127.0.0.1:{tls_server.port}",
        },
    )
    sock.close()
    assert rep == 0
    assert recording_proxy.requests == [(1, socket.inet_aton("127.0.0.1"), tls_server.port)]


def test_dial_through_proxy_never_resolves_locally(
    recording_proxy: RecordingSocks5Proxy, plain_server: ScriptedWebServer
) -> None:
    """In process: the resolver would fail the test if the dial asked it for anything."""
    recording_proxy.upstream_port = plain_server.port
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        raise AssertionError("local DNS in proxy mode")

    async def main() -> bytes:
        config = bridge_config_from_args(
            BridgeArgs([("url", f"http://bridge.test:{plain_server.port}{secret_path('/echo')}")])
        )
        options = DialOptions(
            resolver=resolver, proxy=parse_proxy_uri(f"socks5://127.0.0.1:{recording_proxy.port}")
        )
        tunnel = await dial_bridge(config, options)
        tunnel.writer.write(b"ping")
        tunnel.writer.write_eof()
        data = await asyncio.wait_for(tunnel.reader.read(), 10)
        tunnel.writer.close()
        assert tunnel.report.addresses == []
        assert "via socks5 proxy" in tunnel.report.peer
        return data

    assert asyncio.run(main()) == b"pingBYE"
    assert asked == []
    assert recording_proxy.requests == [(3, b"bridge.test", plain_server.port)]
