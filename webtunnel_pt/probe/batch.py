"""``webtunnel-pt probe --file FILE``: probe many bridges at once (asyncio).

    read FILE (bounded lines) -> bridge_list.parse_bridge_list (S): entries, distinct bridges
      -> one TaskGroup: at most ``--concurrency`` probes run (a Semaphore), each within its
         own --timeout; a task is created only when a slot is free, so 10 000 lines are not
         10 000 waiting tasks
      -> as each bridge finishes: its lines' live lines (text) or JSON lines (--json)
      -> the summary table (text) and the counts, or the JSON summary object

Output order (:mod:`~webtunnel_pt.probe.order`): live lines come as bridges finish. JSON
lines come in input order: a finished bridge's record waits only for the earlier lines still
running, and no new probe starts while :data:`MAX_WAITING_RESULTS` finished bridges wait so
(``--unordered``: as they finish, nothing waits). A duplicate line is answered from its
bridge's single probe; that result is kept until the bridge's last line is written.

Secrets: each bridge gets its own :class:`Redactor` for its output, so the secrets of one
line never depend on how many others the shared one still remembers; the shared one (for the
log) learns them too. The table rows are scrubbed when they are made.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from webtunnel_pt.deadlines import PROBE_TIMEOUT_S
from webtunnel_pt.logs import Redactor
from webtunnel_pt.outbound.proxy_uri import ProxyConfig
from webtunnel_pt.probe.bridge_list import (
    MAX_LINE_CHARS,
    BadLine,
    Bridge,
    BridgeList,
    Entry,
    TooManyLines,
    parse_bridge_list,
)
from webtunnel_pt.probe.consensus import ConsensusOptions
from webtunnel_pt.probe.order import ResultOrder
from webtunnel_pt.probe.report import (
    EXIT_INTERNAL,
    EXIT_USAGE,
    LayerResult,
    ProbeReport,
    batch_exit_code,
)
from webtunnel_pt.probe.run import LineWriter, Probe, register_secrets
from webtunnel_pt.probe.table import (
    Counts,
    Row,
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

log = logging.getLogger(__name__)

#: Ordered JSON output: at most this many finished bridges wait for an earlier line still
#: running before new probes are held back (each result is a few kilobytes).
MAX_WAITING_RESULTS = 1024


class _BridgeRedactor(Redactor):
    """One bridge's redactor; what it learns, the process-wide one learns too."""

    def __init__(self, shared: Redactor) -> None:
        super().__init__(unsafe=shared.unsafe)
        self._shared = shared

    def add(self, *secrets: str) -> None:
        super().add(*secrets)
        self._shared.add(*secrets)


@dataclass
class _Outcome:
    """A finished bridge: its first line's row and JSON document, and its own redactor."""

    row: Row
    document: dict[str, Any]
    redactor: Redactor
    lines_left: int


