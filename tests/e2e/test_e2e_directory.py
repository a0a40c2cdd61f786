"""The directory through the nginx-fronted WebTunnel bridge of the private Tor network, as
`webtunnel-pt probe`'s consensus layer fetches and verifies it (issue 13):

- against the network's three authorities (``--dir-authority`` x3): 3/3 signatures, and the
  relay count the authorities' own cached consensus lists;
- a second run with the same ``--state-dir`` takes certificates and microdescriptors from the
  cache (the consensus is always asked of the bridge);
- with wrong v3idents, the consensus is refused (exit 19), naming the check and each
  authority, and nothing else is fetched or stored;
- the built-in authorities (the real network's) refuse the private network's consensus;
- the text output shows the layer; ``--no-consensus`` skips it.
"""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from webtunnel_pt.probe.report import EXIT_CODES, LAYERS
from webtunnel_pt.tor.dircache import CERTIFICATES_FILE, CONSENSUS_FILE, MICRODESCS_FILE

from .procs import read_text
from .stack import Stack, probe_exits
from .test_e2e_probe import assert_no_secrets, directory_args, layers, run_probe

pytestmark = pytest.mark.e2e

_VALID_AFTER = re.compile(r"^valid-after (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$", re.MULTILINE)


def authority_consensuses(stack: Stack) -> dict[str, int]:
    """valid-after -> number of relays listed, from each authority's own cached consensus."""
    found: dict[str, int] = {}
    for node in stack.network.authorities:
        for name in ("cached-microdesc-consensus", "cached-consensus"):
            text = read_text(node.data_dir / name)
            match = _VALID_AFTER.search(text)
            if match:
                found[match.group(1)] = sum(1 for x in text.splitlines() if x.startswith("r "))
    return found


def consensus_layer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return layers(json.loads(done.stdout))["consensus"]


def probe_directory(
    stack: Stack, state_dir: Path, *extra: str, authority_lines: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    lines = stack.network.dir_authority_lines if authority_lines is None else authority_lines
    directory = [word for line in lines for word in ("--dir-authority", line)]
    directory += ["--state-dir", str(state_dir)]
    return run_probe(stack, stack.bridge_line(), *extra, directory=directory)


def test_the_directory_verifies_against_the_networks_authorities(
    e2e_stack: Stack, tmp_path: Path
) -> None:
    before = authority_consensuses(e2e_stack)
    done = probe_directory(e2e_stack, tmp_path / "state", "--json")
    after = authority_consensuses(e2e_stack)
    assert done.returncode == 0, done.stdout
    layer = consensus_layer(done)
    assert layer["status"] == "ok", layer
    details = layer["details"]
    assert (details["signatures"], details["signatures_valid"], details["authorities"]) == (
        "3/3",
        3,
        3,
    )
    assert details["authorities_source"] == "--dir-authority"
    # The relay count is the authorities' own: from their consensus of the same valid-after
    # when they still hold it (a new one every 10 s here), else the one they all agree on.
    listed = {**before, **after}
    if details["valid_after"] in listed:
        expected = listed[details["valid_after"]]
    else:
        assert len(set(listed.values())) == 1, (details["valid_after"], listed)
        expected = next(iter(listed.values()))
    net = e2e_stack.network
    assert details["consensus_relays"] == expected == len(net.authorities) + len(net.relays)
    assert details["relays"] == details["consensus_relays"]  # every microdescriptor came
    assert details["exits"] == sum(1 for r in net.relays if r.is_exit)
    valid_after = calendar.timegm(time.strptime(details["valid_after"], "%Y-%m-%d %H:%M:%S"))
    assert abs(time.time() - valid_after) < 600
    cache = details["cache"]
    assert cache["consensus"] == "network" and cache["certificates_fetched"] == 3
    assert cache["microdescs_fetched"] == details["microdescs"] and cache["problems"] == []
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)


