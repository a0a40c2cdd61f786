from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.certs import Pki, make_pki
from tests.support.logging_state import preserved_logging
from tests.support.pt_process import PtProcess, tor_environment
from tests.support.secrets import SecretPathServer, leaks, record_output
from tests.support.upgrade_server import ScriptedWebServer
from webtunnel_pt.logs import LOGGER_NAME


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_pt_logs() -> Iterator[None]:
    """After the whole run: no registered bridge secret in any PT output the tests saw."""
    yield
    found = leaks()
    assert not found, "bridge secrets leaked into PT output: " + "; ".join(found[:5])


class _RecordingHandler(logging.Handler):
    """Keeps every record it is handed, formatted as a library user's handler would show it
    (traceback included): in-process code has no redacting filter between it and the user."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture(autouse=True)
def record_in_process_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """What ``webtunnel_pt`` (and asyncio on its behalf) logs inside the pytest process, at
    DEBUG, goes to the store the session-end secrets check reads."""
    handler = _RecordingHandler()
    ours = logging.getLogger(LOGGER_NAME)
    asyncio_logger = logging.getLogger("asyncio")
    level = ours.level
    ours.setLevel(logging.DEBUG)
    ours.addHandler(handler)
    asyncio_logger.addHandler(handler)
    try:
        yield
    finally:
        asyncio_logger.removeHandler(handler)
        ours.removeHandler(handler)
        ours.setLevel(level)
        if handler.texts:
            record_output(f"in-process logs of {request.node.nodeid}", "\n".join(handler.texts))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_server(pki: Pki) -> Iterator[ScriptedWebServer]:
    server = SecretPathServer(pki.server_context)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_server() -> Iterator[ScriptedWebServer]:
    server = SecretPathServer(None)
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
    server = SecretPathServer(ctx)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pt_process(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PtProcess]:
    """One PT for a whole test module (starting one per test would be slow); tests take
    ``pt``, which only sees what the PT wrote after the test began."""
    state: Path = tmp_path_factory.mktemp("pt_state")
    process = PtProcess(
        tor_environment(state, SSL_CERT_FILE=str(pki.ca_file)), ["--log-level", "info"]
    )
    process.socks_port()
    yield process
    assert process.stop() == 0
    # Whatever a module threw at it, the PT never printed a traceback.
    assert b"Traceback" not in process.stderr, process.stderr.decode(errors="replace")


@pytest.fixture
def pt(pt_process: PtProcess) -> PtProcess:
    """The module's PT seen from this test's start: its log waits and output skip whatever
    earlier tests of the module made it write (start-up lines stay readable through
    ``socks_port()``)."""
    return pt_process.view()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cli.main sets up the webtunnel_pt logger tree; put it back for the tests after."""
    with preserved_logging():
        yield
