"""The read positions of tests/support/pt_process.py: a test sharing a PT only matches what the
PT wrote after it began (a line left by an earlier test must not satisfy a wait)."""

from __future__ import annotations

import pytest

from tests.support.pt_process import PtProcess
from tests.support.socks_client import socks_connect


def test_a_view_does_not_match_an_earlier_line(pt_process: PtProcess) -> None:
    earlier = pt_process.view()
    rep, _ = socks_connect(pt_process.socks_port(), {"url": "ftp://bridge.test/"})
    assert rep != 0
    line = earlier.wait_for_log("url= must start with https:// or http://")
    later = pt_process.view()
    assert later.start.lines > earlier.start.lines
    with pytest.raises(AssertionError, match="no such line"):
        later.wait_for_log("url= must start with https:// or http://", timeout=0.5)
    # ...but the same wait from the earlier mark, or from the process start, still finds it
    assert later.wait_for_log("url= must start", since=earlier.start) == line
    assert line in pt_process.all_output()
    assert line not in later.all_output()
    # the start-up lines stay readable from any view
    assert later.socks_port() == pt_process.socks_port()
