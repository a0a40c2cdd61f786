"""A bridge behind an nginx that routes by `Host` (tests/e2e/nginx.py: the secret path exists
only on the `bridge.test` virtual host; `decoy.test` is a plain site on the same port and
certificate). With lyrebird 0.8's reading of the bridge line, `servername=decoy.test` is the
SNI only and `Host` stays the URL host, so the bridge is reached; with the standalone 0.0.2
client's reading (`Host` = servername) it would land on the decoy and get 404.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from webtunnel_pt.errors import UpgradeRejected
from webtunnel_pt.webtunnel.client import open_tunnel
from webtunnel_pt.webtunnel.dial import DialOptions

from .client import pt_argv, running_client
from .nginx import DECOY_NAME, TLS_NAME
from .ports import LOOPBACK
from .procs import read_text
from .stack import Page, Stack

pytestmark = pytest.mark.e2e

DIAL_TIMEOUT_S = 20.0


def _line(stack: Stack, url_host: str, **args: str) -> str:
    return stack.bridge_line(
        stack.url(host=url_host), addr=f"{LOOPBACK}:{stack.nginx.port}", **args
    )


def _upgrade_status(line: str) -> int:
    """Dial nginx in-process (no tor): 101 when the upgrade is accepted, else nginx's status."""

    async def main() -> int:
        try:
            tunnel = await open_tunnel(line, DialOptions(timeout_s=DIAL_TIMEOUT_S))
        except UpgradeRejected as exc:
            return exc.status
        tunnel.writer.transport.abort()
        return 101

    return asyncio.run(main())


@pytest.mark.usefixtures("trust_stack_ca")
def test_nginx_answers_the_secret_path_only_on_the_bridge_host(e2e_stack: Stack) -> None:
    """The routing the next test depends on: by Host, whatever the SNI."""
    assert _upgrade_status(_line(e2e_stack, TLS_NAME)) == 101
    assert _upgrade_status(_line(e2e_stack, DECOY_NAME)) == 404
    # SNI decoy.test, Host bridge.test: nginx routes by Host.
    assert _upgrade_status(_line(e2e_stack, TLS_NAME, servername=DECOY_NAME)) == 101
    # SNI bridge.test, Host decoy.test: the decoy answers.
    assert _upgrade_status(_line(e2e_stack, DECOY_NAME, servername=TLS_NAME)) == 404


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"servername": DECOY_NAME}, id="servername-is-sni-only"),
        pytest.param(
            {"servername": "unlisted.test", "utls-authority": TLS_NAME}, id="utls-authority"
        ),
    ],
)
def test_host_routed_bridge_bootstraps(
    e2e_stack: Stack, pt_command: str, page: Page, client_dir: Path, args: dict[str, str]
) -> None:
    """tor through the PT: SNI as the bridge line says, Host = the URL host (bridge.test)."""
    bridge = _line(e2e_stack, TLS_NAME, **args)
    env = {"SSL_CERT_FILE": str(e2e_stack.ca_pem)}
    with running_client(
        e2e_stack.network, client_dir, [bridge], pt_argv(pt_command, client_dir), env=env
    ) as client:
        print(f"client bootstrapped in {client.wait_bootstrapped():.1f}s")
        assert client.fetch(LOOPBACK, page.port) == page.body
    assert e2e_stack.secret_path not in read_text(client.pt_log_path)
