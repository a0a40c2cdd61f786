"""``webtunnel-pt fetch`` and ``webtunnel-pt socks`` (the built-in Tor client, no tor binary) on
the session's private Tor network, through the nginx-fronted bridge, each run as a separate
process as a user would: ``fetch`` gets the page byte for byte and prints tor's bootstrap
progress; ``curl --socks5-hostname`` through the SOCKS front (configured on the command line or
by a tor user's torrc) gets the same page; a host name only the exits can resolve works through
the SOCKS front; wrong authorities and a wrong bridge fingerprint fail closed with their exit
statuses; the bridge's secrets stay out of every output.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.pt_process import pt_command
from tests.support.secrets import record_output, register_secret
from webtunnel_pt.front.exit_codes import ExitStatus

from .ports import LOOPBACK, free_port
from .procs import terminate
from .stack import EXIT_ONLY_NAME, Page, Stack
from .test_e2e_probe import assert_no_secrets

pytestmark = pytest.mark.e2e

#: A cold bootstrap on this network takes a few seconds; the front's own limit is 300 s.
FRONT_TIMEOUT_S = 120.0
CURL_TIMEOUT_S = 60
READY = re.compile(r"SOCKS proxy ready on (\S+):(\d+)$")
BOOTSTRAPPED_DONE = "Bootstrapped 100% (done): Done"


@pytest.fixture(autouse=True)
def secrets_registered(e2e_stack: Stack) -> None:
    """The session-end check (tests/conftest.py) looks for these in every recorded output."""
    register_secret(e2e_stack.secret_path.strip("/"), e2e_stack.network.bridge_fingerprint)


def front_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOR_PT_")}
    env["SSL_CERT_FILE"] = str(stack.ca_pem)  # nginx's test certificate
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the default state directory
    return env


def client_words(
    stack: Stack,
    *,
    bridge: str | None = None,
    authorities: Sequence[str] | None = None,
    state_dir: Path | None = None,
) -> list[str]:
    """The options every front needs on this network (its own authorities, one /16, loopback
    destinations)."""
    words = [
        "--bridge",
        bridge or stack.bridge_line(),
        "--no-distinct-subnets",
        "--allow-internal-addresses",
    ]
    for line in authorities if authorities is not None else stack.network.dir_authority_lines:
        words += ["--dir-authority", line]
    if state_dir is not None:
        words += ["--state-dir", str(state_dir)]
    return words


def wrong_authority_lines(stack: Stack) -> list[str]:
    """The network's authorities with made-up v3 identities: no consensus can verify."""
    return [
        re.sub(r"v3ident=[0-9A-F]{40}", "v3ident=" + f"{i:X}" * 40, line)
        for i, line in enumerate(stack.network.dir_authority_lines, 1)
    ]


def run_fetch(
    stack: Stack, tmp_path: Path, words: Sequence[str], url: str
) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [*pt_command(), "fetch", *words, url],
        capture_output=True,
        env=front_env(stack, tmp_path),
        timeout=FRONT_TIMEOUT_S,
        check=False,
    )
    err = done.stderr.decode(errors="replace")
    record_output("webtunnel-pt fetch stderr", err)
    print(err)
    return done


# ---- the SOCKS front as a process ----------------------------------------------------------


@dataclass
class SocksFront:
    proc: subprocess.Popen[bytes]
    stdout: list[str]
    err_path: Path
    port: int | None

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def _read_lines(stream: object, into: list[str], lines: queue.Queue[str | None]) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        text = raw.decode(errors="replace").rstrip("\n")
        into.append(text)
        lines.put(text)
    lines.put(None)


