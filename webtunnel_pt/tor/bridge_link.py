"""The link to the bridge, the first hop of every circuit: from a bridge line to an open,
verified channel and the bridge's verified ntor key (webtunnel-wire.md §3; tor-link.md §2, §4,
§5, §10.1; dir-spec §2.1.1). asyncio glue.

    entries = [parse_bridge(text) for text in lines]          # fingerprint required
    link = await connect_bridges(entries, rng=random.Random())
    link.channel      the open Channel (its owner closes it: ``await link.aclose()``)
    link.descriptor   the bridge's server descriptor, signatures and identity checked
    link.first_hop    FirstHop: PathHop + ntor onion key, for CREATE2 and path selection

The steps, as ``webtunnel-pt probe`` runs them: dial (DNS, TCP, outer TLS, upgrade), inner
TLS, link handshake with the bridge line's fingerprint, a CREATE_FAST circuit and BEGIN_DIR
``/tor/server/authority``; the descriptor's signatures must verify, its keys must be the ones
the link proved, and its ``ntor-onion-key-crosscert`` must prove that the ntor key belongs to
that identity. Only then is the ntor key used.

With several bridge lines one is picked at random and the others are tried in turn after it
when it fails; the error of the last one tried is raised (each failure is logged).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webtunnel_pt.deadlines import CIRCUIT_TIMEOUT_S, LINK_HANDSHAKE_TIMEOUT_S, Deadline
from webtunnel_pt.errors import BridgeArgsError, DirectoryError, WebtunnelError
from webtunnel_pt.tor.cells import DestroyReason, IPAddress
from webtunnel_pt.tor.channel import Channel, handshake_channel, start_inner_tls
from webtunnel_pt.tor.channel_circuit import budget
from webtunnel_pt.tor.circuit_pool import FirstHop
from webtunnel_pt.tor.crosscert import verify_ntor_onion_key_crosscert
from webtunnel_pt.tor.directory import (
    SERVER_AUTHORITY_PATH,
    ServerDescriptor,
    check_descriptor_identity,
    parse_server_descriptor,
)
from webtunnel_pt.tor.path import PathHop
from webtunnel_pt.webtunnel.bridge import (
    BridgeConfig,
    BridgeLine,
    bridge_config_from_args,
    parse_bridge_line,
)
from webtunnel_pt.webtunnel.dial import DialOptions, Tunnel, dial_bridge

__all__ = [
    "BRIDGE_LINK_TIMEOUT_S",
    "BridgeEntry",
    "BridgeLink",
    "bridge_hop",
    "connect_bridge",
    "connect_bridges",
    "parse_bridge",
]

log = logging.getLogger("webtunnel_pt.tor.bridge_link")

#: One bridge, dial to verified descriptor: the dial's 30 s, then a few round trips.
BRIDGE_LINK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BridgeEntry:
    """A parsed bridge line; ``index`` is its place among the lines given (for messages that
    must not name the bridge)."""

    line: BridgeLine
    config: BridgeConfig
    index: int = 0

    @property
    def fingerprint(self) -> str:
        assert self.line.fingerprint is not None  # parse_bridge requires it
        return self.line.fingerprint


def parse_bridge(text: str, index: int = 0) -> BridgeEntry:
    """A torrc bridge line (``Bridge`` optional); its fingerprint is required, since the
    bridge's identity is what every circuit trusts."""
    line = parse_bridge_line(text)
    if line.fingerprint is None:
        raise BridgeArgsError(
            "the built-in Tor client needs the bridge fingerprint in the bridge line"
        )
    return BridgeEntry(line, bridge_config_from_args(line.args), index)


@dataclass
class BridgeLink:
    """An open channel to the bridge and what was verified about it."""

    entry: BridgeEntry
    channel: Channel
    descriptor: ServerDescriptor
    first_hop: FirstHop

    async def aclose(self) -> None:
        await self.channel.aclose()


def bridge_hop(descriptor: ServerDescriptor) -> PathHop:
    """The bridge as a path hop: its identities and address (no family: a bridge is not in
    the consensus, and its identity already keeps it out of the rest of the path)."""
    return PathHop(
        rsa_identity=bytes.fromhex(descriptor.fingerprint),
        ed25519_identity=descriptor.master_key_ed25519,
        address=descriptor.address,
        ipv6=None,
        family=frozenset(),
        family_ids=frozenset(),
        nickname=descriptor.nickname,
    )


