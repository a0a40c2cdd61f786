from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.certs import Pki, make_pki
from tests.support.pt_process import PtProcess, tor_environment
from tests.support.secrets import leaks
from tests.support.upgrade_server import ScriptedWebServer


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_pt_logs() -> Iterator[None]:
    """After the whole run: no registered bridge secret in any PT output the tests saw."""
    yield
    found = leaks()
    assert not found, "bridge secrets leaked into PT output: " + "; ".join(found[:5])


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_server(pki: Pki) -> Iterator[ScriptedWebServer]:
    server = ScriptedWebServer(pki.server_context)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_server() -> Iterator[ScriptedWebServer]:
    server = ScriptedWebServer(None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def untrusted_server() -> Iterator[ScriptedWebServer]:
    """A server whose certificate comes from a CA the PT does not trust."""
    other_ca = trustme.CA()
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ca.issue_cert("bridge.test", "127.0.0.1").configure_cert(ctx)
    server = ScriptedWebServer(ctx)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pt(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PtProcess]:
    state: Path = tmp_path_factory.mktemp("pt_state")
    process = PtProcess(
        tor_environment(state, SSL_CERT_FILE=str(pki.ca_file)), ["--log-level", "info"]
    )
    process.socks_port()
    yield process
    assert process.stop() == 0
    # Whatever a module threw at it, the PT never printed a traceback.
    assert b"Traceback" not in process.stderr, process.stderr.decode(errors="replace")