@contextmanager
def socks_front(
    stack: Stack, tmp_path: Path, words: Sequence[str], *, expect_ready: bool = True
) -> Iterator[SocksFront]:
    """``webtunnel-pt socks`` until it prints its ready line (or exits, when not
    ``expect_ready``); SIGTERM at the end, which must stop it with status 0."""
    err_path = tmp_path / "socks-front.stderr"
    with err_path.open("wb") as err_file:
        proc = subprocess.Popen(
            [*pt_command(), "socks", *words],
            stdout=subprocess.PIPE,
            stderr=err_file,
            env=front_env(stack, tmp_path),
        )
    assert proc.stdout is not None
    stdout: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, stdout, lines), daemon=True)
    reader.start()
    front = SocksFront(proc, stdout, err_path, None)
    try:
        while True:
            try:
                line = lines.get(timeout=FRONT_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"socks front not ready in {FRONT_TIMEOUT_S} s:\n{front.stderr()}")
            if line is None:  # it exited
                proc.wait(timeout=FRONT_TIMEOUT_S)
                break
            match = READY.search(line)
            if match:
                front.port = int(match.group(2))
                break
        if expect_ready:
            assert front.port is not None, (
                f"socks front exited {proc.returncode}:\n{front.stderr()}"
            )
        yield front
    finally:
        terminate(proc)
        reader.join(timeout=10)
        record_output("webtunnel-pt socks stdout", "\n".join(stdout))
        record_output("webtunnel-pt socks stderr", front.stderr())
        print(front.stderr())


def curl(socks_port: int, url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            str(CURL_TIMEOUT_S),
            "--socks5-hostname",
            f"{LOOPBACK}:{socks_port}",
            *extra,
            url,
        ],
        capture_output=True,
        timeout=CURL_TIMEOUT_S + 10,
        check=False,
    )


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


# ---- fetch ---------------------------------------------------------------------------------


def test_fetch_gets_the_page_byte_for_byte(e2e_stack: Stack, page: Page, tmp_path: Path) -> None:
    done = run_fetch(e2e_stack, tmp_path, client_words(e2e_stack), page.url)
    err = done.stderr.decode(errors="replace")
    assert (done.returncode, done.stdout) == (ExitStatus.OK, page.body), err
    progress = [line for line in err.splitlines() if line.startswith("Bootstrapped ")]
    assert progress[-1] == BOOTSTRAPPED_DONE, err
    percents = [int(line.split()[1].rstrip("%")) for line in progress]
    assert percents == sorted(percents) and percents[0] < 100, progress
    assert (tmp_path / "cache" / "webtunnel-pt").is_dir()  # the default state directory
    assert_no_secrets(e2e_stack, err)


def test_fetch_with_output_file_and_a_warm_state_dir(
    e2e_stack: Stack, page: Page, tmp_path: Path
) -> None:
    """``-o FILE`` gets the 3 MiB page; a second run starts from the cached directory."""
    state = tmp_path / "state"
    for attempt in ("cold", "warm"):
        out = tmp_path / f"big-{attempt}"
        words = [*client_words(e2e_stack, state_dir=state), "-o", str(out)]
        done = run_fetch(e2e_stack, tmp_path, words, page.url + "big")
        err = done.stderr.decode(errors="replace")
        assert (done.returncode, done.stdout) == (ExitStatus.OK, b""), err
        assert out.read_bytes() == page.big_body
        assert BOOTSTRAPPED_DONE in err.splitlines()
        assert_no_secrets(e2e_stack, err)
    assert any(state.iterdir()), "nothing cached in --state-dir"


# ---- the SOCKS front -----------------------------------------------------------------------


@needs_curl
def test_curl_through_the_socks_front(e2e_stack: Stack, page: Page, tmp_path: Path) -> None:
    words = [*client_words(e2e_stack, state_dir=tmp_path / "state"), "--listen", f"{LOOPBACK}:0"]
    with socks_front(e2e_stack, tmp_path, words) as front:
        assert front.port is not None
        small = curl(front.port, page.url)
        big = curl(front.port, page.url + "big")
        assert (small.returncode, small.stdout) == (0, page.body), small.stderr
        assert (big.returncode, big.stdout) == (0, page.big_body), big.stderr
    assert front.proc.returncode == 0, front.stderr()
    assert BOOTSTRAPPED_DONE in front.stderr().splitlines()
    assert_no_secrets(e2e_stack, "\n".join(front.stdout) + front.stderr())