def test_a_second_run_uses_the_cache(e2e_stack: Stack, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = probe_directory(e2e_stack, state, "--json")
    assert first.returncode == 0, first.stdout
    assert state.stat().st_mode & 0o777 == 0o700
    for name in (CONSENSUS_FILE, CERTIFICATES_FILE, MICRODESCS_FILE):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name

    second = probe_directory(e2e_stack, state, "--json")
    assert second.returncode == 0, second.stdout
    details = consensus_layer(second)["details"]
    cache = details["cache"]
    assert cache["consensus"] == "network"  # the probe always asks the bridge for it
    assert (cache["certificates_fetched"], cache["certificates_cached"]) == (0, 3)
    assert cache["microdescs_cached"] > 0
    assert cache["microdescs_cached"] + cache["microdescs_fetched"] == details["microdescs"]
    assert details["signatures"] == "3/3"


def test_wrong_v3idents_refuse_the_consensus_and_fetch_nothing_else(
    e2e_stack: Stack, tmp_path: Path
) -> None:
    wrong = []
    for index, line in enumerate(e2e_stack.network.dir_authority_lines):
        v3ident = re.search(r"v3ident=([0-9A-F]{40})", line)
        assert v3ident
        wrong.append(line.replace(v3ident.group(1), f"{index + 1:X}" * 40))
    state = tmp_path / "state"
    done = probe_directory(e2e_stack, state, "--json", authority_lines=wrong)
    assert done.returncode == EXIT_CODES["consensus"] == 19
    found = layers(json.loads(done.stdout))
    assert found["descriptor"]["status"] == "ok"
    layer = found["consensus"]
    assert layer["status"] == "failed"
    assert layer["error"].startswith("signatures check failed: consensus signed validly by 0 of 3")
    for index, node in enumerate(e2e_stack.network.authorities):
        named = f"{node.nickname} (v3ident {f'{index + 1:X}' * 8}...): no signature"
        assert named in layer["error"]
    details = layer["details"]
    assert details["check"] == "signatures"
    assert [(a["nickname"], a["v3ident_prefix"]) for a in details["failed_authorities"]] == [
        (node.nickname, f"{i + 1:X}" * 8) for i, node in enumerate(e2e_stack.network.authorities)
    ]
    assert all(a["reason"] == "no signature" for a in details["failed_authorities"])
    assert details["requests"] == 1  # the consensus, then nothing else
    # Nothing but the consensus was fetched: no certificate was wanted (none names a
    # configured authority), no microdescriptor, and nothing reached the cache.
    assert sorted(p.name for p in state.iterdir()) == []
    assert json.loads(done.stdout)["exit_code"] == 19
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)


def test_the_built_in_authorities_refuse_the_private_network(
    e2e_stack: Stack, tmp_path: Path
) -> None:
    directory = ["--state-dir", str(tmp_path / "state")]
    done = run_probe(e2e_stack, e2e_stack.bridge_line(), "--json", directory=directory)
    assert done.returncode == 19
    layer = consensus_layer(done)
    assert layer["details"]["check"] == "signatures"
    assert layer["details"]["authorities_source"] == "built-in"
    assert "0 of 9 configured authorities, 5 needed" in layer["error"]
    assert "moria1" in json.dumps(layer["details"]["failed_authorities"])


def test_the_text_output_shows_the_consensus_layer(e2e_stack: Stack, tmp_path: Path) -> None:
    done = probe_directory(e2e_stack, tmp_path / "state")
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    for _, title, _ in LAYERS:
        assert any(line.startswith(f"  ok   {title} ") for line in lines), title
    consensus = next(line for line in lines if line.startswith("  ok   consensus "))
    assert "valid-after 20" in consensus and "signatures 3/3 (--dir-authority)" in consensus
    net = e2e_stack.network
    listed = len(net.authorities) + len(net.relays)
    assert (
        f"; {listed} relays, {probe_exits(e2e_stack)}; " in consensus
        and "cache: consensus fetched" in consensus
    )
    assert lines[-1].startswith(
        "result: OK - every layer works and the bridge identity matches, and its directory verifies"
    )
    assert_no_secrets(e2e_stack, done.stdout + done.stderr)


def test_no_consensus_skips_the_layer(e2e_stack: Stack, tmp_path: Path) -> None:
    done = run_probe(
        e2e_stack,
        e2e_stack.bridge_line(),
        "--no-consensus",
        directory=directory_args(e2e_stack, tmp_path / "state"),
    )
    assert done.returncode == 0
    assert "  --   consensus               --no-consensus" in done.stdout.splitlines()
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
