"""probe: failure classification (dial stages), output format, exit codes, redaction, the
descriptor layer. Sans-I/O; the runs over loopback sockets are in
tests/integration/test_probe_cli.py, the full probe in tests/e2e/test_e2e_probe.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.link_capture import CAPTURED_AT, DESCRIPTOR_BYTES, FINGERPRINT, relay_identity
from webtunnel_pt import cli
from webtunnel_pt.errors import (
    BridgeUnreachable,
    DialStage,
    HandshakeTimeout,
    TlsError,
    UpgradeError,
    UpgradeRejected,
    WebtunnelError,
)
from webtunnel_pt.probe import run as probe
from webtunnel_pt.probe.output import exit_status_help, format_layer, format_verdict, to_json
from webtunnel_pt.probe.report import (
    DIAL_STAGE_LAYERS,
    EXIT_CODES,
    EXIT_IDENTITY,
    LAYERS,
    LayerFailed,
    LayerResult,
    ProbeReport,
    dial_failure_layer,
)
from webtunnel_pt.tor.directory import DirResponse
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"


def staged(exc: WebtunnelError, stage: DialStage) -> WebtunnelError:
    """``exc`` as ``dial_bridge`` raises it: carrying the stage it failed in."""
    exc.stage = stage
    return exc


@pytest.mark.parametrize(
    ("exc", "layer"),
    [
        (
            staged(
                BridgeUnreachable("could not resolve x.example: Name or service not known"),
                DialStage.DNS,
            ),
            "dns",
        ),
        (
            staged(
                BridgeUnreachable(
                    "DNS for x.example gave no usable public address (skipped: none)"
                ),
                DialStage.DNS,
            ),
            "dns",
        ),
        (
            staged(
                BridgeUnreachable("TCP connect to 127.0.0.1:1 failed: Connection refused"),
                DialStage.TCP_CONNECT,
            ),
            "tcp",
        ),
        (staged(HandshakeTimeout("bridge dial timed out"), DialStage.DNS), "dns"),
        (staged(HandshakeTimeout("bridge dial timed out"), DialStage.TCP_CONNECT), "tcp"),
        (staged(HandshakeTimeout("bridge dial timed out"), DialStage.TLS_HANDSHAKE), "tls"),
        (staged(HandshakeTimeout("bridge dial timed out"), DialStage.UPGRADE), "upgrade"),
        (staged(BridgeUnreachable("connection lost: x"), DialStage.UPGRADE), "upgrade"),
        (staged(BridgeUnreachable("no proxy"), DialStage.PROXY_CONNECT), "tcp"),
        (staged(BridgeUnreachable("proxy said no"), DialStage.PROXY_HANDSHAKE), "tcp"),
        (staged(TlsError("TLS certificate of x not accepted"), DialStage.TLS_HANDSHAKE), "tls"),
        (staged(UpgradeRejected(404, "Not Found"), DialStage.UPGRADE), "upgrade"),
        (staged(UpgradeError("invalid HTTP response"), DialStage.UPGRADE), "upgrade"),
        # Without a stage (not from the dial), the type decides.
        (TlsError("TLS certificate of x not accepted"), "tls"),
        (UpgradeRejected(404, "Not Found"), "upgrade"),
        (UpgradeError("invalid HTTP response"), "upgrade"),
        (BridgeUnreachable("TCP connect to 127.0.0.1:1 failed"), "tcp"),
    ],
)
def test_dial_failure_layer(exc: Exception, layer: str) -> None:
    assert dial_failure_layer(exc) == layer


def test_the_stage_decides_not_the_message() -> None:
    """A message that names another stage does not move the failure there."""
    exc = staged(HandshakeTimeout("timed out during DNS"), DialStage.UPGRADE)
    assert dial_failure_layer(exc) == "upgrade"


def test_every_dial_stage_has_a_layer() -> None:
    assert set(DIAL_STAGE_LAYERS) == set(DialStage)
    assert {str(stage) for stage in DialStage} >= {"DNS", "TCP connect", "TLS handshake"}


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
    doc = to_json(report)
    assert doc["ok"] is True and doc["layers"][0]["layer"] == "dns"
    json.dumps(doc)


def test_layers_keep_their_order_and_exit_statuses() -> None:
    assert [(layer.key, layer.exit_code) for layer in LAYERS] == [
        ("dns", 10),
        ("tcp", 11),
        ("tls", 12),
        ("upgrade", 13),
        ("inner_tls", 14),
        ("channel", 15),
        ("create_fast", 17),
        ("descriptor", 18),
        ("consensus", 19),
    ]
    help_text = exit_status_help()
    assert "   16  identity mismatch" in help_text and "   18  descriptor failed" in help_text
    assert "   19  consensus failed" in help_text and "--no-consensus" in help_text


@pytest.mark.usefixtures("restore_logging")
def test_fingerprint_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", f"webtunnel 192.0.2.1:443 url=https://x.example/{SECRET}"]) == 2
    assert "fingerprint" in capsys.readouterr().err


@pytest.mark.usefixtures("restore_logging")
def test_bad_bridge_line_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", f"Bridge webtunnel 192.0.2.1:443 {FP} url=ftp://x/{SECRET}"]) == 2
    assert SECRET not in capsys.readouterr().err


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


def test_each_layer_waits_for_what_is_left_of_the_probe() -> None:
    from webtunnel_pt.deadlines import Deadline

    line = parse_bridge_line(
        f"webtunnel 192.0.2.1:443 {FINGERPRINT} url=https://x.example/{SECRET}"
    )
    run = probe.Probe(line, bridge_config_from_args(line.args), timeout_s=30)
    assert 29 < run._remaining() <= 30
    now = [0.0]
    run._deadline = Deadline(12.0, clock=lambda: now[0])
    assert run._remaining() == 12.0
    now[0] = 11.5
    assert run._remaining() == 0.5
    now[0] = 20.0  # spent: a layer still gets the floor asyncio needs, the backstop bounds it
    assert run._remaining() == probe.MIN_LAYER_WAIT_S
