"""Session fixtures for the end-to-end suite: one private Tor network + nginx + webtunnel
server for the whole session, a local page to fetch, and the PT command.

Skipped (with the reason) only when `tor`, `tor-gencert` or `nginx` is not installed; CI
installs them, so there the suite must run.

A test module that disturbs the shared network for longer than its own teardown can repair
sets `E2E_RUN_LAST = True` and runs after every other test of the session (in file order
among such modules): test_e2e_circuits kills an exit, and though it restarts it, the relays
that tried to reach the dead exit refuse to connect to it for 60 s more (tor's
OR_CONNECT_FAILURE_LIFETIME), which no tor option shortens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from webtunnel_pt.outbound import tls_profiles

from .client import PT_ENV_VAR, PT_NAME, find_pt
from .stack import Page, Stack, missing_binaries, running_stack, serving_page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def runs_last(item: pytest.Item) -> bool:
        module = getattr(item, "module", None)
        return bool(getattr(module, "E2E_RUN_LAST", False))

    items.sort(key=runs_last)  # stable: the order within each group is kept


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"e2e needs {', '.join(missing)} on PATH (apt-get install tor nginx-light)")
    with running_stack(tmp_path_factory.mktemp("e2e")) as stack:
        yield stack
        leaks = stack.foreign_sockets()
        net = stack.network
        if leaks and net.resolver_sockets_only(leaks):
            # A module that made the exits resolve names (and did not restart them itself, as
            # test_e2e_circuits does) leaves their DNS socket: explained, so restart and audit.
            net.restart(*(n.nickname for n in net.exits))
            leaks = stack.foreign_sockets()
        assert not leaks, f"sockets left loopback during the session: {leaks}"


@pytest.fixture(scope="session")
def pt_command() -> str:
    pt = find_pt()
    if pt is None:
        pytest.fail(f"no PT: set {PT_ENV_VAR} or install the package (`{PT_NAME}` script)")
    if not os.access(pt, os.X_OK):
        pytest.fail(f"PT {pt} is not an executable file")
    return pt


@pytest.fixture(scope="session")
def page() -> Iterator[Page]:
    with serving_page() as served:
        yield served


@pytest.fixture
def client_dir(tmp_path: Path) -> Path:
    return tmp_path / "client"


def _forget_tls_contexts() -> None:
    for name in dir(tls_profiles):
        cache = getattr(tls_profiles, name)
        if name.endswith("_CONTEXTS") and isinstance(cache, dict):
            cache.clear()


@pytest.fixture
def trust_stack_ca(e2e_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process dials (the built-in client, open_tunnel) trust the stack's test CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(e2e_stack.ca_pem))
    _forget_tls_contexts()  # contexts read SSL_CERT_FILE when they are made
    yield
    _forget_tls_contexts()
