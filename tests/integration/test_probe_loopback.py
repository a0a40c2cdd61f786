"""`webtunnel-pt probe` over loopback sockets (no Tor): exit statuses at the dial layers,
redaction, JSON output, lyrebird's flags after the subcommand, and what managed mode imports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.e2e.ports import free_port
from webtunnel_pt import cli
from webtunnel_pt.probe.report import EXIT_CODES

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"


pytestmark = pytest.mark.usefixtures("restore_logging")


def probe(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    code = cli.main(["probe", *words])
    return code, capsys.readouterr().out


def test_tcp_failure_exit_code_and_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    line = f"Bridge webtunnel 192.0.2.1:443 {FP} url=https://127.0.0.1:{free_port()}/{SECRET}"
    code, text = probe(capsys, line)
    assert code == EXIT_CODES["tcp"]
    assert "FAIL TCP" in text and "ok   DNS" in text and "--   descriptor" in text
    assert SECRET not in text and FP not in text


def test_json_output_and_unsafe_logging(capsys: pytest.CaptureFixture[str]) -> None:
    line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{free_port()}/{SECRET}"
    code, text = probe(capsys, line, "--json", "--timeout", "5")
    assert code == EXIT_CODES["tcp"]
    doc = json.loads(text)
    assert doc["exit_code"] == EXIT_CODES["tcp"] and doc["ok"] is False
    statuses = {layer["layer"]: layer["status"] for layer in doc["layers"]}
    assert statuses["tcp"] == "failed" and statuses["tls"] == "skipped"
    assert SECRET not in text
    _, text = probe(capsys, line, "--unsafe-logging")
    assert SECRET in text


@pytest.mark.parametrize(
    "words",
    [
        ("{line}", "-unsafeLogging=true"),
        ("-unsafeLogging=true", "{line}"),
        ("-unsafeLogging", "{line}"),  # a boolean never takes the next word as its value
        ("{line}", "--unsafeLogging"),
    ],
)
def test_lyrebird_unsafe_logging_after_the_subcommand(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{free_port()}/{SECRET}"
    code, text = probe(capsys, *(word.format(line=line) for word in words))
    assert code == EXIT_CODES["tcp"]
    assert SECRET in text


def test_flags_before_the_subcommand_reach_it(capsys: pytest.CaptureFixture[str]) -> None:
    line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{free_port()}/{SECRET}"
    code = cli.main(["-unsafeLogging=true", "-logLevel", "debug", "probe", line])
    captured = capsys.readouterr()
    assert code == EXIT_CODES["tcp"]
    assert SECRET in captured.out
    assert "[DEBUG] webtunnel_pt.webtunnel.dial:" in captured.err  # -logLevel reached logging


def test_unsafe_logging_false_keeps_scrubbing(capsys: pytest.CaptureFixture[str]) -> None:
    line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{free_port()}/{SECRET}"
    code, text = probe(capsys, "-unsafeLogging=true", line, "-unsafeLogging=false")
    assert code == EXIT_CODES["tcp"]
    assert SECRET not in text and "[scrubbed]" in text


def test_managed_mode_does_not_import_the_link_package() -> None:
    code = (
        "import sys, webtunnel_pt.cli, webtunnel_pt.pt.managed;"
        "webtunnel_pt.cli.build_parser();"
        "print(any(m.startswith(('webtunnel_pt.tor', 'webtunnel_pt.probe', 'cryptography'))"
        " for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_timeout_during_upgrade_is_reported_at_the_upgrade_layer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that accepts TCP and never answers the upgrade: the probe's deadline runs out
    while dialing, and the report must name the upgrade, not DNS."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the TCP handshake; nobody ever answers
        port = silent.getsockname()[1]
        line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{port}/{SECRET}"
        code, text = probe(capsys, line, "--json", "--timeout", "0.5")
    doc = json.loads(text)
    statuses = {layer["layer"]: layer["status"] for layer in doc["layers"]}
    assert statuses["dns"] == statuses["tcp"] == "ok", doc
    assert statuses["tls"] == "skipped" and statuses["upgrade"] == "failed", doc
    assert code == EXIT_CODES["upgrade"]
    assert SECRET not in text


def test_timeout_during_tls_is_reported_at_the_tls_layer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Accepts TCP, never answers the ClientHello: the outer TLS layer fails at the deadline."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        line = f"webtunnel 192.0.2.1:443 {FP} url=https://127.0.0.1:{port}/{SECRET}"
        code, text = probe(capsys, line, "--json", "--timeout", "0.5")
    doc = json.loads(text)
    failed = [layer for layer in doc["layers"] if layer["status"] == "failed"]
    assert [layer["layer"] for layer in failed] == ["tls"], doc
    assert "during TLS handshake" in failed[0]["error"]
    assert code == EXIT_CODES["tls"]
