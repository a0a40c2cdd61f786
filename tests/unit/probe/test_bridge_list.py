"""probe --file input: comments, blank lines, the optional ``Bridge``, line numbers, malformed
lines, duplicates, the bounds; and which lines' results may be written when (ResultOrder)."""

from __future__ import annotations

import pytest

from webtunnel_pt.probe.bridge_list import (
    MAX_INPUT_LINES,
    MAX_LINE_CHARS,
    BadLine,
    Entry,
    TooManyLines,
    parse_bridge_list,
)
from webtunnel_pt.probe.order import ResultOrder

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
FP2 = "0123456789ABCDEF0123456789ABCDEF01234567"


def line(host: str = "a.example", fp: str = FP, path: str = "secretpath") -> str:
    return f"webtunnel 192.0.2.1:443 {fp} url=https://{host}/{path} ver=0.0.1"


def test_comments_blank_lines_and_bridge_prefix() -> None:
    text = [
        "# my bridges\n",
        "\n",
        "   \t\n",
        f"Bridge {line('a.example')}\n",
        "   # indented comment\n",
        f"{line('b.example')}\n",
        f"bridge {line('c.example')}",
    ]
    parsed = parse_bridge_list(text)
    assert [e.line_no for e in parsed.entries] == [4, 6, 7]
    assert all(isinstance(e, Entry) and e.duplicate_of is None for e in parsed.entries)
    assert [b.config.url_host for b in parsed.bridges] == ["a.example", "b.example", "c.example"]
    assert [b.line_no for b in parsed.bridges] == [4, 6, 7]
    assert parsed.bridges[0].line.fingerprint == FP


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("webtunnel 192.0.2.1:443 url=https://a.example/x", "fingerprint"),
        (f"webtunnel 192.0.2.1:443 {FP}", "url="),
        (f"webtunnel 192.0.2.1:443 {FP} url=ftp://a.example/x", "https://"),
        (f"webtunnel 192.0.2.1:99999 {FP} url=https://a.example/x", "port"),
        (f"webtunnel 192.0.2.1:443 {FP} novalue", "key=value"),
        ("x" * (MAX_LINE_CHARS + 1), "longer than"),
    ],
)
def test_malformed_lines_carry_their_number_and_the_others_still_count(
    text: str, reason: str
) -> None:
    parsed = parse_bridge_list([line("a.example"), "# c", text, line("b.example")])
    assert [type(e) for e in parsed.entries] == [Entry, BadLine, Entry]
    bad = parsed.entries[1]
    assert isinstance(bad, BadLine) and bad.line_no == 3
    assert reason in bad.error
    assert len(parsed.bridges) == 2


def test_malformed_line_errors_hold_no_secret() -> None:
    parsed = parse_bridge_list([f"webtunnel 192.0.2.1:443 {FP} url=ftp://a.example/hushhush"])
    (bad,) = parsed.entries
    assert isinstance(bad, BadLine)
    assert "hushhush" not in bad.error and FP not in bad.error


def test_duplicates_are_one_bridge_reported_for_each_line() -> None:
    parsed = parse_bridge_list(
        [
            line("a.example"),
            line("b.example"),
            "Bridge   " + line("a.example").replace(" ", "   "),
            line("a.example", fp=FP.lower()),
            line("a.example", fp=FP2),  # another fingerprint: another bridge
            line("a.example", path="otherpath"),  # another path: another bridge
        ]
    )
    assert len(parsed.bridges) == 4
    entries = parsed.entries
    assert all(isinstance(e, Entry) for e in entries)
    assert [(e.bridge, e.duplicate_of) for e in entries if isinstance(e, Entry)] == [
        (0, None),
        (1, None),
        (0, 1),
        (0, 1),
        (2, None),
        (3, None),
    ]
    assert parsed.duplicates == 2


def test_too_many_lines() -> None:
    parse_bridge_list(["#\n"] * MAX_INPUT_LINES)
    with pytest.raises(TooManyLines):
        parse_bridge_list(["#\n"] * (MAX_INPUT_LINES + 1))


def test_ten_thousand_lines() -> None:
    lines = [line(f"h{i}.example") for i in range(10_000)]
    parsed = parse_bridge_list(lines)
    assert len(parsed.bridges) == 10_000
    assert parsed.entries[-1].line_no == 10_000


# ---- ResultOrder ----------------------------------------------------------------------------

ORDER_INPUT = [
    "bad line one",  # 1: malformed
    line("a.example"),  # 2: bridge 0
    "bad line two",  # 3: malformed
    line("b.example"),  # 4: bridge 1
    line("c.example"),  # 5: bridge 2
    line("a.example"),  # 6: duplicate of line 2
]


def numbers(lines: list[Entry | BadLine]) -> list[int]:
    return [e.line_no for e in lines]


def test_input_order_holds_back_only_what_an_earlier_line_blocks() -> None:
    order = ResultOrder(parse_bridge_list(ORDER_INPUT), ordered=True)
    assert numbers(order.start()) == [1]
    assert numbers(order.finished(2)) == []  # c.example waits for a and b
    assert order.waiting == 1
    assert numbers(order.finished(0)) == [2, 3]
    assert order.waiting == 1
    assert numbers(order.finished(1)) == [4, 5, 6]
    assert order.waiting == 0


def test_completion_order_writes_each_line_when_its_bridge_finishes() -> None:
    order = ResultOrder(parse_bridge_list(ORDER_INPUT), ordered=False)
    assert numbers(order.start()) == [1, 3]
    assert numbers(order.finished(2)) == [5]
    assert numbers(order.finished(0)) == [2, 6]
    assert numbers(order.finished(1)) == [4]
    assert order.waiting == 0
