"""Bootstrap through nginx with a browser ClientHello profile (``utls=``): the pyOpenSSL
transport carries a whole Tor bootstrap and a page fetch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .client import pt_argv, running_client
from .ports import LOOPBACK
from .procs import read_text
from .stack import Page, Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("OpenSSL") is None, reason="browser profiles need pyOpenSSL"
    ),
]


@pytest.mark.parametrize("utls", ["HelloChrome_Auto", "hellofirefox_auto"])
def test_bootstrap_with_a_browser_profile(
    e2e_stack: Stack, pt_command: str, page: Page, client_dir: Path, utls: str
) -> None:
    bridge = e2e_stack.bridge_line(utls=utls)
    env = {} if e2e_stack.ca_pem is None else {"SSL_CERT_FILE": str(e2e_stack.ca_pem)}
    with running_client(
        e2e_stack.network, client_dir, [bridge], pt_argv(pt_command, client_dir), env=env
    ) as client:
        print(f"client bootstrapped with utls={utls} in {client.wait_bootstrapped():.1f}s")
        assert client.fetch(LOOPBACK, page.port) == page.body
        assert client.fetch(LOOPBACK, page.port, "/big") == page.big_body
    assert e2e_stack.secret_path not in read_text(client.pt_log_path)
    assert "not a known ClientHello template" not in read_text(client.pt_log_path)
