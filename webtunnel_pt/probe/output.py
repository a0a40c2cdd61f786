"""How ``webtunnel-pt probe`` shows a :class:`ProbeReport`: one text line per layer and a verdict,
or one JSON document; and the exit-status table of ``probe --help``.

Sans-I/O: functions return strings; the caller scrubs secrets and writes them.
"""

from __future__ import annotations

import json
from typing import Any

from webtunnel_pt.probe.report import (
    EXIT_IDENTITY,
    EXIT_INTERNAL,
    EXIT_NONE_PASSED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    LAYERS,
    LayerResult,
    ProbeReport,
)

_MARKS = {"ok": "ok  ", "failed": "FAIL", "skipped": "--  "}


def format_layer(result: LayerResult) -> str:
    """One line per layer: mark, title, own time, what was found (or the error)."""
    seconds = "" if result.seconds is None else f"{result.seconds * 1000:.1f} ms"
    text = result.error if result.status == "failed" else result.summary
    return f"  {_MARKS[result.status]} {result.title:<12}{seconds:>10}  {text or ''}".rstrip()


def format_verdict(report: ProbeReport) -> str:
    total = f"{report.total_seconds * 1000:.0f} ms"
    if report.ok:
        checked = any(r.layer == "consensus" and r.status == "ok" for r in report.layers)
        directory = ", and its directory verifies" if checked else ""
        return (
            f"result: OK - every layer works and the bridge identity matches{directory} ({total})"
        )
    failed = report.failed
    where = failed.title if failed else "?"
    if report.exit_code == EXIT_IDENTITY:
        where = f"{where} (identity mismatch)"
    return f"result: FAILED at {where}, exit status {report.exit_code} ({total})"


def to_json(report: ProbeReport) -> dict[str, Any]:
    """The ``--json`` document (its fields are a public interface: keep them stable)."""
    return {
        "ok": report.ok,
        "exit_code": report.exit_code,
        "target": report.target,
        "total_seconds": round(report.total_seconds, 6),
        "layers": [
            {
                "layer": r.layer,
                "status": r.status,
                "seconds": None if r.seconds is None else round(r.seconds, 6),
                "details": r.details,
                "error": r.error,
            }
            for r in report.layers
        ],
    }


def format_json(report: ProbeReport) -> str:
    return json.dumps(to_json(report), indent=2)


def exit_status_help() -> str:
    """The exit-status table printed under ``webtunnel-pt probe --help``."""
    rows = [f"  {code:>3}  {title} failed" for _, title, code in LAYERS]
    rows.insert(6, f"  {EXIT_IDENTITY:>3}  identity mismatch (link CERTS or descriptor)")
    return "\n".join(
        [
            "exit status:",
            f"  {EXIT_OK:>3}  every layer succeeded and the identity matched",
            f"  {EXIT_INTERNAL:>3}  internal error",
            f"  {EXIT_USAGE:>3}  usage error or invalid bridge line (the fingerprint is required);",
            "       a malformed --dir-authority line is a usage error too",
            *rows,
            "       (consensus: the directory fetched through the bridge did not verify against",
            "       the authorities, or could not be fetched; --no-consensus skips that layer)",
            "",
            "with --file, for all its bridge lines (a malformed line counts as failed):",
            f"  {EXIT_OK:>3}  every bridge passed (with --any: at least one did)",
            f"  {EXIT_INTERNAL:>3}  internal error",
            f"  {EXIT_USAGE:>3}  usage error, unreadable file or no bridge line in it",
            f"  {EXIT_SOME_FAILED:>3}  some bridges failed, at least one passed (not with --any)",
            f"  {EXIT_NONE_PASSED:>3}  no bridge passed",
        ]
    )
