"""The PT run as a subprocess exactly as tor runs it: TOR_PT_* environment, stdout read line
by line, stdin kept open (EOF is a stop request)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
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


class PtProcess:
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
            self.stderr += chunk

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or "<EOF>" in self.lines:
                    raise AssertionError(f"no such line within {timeout} s; got {self.lines!r}")
                self._cond.wait(remaining)

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        return self.wait_for_line(lambda line: line.startswith("LOG ") and text in line, timeout)

    def socks_port(self) -> int:
        self.wait_for_line(lambda line: line == "CMETHODS DONE")
        line = self.wait_for_line(lambda line: line.startswith("CMETHOD webtunnel "))
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
            record_output(f"PT pid {self.proc.pid} {self.proc.args!r}", self.all_output())
        return code

    def all_output(self) -> str:
        return "\n".join(self.lines) + "\n" + self.stderr.decode("utf-8", "replace")
