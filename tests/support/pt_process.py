"""The PT run as a subprocess exactly as tor runs it: TOR_PT_* environment, stdout read line
by line, stdin kept open (EOF is a stop request).

Its output has read positions, so that a test sharing one PT with others (the module-scoped
``pt_process`` fixture) never matches a line an earlier test caused: :meth:`PtProcess.mark`
returns a :class:`LogMark`, the waits take ``since=``, and :meth:`PtProcess.view` gives a
test the same process seen from its own start (the function-scoped ``pt`` fixture).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.secrets import record_output


def pt_command() -> list[str]:
    """``WEBTUNNEL_PT`` (e.g. a PyInstaller binary), else the ``webtunnel-pt`` installed next to
    the Python running the tests (a venv's bin, not activated, comes first: an older one on
    PATH must not be tested instead), else ``python -m webtunnel_pt``."""
    override = os.environ.get("WEBTUNNEL_PT")
    if override:
        return [override]
    beside = os.path.join(os.path.dirname(sys.executable), "webtunnel-pt")
    if os.access(beside, os.X_OK):
        return [beside]
    installed = shutil.which("webtunnel-pt")
    if installed:
        return [installed]
    return [sys.executable, "-m", "webtunnel_pt"]


def tor_environment(state_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("TOR_PT_")]:
        del env[key]
    env.update(
        TOR_PT_MANAGED_TRANSPORT_VER="1",
        TOR_PT_CLIENT_TRANSPORTS="webtunnel",
        TOR_PT_STATE_LOCATION=f"{state_dir}/",
        TOR_PT_EXIT_ON_STDIN_CLOSE="1",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class LogMark:
    """A read position in a PT's output: how many stdout lines and stderr bytes came before."""

    lines: int = 0
    stderr: int = 0


START = LogMark()


class PtProcess:
    """One PT process. A :meth:`view` shares the process and its output, but its waits and
    :meth:`all_output` start at the view's mark instead of the process start."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*pt_command(), *args],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._recorded = False
        self.stderr = bytearray()
        self.start = START
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(65536):
            with self._cond:
                self.stderr += chunk

    def mark(self) -> LogMark:
        """The current end of the output: pass it as ``since=`` to see only what follows."""
        with self._cond:
            return LogMark(len(self.lines), len(self.stderr))

    def view(self) -> PtProcess:
        """The same process, its waits and output starting from now."""
        seen = copy.copy(self)
        seen.start = self.mark()
        return seen

    def wait_for_line(
        self,
        predicate: Callable[[str], bool],
        timeout: float = 15.0,
        since: LogMark | None = None,
    ) -> str:
        """The first stdout line from ``since`` (default: this view's start) that matches."""
        first = (self.start if since is None else since).lines
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[first:]:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or "<EOF>" in self.lines:
                    raise AssertionError(
                        f"no such line within {timeout} s; got {self.lines[first:]!r}"
                    )
                self._cond.wait(remaining)

    def wait_for_log(self, text: str, timeout: float = 15.0, since: LogMark | None = None) -> str:
        return self.wait_for_line(
            lambda line: line.startswith("LOG ") and text in line, timeout, since
        )

    def socks_port(self) -> int:
        """The listener's port, from the start-up lines (whatever the view)."""
        self.wait_for_line(lambda line: line == "CMETHODS DONE", since=START)
        line = self.wait_for_line(lambda line: line.startswith("CMETHOD webtunnel "), since=START)
        host, _, port = line.split()[3].rpartition(":")
        assert host == "127.0.0.1", line
        return int(port)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for thread in self._readers:
            thread.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        if not self._recorded:
            self._recorded = True
            record_output(
                f"PT pid {self.proc.pid} {self.proc.args!r}", self.all_output(since=START)
            )
        return code

    def all_output(self, since: LogMark | None = None) -> str:
        """stdout lines and stderr from ``since`` (default: this view's start)."""
        start = self.start if since is None else since
        with self._cond:
            lines = self.lines[start.lines :]
            stderr = bytes(self.stderr[start.stderr :])
        return "\n".join(lines) + "\n" + stderr.decode("utf-8", "replace")
