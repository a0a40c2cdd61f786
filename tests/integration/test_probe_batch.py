"""`webtunnel-pt probe --file` over loopback sockets (no Tor): probes really run concurrently
(a bridge that never answers TLS does not delay the others' results), JSON Lines keep input
order behind a slow first line or follow completion with --unordered, redaction, --any, and
--proxy (single bridge and --file) really goes through the proxy."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from pathlib import Path

import pytest

from tests.e2e.ports import free_port
from tests.support.raw_server import RawServer
from webtunnel_pt import cli
from webtunnel_pt.logs import Redactor
from webtunnel_pt.probe.batch import Batch, BatchOptions
from webtunnel_pt.probe.bridge_list import parse_bridge_list
from webtunnel_pt.probe.report import EXIT_CODES, EXIT_NONE_PASSED
from webtunnel_pt.probe.run import LineWriter

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"
#: Only reached if the probes ran one after another: then the test fails on the order.
SLOW_PROBE_TIMEOUT_S = 20.0


pytestmark = pytest.mark.usefixtures("restore_logging")


def bridge(port: int, path: str = SECRET) -> str:
    return f"Bridge webtunnel 192.0.2.1:443 {FP} url=https://127.0.0.1:{port}/{path}"


class SilentUntilReleased:
    """Accepts TCP, never answers TLS; closes once ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        self.release.wait(SLOW_PROBE_TIMEOUT_S + 5)
        conn.close()


class Watch(io.StringIO):
    """The batch's stdout: sets ``event`` once ``count`` lines contain ``needle``."""

    def __init__(self, needle: str, count: int, event: threading.Event) -> None:
        super().__init__()
        self.needle, self.count, self.event = needle, count, event

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count(self.needle) >= self.count:
            self.event.set()
        return written


def run_batch(text: str, out: io.StringIO, **options: object) -> int:
    batch = Batch(
        parse_bridge_list(text.splitlines(keepends=True)),
        BatchOptions(concurrency=4, timeout_s=SLOW_PROBE_TIMEOUT_S, **options),  # type: ignore[arg-type]
        redactor=Redactor(),
        out=LineWriter(out),
    )
    return asyncio.run(batch.run())


def test_a_slow_bridge_does_not_delay_the_others() -> None:
    slow = SilentUntilReleased()
    with RawServer(slow) as server:
        refused = [free_port() for _ in range(3)]
        text = "\n".join([bridge(server.port), *(bridge(p) for p in refused)])
        # The slow bridge is let go only once the three others have been reported.
        out = Watch("FAILED at TCP", 3, slow.release)
        code = run_batch(text, out)
    lines = out.getvalue().splitlines()
    live = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in live] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert {line.split(":")[0].split("] ")[1] for line in live[:3]} == {
        "line 2",
        "line 3",
        "line 4",
    }
    assert all("FAILED at TCP" in line for line in live[:3])
    assert live[3].startswith("[4/4] line 1: FAILED at outer TLS (exit status 12)")
    assert code == EXIT_NONE_PASSED
    table = lines[lines.index("") + 1 : -2]
    assert [row.split()[0] for row in table] == ["LINE", "1", "2", "3", "4"]
    assert lines[-1].startswith("4 bridge lines: 0 ok, 4 failed; 4 bridges probed")
    assert SECRET not in out.getvalue() and FP not in out.getvalue()


def test_unordered_json_follows_completion_and_ordered_json_keeps_input_order() -> None:
    slow = SilentUntilReleased()
    with RawServer(slow) as server:
        text = "\n".join([bridge(server.port), bridge(free_port()), bridge(free_port())])
        out = Watch('"failed_layer":"tcp"', 2, slow.release)
        run_batch(text, out, json_output=True, ordered=False)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("line") for r in records] == [2, 3, 1, None]
    assert records[2]["failed_layer"] == "tls" and records[3]["type"] == "summary"

    slow = SilentUntilReleased()
    with RawServer(slow) as server:
        text = "\n".join([bridge(server.port), bridge(free_port()), "bad", bridge(SECRET)])
        # Ordered: nothing can be written before line 1 is done, so release it at once; the
        # order must be the input's whichever finishes first.
        slow.release.set()
        out = io.StringIO()
        run_batch(text, out, json_output=True)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("line") for r in records] == [1, 2, 3, 4, None]
    assert records[2]["malformed"] is True and "url=" in records[3]["error"]
    assert SECRET not in out.getvalue() and FP not in out.getvalue()


def test_file_any_and_unsafe_logging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "bridges.txt"
    listing.write_text(f"# two dead bridges\n{bridge(free_port())}\n\n{bridge(free_port())}\n")
    code = cli.main(["probe", "--file", str(listing), "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == EXIT_NONE_PASSED
    assert [r.get("line") for r in records] == [2, 4, None]
    assert all(r["exit_code"] == EXIT_CODES["tcp"] for r in records[:2])
    assert records[2]["failed"] == 2 and records[2]["exit_code"] == EXIT_NONE_PASSED
    assert cli.main(["probe", "--file", str(listing), "--any"]) == EXIT_NONE_PASSED
    capsys.readouterr()
    cli.main(["probe", "--file", str(listing), "--unsafe-logging"])
    out = capsys.readouterr().out
    assert SECRET in out and FP in out


def socks5_greeting_then_close(conn: socket.socket) -> None:
    conn.recv(16)
    conn.close()


def test_proxy_is_used_by_single_and_file_probes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = bridge(free_port())
    listing = tmp_path / "bridges.txt"
    listing.write_text(line + "\n")
    with RawServer(socks5_greeting_then_close) as proxy:
        uri = f"socks5://127.0.0.1:{proxy.port}"
        single = cli.main(["probe", line, "--proxy", uri])
        text = capsys.readouterr().out
        many = cli.main(["probe", "--file", str(listing), "--proxy", uri, "--json"])
        records = [json.loads(r) for r in capsys.readouterr().out.splitlines()]
        accepted = proxy.accepted
    assert accepted == 2  # both probes reached the bridge through the proxy only
    assert single == EXIT_CODES["tcp"]
    assert f"through socks5 proxy 127.0.0.1:{proxy.port}" in text
    assert "proxy" in text.split("FAIL TCP")[1].splitlines()[0].lower()
    assert many == EXIT_NONE_PASSED and records[0]["failed_layer"] == "tcp"
    assert "proxy" in records[0]["error"].lower()
