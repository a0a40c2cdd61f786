"""link.probe: failure classification, output format, exit codes, redaction (no network;
the full probe runs in tests/e2e/test_e2e_probe.py)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from typing import Any

import pytest

from tests.support.link_capture import CAPTURED_AT, DESCRIPTOR_BYTES, FINGERPRINT, relay_identity
from webtunnel_pt import cli
from webtunnel_pt.errors import (
    BridgeUnreachable,
    HandshakeTimeout,
    TlsError,
    UpgradeError,
    UpgradeRejected,
)
from webtunnel_pt.probe import run as probe
from webtunnel_pt.probe.run import (
    EXIT_CODES,
    EXIT_IDENTITY,
    LayerFailed,
    LayerResult,
    ProbeReport,
    dial_failure_layer,
    format_layer,
    format_verdict,
)
from webtunnel_pt.tor.directory import DirResponse
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"


@pytest.mark.parametrize(
    ("exc", "layer"),
    [
        (BridgeUnreachable("could not resolve x.example: Name or service not known"), "dns"),
        (
            BridgeUnreachable("DNS for x.example gave no usable public address (skipped: none)"),
            "dns",
        ),
        (BridgeUnreachable("TCP connect to 127.0.0.1:1 failed: Connection refused"), "tcp"),
        (HandshakeTimeout("bridge dial timed out after 3 s during DNS"), "dns"),
        (HandshakeTimeout("bridge dial timed out after 3 s during TCP connect"), "tcp"),
        (HandshakeTimeout("bridge dial timed out after 3 s during TLS handshake"), "tls"),
        (HandshakeTimeout("bridge dial timed out after 3 s during upgrade"), "upgrade"),
        (BridgeUnreachable("connection lost during upgrade: ECONNRESET"), "upgrade"),
        (TlsError("TLS certificate of x not accepted"), "tls"),
        (UpgradeRejected(404, "Not Found"), "upgrade"),
        (UpgradeError("invalid HTTP response"), "upgrade"),
    ],
)
def test_dial_failure_layer(exc: Exception, layer: str) -> None:
    assert dial_failure_layer(exc) == layer


def test_exit_codes_are_distinct() -> None:
    codes = list(EXIT_CODES.values())
    assert len(set(codes)) == len(codes)
    assert EXIT_CODES["identity"] == EXIT_IDENTITY == 16
    assert all(code not in (0, 1, 2) for code in codes)


def test_format_layer_lines() -> None:
    ok = LayerResult("inner_tls", "ok", 0.0123, "TLSv1.3 TLS_AES_256_GCM_SHA384")
    assert format_layer(ok) == "  ok   inner TLS      12.3 ms  TLSv1.3 TLS_AES_256_GCM_SHA384"
    failed = LayerResult("channel", "failed", 0.5, error="relay RSA identity does not match")
    assert "FAIL channel" in format_layer(failed) and "does not match" in format_layer(failed)
    assert format_layer(LayerResult("descriptor", "skipped")) == "  --   descriptor"


def test_verdicts() -> None:
    report = ProbeReport("https://x/[scrubbed]", total_seconds=0.25)
    assert format_verdict(report).startswith("result: OK")
    report.exit_code = EXIT_IDENTITY
    report.layers.append(LayerResult("channel", "failed", 0.1, error="x"))
    assert "channel (identity mismatch), exit status 16" in format_verdict(report)


def test_report_json_shape() -> None:
    report = ProbeReport("t", [LayerResult("dns", "ok", 0.001, "127.0.0.1", {"addresses": []})])
    doc = report.to_json()
    assert doc["ok"] is True and doc["layers"][0]["layer"] == "dns"
    json.dumps(doc)


def test_fingerprint_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", f"webtunnel 192.0.2.1:443 url=https://x.example/{SECRET}"]) == 2
    assert "fingerprint" in capsys.readouterr().err


def test_bad_bridge_line_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", f"Bridge webtunnel 192.0.2.1:443 {FP} url=ftp://x/{SECRET}"]) == 2
    assert SECRET not in capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tcp_failure_exit_code_and_redaction() -> None:
    line = f"Bridge webtunnel 192.0.2.1:443 {FP} url=https://127.0.0.1:{closed_port()}/{SECRET}"
    out = io.StringIO()
    assert probe.main([line], stdout=out) == EXIT_CODES["tcp"]
    text = out.getvalue()
    assert "FAIL TCP" in text and "ok   DNS" in text and "--   descriptor" in text
    assert SECRET not in text and FP not in text


def test_json_output_and_unsafe_logging() -> None:
    line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{closed_port()}/{SECRET}"
    out = io.StringIO()
    assert probe.main([line, "--json", "--timeout", "5"], stdout=out) == EXIT_CODES["tcp"]
    doc = json.loads(out.getvalue())
    assert doc["exit_code"] == EXIT_CODES["tcp"] and doc["ok"] is False
    statuses = {layer["layer"]: layer["status"] for layer in doc["layers"]}
    assert statuses["tcp"] == "failed" and statuses["tls"] == "skipped"
    assert SECRET not in out.getvalue()
    out = io.StringIO()
    probe.main([line, "--unsafe-logging"], stdout=out)
    assert SECRET in out.getvalue()


def test_managed_mode_does_not_import_the_link_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, webtunnel_pt.cli, webtunnel_pt.pt.managed;"
        "print(any(m.startswith(('webtunnel_pt.tor', 'cryptography')) for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_timeout_during_upgrade_is_reported_at_the_upgrade_layer() -> None:
    """A server that accepts TCP and never answers the upgrade: the probe's deadline runs out
    while dialing, and the report must name the upgrade, not DNS."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the TCP handshake; nobody ever answers
        port = silent.getsockname()[1]
        line = f"webtunnel 192.0.2.1:443 {FP} url=http://127.0.0.1:{port}/{SECRET}"
        out = io.StringIO()
        code = probe.main([line, "--json", "--timeout", "0.5"], stdout=out)
    doc = json.loads(out.getvalue())
    statuses = {layer["layer"]: layer["status"] for layer in doc["layers"]}
    assert statuses["dns"] == statuses["tcp"] == "ok", doc
    assert statuses["tls"] == "skipped" and statuses["upgrade"] == "failed", doc
    assert code == EXIT_CODES["upgrade"]
    assert SECRET not in out.getvalue()


