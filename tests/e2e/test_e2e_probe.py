"""`webtunnel-pt probe` against the nginx-fronted bridge of the private Tor network: every layer
succeeds with the right bridge line; a wrong fingerprint and a wrong secret path stop at the
right layer with their documented exit statuses; secrets stay out of the output. The probes
trust the network's own authorities (``--dir-authority``, :func:`directory_args`) so that the
consensus layer passes; tests/e2e/test_e2e_directory.py looks at that layer closely.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.pt_process import pt_command
from webtunnel_pt.probe.report import EXIT_CODES, EXIT_IDENTITY, LAYERS

from .stack import Stack

pytestmark = pytest.mark.e2e

PROBE_TIMEOUT_S = 30.0


def directory_args(stack: Stack, state_dir: Path | None = None) -> list[str]:
    """``--dir-authority`` for each of the network's authorities, and a ``--state-dir`` (by
    default one shared by the session's probes, under the stack's directory)."""
    words = [f"--dir-authority={line}" for line in stack.network.dir_authority_lines]
    state = state_dir if state_dir is not None else stack.base_dir / "probe-state"
    return [*words, "--state-dir", str(state)]


def run_probe(
    stack: Stack, bridge: str, *extra: str, directory: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``probe`` as a separate process; ``directory`` are the directory options (default:
    :func:`directory_args`)."""
    env = dict(os.environ, SSL_CERT_FILE=str(stack.ca_pem))
    env.pop("TOR_PT_MANAGED_TRANSPORT_VER", None)
    more = directory_args(stack) if directory is None else directory
    argv = [*pt_command(), "probe", bridge, "--timeout", "20", *more, *extra]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT_S, check=False
    )
    print(done.stdout, done.stderr, sep="\n")
    return done


def layers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["layer"]: layer for layer in doc["layers"]}


def assert_no_secrets(stack: Stack, text: str) -> None:
    assert stack.secret_path not in text
    assert stack.network.bridge_fingerprint not in text.upper()


def test_probe_succeeds(e2e_stack: Stack) -> None:
    done = run_probe(e2e_stack, "Bridge " + e2e_stack.bridge_line(), "--json")
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    found = layers(doc)
    assert [key for key, _, _ in LAYERS] == [layer["layer"] for layer in doc["layers"]]
    assert all(layer["status"] == "ok" for layer in doc["layers"]), doc
    assert found["upgrade"]["details"]["server"].startswith("nginx")
    assert found["channel"]["details"]["link_protocol"] == 5
    assert abs(found["channel"]["details"]["clock_skew_seconds"]) < 5
    descriptor = found["descriptor"]["details"]
    assert descriptor["nickname"] == e2e_stack.network.bridge.nickname
    assert descriptor["tor_version"].startswith("0.4.")
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)


def test_probe_human_output(e2e_stack: Stack) -> None:
    done = run_probe(e2e_stack, e2e_stack.bridge_line())
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    for _, title, _ in LAYERS:
        assert any(line.startswith(f"  ok   {title} ") for line in lines), title
    assert lines[-1].startswith("result: OK")
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)


def test_probe_unsafe_logging_shows_secrets(e2e_stack: Stack) -> None:
    done = run_probe(e2e_stack, e2e_stack.bridge_line(), "--unsafe-logging")
    assert done.returncode == 0
    assert e2e_stack.secret_path in done.stdout
    assert e2e_stack.network.bridge_fingerprint in done.stdout


def test_probe_wrong_fingerprint(e2e_stack: Stack) -> None:
    wrong = e2e_stack.network.bridge_fingerprint[::-1]
    done = run_probe(e2e_stack, e2e_stack.bridge_line(fingerprint=wrong), "--json")
    assert done.returncode == EXIT_IDENTITY
    found = layers(json.loads(done.stdout))
    assert found["inner_tls"]["status"] == "ok"
    assert found["channel"]["status"] == "failed"
    assert "fingerprint" in found["channel"]["error"]
    assert found["create_fast"]["status"] == "skipped"
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)
    assert wrong not in done.stdout


def test_probe_wrong_path(e2e_stack: Stack) -> None:
    url = e2e_stack.url("x" + e2e_stack.secret_path[1:])
    done = run_probe(e2e_stack, e2e_stack.bridge_line(url), "--json")
    assert done.returncode == EXIT_CODES["upgrade"]
    found = layers(json.loads(done.stdout))
    assert found["tls"]["status"] == "ok"
    assert found["upgrade"]["status"] == "failed"
    assert "404" in found["upgrade"]["error"]
    assert "x" + e2e_stack.secret_path[1:] not in done.stdout