def read_lines(stream: TextIO) -> Iterator[str]:
    """The input's lines, each read in bounded pieces: a longer line is returned cut (one
    character past :data:`MAX_LINE_CHARS`, so it reads as too long) and the rest is skipped."""
    while True:
        text = stream.readline(MAX_LINE_CHARS + 1)
        if not text:
            return
        if len(text) > MAX_LINE_CHARS and not text.endswith("\n"):
            while (rest := stream.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                pass
        yield text


@dataclass(frozen=True)
class BatchOptions:
    """What ``probe --file`` was asked for, besides the list itself."""

    concurrency: int
    json_output: bool = False
    #: JSON Lines in input order (False: as each bridge finishes, ``--unordered``).
    ordered: bool = True
    #: ``--any``: success when at least one bridge passed.
    any_passes: bool = False
    #: Each bridge's own deadline.
    timeout_s: float = PROBE_TIMEOUT_S
    proxy: ProxyConfig | None = None
    #: The consensus layer of each probe (None: ``--no-consensus``); they share the cache.
    consensus: ConsensusOptions | None = None


class Batch:
    """One ``probe --file`` run over a parsed :class:`BridgeList`."""

    def __init__(
        self,
        bridges: BridgeList,
        options: BatchOptions,
        *,
        redactor: Redactor,
        out: LineWriter,
    ) -> None:
        self.bridge_list = bridges
        self.options = options
        self.redactor = redactor
        self.out = out
        self.counts = Counts(probed=len(bridges.bridges))
        self._slots = asyncio.Semaphore(options.concurrency)
        self._outcomes: dict[int, _Outcome] = {}
        self._lines_of = Counter(e.bridge for e in bridges.entries if isinstance(e, Entry))
        #: Text output: live lines as bridges finish; JSON: input order unless --unordered.
        self._order = ResultOrder(bridges, ordered=options.ordered and options.json_output)
        self._written = asyncio.Event()
        self._done = 0
        self._rows: dict[int, Row] = {}  # text mode: every line's row, for the table

    async def run(self) -> int:
        start = time.monotonic()
        self._write(self._order.start())
        async with asyncio.TaskGroup() as group:
            for bridge in self.bridge_list.bridges:
                await self._wait_for_room()
                await self._slots.acquire()
                group.create_task(self._probe(bridge))
        seconds = time.monotonic() - start
        exit_code = batch_exit_code(
            self.counts.passed, self.counts.failed, any_passes=self.options.any_passes
        )
        if self.options.json_output:
            self.out.write(format_json_summary(self.counts, exit_code, seconds))
        else:
            self.out.write("")
            self.out.write(format_table(row for _, row in sorted(self._rows.items())))
            self.out.write("")
            self.out.write(format_counts(self.counts, exit_code, seconds))
        return exit_code

    async def _wait_for_room(self) -> None:
        """Ordered JSON: hold new probes back while too many results wait for an earlier
        line. That line's bridge started earlier, so it finishes and lets them out."""
        while self._order.waiting >= MAX_WAITING_RESULTS:
            self._written.clear()
            await self._written.wait()

    async def _probe(self, bridge: Bridge) -> None:
        try:
            redactor = _BridgeRedactor(self.redactor)
            register_secrets(bridge.line, bridge.config, redactor)
            report = await self._run_one(bridge, redactor)
        finally:
            self._slots.release()
        target = bridge.config.describe(unsafe=redactor.unsafe)
        label = f"{target} {bridge.line.fingerprint}"
        row = bridge_row(bridge.line_no, label, report, redactor.scrub)
        document = bridge_document(label, report)
        self._outcomes[bridge.index] = _Outcome(
            row, document, redactor, self._lines_of[bridge.index]
        )
        self._write(self._order.finished(bridge.index))

    async def _run_one(self, bridge: Bridge, redactor: Redactor) -> ProbeReport:
        probe = Probe(
            bridge.line,
            bridge.config,
            timeout_s=self.options.timeout_s,
            redactor=redactor,
            proxy=self.options.proxy,
            consensus=self.options.consensus,
        )
        try:
            return await probe.run()
        except Exception as exc:  # a bug in one probe must not stop the others
            log.error("line %d: internal error: %r", bridge.line_no, exc)
            report = ProbeReport(bridge.config.redacted_url(), exit_code=EXIT_INTERNAL)
            error = f"internal error: {exc!r}"
            report.layers.append(LayerResult(probe.current_layer, "failed", error=error))
            return report

    def _write(self, lines: list[Entry | BadLine]) -> None:
        for entry in lines:
            if isinstance(entry, BadLine):
                self._write_bad(entry)
            else:
                self._write_entry(entry, self._outcomes[entry.bridge])
        if lines:
            self._written.set()

    def _write_entry(self, entry: Entry, outcome: _Outcome) -> None:
        row = outcome.row
        if entry.duplicate_of is not None:
            row = for_line(row, entry.line_no, entry.duplicate_of)
        if self.options.json_output:
            text = format_json_line(outcome.document, entry.line_no, entry.duplicate_of)
            self.out.write(outcome.redactor.scrub(text))
        self._finish_line(row)
        outcome.lines_left -= 1
        if outcome.lines_left == 0:
            del self._outcomes[entry.bridge]

    def _write_bad(self, entry: BadLine) -> None:
        if self.options.json_output:
            document = malformed_document(entry.error)
            self.out.write(self.redactor.scrub(format_json_line(document, entry.line_no)))
        self._finish_line(malformed_row(entry.line_no, self.redactor.scrub(entry.error)))

    def _finish_line(self, row: Row) -> None:
        """Count a line's outcome; in text mode, print its live line and keep its row."""
        self.counts.add(row)
        self._done += 1
        if not self.options.json_output:
            self._rows[row.line_no] = row
            self.out.write(format_live(row, self._done, len(self.bridge_list.entries)))


def _utf8(stream: TextIO) -> TextIO:
    """Standard input read as UTF-8 whatever the locale; bytes that are not UTF-8 become
    U+FFFD, so such a line is reported as malformed instead of ending the run."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="replace")


def main(
    source: str,
    options: BatchOptions,
    *,
    redactor: Redactor,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """``webtunnel-pt probe --file SOURCE`` (``-`` is stdin); returns the exit status."""
    name = "standard input" if source == "-" else source
    try:
        if source == "-":
            stream = stdin if stdin is not None else _utf8(sys.stdin)
            bridges = parse_bridge_list(read_lines(stream))
        else:
            with open(source, encoding="utf-8", errors="replace") as stream:
                bridges = parse_bridge_list(read_lines(stream))
    except (OSError, TooManyLines) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"webtunnel-pt probe: cannot read {name}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    if not bridges.entries:
        print(f"webtunnel-pt probe: no bridge lines in {name}", file=sys.stderr)
        return EXIT_USAGE
    out = LineWriter(stdout if stdout is not None else sys.stdout)
    batch = Batch(bridges, options, redactor=redactor, out=out)
    try:
        return asyncio.run(batch.run())
    except KeyboardInterrupt:
        return EXIT_INTERNAL
