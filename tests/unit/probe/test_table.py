"""probe --file output: live lines, the summary table, the counts, JSON Lines and the summary
object, redaction of each, and the batch exit statuses. Sans-I/O."""

from __future__ import annotations

import json

import pytest

from webtunnel_pt.logs import Redactor
from webtunnel_pt.probe.output import exit_status_help
from webtunnel_pt.probe.report import (
    EXIT_CODES,
    EXIT_NONE_PASSED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    LayerResult,
    ProbeReport,
    batch_exit_code,
)
from webtunnel_pt.probe.table import (
    FAILED,
    MALFORMED,
    OK,
    Counts,
    bridge_document,
    bridge_row,
    for_line,
    format_counts,
    format_json_line,
    format_json_summary,
    format_live,
    format_table,
    malformed_document,
    malformed_row,
)

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"
BRIDGE = f"https://bridge.example:443/{SECRET} {FP}"


def ok_report() -> ProbeReport:
    report = ProbeReport("https://bridge.example:443/[scrubbed]", total_seconds=0.066)
    report.layers.append(LayerResult("dns", "ok", 0.001, "192.0.2.1"))
    return report


def failed_report() -> ProbeReport:
    report = ProbeReport(
        "https://bridge.example:443/[scrubbed]",
        exit_code=EXIT_CODES["upgrade"],
        total_seconds=0.25,
    )
    report.layers.append(LayerResult("dns", "ok", None, "completed"))
    report.layers.append(
        LayerResult("upgrade", "failed", 0.01, error=f"GET /{SECRET}: HTTP 404 Not Found")
    )
    return report


def redactor(unsafe: bool = False) -> Redactor:
    r = Redactor(unsafe=unsafe)
    r.add_bridge(f"https://bridge.example/{SECRET}", f"/{SECRET}", FP)
    return r


def test_rows_are_scrubbed_when_made() -> None:
    row = bridge_row(3, BRIDGE, failed_report(), redactor().scrub)
    assert row.result == FAILED and row.layer == "upgrade" and row.exit_code == 13
    assert row.bridge == "https://bridge.example:443/[scrubbed] [scrubbed]"
    assert SECRET not in row.reason and "404" in row.reason
    unsafe = bridge_row(3, BRIDGE, failed_report(), redactor(unsafe=True).scrub)
    assert unsafe.bridge == BRIDGE and SECRET in unsafe.reason


def test_live_lines() -> None:
    ok = bridge_row(2, BRIDGE, ok_report(), redactor().scrub)
    assert format_live(ok, 1, 12) == (
        "[ 1/12] line 2: ok  https://bridge.example:443/[scrubbed] [scrubbed]  66 ms"
    )
    failed = for_line(bridge_row(3, BRIDGE, failed_report(), redactor().scrub), 9, 3)
    text = format_live(failed, 12, 12)
    assert text.startswith("[12/12] line 9: FAILED at upgrade (exit status 13)  https://")
    assert text.endswith("- GET /[scrubbed]: HTTP 404 Not Found (same bridge as line 3)")
    bad = format_live(malformed_row(4, "bridge line has no url= argument"), 3, 12)
    assert (
        bad == "[ 3/12] line 4: BAD LINE  - invalid bridge line: bridge line has no url= argument"
    )


