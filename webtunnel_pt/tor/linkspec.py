"""Link specifiers: where and who the next hop is, at the start of an EXTEND2 body
(tor-link.md §7.4, tor-spec §5.1.2).

    body = encode_link_specifiers(address="203.0.113.5", or_port=9001,
                                  rsa_identity=rsa_id, ed25519_identity=ed_id)
    body += htype | hlen | onionskin                     # the rest of EXTEND2
    specs, used = decode_link_specifiers(body)           # tests, fuzzing

Wire form: ``NSPEC [1]`` then NSPEC x ``LSTYPE [1] | LSLEN [1] | LSPEC [LSLEN]``. The types
this client knows:

    0  IPv4 address [4] | ORPort [2]
    1  IPv6 address [16] | ORPort [2]
    2  legacy identity: the RSA identity digest [20]
    3  Ed25519 identity [32]

They are written in the order tor writes them (0, 2, 3, 1). Decoding keeps unknown types as
they are (a relay must ignore them), refuses a known type of the wrong length and a second
identity of either kind, as tor does; every failure is a
:class:`~webtunnel_pt.errors.LinkSpecifierError`. Sans-I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from webtunnel_pt.errors import LinkSpecifierError, LocalProtocolError


class LinkSpecType(IntEnum):
    """LSTYPE values (tor-spec §5.1.2)."""

    IPV4 = 0  # address [4] | port [2]
    IPV6 = 1  # address [16] | port [2]
    LEGACY_ID = 2  # RSA identity digest [20]
    ED25519_ID = 3  # Ed25519 identity key [32]


#: The exact LSLEN of each known type.
SPEC_LENGTHS: dict[int, int] = {
    LinkSpecType.IPV4: 6,
    LinkSpecType.IPV6: 18,
    LinkSpecType.LEGACY_ID: 20,
    LinkSpecType.ED25519_ID: 32,
}
#: Types that may appear at most once (tor-spec §5.1.2: "MUST accept multiple instances of
#: specifiers other than legacy identity and Ed25519 identity").
_SINGLE = frozenset({int(LinkSpecType.LEGACY_ID), int(LinkSpecType.ED25519_ID)})
#: NSPEC and LSLEN are one byte each.
MAX_SPECIFIERS = 255
MAX_SPEC_BYTES = 255


@dataclass(frozen=True)
class LinkSpecifier:
    """One link specifier: its LSTYPE and LSPEC bytes."""

    type: int
    data: bytes

    def encode(self) -> bytes:
        if not 0 <= self.type <= 0xFF or len(self.data) > MAX_SPEC_BYTES:
            raise LocalProtocolError("link specifier type or length out of range")
        return bytes([self.type, len(self.data)]) + self.data

    @property
    def endpoint(self) -> tuple[str, int] | None:
        """(address, port) of an IPv4 or IPv6 specifier; None for the other types."""
        if self.type == LinkSpecType.IPV4 and len(self.data) == 6:
            return str(ipaddress.IPv4Address(self.data[:4])), int.from_bytes(self.data[4:], "big")
        if self.type == LinkSpecType.IPV6 and len(self.data) == 18:
            return str(ipaddress.IPv6Address(self.data[:16])), int.from_bytes(self.data[16:], "big")
        return None


def _port(port: int) -> bytes:
    if not 0 < port <= 0xFFFF:
        raise LocalProtocolError(f"ORPort {port} is out of range")
    return port.to_bytes(2, "big")


def ipv4_specifier(address: str, port: int) -> LinkSpecifier:
    try:
        packed = ipaddress.IPv4Address(address).packed
    except ValueError as exc:
        raise LocalProtocolError(f"{address!r} is not an IPv4 address") from exc
    return LinkSpecifier(LinkSpecType.IPV4, packed + _port(port))


def ipv6_specifier(address: str, port: int) -> LinkSpecifier:
    """``address`` may carry the brackets of ``[2001:db8::1]``."""
    text = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        packed = ipaddress.IPv6Address(text).packed
    except ValueError as exc:
        raise LocalProtocolError(f"{address!r} is not an IPv6 address") from exc
    return LinkSpecifier(LinkSpecType.IPV6, packed + _port(port))


def _identity(kind: LinkSpecType, key: bytes) -> LinkSpecifier:
    if len(key) != SPEC_LENGTHS[kind]:
        raise LocalProtocolError(f"{kind.name} identity must be {SPEC_LENGTHS[kind]} bytes")
    return LinkSpecifier(kind, bytes(key))


def encode_specifier_list(specs: list[LinkSpecifier]) -> bytes:
    """``NSPEC`` and the specifiers, in the order given."""
    if len(specs) > MAX_SPECIFIERS:
        raise LocalProtocolError(f"at most {MAX_SPECIFIERS} link specifiers")
    return bytes([len(specs)]) + b"".join(spec.encode() for spec in specs)


def link_specifiers(
    *,
    address: str,
    or_port: int,
    rsa_identity: bytes,
    ed25519_identity: bytes | None,
    ipv6: tuple[str, int] | None = None,
) -> list[LinkSpecifier]:
    """The specifiers of a relay, in tor's order: IPv4, legacy id, Ed25519 id, IPv6."""
    specs = [ipv4_specifier(address, or_port), _identity(LinkSpecType.LEGACY_ID, rsa_identity)]
    if ed25519_identity is not None:
        specs.append(_identity(LinkSpecType.ED25519_ID, ed25519_identity))
    if ipv6 is not None:
        specs.append(ipv6_specifier(*ipv6))
    return specs


def encode_link_specifiers(
    *,
    address: str,
    or_port: int,
    rsa_identity: bytes,
    ed25519_identity: bytes | None,
    ipv6: tuple[str, int] | None = None,
) -> bytes:
    """``NSPEC | specifiers`` for the start of an EXTEND2 body (tor-link.md §7.4).

    ``address`` is the relay's IPv4 address, ``rsa_identity`` its 20-byte RSA identity digest,
    ``ed25519_identity`` its 32-byte Ed25519 identity (None leaves it out), ``ipv6`` an
    optional ``(address, port)``. Bad arguments are a :class:`LocalProtocolError`.
    """
    return encode_specifier_list(
        link_specifiers(
            address=address,
            or_port=or_port,
            rsa_identity=rsa_identity,
            ed25519_identity=ed25519_identity,
            ipv6=ipv6,
        )
    )


def decode_link_specifiers(data: bytes) -> tuple[list[LinkSpecifier], int]:
    """Parse ``NSPEC | specifiers`` at the start of ``data``; return them and the bytes used
    (what follows, in EXTEND2 the HTYPE, is the caller's)."""
    if not data:
        raise LinkSpecifierError("link specifier list is empty: no NSPEC")
    count, offset = data[0], 1
    specs: list[LinkSpecifier] = []
    seen: set[int] = set()
    for index in range(count):
        if offset + 2 > len(data):
            raise LinkSpecifierError(f"link specifier {index} of {count} is truncated")
        spec_type, length = data[offset], data[offset + 1]
        offset += 2
        if offset + length > len(data):
            raise LinkSpecifierError(f"link specifier {index} of {count} is truncated")
        expected = SPEC_LENGTHS.get(spec_type)
        if expected is not None and length != expected:
            raise LinkSpecifierError(
                f"link specifier type {spec_type} is {length} bytes, expected {expected}"
            )
        if spec_type in _SINGLE and spec_type in seen:
            raise LinkSpecifierError(f"link specifier type {spec_type} appears twice")
        seen.add(spec_type)
        specs.append(LinkSpecifier(spec_type, bytes(data[offset : offset + length])))
        offset += length
    return specs, offset
