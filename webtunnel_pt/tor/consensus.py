"""The microdescriptor-flavoured consensus: parsing (dir-spec §3.4.1 and its microdesc-flavour
differences in §3.4.2 "Microdescriptor consensus"; tor-link.md §10.2).

    parse_consensus(document) -> Consensus   structure only; signatures are
                                              :mod:`webtunnel_pt.tor.consensus_verify`'s job

The document is read as four sections, in order, each keyword allowed in one only:

    header      network-status-version 3 microdesc, vote-status consensus, consensus-method,
                valid-after, fresh-until, valid-until, voting-delay, known-flags, params, ...
    authorities dir-source (+ contact, vote-digest), one block per authority
    routers     r (no descriptor digest in this flavour), a, s, v, pr, w, p, m: routerstatus.py
    footer      directory-footer, bandwidth-weights, then only directory-signature items

Unknown keywords are skipped (dir-spec §1.2: "implementations MUST ignore" them), except after
the first ``directory-signature``: nothing there is signed, so only signatures may follow.
Router entries must be sorted by RSA identity with no repeats, as tor requires. The digests the
signatures cover are computed here, from the start of the document through the space after the
first ``directory-signature`` keyword (dir-spec §3.4.1 "directory-signature"). Sans-I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from webtunnel_pt.errors import ConsensusError
from webtunnel_pt.tor import docfields as f
from webtunnel_pt.tor.netdoc import NetdocItem, parse_items
from webtunnel_pt.tor.routerstatus import (
    MAX_KNOWN_FLAGS,
    ROUTER_KEYWORDS,
    RouterStatus,
    RouterStatusReader,
)

#: Largest consensus accepted (bytes, uncompressed). The live microdesc consensus for ~8,000
#: relays is about 3 MiB; 16 MiB leaves room for growth and stops a hostile bridge earlier.
MAX_CONSENSUS_BYTES = 16 * 1024 * 1024
#: Router entries; the live network lists about 8,000, so 30,000 leaves ample headroom.
MAX_ROUTERS = 30_000
#: ``dir-source`` blocks and ``directory-signature`` items; 9 authorities exist today.
MAX_AUTHORITIES = 32
#: Arguments of a ``directory-signature`` line: [algorithm] identity digest, and a few spare
#: for extensions (dir-spec §1.2 lets items grow arguments).
MAX_SIGNATURE_ARGS = 8
#: Bytes of an RSA signature: authorities sign with 2,048-bit keys; 4,096-bit ones fit.
MAX_SIGNATURE_BYTES = 512

DIGEST_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
_SIG_KEYWORD = b"directory-signature "

_HEADER = frozenset(
    {
        "network-status-version",
        "vote-status",
        "consensus-method",
        "valid-after",
        "fresh-until",
        "valid-until",
        "voting-delay",
        "client-versions",
        "server-versions",
        "known-flags",
        "params",
        "recommended-client-protocols",
        "recommended-relay-protocols",
        "required-client-protocols",
        "required-relay-protocols",
        "shared-rand-previous-value",
        "shared-rand-current-value",
    }
)
_AUTHORITY = frozenset({"dir-source", "contact", "vote-digest"})
_FOOTER = frozenset({"directory-footer", "bandwidth-weights"})
_SECTION_OF = {
    **dict.fromkeys(_HEADER, 0),
    **dict.fromkeys(_AUTHORITY, 1),
    **dict.fromkeys(ROUTER_KEYWORDS, 2),
    **dict.fromkeys(_FOOTER, 3),
    "directory-signature": 4,
}
_SECTION_NAMES = ("header", "authority section", "router section", "footer", "signatures")
# Keywords that open a section (or a block inside one).
_OPENERS = frozenset({"dir-source", "r", "directory-footer", "directory-signature"})


@dataclass(frozen=True, slots=True)
class DirSource:
    """One authority's ``dir-source`` block (dir-spec §3.4.1)."""

    nickname: str
    identity: bytes  # 20 bytes: the authority's v3ident
    address: str
    dir_port: int
    or_port: int
    contact: str | None
    vote_digest: bytes | None  # 20 bytes, SHA-1 of the authority's vote


@dataclass(frozen=True, slots=True)
class DirectorySignature:
    """A ``directory-signature`` item (dir-spec §3.4.1)."""

    algorithm: str  # "sha1" or "sha256"
    identity: bytes  # 20 bytes: the signing authority's v3ident
    signing_key_digest: bytes  # 20 bytes: SHA-1 of the signing key's PKCS#1 DER
    signature: bytes