# ---- the descriptor layer, fed the descriptor captured from a real bridge --------------------


class FakeCircuit:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def fetch_directory(self, path: str, **_: Any) -> DirResponse:
        assert path == "/tor/server/authority"
        return DirResponse(200, "OK", {}, self.body)


class FakeChannel:
    identity = relay_identity()


def run_descriptor_layer(body: bytes, now: float = CAPTURED_AT) -> probe.Probe:
    line = parse_bridge_line(
        f"webtunnel 192.0.2.1:443 {FINGERPRINT} url=https://x.example/{SECRET}"
    )
    run = probe.Probe(line, bridge_config_from_args(line.args), clock=lambda: now)
    step = run._descriptor(FakeChannel(), FakeCircuit(body))  # type: ignore[arg-type]
    asyncio.run(run._layer("descriptor", step))
    return run


def test_descriptor_layer_reports_valid_signatures() -> None:
    result = run_descriptor_layer(DESCRIPTOR_BYTES).report.layers[-1]
    assert (result.layer, result.status) == ("descriptor", "ok")
    assert "signatures valid; fingerprint and Ed25519 identity match" in result.summary
    assert result.details["signatures_valid"] is True


@pytest.mark.parametrize(
    ("body", "now", "message"),
    [
        (DESCRIPTOR_BYTES.replace(b"uptime 0", b"uptime 9"), CAPTURED_AT, "router-sig-ed25519"),
        (DESCRIPTOR_BYTES.replace(b"\nUNpM", b"\nUNpN"), CAPTURED_AT, "router-signature"),
        (DESCRIPTOR_BYTES, CAPTURED_AT + 60 * 86400, "expired"),
    ],
    ids=["body", "rsa-signature", "expired-cert"],
)
def test_bad_descriptor_signature_fails_the_descriptor_layer(
    body: bytes, now: float, message: str
) -> None:
    """A bad signature is a descriptor failure (18), not an identity mismatch (16)."""
    with pytest.raises(LayerFailed) as info:
        run_descriptor_layer(body, now)
    assert info.value.exit_code == EXIT_CODES["descriptor"] == 18
    assert info.value.layer == "descriptor" and message in info.value.error
