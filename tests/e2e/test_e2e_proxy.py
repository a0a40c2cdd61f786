"""tor with `Socks5Proxy` set bootstraps through our PT, a real SOCKS5 proxy (microsocks) and
the nginx-fronted bridge: tor hands the proxy to the PT as `TOR_PT_PROXY`, the PT answers
`PROXY DONE` (else tor kills it) and sends every bridge connection through the proxy.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .client import pt_argv, running_client
from .ports import LOOPBACK, free_port, wait_accepting
from .procs import Child, ProcessGroup, foreign_sockets, read_text
from .stack import Page, Stack

pytestmark = pytest.mark.e2e

PROXY_START_TIMEOUT_S = 10.0


@pytest.fixture
def microsocks(tmp_path: Path) -> Iterator[tuple[int, Child]]:
    if shutil.which("microsocks") is None:
        pytest.skip("microsocks is not installed (apt-get install microsocks)")
    port = free_port()
    group = ProcessGroup()
    child = group.start(
        "microsocks",
        ["microsocks", "-i", LOOPBACK, "-p", str(port)],
        log_path=tmp_path / "microsocks.log",
    )
    try:
        wait_accepting(port, PROXY_START_TIMEOUT_S, "microsocks", alive=child.check_alive)
        yield port, child
    finally:
        group.stop_all()


def test_bootstrap_through_socks5_proxy(
    e2e_stack: Stack,
    pt_command: str,
    page: Page,
    client_dir: Path,
    microsocks: tuple[int, Child],
) -> None:
    proxy_port, proxy = microsocks
    with running_client(
        e2e_stack.network,
        client_dir,
        [e2e_stack.bridge_line()],
        pt_argv(pt_command, client_dir),
        env={"SSL_CERT_FILE": str(e2e_stack.ca_pem)},
        torrc_lines=[f"Socks5Proxy {LOOPBACK}:{proxy_port}"],
    ) as client:
        print(f"client bootstrapped through the proxy in {client.wait_bootstrapped():.1f}s")
        assert client.fetch(LOOPBACK, page.port) == page.body
        pids = [*client.processes.pids(), proxy.pid]
        assert foreign_sockets(pids) == []
    pt_log = read_text(client.pt_log_path)
    via = rf"tunnel up in \d+ ms \({re.escape(LOOPBACK)}:{e2e_stack.nginx.port} via socks5 proxy "
    assert re.search(via + rf"{re.escape(LOOPBACK)}:{proxy_port}\)", pt_log), pt_log[-2000:]
    assert "bridges are reached through the socks5 proxy" in pt_log
    assert e2e_stack.secret_path not in read_text(client.log_path)
    assert e2e_stack.secret_path not in pt_log
