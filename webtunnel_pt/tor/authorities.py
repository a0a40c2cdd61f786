"""The directory authorities whose signatures make a consensus trustworthy (dir-spec §3, §3.4.1:
a client accepts a consensus signed by more than half of the authorities it knows).

    DEFAULT_AUTHORITIES                 tor 0.4.9's v3 authorities, built in
    parse_dir_authority(line)   -> DirAuthority       one torrc-style ``DirAuthority`` line
    parse_dir_authorities(lines) -> tuple[DirAuthority, ...]   several, checked together

Only v3 authorities count: a consensus signature names the signer by its v3 identity
(``v3ident``, the SHA-1 of the authority's long-term v3 identity key, dir-spec §3.1), and a
key certificate binds that identity to the signing key the signature uses. A line without
``v3ident=`` is refused, and the bridge authority (``bridge`` and no ``v3ident``) signs no
consensus, so it is not in the built-in list. The client never connects to an authority: it
fetches everything through its bridge, so addresses and ports are kept only to show them and
to round-trip the lines.

The grammar is tor's ``DirAuthority`` option (tor's parse_dir_authority_line, torrc(5))::

    [nickname] [flags] IPv4:dirport FINGERPRINT

- nickname: 1-19 ASCII letters and digits; the first word is the nickname when it is one (as
  in tor, so a word like ``bridge`` in first place is a nickname, not a flag);
- flags, case-insensitive, until the first word that starts with a digit: ``orport=N``,
  ``v3ident=HEX40``, ``ipv6=[addr]:port``, ``bridge``; ``no-v2``, ``hs``, ``no-hs``, ``v3``,
  ``weight=``, ``upload=``, ``download=``, ``vote=`` are accepted and ignored (obsolete, or
  only for relays and authorities);
- FINGERPRINT: the RSA identity, 40 hex digits, possibly in groups of 4 separated by spaces
  as tor prints it (the remaining words are joined).

Unlike tor, which logs a warning and goes on, anything malformed or unknown is an error here:
these lines decide whom the client trusts. The whole line (``DirAuthority ...``) is accepted
as well as its value. Sans-I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from webtunnel_pt.errors import DirAuthorityError

#: Longest accepted line: tor's longest built-in line is ~160 characters; this leaves room for
#: every flag and still bounds what a command line can make us split.
MAX_DIR_AUTHORITY_LINE_CHARS = 1024
#: Authorities in one configuration: the real network has 9 and test networks a handful; a
#: bound keeps the "more than half" count and the certificate fetches small.
MAX_DIR_AUTHORITIES = 64

_DIGEST_LEN = 20  # SHA-1
_NICKNAME = re.compile(r"[A-Za-z0-9]{1,19}")
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_PORT = re.compile(r"[0-9]{1,5}")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")
_IGNORED_FLAGS = frozenset({"no-v2", "hs", "no-hs", "v3"})
_IGNORED_VALUE_FLAGS = ("weight=", "upload=", "download=", "vote=")
_KEYWORD = "dirauthority"

#: tor 0.4.9's compiled-in authorities (src/app/config/auth_dirs.inc, as in tor 0.4.9.11), in
#: tor's order and spelling, without the bridge authority (Serge, flagged ``bridge``).
_DEFAULT_LINES = (
    "moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 "
    "128.31.0.39:9231 1A25C6358DB91342AA51720A5038B72742732498",
    "tor26 orport=443 v3ident=2F3DF9CA0E5D36F2685A2DA67184EB8DCB8CBA8C "
    "ipv6=[2a02:16a8:662:2203::1]:443 "
    "217.196.147.77:80 FAA4 BCA4 A6AC 0FB4 CA2F 8AD5 A11D 9E12 2BA8 94F6",
    "dizum orport=443 v3ident=E8A9C45EDE6D711294FADF8E7951F4DE6CA56B58 "
    "45.66.35.11:80 7EA6 EAD6 FD83 083C 538F 4403 8BBF A077 587D D755",
    "gabelmoo orport=443 v3ident=ED03BB616EB2F60BEC80151114BB25CEF515B226 "
    "ipv6=[2001:638:a000:4140::ffff:189]:443 "
    "131.188.40.189:80 F204 4413 DAC2 E02E 3D6B CF47 35A1 9BCA 1DE9 7281",
    "dannenberg orport=443 v3ident=0232AF901C31A04EE9848595AF9BB7620D4C5B2E "
    "ipv6=[2001:678:558:1000::244]:443 "
    "193.23.244.244:80 7BE6 83E6 5D48 1413 21C5 ED92 F075 C553 64AC 7123",
    "maatuska orport=80 v3ident=49015F787433103580E3B66A1707A00E60F2D15B "
    "ipv6=[2001:67c:289c::9]:80 "
    "171.25.193.9:443 BD6A 8292 55CB 08E6 6FBE 7D37 4836 3586 E46B 3810",
    "longclaw orport=443 v3ident=23D15D965BC35114467363C165C4F724B64B4F66 "
    "199.58.81.140:80 74A9 1064 6BCE EFBC D2E8 74FC 1DC9 9743 0F96 8145",
    "bastet orport=443 v3ident=27102BC123E7AF1D4741AE047E160C91ADC76B21 "
    "ipv6=[2620:13:4000:6000::1000:118]:443 "
    "204.13.164.118:80 24E2 F139 121D 4394 C54B 5BCC 368B 3B41 1857 C413",
    "faravahar orport=443 v3ident=70849B868D606BAECFB6128C5E3D782029AA394F "
    "216.218.219.41:80 E3E4 2D35 F801 C9D5 AB23 584E 0025 D56F E2B3 3396",
)


@dataclass(frozen=True, slots=True)
class DirAuthority:
    """One v3 directory authority."""

    nickname: str | None
    address: str  #: IPv4, dotted quad
    dir_port: int
    or_port: int | None  #: None when the line has no ``orport=``
    v3ident: bytes  #: 20 bytes: SHA-1 of the v3 identity key; names its consensus signatures
    fingerprint: bytes  #: 20 bytes: SHA-1 of the relay RSA identity key
    ipv6: tuple[str, int] | None = None  #: (address, OR port)

    def line(self) -> str:
        """The value of a torrc ``DirAuthority`` line for this authority (parses back equal)."""
        words = [self.nickname] if self.nickname else []
        if self.or_port is not None:
            words.append(f"orport={self.or_port}")
        words.append(f"v3ident={self.v3ident.hex().upper()}")
        if self.ipv6 is not None:
            words.append(f"ipv6=[{self.ipv6[0]}]:{self.ipv6[1]}")
        words.append(f"{self.address}:{self.dir_port}")
        words.append(self.fingerprint.hex().upper())
        return " ".join(words)


def parse_dir_authority(line: str) -> DirAuthority:
    """Parse one ``DirAuthority`` line, or its value; raise :class:`DirAuthorityError`."""
    if len(line) > MAX_DIR_AUTHORITY_LINE_CHARS:
        raise DirAuthorityError(
            f"DirAuthority line is {len(line)} characters, over {MAX_DIR_AUTHORITY_LINE_CHARS}"
        )
    if not _PRINTABLE.fullmatch(line):
        raise DirAuthorityError("DirAuthority line holds non-printable or non-ASCII characters")
    words = line.split()
    if words and words[0].lower() == _KEYWORD:
        words = words[1:]
    if not words:
        raise DirAuthorityError("DirAuthority line is empty")
    nickname = None
    if _NICKNAME.fullmatch(words[0]):
        nickname, words = words[0], words[1:]
    flags = _Flags()
    while words and not words[0][:1].isdigit():
        flags.read(words[0])
        words = words[1:]
    if len(words) < 2:
        raise DirAuthorityError("DirAuthority line needs address:dirport and a fingerprint")
    address, dir_port = _ipv4_port(words[0])
    if flags.v3ident is None:
        raise DirAuthorityError(
            "DirAuthority line has no v3ident=: only v3 authorities sign consensuses"
        )
    return DirAuthority(
        nickname=nickname,
        address=address,
        dir_port=dir_port,
        or_port=flags.or_port,
        v3ident=flags.v3ident,
        fingerprint=_hex_digest("".join(words[1:]), "fingerprint"),
        ipv6=flags.ipv6,
    )


def parse_dir_authorities(lines: Iterable[str]) -> tuple[DirAuthority, ...]:
    """Parse a configuration of authorities: at least one, at most
    :data:`MAX_DIR_AUTHORITIES`, no v3ident or fingerprint twice (a duplicate would count one
    authority's signature twice toward the majority)."""
    result: list[DirAuthority] = []
    for line in lines:
        if len(result) >= MAX_DIR_AUTHORITIES:
            raise DirAuthorityError(f"more than {MAX_DIR_AUTHORITIES} DirAuthority lines")
        result.append(parse_dir_authority(line))
    if not result:
        raise DirAuthorityError("no DirAuthority line given")
    if len({a.v3ident for a in result}) != len(result):
        raise DirAuthorityError("two DirAuthority lines have the same v3ident")
    if len({a.fingerprint for a in result}) != len(result):
        raise DirAuthorityError("two DirAuthority lines have the same fingerprint")
    return tuple(result)


class _Flags:
    """The flags of one line, each given at most once."""

    __slots__ = ("ipv6", "or_port", "v3ident")

    def __init__(self) -> None:
        self.or_port: int | None = None
        self.v3ident: bytes | None = None
        self.ipv6: tuple[str, int] | None = None

    def read(self, word: str) -> None:
        lower = word.lower()
        if lower in _IGNORED_FLAGS or lower == "bridge" or lower.startswith(_IGNORED_VALUE_FLAGS):
            return
        if lower.startswith("orport="):
            if self.or_port is not None:
                raise DirAuthorityError("DirAuthority line repeats orport=")
            self.or_port = _port(word[len("orport=") :], "orport")
        elif lower.startswith("v3ident="):
            if self.v3ident is not None:
                raise DirAuthorityError("DirAuthority line repeats v3ident=")
            self.v3ident = _hex_digest(word[len("v3ident=") :], "v3ident")
        elif lower.startswith("ipv6="):
            if self.ipv6 is not None:
                raise DirAuthorityError("DirAuthority line repeats ipv6=")
            self.ipv6 = _ipv6_port(word[len("ipv6=") :])
        else:
            raise DirAuthorityError(f"unknown flag {word[:40]!r} on DirAuthority line")


def _port(text: str, what: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise DirAuthorityError(f"DirAuthority {what} {text[:20]!r} is not a port (1-65535)")
    return int(text)


def _hex_digest(text: str, what: str) -> bytes:
    if not _HEX40.fullmatch(text):
        raise DirAuthorityError(f"DirAuthority {what} is not 40 hex digits")
    return bytes.fromhex(text)


def _ipv4_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if not sep or address is None:
        raise DirAuthorityError(f"DirAuthority address {text[:60]!r} is not IPv4:dirport")
    return str(address), _port(port, "dirport")


def _ipv6_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition("]:")
    try:
        bracketed = host.startswith("[") and "%" not in host  # no scope ids
        address = ipaddress.IPv6Address(host[1:]) if bracketed else None
    except ValueError:
        address = None
    if not sep or address is None:
        raise DirAuthorityError(f"DirAuthority ipv6= {text[:60]!r} is not [IPv6]:port")
    return str(address), _port(port, "ipv6 port")


#: The built-in authorities, used unless ``DirAuthority`` lines replace them.
DEFAULT_AUTHORITIES: tuple[DirAuthority, ...] = parse_dir_authorities(_DEFAULT_LINES)
