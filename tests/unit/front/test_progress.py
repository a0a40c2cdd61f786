"""front/progress.py: tor's bootstrap lines from progress events of any class."""

from __future__ import annotations

from dataclasses import dataclass

from webtunnel_pt.front.progress import BOOTSTRAP_PHASES, ProgressLines, format_progress


@dataclass
class Event:
    percent: int | None
    tag: str
    summary: str | None = None


def test_lines_as_tor_prints_them() -> None:
    lines = ProgressLines()
    assert lines.line_for(Event(10, "conn_done", "Connected to a relay")) == (
        "Bootstrapped 10% (conn_done): Connected to a relay"
    )
    assert lines.line_for(Event(100, "done")) == "Bootstrapped 100% (done): Done"


def test_percent_taken_from_the_tag_and_never_backwards() -> None:
    lines = ProgressLines()
    assert lines.line_for(Event(None, "loading_status")) == (
        "Bootstrapped 30% (loading_status): Loading networkstatus consensus"
    )
    assert lines.line_for(Event(25, "requesting_status")) is None
    assert lines.line_for(Event(30, "loading_status")) is None
    assert lines.line_for(Event(None, "unknown_tag")) is None
    assert lines.line_for(object()) is None


def test_summary_is_one_bounded_line() -> None:
    assert format_progress(5, "conn", "a\nb\tc " + "x" * 500) == (
        "Bootstrapped 5% (conn): a b c " + "x" * 194
    )


def test_table_is_ordered() -> None:
    percents = [p for p, _ in BOOTSTRAP_PHASES.values()]
    assert percents == sorted(percents) and percents[-1] == 100
