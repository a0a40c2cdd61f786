"""front/commands.py as webtunnel_pt.cli registers it: help, flags after the subcommand, usage errors,
torrc input, and exit statuses that need no client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.front.vectors import BRIDGE, SECRET_PATH
from webtunnel_pt import cli
from webtunnel_pt.front import commands

# cli.main sets up the webtunnel_pt logger tree (handlers on capsys's streams): put it back.
pytestmark = pytest.mark.usefixtures("restore_logging")


def test_the_front_ends_are_registered() -> None:
    names = {c.name: c for c in cli.COMMANDS}
    assert names["socks"].run is commands.run_socks
    assert names["fetch"].run is commands.run_fetch
    assert names["fetch"].add_arguments is commands.add_fetch_arguments


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["fetch", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "--dir-authority" in text and "--head" in text and "-o FILE" in text
    assert "Redirects are not followed." in text and "  6  the stream was refused" in text
    with pytest.raises(SystemExit):
        cli.main(["socks", "--help"])
    text = capsys.readouterr().out
    assert "--listen ADDR:PORT" in text and "--allow-internal-addresses" in text


def test_usage_and_configuration_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["socks", "--bridge", BRIDGE, "--listen", "0.0.0.0:9150"]) == 1
    assert "not a loopback address" in capsys.readouterr().err
    assert cli.main(["fetch", "--unsafe-logging", "--bridge", BRIDGE, "gopher://x/"]) == 1
    err = capsys.readouterr().err
    assert "only http:// and https://" in err and SECRET_PATH not in err
    torrc = tmp_path / "torrc"
    torrc.write_text(f"Bridge {BRIDGE}\nSocksPort 10.0.0.1:9050\n")
    assert cli.main(["socks", "-f", str(torrc), "--log-level", "debug"]) == 1
    assert "torrc line 2: SocksPort: 10.0.0.1 is not a loopback" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        cli.main(["fetch", "--bridge", BRIDGE])  # no URL
    assert caught.value.code == 2


def test_fetch_refuses_an_internal_url_without_starting_a_client(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["fetch", "--bridge", BRIDGE, "http://localhost/"]) == 6
    assert "refusing an internal destination (local host name)" in capsys.readouterr().err