@dataclass(frozen=True, slots=True)
class Consensus:
    """A parsed, not yet verified, microdesc consensus."""

    consensus_method: int
    valid_after: int  # POSIX seconds
    fresh_until: int
    valid_until: int
    voting_delay: tuple[int, int] | None  # (vote seconds, dist seconds)
    known_flags: frozenset[str]
    params: Mapping[str, int]
    dir_sources: tuple[DirSource, ...]
    routers: tuple[RouterStatus, ...]
    bandwidth_weights: Mapping[str, int]
    signatures: tuple[DirectorySignature, ...]
    signed_digests: Mapping[str, bytes]  # algorithm -> digest of the signed portion

    def needs_refetch(self, now: float) -> bool:
        """Whether ``fresh-until`` has passed: time to fetch the next consensus (it stays
        usable while reasonably live)."""
        return now >= self.fresh_until


def _args(item: NetdocItem, low: int, high: int | None = None) -> tuple[str, ...]:
    return f.item_args(item, low, low if high is None else high, ConsensusError)


def _int(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise ConsensusError(f"consensus {what} is not a non-negative integer")
    return int(text)


def _time(item: NetdocItem) -> int:
    day, clock = _args(item, 2)
    return f.parse_time(day, clock, f"consensus {item.keyword}", ConsensusError)


class _Header:
    """The header's values while the header is read."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.method = 1
        self.times: dict[str, int] = {}
        self.voting_delay: tuple[int, int] | None = None
        self.known_flags: frozenset[str] | None = None
        self.params: dict[str, int] = {}

    def read(self, item: NetdocItem) -> None:
        key = item.keyword
        if key in self.seen:
            raise ConsensusError(f"consensus header repeats {key!r}")
        self.seen.add(key)
        if key == "vote-status":
            if _args(item, 1, 64)[0] != "consensus":
                raise ConsensusError("consensus vote-status is not 'consensus'")
        elif key == "consensus-method":
            self.method = _int(_args(item, 1)[0], "consensus-method")
        elif key in ("valid-after", "fresh-until", "valid-until"):
            self.times[key] = _time(item)
        elif key == "voting-delay":
            vote, dist = _args(item, 2)
            self.voting_delay = (_int(vote, "voting-delay"), _int(dist, "voting-delay"))
        elif key == "known-flags":
            flags = _args(item, 0, MAX_KNOWN_FLAGS)
            if len(set(flags)) != len(flags):
                raise ConsensusError("consensus known-flags repeats a flag")
            self.known_flags = frozenset(flags)
        elif key == "params":
            self.params = f.parse_int_pairs(item.args, "consensus params", ConsensusError)


def _authorities(block: Sequence[NetdocItem]) -> DirSource:
    nickname, identity, _host, address, dir_port, or_port = _args(block[0], 6)
    contact: str | None = None
    vote_digest: bytes | None = None
    for item in block[1:]:
        if item.keyword == "contact":
            if contact is not None:
                raise ConsensusError("dir-source block repeats 'contact'")
            contact = " ".join(item.args)
        elif item.keyword == "vote-digest":
            if vote_digest is not None:
                raise ConsensusError("dir-source block repeats 'vote-digest'")
            vote_digest = f.hex_fixed(_args(item, 1)[0], 20, "vote-digest", ConsensusError)
    return DirSource(
        nickname=nickname,
        identity=f.hex_fixed(identity, 20, "dir-source identity", ConsensusError),
        address=f.parse_ipv4(address, "dir-source address", ConsensusError),
        dir_port=f.parse_port(dir_port, "dir-source DirPort", ConsensusError, allow_zero=True),
        or_port=f.parse_port(or_port, "dir-source ORPort", ConsensusError, allow_zero=True),
        contact=contact,
        vote_digest=vote_digest,
    )


def _signature(item: NetdocItem) -> DirectorySignature | None:
    """A signature item; None for an algorithm we do not know, which dir-spec §3.4.1 says to
    ignore (it then counts for no authority)."""
    if len(item.args) == 2:
        algorithm, (identity, key_digest) = "sha1", item.args
    elif 3 <= len(item.args) <= MAX_SIGNATURE_ARGS:
        algorithm, identity, key_digest = item.args[:3]  # later arguments: future extensions
    else:
        raise ConsensusError("directory-signature has the wrong number of arguments")
    if item.obj is None or item.obj.label != "SIGNATURE":
        raise ConsensusError("directory-signature has no SIGNATURE object")
    if not 0 < len(item.obj.data) <= MAX_SIGNATURE_BYTES:
        raise ConsensusError("directory-signature object has an unusable size")
    if algorithm not in DIGEST_ALGORITHMS:
        return None
    return DirectorySignature(
        algorithm=algorithm,
        identity=f.hex_fixed(identity, 20, "directory-signature identity", ConsensusError),
        signing_key_digest=f.hex_fixed(key_digest, 20, "signing-key digest", ConsensusError),
        signature=item.obj.data,
    )


def _blocks(items: Sequence[NetdocItem]) -> list[list[NetdocItem]]:
    """Cut the items into blocks, each starting at an opener keyword or at the document start,
    checking that the sections come in order."""
    blocks: list[list[NetdocItem]] = [[]]
    section = 0
    for item in items:
        where = _SECTION_OF.get(item.keyword)
        if section == 4 and item.keyword != "directory-signature":
            raise ConsensusError(f"unsigned {item.keyword[:32]!r} line after the signatures")
        if where is None:
            blocks[-1].append(item)  # unknown: kept with its block, skipped by the readers
            continue
        if where < section or (where > section and item.keyword not in _OPENERS):
            raise ConsensusError(
                f"consensus {item.keyword!r} line in the {_SECTION_NAMES[section]}"
            )
        section = where
        if item.keyword in _OPENERS:
            blocks.append([item])
        else:
            blocks[-1].append(item)
    return blocks


def parse_consensus(document: bytes) -> Consensus:
    """Parse a microdesc consensus; raises :class:`ConsensusError` (or the tokenizer's
    ``NetdocError``) on anything malformed or over a bound."""
    if len(document) > MAX_CONSENSUS_BYTES:
        raise ConsensusError(f"consensus is larger than {MAX_CONSENSUS_BYTES} bytes")
    items = parse_items(document, max_bytes=MAX_CONSENSUS_BYTES)
    if not items or items[0].keyword != "network-status-version" or items[0].start != 0:
        raise ConsensusError("document does not start with network-status-version")
    if _args(items[0], 1, 2) != ("3", "microdesc"):
        raise ConsensusError("document is not a version 3 microdesc consensus")
    header = _Header()
    dir_sources: list[DirSource] = []
    routers: list[RouterStatus] = []
    weights: dict[str, int] = {}
    signatures: list[DirectorySignature] = []
    signature_items = 0
    known_flags: frozenset[str] = frozenset()
    memo = RouterStatusReader(known_flags)
    for block in _blocks(items):
        opener = block[0].keyword if block else ""
        if opener in ("", "network-status-version"):
            for item in block:
                if item.keyword in _HEADER:
                    header.read(item)
            if header.known_flags is None or len(header.times) != 3:
                raise ConsensusError("consensus header lacks known-flags or a validity time")
            if "vote-status" not in header.seen:
                raise ConsensusError("consensus header lacks vote-status")
            known_flags = header.known_flags
            memo = RouterStatusReader(known_flags)
        elif opener == "dir-source":
            if len(dir_sources) >= MAX_AUTHORITIES:
                raise ConsensusError(f"consensus has more than {MAX_AUTHORITIES} dir-sources")
            dir_sources.append(_authorities(block))
        elif opener == "r":
            if len(routers) >= MAX_ROUTERS:
                raise ConsensusError(f"consensus lists more than {MAX_ROUTERS} relays")
            router = memo.read(block)
            if routers and router.identity <= routers[-1].identity:
                raise ConsensusError("router entries are not sorted by identity, or repeat")
            routers.append(router)
        elif opener == "directory-footer":
            _args(block[0], 0)
            for item in block[1:]:
                if item.keyword == "bandwidth-weights":
                    if weights:
                        raise ConsensusError("consensus repeats bandwidth-weights")
                    weights = f.parse_int_pairs(item.args, "bandwidth-weights", ConsensusError)
        else:  # directory-signature
            signature_items += 1
            if signature_items > MAX_AUTHORITIES:
                raise ConsensusError(f"consensus has more than {MAX_AUTHORITIES} signatures")
            signature = _signature(block[0])
            if signature is not None:
                signatures.append(signature)
    if not signatures:
        raise ConsensusError("consensus has no directory-signature with a known algorithm")
    valid_after, fresh_until, valid_until = (
        header.times[k] for k in ("valid-after", "fresh-until", "valid-until")
    )
    if not valid_after < fresh_until <= valid_until:
        raise ConsensusError("consensus times are out of order")
    first_sig = next(item for item in items if item.keyword == "directory-signature")
    end = first_sig.start + len(_SIG_KEYWORD)
    if document[first_sig.start : end] != _SIG_KEYWORD:
        raise ConsensusError("directory-signature keyword is not followed by a space")
    signed = document[:end]
    algorithms = {sig.algorithm for sig in signatures}
    return Consensus(
        consensus_method=header.method,
        valid_after=valid_after,
        fresh_until=fresh_until,
        valid_until=valid_until,
        voting_delay=header.voting_delay,
        known_flags=known_flags,
        params=f.frozen_mapping(header.params),
        dir_sources=tuple(dir_sources),
        routers=tuple(routers),
        bandwidth_weights=f.frozen_mapping(weights),
        signatures=tuple(signatures),
        signed_digests={a: DIGEST_ALGORITHMS[a](signed).digest() for a in sorted(algorithms)},
    )