def _peer_address(line: BridgeLine) -> IPAddress | None:
    host = line.address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _fetch_descriptor(
    channel: Channel, deadline: Deadline, clock: Callable[[], float]
) -> ServerDescriptor:
    circuit = await channel.create_fast_circuit(CIRCUIT_TIMEOUT_S, deadline=deadline)
    try:
        response = await circuit.fetch_directory(
            SERVER_AUTHORITY_PATH, timeout_s=CIRCUIT_TIMEOUT_S, deadline=deadline
        )
    finally:
        circuit.circuit.destroy(DestroyReason.NONE)
        channel.write_pending(circuit.circuit)
        channel.end_circuit(circuit.circ_id, lambda: DirectoryError("circuit closed"), discard=True)
    if response.status != 200:
        raise DirectoryError(f"the bridge answered HTTP {response.status} for its descriptor")
    descriptor = parse_server_descriptor(response.body)
    now = clock()
    check_descriptor_identity(descriptor, channel.identity, now=now)
    verify_ntor_onion_key_crosscert(descriptor, now=now)
    return descriptor


async def connect_bridge(
    entry: BridgeEntry,
    *,
    dial_options: DialOptions | None = None,
    timeout_s: float = BRIDGE_LINK_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
    on_step: Callable[[str], None] = lambda step: None,
) -> BridgeLink:
    """Dial one bridge, open the channel and verify its descriptor; ``on_step`` hears
    ``"conn"`` before the dial and ``"handshake"`` before the inner TLS."""
    deadline = Deadline.after(timeout_s)
    on_step("conn")
    options = dial_options or DialOptions()
    options = DialOptions(
        timeout_s=deadline.cap(options.timeout_s),
        connect_timeout_s=options.connect_timeout_s,
        bind_v4=options.bind_v4,
        bind_v6=options.bind_v6,
        resolver=options.resolver,
        proxy=options.proxy,
        server_names=options.server_names,
    )
    tunnel: Tunnel = await dial_bridge(entry.config, options)
    channel: Channel | None = None
    try:
        on_step("handshake")
        wait = budget(LINK_HANDSHAKE_TIMEOUT_S, deadline)
        tls = await start_inner_tls(
            tunnel.writer, timeout_s=wait.remaining(), reader=tunnel.reader, deadline=wait
        )
        channel = await handshake_channel(
            tunnel.reader,
            tunnel.writer,
            tls,
            expected_fingerprint=entry.fingerprint,
            peer_address=_peer_address(entry.line),
            clock=clock,
            deadline=budget(LINK_HANDSHAKE_TIMEOUT_S, deadline),
        )
        descriptor = await _fetch_descriptor(channel, deadline, clock)
        key = descriptor.ntor_onion_key
        if key is None:
            raise DirectoryError("the bridge's descriptor has no ntor-onion-key")
        return BridgeLink(entry, channel, descriptor, FirstHop(bridge_hop(descriptor), key))
    except BaseException:
        if channel is not None:
            await channel.aclose()
        else:
            tunnel.writer.transport.abort()
        raise


async def connect_bridges(
    entries: Sequence[BridgeEntry],
    *,
    rng: random.Random | None = None,
    dial_options: DialOptions | None = None,
    timeout_s: float = BRIDGE_LINK_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
    on_step: Callable[[str], None] = lambda step: None,
) -> BridgeLink:
    """A link to one of ``entries``: a random one first, then the next ones in turn."""
    if not entries:
        raise BridgeArgsError("no bridge line given")
    start = (rng or random.SystemRandom()).randrange(len(entries))
    order = [*entries[start:], *entries[:start]]
    last: BaseException | None = None
    for entry in order:
        try:
            return await connect_bridge(
                entry, dial_options=dial_options, timeout_s=timeout_s, clock=clock, on_step=on_step
            )
        except (WebtunnelError, TimeoutError, OSError) as exc:
            if len(order) == 1:
                raise
            log.warning("bridge %d failed: %s", entry.index + 1, exc)
            last = exc
    assert last is not None
    last.add_note(f"all {len(order)} bridges failed; this was the last one tried")
    raise last