@needs_curl
def test_curl_through_the_socks_front_set_up_by_a_torrc(
    e2e_stack: Stack, page: Page, tmp_path: Path
) -> None:
    """A tor user's torrc as it is (``-f``): Bridge, DirAuthority, SocksPort, DataDirectory,
    EnforceDistinctSubnets, ClientRejectInternalAddresses; the rest is ignored."""
    port = free_port()
    lines = [
        "UseBridges 1",
        "ClientTransportPlugin webtunnel exec /usr/bin/webtunnel-pt",
        f"Bridge {e2e_stack.bridge_line()}",
        f"SocksPort {LOOPBACK}:{port}",
        "EnforceDistinctSubnets 0",
        "ClientRejectInternalAddresses 0",
        f"DataDirectory {tmp_path / 'data'}",
        *(f"DirAuthority {line}" for line in e2e_stack.network.dir_authority_lines),
    ]
    torrc = tmp_path / "torrc"
    torrc.write_text("\n".join(lines) + "\n")
    with socks_front(e2e_stack, tmp_path, ["-f", str(torrc)]) as front:
        assert front.port == port
        done = curl(port, page.url)
        assert (done.returncode, done.stdout) == (0, page.body), done.stderr
    assert (tmp_path / "data").is_dir()  # DataDirectory became the state directory
    assert_no_secrets(e2e_stack, front.stderr())


@needs_curl
def test_a_name_only_the_exit_resolves(e2e_stack: Stack, page: Page, tmp_path: Path) -> None:
    """The host name travels to the exit unresolved (``--socks5-hostname``), and the exit's
    resolver answers it: only the exits' resolv.conf names the stack's name server
    (``EXIT_ONLY_NAME``; tor's resolver reads no /etc/hosts). Nothing on this side resolves
    it: curl hands the name to the SOCKS front, which hands it to the exit."""
    name = EXIT_ONLY_NAME
    words = [*client_words(e2e_stack, state_dir=tmp_path / "state"), "--listen", f"{LOOPBACK}:0"]
    with socks_front(e2e_stack, tmp_path, words) as front:
        assert front.port is not None
        done = curl(front.port, f"http://{name}:{page.port}/")
        assert (done.returncode, done.stdout) == (0, page.body), done.stderr
    assert name in [q.lower() for q in e2e_stack.names.queries]  # the exits' name server


# ---- failing closed ------------------------------------------------------------------------


def test_fetch_with_wrong_authorities_fails_with_the_directory_status(
    e2e_stack: Stack, page: Page, tmp_path: Path
) -> None:
    words = client_words(e2e_stack, authorities=wrong_authority_lines(e2e_stack))
    done = run_fetch(e2e_stack, tmp_path, words, page.url)
    err = done.stderr.decode(errors="replace")
    assert (done.returncode, done.stdout) == (ExitStatus.DIRECTORY_NOT_VERIFIED, b""), err
    assert "bootstrap failed" in err
    assert BOOTSTRAPPED_DONE not in err
    assert_no_secrets(e2e_stack, err)


def test_socks_front_with_wrong_authorities_carries_nothing(
    e2e_stack: Stack, tmp_path: Path
) -> None:
    """It never listens: no ready line, nothing accepts on the port, the reason on stderr."""
    port = free_port()
    words = [
        *client_words(e2e_stack, authorities=wrong_authority_lines(e2e_stack)),
        "--listen",
        f"{LOOPBACK}:{port}",
    ]
    with socks_front(e2e_stack, tmp_path, words, expect_ready=False) as front:
        assert front.port is None
        assert front.proc.returncode == ExitStatus.DIRECTORY_NOT_VERIFIED, front.stderr()
    assert not any(READY.search(line) for line in front.stdout)
    err = front.stderr()
    assert re.search(r"^webtunnel-pt socks: .*(consensus|signature|authorit)", err, re.M), err
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=5).close()
    assert_no_secrets(e2e_stack, err)


def test_fetch_with_a_wrong_fingerprint_fails_with_the_bootstrap_status(
    e2e_stack: Stack, page: Page, tmp_path: Path
) -> None:
    """The channel to the bridge fails its identity check: exit status 3 (bootstrap failed:
    bridge, channel, wrong fingerprint), no body; neither fingerprint is printed."""
    wrong = e2e_stack.network.bridge_fingerprint[::-1]
    register_secret(wrong)
    bridge = e2e_stack.bridge_line(fingerprint=wrong)
    done = run_fetch(e2e_stack, tmp_path, client_words(e2e_stack, bridge=bridge), page.url)
    err = done.stderr.decode(errors="replace")
    assert (done.returncode, done.stdout) == (ExitStatus.BOOTSTRAP_FAILED, b""), err
    assert wrong not in err.upper()
    assert_no_secrets(e2e_stack, err)
