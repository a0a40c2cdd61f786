"""The command line in a child process: what `webtunnel-pt` does without tor, and `probe`
without its extra."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from webtunnel_pt import cli


def test_probe_without_cryptography_says_what_to_install() -> None:
    """cryptography is a dependency, but a broken install (or a system package manager that
    dropped it) must still give a sentence, not a traceback."""
    code = (
        "import sys; sys.modules['cryptography'] = None;"  # as if it were not installed
        "from webtunnel_pt import cli; sys.exit(cli.main(['probe', 'webtunnel 192.0.2.1:443']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == cli.EXIT_CONFIG
    assert "pip install 'cryptography>=42'" in done.stderr
    assert "Traceback" not in done.stderr


def test_probe_help_without_cryptography_lists_exit_statuses() -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None;"
        "from webtunnel_pt import cli; sys.exit(cli.main(['probe', '--help']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "identity mismatch" in done.stdout


def test_not_started_by_tor() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOR_PT_")}
    done = subprocess.run(
        [sys.executable, "-m", "webtunnel_pt", "-logLevel", "debug"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == cli.EXIT_USAGE
    assert "not started by tor (TOR_PT_MANAGED_TRANSPORT_VER is not set)" in done.stderr


def test_probe_output_read_by_a_reader_that_leaves_early() -> None:
    """`webtunnel-pt probe … | head -1`: the probe still runs to its verdict and exit status,
    and nothing but its own lines reaches the terminal (no BrokenPipeError traceback)."""
    with socket.socket() as closed:  # bound, never listening: every connect is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        line = (
            f"webtunnel 127.0.0.1:{port} {'AB' * 20} "
            f"url=https://127.0.0.1:{port}/{'s' * 16} ver=0.0.2"
        )
        with subprocess.Popen(
            [sys.executable, "-m", "webtunnel_pt", "probe", "--timeout", "5", line],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as child:
            assert child.stdout is not None and child.stderr is not None
            first = child.stdout.readline()
            child.stdout.close()  # the reader leaves after the first line, as head -1 does
            errors = child.stderr.read()
            status = child.wait(timeout=30)
    assert first.startswith(b"probing https://127.0.0.1:")
    assert status == 11, errors  # FAILED at TCP: the result survives the closed pipe
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors
