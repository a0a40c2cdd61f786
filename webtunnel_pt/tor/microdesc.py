"""Microdescriptors (dir-spec §3.3; tor-link.md §10.3): what a client needs to extend a circuit
to a relay, fetched in batches from ``/tor/micro/d/<digest>-<digest>...``.

    parse_microdescs(response, wanted) -> MicrodescBatch   the wanted ones, and a discard count
    parse_microdesc(text)              -> Microdescriptor  one, as a whole

A response holds microdescriptors back to back. Each starts at its ``onion-key`` line ("exactly
once, at start": the line stays even where the obsolete TAP key under it is gone, tor ≥ 0.4.9,
proposal 350) and runs up to the next one's or the end of the response. Its digest is the SHA-256
of exactly those bytes, and a microdescriptor counts only if that digest is one the consensus
lists (an ``m`` line; ``wanted`` here). Anything else, and any wanted microdescriptor that does
not parse, is discarded and counted, never raised: the relay then lacks a microdescriptor.

Lines read: ``ntor-onion-key`` (exactly once, 32 bytes), ``a``, ``family``, ``family-ids``,
``p``, ``p6``, ``id ed25519`` / ``id rsa1024`` (each key type at most once); the TAP key under
``onion-key``, when present, must be labelled RSA PUBLIC KEY and is otherwise ignored. Unknown
keywords are skipped (dir-spec §1.2). Sans-I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from webtunnel_pt.errors import DirectoryError, MicrodescError
from webtunnel_pt.tor import docfields as f
from webtunnel_pt.tor.netdoc import NetdocItem, parse_items

#: Largest microdescriptor response accepted (bytes, uncompressed): every relay of the live
#: network (~8,000 at ~400 bytes each) fits in 4 MiB; 16 MiB leaves room for families.
MAX_MICRODESC_RESPONSE_BYTES = 16 * 1024 * 1024
#: Microdescriptors per response; no more than the relays a consensus may list.
MAX_MICRODESCS = 30_000
#: Members of a ``family`` or ``family-ids`` line; the largest real families hold a few hundred.
MAX_FAMILY_MEMBERS = 2048
#: Distinct ``p``/``p6`` and family lines remembered per response (see ``_Shared``).
MAX_SHARED_VALUES = 4096
#: ``a`` lines in one microdescriptor: tor writes at most one.
MAX_ALT_ADDRESSES = 4

_ONCE = frozenset({"onion-key", "ntor-onion-key", "family", "family-ids", "p", "p6"})


@dataclass(frozen=True, slots=True)
class Microdescriptor:
    """The parts of a microdescriptor path selection and EXTEND2 use."""

    digest: bytes  # 32 bytes, SHA-256 of the microdescriptor's bytes
    ntor_onion_key: bytes  # 32 bytes, curve25519
    ed25519_id: bytes | None  # 32 bytes
    ipv6: tuple[tuple[str, int], ...]
    family: frozenset[str]
    family_ids: frozenset[str]
    policy: f.PortPolicy  # ``p``; reject everything when absent
    policy6: f.PortPolicy  # ``p6``; reject everything when absent


@dataclass(frozen=True, slots=True)
class MicrodescBatch:
    """The wanted, well-formed microdescriptors of a response (first copy of each digest)."""

    microdescs: tuple[Microdescriptor, ...]
    discarded: int  # unrequested, malformed or repeated microdescriptors


def split_microdescs(items: Sequence[NetdocItem]) -> list[list[NetdocItem]]:
    """Group a response's items into microdescriptors, each starting at its ``onion-key``."""
    groups: list[list[NetdocItem]] = []
    for item in items:
        if item.keyword == "onion-key":
            if len(groups) >= MAX_MICRODESCS:
                raise MicrodescError(f"response holds more than {MAX_MICRODESCS} microdescs")
            groups.append([item])
        elif not groups:
            raise MicrodescError(f"microdescriptor starts with {item.keyword[:32]!r}")
        else:
            groups[-1].append(item)
    return groups


def _args(item: NetdocItem, low: int, high: int) -> tuple[str, ...]:
    if not low <= len(item.args) <= high:
        raise MicrodescError(f"microdesc {item.keyword!r} line has {len(item.args)} arguments")
    if item.obj is not None and item.keyword != "onion-key":
        raise MicrodescError(f"microdesc {item.keyword!r} line carries an unexpected object")
    return item.args


