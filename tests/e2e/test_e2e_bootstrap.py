"""A real tor client bootstraps through our PT, nginx and a WebTunnel server to a private
Tor network on 127.0.0.1 and fetches a page; broken configurations must not bootstrap and
must not leak the secret path into tor's or the PT's log.

The failure patterns are tor's own words (tor 0.4.9.11), plus the PT's LOG line as tor
relays it: `Managed proxy "<argv0>": <message>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from .client import TorClient, pt_argv, running_client
from .network import synthetic_bridge_address
from .nginx import TLS_NAME
from .ports import LOOPBACK, free_port
from .procs import foreign_sockets, inet_sockets, is_running, read_text
from .readiness import BOOTSTRAPPED_100
from .stack import Page, Stack

pytestmark = pytest.mark.e2e

FAILURE_TIMEOUT_S = 60.0
PT_LOG = r'\[warn\] Managed proxy "[^"]+": connection \d+ to \S+ failed: '
# tor's complaint when the PT answers the SOCKS CONNECT with a failure reply
PROXY_REFUSED = r"\[warn\] Proxy Client: unable to connect OR connection \(handshaking \(proxy\)\)"
GENERAL_FAILURE = PROXY_REFUSED + r'.*\("general SOCKS server failure"\)'
CONNECTION_REFUSED = PROXY_REFUSED + r'.*\("Connection refused"\)'


def _env(ca_pem: Path | None) -> dict[str, str]:
    return {} if ca_pem is None else {"SSL_CERT_FILE": str(ca_pem)}


def _assert_secret_not_logged(stack: Stack, client: TorClient) -> None:
    for log in (client.log_path, client.pt_log_path):
        assert stack.secret_path not in read_text(log), f"secret path leaked into {log}"


# ---- success ------------------------------------------------------------------------------


def test_bootstrap_and_fetch(
    e2e_stack: Stack, pt_command: str, page: Page, client_dir: Path
) -> None:
    """The bridge line a user would paste; also a 3 MiB download and the loopback audit."""
    bridge = e2e_stack.bridge_line()
    with running_client(
        e2e_stack.network,
        client_dir,
        [bridge],
        pt_argv(pt_command, client_dir),
        env=_env(e2e_stack.ca_pem),
    ) as client:
        print(f"client bootstrapped in {client.wait_bootstrapped():.1f}s")
        pt_pids = client.pt_pids()
        assert pt_pids, "tor did not launch the PT"
        assert client.fetch(LOOPBACK, page.port) == page.body
        assert client.fetch(LOOPBACK, page.port, "/big") == page.big_body
        pids = e2e_stack.network.processes.pids() + client.processes.pids()
        assert inet_sockets(pt_pids), "audit sees no socket of the PT"
        assert foreign_sockets(pids) == []
    assert not any(map(is_running, pt_pids)), "PT outlived the harness"
    assert client.processes.stragglers == [], "PT did not exit by itself when tor stopped"
    _assert_secret_not_logged(e2e_stack, client)


def _variant_bridge_line(stack: Stack, variant: str) -> str:
    if variant == "synthetic-ipv6-address":  # the form real bridge lines have
        return stack.bridge_line(address=synthetic_bridge_address(stack.url()))
    if variant == "servername-and-addr":  # bridge.test is never resolved
        return stack.bridge_line(
            stack.url(host=TLS_NAME),
            servername=TLS_NAME,
            addr=f"{LOOPBACK}:{stack.nginx.port}",
        )
    if variant == "plain-http-no-proxy":  # http:// straight to the webtunnel server
        return stack.bridge_line(f"http://{LOOPBACK}:{stack.webtunnel_port}/{stack.secret_path}")
    if variant == "unknown-args":  # lyrebird-only / future keys are ignored
        return stack.bridge_line(utls="HelloChrome_Auto", future="1")
    raise AssertionError(variant)


@pytest.mark.parametrize(
    "variant",
    ["synthetic-ipv6-address", "servername-and-addr", "plain-http-no-proxy", "unknown-args"],
)
def test_bootstrap_variants(
    e2e_stack: Stack, pt_command: str, page: Page, client_dir: Path, variant: str
) -> None:
    bridge = _variant_bridge_line(e2e_stack, variant)
    with running_client(
        e2e_stack.network,
        client_dir,
        [bridge],
        pt_argv(pt_command, client_dir),
        env=_env(e2e_stack.ca_pem),
    ) as client:
        client.wait_bootstrapped()
        assert client.fetch(LOOPBACK, page.port) == page.body
    _assert_secret_not_logged(e2e_stack, client)


# ---- failures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A client configuration that must fail, and the log lines that prove how."""

    tor_says: str  # regex over tor's log
    pt_says: str | None = None  # regex for the PT's LOG line, after PT_LOG
    ca_pem: str = "test"  # "test", "other" or "none"
    url: str | None = None  # default: the working URL
    fingerprint: str | None = None  # default: the bridge's


def _run_broken(stack: Stack, pt: str, client_dir: Path, case: Broken) -> str:
    ca = {"test": stack.ca_pem, "other": stack.other_ca.ca_pem, "none": None}[case.ca_pem]
    bridge = stack.bridge_line(
        case.url, **({"fingerprint": case.fingerprint} if case.fingerprint else {})
    )
    with running_client(
        stack.network, client_dir, [bridge], pt_argv(pt, client_dir), env=_env(ca)
    ) as client:
        line = client.wait_log(case.tor_says + ".*", FAILURE_TIMEOUT_S).group(0)
        if case.pt_says is not None:
            client.wait_log(PT_LOG + case.pt_says, FAILURE_TIMEOUT_S)
        assert BOOTSTRAPPED_100 not in client.log_text()
    _assert_secret_not_logged(stack, client)
    return line


def test_wrong_secret_path(e2e_stack: Stack, pt_command: str, client_dir: Path) -> None:
    url = e2e_stack.url("x" + e2e_stack.secret_path[1:])
    case = Broken(GENERAL_FAILURE, pt_says=r".*404", url=url)
    print(_run_broken(e2e_stack, pt_command, client_dir, case))


def test_wrong_fingerprint(e2e_stack: Stack, pt_command: str, client_dir: Path) -> None:
    """The tunnel works, so tor reaches the bridge and sees its real identity."""
    real = e2e_stack.network.bridge_fingerprint
    wrong = real[::-1]
    case = Broken(
        rf"\[warn\] Tried connecting to router at {re.escape(LOOPBACK)}:9 .*RSA_ID={wrong}, "
        rf"but RSA \+ ed25519 identity keys were not as expected: wanted {wrong} "
        rf".* but got {real} ",
        fingerprint=wrong,
    )
    print(_run_broken(e2e_stack, pt_command, client_dir, case))


def test_nginx_down(e2e_stack: Stack, pt_command: str, client_dir: Path) -> None:
    url = f"https://{LOOPBACK}:{free_port()}/{e2e_stack.secret_path}"
    case = Broken(CONNECTION_REFUSED, pt_says=r".*[Cc]onnection refused", url=url)
    print(_run_broken(e2e_stack, pt_command, client_dir, case))


@pytest.mark.parametrize("ca_pem", ["other", "none"])
def test_untrusted_certificate(
    e2e_stack: Stack, pt_command: str, client_dir: Path, ca_pem: str
) -> None:
    case = Broken(GENERAL_FAILURE, pt_says=r".*certificate", ca_pem=ca_pem)
    print(_run_broken(e2e_stack, pt_command, client_dir, case))