def test_table_columns_line_up_in_input_order() -> None:
    scrub = redactor().scrub
    rows = [
        bridge_row(2, BRIDGE, ok_report(), scrub),
        malformed_row(4, "bridge line has no url= argument"),
        bridge_row(10, BRIDGE, failed_report(), scrub),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == [
        "LINE",
        "BRIDGE",
        "RESULT",
        "LAYER",
        "TIME",
        "CONSENSUS",
        "REASON",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["2", "4", "10"]
    result_column = lines[0].index("RESULT")
    assert [line[result_column:].split()[0] for line in lines[1:]] == [OK, "BAD", FAILED]
    assert lines[3].split()[-4:] == ["HTTP", "404", "Not", "Found"]
    consensus_column = lines[0].index("CONSENSUS")
    assert [line[consensus_column:].split()[0] for line in lines[1:]] == ["-", "-", "-"]
    assert "250 ms" in lines[3] and "66 ms" in lines[1]
    table = format_table(rows)
    assert SECRET not in table and FP not in table


def test_counts_and_exit_status() -> None:
    counts = Counts(probed=2)
    scrub = redactor().scrub
    rows = [
        bridge_row(1, BRIDGE, ok_report(), scrub),
        for_line(bridge_row(1, BRIDGE, ok_report(), scrub), 2, 1),
        bridge_row(3, BRIDGE, failed_report(), scrub),
        malformed_row(4, "empty bridge line"),
    ]
    for row in rows:
        counts.add(row)
    assert (counts.lines, counts.passed, counts.failed) == (4, 2, 2)
    assert (counts.malformed, counts.duplicates) == (1, 1)
    text = format_counts(counts, EXIT_SOME_FAILED, 1.25)
    assert text == (
        "4 bridge lines: 2 ok, 2 failed (1 malformed); 2 bridges probed, 1 duplicate line; "
        "1.2 s; exit status 3"
    )
    summary = json.loads(format_json_summary(counts, EXIT_SOME_FAILED, 1.25))
    assert summary == {
        "type": "summary",
        "lines": 4,
        "ok": 2,
        "failed": 2,
        "malformed": 1,
        "duplicates": 1,
        "bridges_probed": 2,
        "exit_code": 3,
        "total_seconds": 1.25,
    }


@pytest.mark.parametrize(
    ("passed", "failed", "any_passes", "expected"),
    [
        (3, 0, False, EXIT_OK),
        (3, 0, True, EXIT_OK),
        (2, 1, False, EXIT_SOME_FAILED),
        (1, 2, True, EXIT_OK),
        (0, 3, False, EXIT_NONE_PASSED),
        (0, 3, True, EXIT_NONE_PASSED),
    ],
)
def test_batch_exit_code(passed: int, failed: int, any_passes: bool, expected: int) -> None:
    assert batch_exit_code(passed, failed, any_passes=any_passes) == expected


def test_json_lines_one_object_per_line_with_line_numbers() -> None:
    r = redactor()
    document = bridge_document(BRIDGE, failed_report())
    first = format_json_line(document, 3)
    again = format_json_line(document, 9, duplicate_of=3)
    assert "\n" not in first
    for text in (first, again):
        assert SECRET in text  # not yet scrubbed: the caller scrubs with the bridge's redactor
        assert SECRET not in r.scrub(text) and FP not in r.scrub(text)
    doc = json.loads(r.scrub(first))
    assert doc["type"] == "bridge" and doc["line"] == 3 and doc["duplicate_of"] is None
    assert doc["ok"] is False and doc["exit_code"] == 13 and doc["malformed"] is False
    assert doc["failed_layer"] == "upgrade" and "404" in doc["error"]
    assert doc["bridge"] == "https://bridge.example:443/[scrubbed] [scrubbed]"
    assert [layer["layer"] for layer in doc["layers"]] == ["dns", "upgrade"]
    assert json.loads(r.scrub(again))["duplicate_of"] == 3
    bad = json.loads(format_json_line(malformed_document("empty bridge line"), 4))
    assert bad["malformed"] is True and bad["exit_code"] == EXIT_USAGE and bad["line"] == 4
    assert bad["ok"] is False and bad["bridge"] is None
    assert bad["error"] == "invalid bridge line: empty bridge line"
    assert malformed_row(4, "x").result == MALFORMED


def test_exit_status_help_lists_the_batch_statuses() -> None:
    text = exit_status_help()
    assert "with --file" in text
    assert f"  {EXIT_SOME_FAILED:>3}  some bridges failed" in text
    assert f"  {EXIT_NONE_PASSED:>3}  no bridge passed" in text


def test_counts_say_one_line_and_one_bridge() -> None:
    counts = Counts(probed=1)
    counts.add(bridge_row(1, BRIDGE, ok_report(), redactor().scrub))
    assert format_counts(counts, EXIT_OK, 0.05).startswith(
        "1 bridge line: 1 ok, 0 failed; 1 bridge probed;"
    )
