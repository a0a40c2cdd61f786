"""The command line in a child process: what `webtunnel-pt` does without tor, and `probe`
without its extra."""

from __future__ import annotations

import os
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
