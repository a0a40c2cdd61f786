"""Conflux sets for exit streams (prop 329), as tor 0.4.9's client makes them: two circuits
("legs") to one exit through different middles, linked at the exit with a shared random nonce,
so the exit sends a stream's data on whichever leg has room in its congestion window. asyncio
glue over :mod:`~webtunnel_pt.tor.conflux` and :mod:`~webtunnel_pt.tor.conflux_leg`.

    circuit = await build_conflux_set(first, legs=2, build_leg=build, timeout_s=60.0)

- **When.** A circuit whose exit accepted congestion control (both are needed: each leg has
  its own window) and lists ``Conflux=1``, while the consensus has ``cfx_enabled`` (the number
  of legs is ``cfx_num_legs_set``) and :data:`REQUEST_CONFLUX` is on.
- **Legs.** The others go to the same exit, each through a middle no other leg uses (tor's
  rule). The bridge is shared: it is the only first hop there is, which tor allows with a
  warning for a single bridge.
- **Linking.** LINK on every leg at once; each LINKED is checked and answered with LINKED_ACK
  (:class:`~webtunnel_pt.tor.conflux_leg.ConfluxLeg`); the leg whose LINKED came back first
  keeps the set's streams and sends on their behalf (tor's minimum-RTT choice; we never
  switch legs, so we send no SWITCH). The exit then sends on any leg; the set's sequencer puts
  its messages back in order.
- **Falling back.** When no second leg can be built (no other middle, a failed extend), the
  first circuit serves alone, unlinked, as tor uses a plain circuit when no set is ready. When
  linking fails (no LINKED in time, a bad one), every leg is closed and the error raised: the
  pool builds afresh.
- **Ending.** When one leg ends, every leg does, and the set's streams with them (tor tears a
  set down when the leg that ended was in use; without resumption there is no safe
  alternative).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.errors import NoPathError, WebtunnelError
from webtunnel_pt.tor.cells import RelayCell
from webtunnel_pt.tor.conflux import NONCE_LEN, ConfluxSequencer
from webtunnel_pt.tor.live_circuit import LiveCircuit
from webtunnel_pt.tor.netview import NetworkView, Relay

__all__ = [
    "CONFLUX_LINK_TIMEOUT_S",
    "REQUEST_CONFLUX",
    "build_conflux_set",
    "conflux_legs",
    "link_set",
]

log = logging.getLogger("webtunnel_pt.tor.conflux_set")

#: Link exit circuits into conflux sets when the network allows, as tor 0.4.9 does.
REQUEST_CONFLUX = True
#: LINK to LINKED on every leg (tor uses its circuit build timeout).
CONFLUX_LINK_TIMEOUT_S = 30.0

#: Builds one more leg to this exit, its middle not among these RSA ids.
LegBuilder = Callable[[Relay, frozenset[bytes]], Awaitable[LiveCircuit]]


def conflux_legs(circuit: LiveCircuit, view: NetworkView) -> int:
    """How many legs a set built from ``circuit`` should have; 0 or 1: no conflux."""
    relay = circuit.exit_relay
    if (
        not REQUEST_CONFLUX
        or relay is None
        or circuit.congestion_control is None
        or not relay.supports("Conflux", 1)
        or view.param("cfx_enabled") != 1
    ):
        return 0
    return view.param("cfx_num_legs_set")


async def build_conflux_set(
    first: LiveCircuit,
    *,
    legs: int,
    build_leg: LegBuilder,
    timeout_s: float = CONFLUX_LINK_TIMEOUT_S,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> LiveCircuit:
    """``first`` and ``legs - 1`` more legs to its exit, linked: the circuit that keeps the
    set's streams. ``first`` alone when not one more leg could be built."""
    if legs < 2 or first.exit_relay is None or len(first.path) < 3:
        return first
    others: list[LiveCircuit] = []
    avoid = {first.path[1].rsa_identity}
    try:
        while len(others) < legs - 1:
            leg = await build_leg(first.exit_relay, frozenset(avoid))
            others.append(leg)
            avoid.add(leg.path[1].rsa_identity)
    except (NoPathError, WebtunnelError, TimeoutError, ConnectionError) as exc:
        log.info("conflux: leg %d of %d not built: %s", len(others) + 2, legs, exc)
        if not others:
            return first
    except BaseException:
        for leg in others:
            await leg.aclose()
        raise
    every = (first, *others)
    try:
        return await link_set(every, Deadline.after(timeout_s), rng)
    except BaseException:
        for leg in every:
            await leg.aclose()
        raise


async def link_set(
    legs: tuple[LiveCircuit, ...],
    deadline: Deadline,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> LiveCircuit:
    """LINK every leg with one fresh nonce, wait for every LINKED, join them: the leg with the
    shortest LINK round trip keeps the streams."""
    nonce = rng(NONCE_LEN)
    rtts = await asyncio.gather(*(leg.link_conflux(nonce, deadline) for leg in legs))
    owner = legs[min(range(len(legs)), key=rtts.__getitem__)]
    sequencer: ConfluxSequencer[RelayCell] = ConfluxSequencer(len(legs))
    for leg in legs:
        leg.join_conflux(sequencer, legs, owner)
    log.info(
        "conflux: linked %d legs to %s (LINK round trips %s ms)",
        len(legs),
        owner.exit_relay.nickname if owner.exit_relay is not None else "?",
        ", ".join(f"{rtt * 1000:.1f}" for rtt in rtts),
    )
    return owner
