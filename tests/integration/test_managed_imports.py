"""Managed mode never loads ``cryptography`` (nor the built-in Tor link): it is a required
dependency for ``probe`` since issue 11, but tor starting the PT must stay as fast as before.
A real managed-mode run in a fresh interpreter, through the CLI entry point: start-up, CMETHOD,
stdin closed, clean exit; then the modules it loaded are listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import json, sys
from webtunnel_pt import cli
status = cli.main([])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"
                or m.startswith(("webtunnel_pt.tor", "webtunnel_pt.probe")))
print("MODULES " + json.dumps([status, loaded, "webtunnel_pt.pt.listener" in sys.modules]))
"""


def test_a_managed_mode_run_loads_no_cryptography(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "TOR_PT_MANAGED_TRANSPORT_VER": "1",
        "TOR_PT_CLIENT_TRANSPORTS": "webtunnel",
        "TOR_PT_STATE_LOCATION": str(tmp_path / "state"),
        "TOR_PT_EXIT_ON_STDIN_CLOSE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,  # EOF at once: managed mode starts, then stops
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert any(line.startswith("CMETHOD webtunnel socks5 127.0.0.1:") for line in lines)
    assert "CMETHODS DONE" in lines
    status, loaded, listener_loaded = json.loads(lines[-1].removeprefix("MODULES "))
    assert status == 0
    assert listener_loaded  # the run really went through managed mode
    assert loaded == []
