"""When the private network is ready for tests: every relay and the bridge bootstrapped, and the
bridge's microdesc consensus lists every relay usable, with each relay's microdescriptor on the
bridge (a client fetching the directory through the bridge must get the whole network).

Only reads the tors' own files (logs, cached consensus, cached microdescriptors).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import TYPE_CHECKING

from .procs import WaitTimeout, read_text, tail, wait_until

if TYPE_CHECKING:
    from .network import TorNetwork

BOOTSTRAPPED_100 = "Bootstrapped 100%"


def consensus_flags(text: str) -> dict[str, set[str]]:
    """nickname -> flags, from a (microdesc) consensus document."""
    flags: dict[str, set[str]] = {}
    nickname = None
    for line in text.splitlines():
        if line.startswith("r "):
            nickname = line.split()[1]
        elif line.startswith("s ") and nickname is not None:
            flags[nickname] = set(line.split()[1:])
    return flags


def missing_from_consensus(net: TorNetwork) -> list[str]:
    """Relays the bridge's microdesc consensus lacks or lists without a needed flag."""
    flags = consensus_flags(read_text(net.bridge.data_dir / "cached-microdesc-consensus"))
    missing = []
    for node in (*net.authorities, *net.relays):
        need = {"Running", "Valid", *(["Exit"] if node.is_exit else [])}
        lacking = need - flags.get(node.nickname, set())
        if lacking:
            missing.append(f"{node.nickname} lacks {'+'.join(sorted(lacking))}")
    return missing


def _microdesc_digests(text: str) -> set[str]:
    """Unpadded base64 SHA-256 of each microdescriptor in a tor ``cached-microdescs*`` file:
    from its ``onion-key`` line up to the next annotation (``@``) or microdescriptor."""
    digests: set[str] = set()
    current: list[str] = []

    def close() -> None:
        if current:
            body = "".join(current).encode()
            digests.add(base64.b64encode(hashlib.sha256(body).digest()).decode().rstrip("="))
            current.clear()

    for line in text.splitlines(keepends=True):
        if line.startswith(("@", "onion-key")):
            close()
        if line.startswith("onion-key") or (current and not line.startswith("@")):
            current.append(line)
    close()
    return digests


def microdescs_missing(net: TorNetwork) -> list[str]:
    """Relays whose microdescriptor (per the bridge's consensus ``m`` lines) the bridge does
    not hold yet, so it could not serve a complete directory to a client."""
    data = net.bridge.data_dir
    held = set().union(
        *(
            _microdesc_digests(read_text(data / n))
            for n in ("cached-microdescs", "cached-microdescs.new")
        )
    )
    missing, nickname = [], None
    for line in read_text(data / "cached-microdesc-consensus").splitlines():
        if line.startswith("r "):
            nickname = line.split()[1]
        elif line.startswith("m ") and nickname is not None and line.split()[1] not in held:
            missing.append(f"{nickname}'s microdescriptor not on the bridge")
    return missing


def _all_alive(net: TorNetwork) -> None:
    for child in net.processes.children:
        child.check_alive()


def not_bootstrapped(net: TorNetwork) -> list[str]:
    """Relays and the bridge that have not yet logged `Bootstrapped 100%`."""
    return [
        n.nickname
        for n in (*net.relays, net.bridge)
        if BOOTSTRAPPED_100 not in read_text(n.log_path)
    ]


def wait_ready(net: TorNetwork, timeout_s: float) -> None:
    """Every relay and the bridge bootstrapped, and the bridge's microdesc consensus lists
    every relay usable.

    The relays matter as much as the bridge: an exit without a usable consensus of its own
    does not know the middle relay a circuit arrives from, and ends every stream with
    END_STREAM_REASON_MISC ("from unknown relay"), which a client sees as SOCKS reply 1.
    """
    deadline = time.monotonic() + timeout_s
    try:
        net.timings["bridge_bootstrapped_s"] = t = wait_until(
            lambda: BOOTSTRAPPED_100 in read_text(net.bridge.log_path),
            timeout_s,
            "the bridge to bootstrap",
            alive=lambda: _all_alive(net),
        )
        net.timings["relays_bootstrapped_s"] = t = t + wait_until(
            lambda: not not_bootstrapped(net),
            max(1.0, deadline - time.monotonic()),
            "every relay to bootstrap",
            alive=lambda: _all_alive(net),
        )
        net.timings["consensus_complete_s"] = t + wait_until(
            lambda: not missing_from_consensus(net) and not microdescs_missing(net),
            max(1.0, deadline - time.monotonic()),
            "a bridge microdesc consensus listing every relay, with their microdescriptors",
            alive=lambda: _all_alive(net),
        )
    except WaitTimeout as exc:
        detail = "; ".join(
            [
                *(f"{n} not bootstrapped" for n in not_bootstrapped(net)),
                *missing_from_consensus(net),
                *microdescs_missing(net),
            ]
        )
        raise WaitTimeout(f"{exc} ({detail}); bridge log:\n{tail(net.bridge.log_path)}") from None
