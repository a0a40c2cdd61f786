"""`webtunnel-pt probe --file` against the private Tor network's nginx-fronted bridge: one list
with a good bridge, a wrong fingerprint, a wrong path, a malformed line, an unreachable host
and a duplicate of the good line. Each result, the exit status with and without --any, the JSON
lines, the table, and redaction in both.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.support.pt_process import pt_command
from webtunnel_pt.probe.report import EXIT_CODES, EXIT_IDENTITY, EXIT_OK, EXIT_SOME_FAILED

from .ports import free_port
from .stack import Stack, probe_exits
from .test_e2e_probe import directory_args

pytestmark = pytest.mark.e2e

#: Five probes at the default concurrency, each bounded by --timeout below.
RUN_TIMEOUT_S = 60.0


def bridge_file(stack: Stack) -> tuple[str, dict[str, str]]:
    """The list, and the secrets that must not show: the wrong path and fingerprint too."""
    wrong_fp = stack.network.bridge_fingerprint[::-1]
    wrong_path = "x" + stack.secret_path[1:]
    unreachable = f"https://127.0.0.1:{free_port()}/{stack.secret_path}"
    lines = [
        "# e2e bridges",
        "Bridge " + stack.bridge_line(),  # 2: good
        "",
        stack.bridge_line(fingerprint=wrong_fp),  # 4: wrong fingerprint
        stack.bridge_line(stack.url(wrong_path)),  # 5: wrong path
        f"webtunnel 127.0.0.1:443 url={stack.url()}",  # 6: malformed (no fingerprint)
        stack.bridge_line(unreachable),  # 7: unreachable
        "  " + stack.bridge_line(),  # 8: the good bridge again
    ]
    secrets = {
        "path": stack.secret_path,
        "fingerprint": stack.network.bridge_fingerprint,
        "wrong path": wrong_path,
        "wrong fingerprint": wrong_fp,
    }
    return "\n".join(lines) + "\n", secrets


def run_file(stack: Stack, listing: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SSL_CERT_FILE=str(stack.ca_pem))
    env.pop("TOR_PT_MANAGED_TRANSPORT_VER", None)
    argv = [
        *pt_command(),
        "probe",
        "--file",
        "-",
        "--timeout",
        "20",
        *directory_args(stack),
        *extra,
    ]
    done = subprocess.run(
        argv,
        input=listing,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    print(done.stdout, done.stderr, sep="\n")
    return done


def assert_no_secrets(text: str, secrets: dict[str, str]) -> None:
    for name, secret in secrets.items():
        assert secret.lower() not in text.lower(), name


def by_line(stdout: str) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["type"] for r in records] == ["bridge"] * 6 + ["summary"]
    return {r["line"]: r for r in records[:-1]}, records[-1]


def test_probe_file_json(e2e_stack: Stack) -> None:
    listing, secrets = bridge_file(e2e_stack)
    done = run_file(e2e_stack, listing, "--json")
    assert done.returncode == EXIT_SOME_FAILED
    assert [json.loads(line)["line"] for line in done.stdout.splitlines()[:-1]] == [
        2,
        4,
        5,
        6,
        7,
        8,
    ]
    lines, summary = by_line(done.stdout)
    good = lines[2]
    assert good["ok"] is True and good["exit_code"] == EXIT_OK
    assert all(layer["status"] == "ok" for layer in good["layers"])
    assert good["failed_layer"] is None and good["malformed"] is False
    assert (lines[4]["exit_code"], lines[4]["failed_layer"]) == (EXIT_IDENTITY, "channel")
    assert "fingerprint" in lines[4]["error"]
    assert (lines[5]["exit_code"], lines[5]["failed_layer"]) == (EXIT_CODES["upgrade"], "upgrade")
    assert "404" in lines[5]["error"]
    assert lines[6]["malformed"] is True and lines[6]["exit_code"] == 2
    assert "fingerprint" in lines[6]["error"]
    assert (lines[7]["exit_code"], lines[7]["failed_layer"]) == (EXIT_CODES["tcp"], "tcp")
    assert lines[8]["duplicate_of"] == 2 and lines[8]["ok"] is True
    assert lines[8]["layers"] == good["layers"]
    assert summary == summary | {
        "lines": 6,
        "ok": 2,
        "failed": 4,
        "malformed": 1,
        "duplicates": 1,
        "bridges_probed": 4,
        "exit_code": EXIT_SOME_FAILED,
    }
    assert_no_secrets(done.stdout + done.stderr, secrets)

    with_any = run_file(e2e_stack, listing, "--json", "--any", "--unordered")
    assert with_any.returncode == EXIT_OK
    lines, summary = by_line(with_any.stdout)
    assert sorted(lines) == [2, 4, 5, 6, 7, 8]
    assert summary["exit_code"] == EXIT_OK and summary["ok"] == 2
    assert_no_secrets(with_any.stdout + with_any.stderr, secrets)


def test_probe_file_table(e2e_stack: Stack) -> None:
    listing, secrets = bridge_file(e2e_stack)
    done = run_file(e2e_stack, listing)
    assert done.returncode == EXIT_SOME_FAILED
    out = done.stdout.splitlines()
    live = [line for line in out if line.startswith("[")]
    assert len(live) == 6
    assert live[0].startswith("[1/6] line 6: BAD LINE")  # known before any probe finishes
    table = out[out.index("") + 1 : -2]
    rows = {int(row.split()[0]): row for row in table[1:]}
    assert sorted(rows) == [2, 4, 5, 6, 7, 8]
    assert " ok " in rows[2] and "https://127.0.0.1:" in rows[2]
    net = e2e_stack.network
    listed = len(net.authorities) + len(net.relays)
    assert f"3/3, {listed} relays, {probe_exits(e2e_stack)}" in rows[2]  # the CONSENSUS column
    assert "FAILED" in rows[4] and "channel" in rows[4]
    assert "FAILED" in rows[5] and "upgrade" in rows[5] and "404" in rows[5]
    assert "BAD LINE" in rows[6]
    assert "FAILED" in rows[7] and "TCP" in rows[7]
    assert " ok " in rows[8] and "(same bridge as line 2)" in rows[8]
    assert out[-1].startswith("6 bridge lines: 2 ok, 4 failed (1 malformed); 4 bridges probed")
    assert out[-1].endswith(f"exit status {EXIT_SOME_FAILED}")
    assert_no_secrets(done.stdout + done.stderr, secrets)
    assert "[scrubbed]" in rows[2]

    unsafe = run_file(e2e_stack, listing, "--any", "--unsafe-logging")
    assert unsafe.returncode == EXIT_OK
    assert secrets["path"] in unsafe.stdout and secrets["fingerprint"] in unsafe.stdout