class _Shared:
    """Parsed ``p``/``p6`` and ``family``/``family-ids`` lines by their text, shared between
    the microdescriptors of one response (family members list the same line, and a handful of
    exit summaries cover most exits); the values are immutable."""

    def __init__(self) -> None:
        self.policies: dict[tuple[str, ...], f.PortPolicy] = {}
        self.members: dict[tuple[str, ...], frozenset[str]] = {}

    def policy(self, item: NetdocItem | None) -> f.PortPolicy:
        if item is None:
            return f.REJECT_ALL
        args = _args(item, 2, 2)
        policy = self.policies.get(args)
        if policy is None:
            policy = f.parse_port_policy(args, f"microdesc {item.keyword}", MicrodescError)
            if len(self.policies) < MAX_SHARED_VALUES:
                self.policies[args] = policy
        return policy

    def family(self, item: NetdocItem | None) -> frozenset[str]:
        if item is None:
            return frozenset()
        args = _args(item, 0, MAX_FAMILY_MEMBERS)
        members = self.members.get(args)
        if members is None:
            if any(len(member) > 128 for member in args):
                raise MicrodescError(f"microdesc {item.keyword} member is too long")
            members = frozenset(args)
            if len(self.members) < MAX_SHARED_VALUES:
                self.members[args] = members
        return members


def _read(items: Sequence[NetdocItem], digest: bytes, shared: _Shared) -> Microdescriptor:
    once: dict[str, NetdocItem] = {}
    ids: dict[str, str] = {}
    ipv6: list[tuple[str, int]] = []
    for item in items:
        if item.keyword in _ONCE:
            if item.keyword in once:
                raise MicrodescError(f"microdesc repeats {item.keyword!r}")
            once[item.keyword] = item
        elif item.keyword == "a":
            if len(ipv6) >= MAX_ALT_ADDRESSES:
                raise MicrodescError(f"microdesc has more than {MAX_ALT_ADDRESSES} 'a' lines")
            ipv6.append(f.parse_ipv6_port(_args(item, 1, 1)[0], "microdesc a", MicrodescError))
        elif item.keyword == "id":
            key_type, value = _args(item, 2, 8)[:2]
            if key_type in ids:
                raise MicrodescError(f"microdesc repeats 'id {key_type[:16]}'")
            ids[key_type] = value
    tap = items[0].obj
    _args(items[0], 0, 0)
    if tap is not None and tap.label != "RSA PUBLIC KEY":
        raise MicrodescError("microdesc onion-key object is not an RSA PUBLIC KEY")
    if "ntor-onion-key" not in once:
        raise MicrodescError("microdesc has no ntor-onion-key")
    ntor_arg = _args(once["ntor-onion-key"], 1, 1)[0]
    ed_id = ids.get("ed25519")

    return Microdescriptor(
        digest=digest,
        ntor_onion_key=f.b64_fixed(ntor_arg, 32, "ntor-onion-key", MicrodescError),
        ed25519_id=None if ed_id is None else f.b64_fixed(ed_id, 32, "id ed25519", MicrodescError),
        ipv6=tuple(ipv6),
        family=shared.family(once.get("family")),
        family_ids=shared.family(once.get("family-ids")),
        policy=shared.policy(once.get("p")),
        policy6=shared.policy(once.get("p6")),
    )


def parse_microdesc(text: bytes) -> Microdescriptor:
    """Parse exactly one microdescriptor; its digest covers all of ``text``."""
    groups = split_microdescs(parse_items(text, max_bytes=MAX_MICRODESC_RESPONSE_BYTES))
    if len(groups) != 1 or groups[0][0].start != 0:
        raise MicrodescError("text is not exactly one microdescriptor")
    return _read(groups[0], hashlib.sha256(text).digest(), _Shared())


def parse_microdescs(response: bytes, wanted: Collection[bytes]) -> MicrodescBatch:
    """Keep the microdescriptors whose digest is in ``wanted`` (32-byte SHA-256 digests from the
    consensus ``m`` lines); count the rest as discarded. Raises :class:`MicrodescError` (or the
    tokenizer's ``NetdocError``) only when the response as a whole cannot be read."""
    if len(response) > MAX_MICRODESC_RESPONSE_BYTES:
        raise MicrodescError(f"response is larger than {MAX_MICRODESC_RESPONSE_BYTES} bytes")
    items = parse_items(response, max_bytes=MAX_MICRODESC_RESPONSE_BYTES)
    if items and items[0].start != 0:
        raise MicrodescError("response has bytes before its first microdescriptor")
    groups = split_microdescs(items)
    wanted_set = frozenset(wanted)
    kept: dict[bytes, Microdescriptor] = {}
    shared = _Shared()
    discarded = 0
    for at, group in enumerate(groups):
        end = groups[at + 1][0].start if at + 1 < len(groups) else len(response)
        digest = hashlib.sha256(response[group[0].start : end]).digest()
        if digest not in wanted_set or digest in kept:
            discarded += 1
            continue
        try:
            kept[digest] = _read(group, digest, shared)
        except DirectoryError:
            discarded += 1
    return MicrodescBatch(tuple(kept.values()), discarded)
