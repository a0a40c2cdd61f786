"""bench/tor_client.py's doc update: the new section replaces the old one, whose table is kept
once as "the run before" (older runs drop out), and the sections after it stay."""

from __future__ import annotations

from pathlib import Path

from bench.tor_client import DOC_HEADING, update_doc


def section(when: str, cell: str) -> str:
    return f"{DOC_HEADING}\n\nText. Last run {when} (x86_64):\n\n| a |\n|---|\n| {cell} |\n"


def test_the_previous_table_is_kept_once_and_later_sections_stay(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n" + section("day 1", "one") + "\n## Later\n\nkept\n")
    update_doc(doc, section("day 2", "two"))
    update_doc(doc, section("day 3", "three"))
    text = doc.read_text()
    assert text.startswith("# Title\n\n" + section("day 3", "three"))
    assert "The run before, day 2 (the machine is shared" in text
    assert "| two |" in text
    assert "one" not in text  # only one run back
    assert text.endswith("\n## Later\n\nkept\n")


def test_a_doc_without_the_section_gets_it_appended(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n")
    update_doc(doc, section("day 1", "one"))
    assert doc.read_text() == "# Title\n\n" + section("day 1", "one")
