"""How ``webtunnel-pt probe --file`` shows many bridges: a live line per input line as its
bridge finishes, the summary table and the counts; with ``--json``, one JSON object per input
line (JSON Lines) and a summary object.

Sans-I/O: functions return strings. A :class:`Row` is built from a :class:`ProbeReport` and
scrubbed once, by the caller's scrub function for that bridge, so the table printed at the end
needs none of the bridges' secrets any more. JSON fields are a public interface: keep them
stable (``docs/builtin-mode.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from webtunnel_pt.probe.output import to_json
from webtunnel_pt.probe.report import EXIT_OK, EXIT_USAGE, ProbeReport

#: The result column: a bridge that passed, one that failed, a line that is not a bridge line.
OK, FAILED, MALFORMED = "ok", "FAILED", "BAD LINE"
_HEADERS = ("LINE", "BRIDGE", "RESULT", "LAYER", "TIME", "CONSENSUS", "REASON")


@dataclass(frozen=True)
class Row:
    """One input line's outcome, already scrubbed: what the live line and the table show."""

    line_no: int
    bridge: str
    result: str
    exit_code: int
    layer: str = ""
    reason: str = ""
    seconds: float | None = None
    duplicate_of: int | None = None
    #: The consensus layer in a few words: ``3/3, 6 relays, 1 exit``, ``FAILED`` or ``-``.
    consensus: str = "-"

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


def bridge_row(line_no: int, bridge: str, report: ProbeReport, scrub: Callable[[str], str]) -> Row:
    """The row of the line where a bridge first appears (see :func:`for_line` for others)."""
    failed = report.failed
    return Row(
        line_no,
        scrub(bridge),
        OK if report.ok else FAILED,
        report.exit_code,
        layer=failed.title if failed else "",
        reason=scrub(failed.error or "") if failed else "",
        seconds=report.total_seconds,
        consensus=consensus_cell(report),
    )


def consensus_cell(report: ProbeReport) -> str:
    """The CONSENSUS column: signatures, relays and exits when the layer passed; ``FAILED``
    with the check that failed; ``-`` when it did not run."""
    layer = next((r for r in report.layers if r.layer == "consensus"), None)
    if layer is None or layer.status == "skipped":
        return "-"
    if layer.status == "failed":
        check = layer.details.get("check")
        return f"FAILED ({check})" if check else "FAILED"
    details = layer.details
    relays, exits = details.get("relays", 0), details.get("exits", 0)
    return (
        f"{details.get('signatures', '?')}, {relays} relay{'' if relays == 1 else 's'}, "
        f"{exits} exit{'' if exits == 1 else 's'}"
    )


def malformed_row(line_no: int, error: str) -> Row:
    return Row(line_no, "-", MALFORMED, EXIT_USAGE, reason=f"invalid bridge line: {error}")


def for_line(row: Row, line_no: int, first_line: int) -> Row:
    """The same bridge's row for a duplicate line."""
    return replace(row, line_no=line_no, duplicate_of=first_line)


def _seconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _reason(row: Row) -> str:
    same = f" (same bridge as line {row.duplicate_of})" if row.duplicate_of is not None else ""
    return f"{row.reason}{same}".strip()


def format_live(row: Row, done: int, total: int) -> str:
    """The line printed as soon as a line's bridge has finished: progress, line, verdict."""
    width = len(str(total))
    verdict = row.result
    if row.layer:
        verdict += f" at {row.layer} (exit status {row.exit_code})"
    parts = [f"[{done:>{width}}/{total}] line {row.line_no}: {verdict}"]
    if row.result != MALFORMED:
        parts += [row.bridge, _seconds(row.seconds)]
        if row.consensus != "-":
            parts.append(f"consensus {row.consensus}")
    reason = _reason(row)
    return "  ".join(parts + ([f"- {reason}"] if reason else []))


def format_table(rows: Iterable[Row]) -> str:
    """The summary table, one row per input line in the order given; the reason comes last
    and is not padded."""
    cells = [
        (
            str(r.line_no),
            r.bridge,
            r.result,
            r.layer,
            _seconds(r.seconds),
            r.consensus,
            _reason(r),
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(_HEADERS[:-1])]
    lines = []
    for cell in [_HEADERS, *cells]:
        line_no, bridge, result, layer, seconds, consensus, reason = cell
        lines.append(
            f"{line_no:>{widths[0]}}  {bridge:<{widths[1]}}  {result:<{widths[2]}}  "
            f"{layer:<{widths[3]}}  {seconds:>{widths[4]}}  {consensus:<{widths[5]}}  "
            f"{reason}".rstrip()
        )
    return "\n".join(lines)


@dataclass
class Counts:
    """The tally of a run: input lines that passed, failed (malformed included), malformed;
    duplicate lines; distinct bridges probed."""

    passed: int = 0
    failed: int = 0
    malformed: int = 0
    duplicates: int = 0
    probed: int = 0

    def add(self, row: Row) -> None:
        if row.ok:
            self.passed += 1
        else:
            self.failed += 1
        if row.result == MALFORMED:
            self.malformed += 1
        if row.duplicate_of is not None:
            self.duplicates += 1

    @property
    def lines(self) -> int:
        return self.passed + self.failed


def format_counts(counts: Counts, exit_code: int, seconds: float) -> str:
    malformed = f" ({counts.malformed} malformed)" if counts.malformed else ""
    duplicates = f", {_count(counts.duplicates, 'duplicate line')}" if counts.duplicates else ""
    return (
        f"{_count(counts.lines, 'bridge line')}: {counts.passed} ok, {counts.failed} failed"
        f"{malformed}; {_count(counts.probed, 'bridge')} probed{duplicates}; {seconds:.1f} s; "
        f"exit status {exit_code}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def bridge_document(bridge: str, report: ProbeReport) -> dict[str, Any]:
    """What a bridge's JSON line says about the probe; :func:`format_json_line` adds the line."""
    failed = report.failed
    return {
        "type": "bridge",
        "bridge": bridge,
        "failed_layer": failed.layer if failed else None,
        "error": failed.error if failed else None,
        **to_json(report),
    }


def malformed_document(error: str) -> dict[str, Any]:
    return {
        "type": "bridge",
        "bridge": None,
        "failed_layer": None,
        "error": f"invalid bridge line: {error}",
        "ok": False,
        "exit_code": EXIT_USAGE,
        "malformed": True,
    }


def format_json_line(
    document: dict[str, Any], line_no: int, duplicate_of: int | None = None
) -> str:
    """One JSON Lines record: the document with its input line number, on one line."""
    record = {"type": "bridge", "line": line_no, "duplicate_of": duplicate_of, **document}
    record.setdefault("malformed", False)
    return json.dumps(record, separators=(",", ":"))


def format_json_summary(counts: Counts, exit_code: int, seconds: float) -> str:
    return json.dumps(
        {
            "type": "summary",
            "lines": counts.lines,
            "ok": counts.passed,
            "failed": counts.failed,
            "malformed": counts.malformed,
            "duplicates": counts.duplicates,
            "bridges_probed": counts.probed,
            "exit_code": exit_code,
            "total_seconds": round(seconds, 6),
        },
        separators=(",", ":"),
    )
