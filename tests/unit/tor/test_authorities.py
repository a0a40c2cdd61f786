"""Directory authorities: the built-in list and torrc-style ``DirAuthority`` lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webtunnel_pt.errors import ConfigError, DirAuthorityError
from webtunnel_pt.tor import authorities
from webtunnel_pt.tor.authorities import (
    DEFAULT_AUTHORITIES,
    DirAuthority,
    parse_dir_authorities,
    parse_dir_authority,
)

V3 = "A" * 8 + "0123456789ABCDEF0123456789ABCDEF"
FP = "0123456789abcdef0123456789abcdef01234567"

#: As tests/e2e/network.py Node.dir_authority_line writes them for the private network.
E2E_LINE = (
    "DirAuthority auth0 orport=35021 no-v2 v3ident=5B1E6C9C0D2A3E4F5061728394A5B6C7D8E9F0A1 "
    "127.0.0.1:35022 8F9E0D1C2B3A49586776859403A2B1C0D9E8F7A6"
)


def test_builtin_list_is_tor_049s_v3_authorities() -> None:
    assert [a.nickname for a in DEFAULT_AUTHORITIES] == [
        "moria1",
        "tor26",
        "dizum",
        "gabelmoo",
        "dannenberg",
        "maatuska",
        "longclaw",
        "bastet",
        "faravahar",
    ]
    for a in DEFAULT_AUTHORITIES:
        assert len(a.v3ident) == 20 and len(a.fingerprint) == 20
        assert a.or_port is not None and 1 <= a.dir_port <= 65535
    assert len({a.v3ident for a in DEFAULT_AUTHORITIES}) == 9
    assert len({a.fingerprint for a in DEFAULT_AUTHORITIES}) == 9
    assert len({a.address for a in DEFAULT_AUTHORITIES}) == 9
    # The bridge authority (Serge, BA44 A889 ...) signs no consensus.
    assert bytes.fromhex("BA44A889E64B93FAA2B114E02C2A279A8555C533") not in {
        a.fingerprint for a in DEFAULT_AUTHORITIES
    }


def test_builtin_entries_byte_exact() -> None:
    moria1, tor26 = DEFAULT_AUTHORITIES[0], DEFAULT_AUTHORITIES[1]
    assert moria1 == DirAuthority(
        nickname="moria1",
        address="128.31.0.39",
        dir_port=9231,
        or_port=9201,
        v3ident=bytes.fromhex("F533C81CEF0BC0267857C99B2F471ADF249FA232"),
        fingerprint=bytes.fromhex("1A25C6358DB91342AA51720A5038B72742732498"),
        ipv6=None,
    )
    assert tor26.ipv6 == ("2a02:16a8:662:2203::1", 443)
    assert tor26.fingerprint.hex().upper() == "FAA4BCA4A6AC0FB4CA2F8AD5A11D9E122BA894F6"


def _installed_tor() -> bytes | None:
    path = shutil.which("tor") or "/usr/sbin/tor"
    binary = Path(path)
    if not binary.is_file():
        return None
    data = binary.read_bytes()
    return data if b"Tor 0.4.9" in data or b"0.4.9." in data else None


def test_builtin_list_matches_the_installed_tor() -> None:
    """Each built-in authority's v3ident and address are compiled into tor 0.4.9 itself."""
    data = _installed_tor()
    if data is None:
        pytest.skip("no tor 0.4.9 binary installed")
    for a in DEFAULT_AUTHORITIES:
        assert f"v3ident={a.v3ident.hex().upper()}".encode() in data
        assert f"{a.address}:{a.dir_port}".encode() in data
    # ...and tor has no other v3 authority: count its v3ident= flags followed by hex.
    count = sum(
        1
        for part in data.split(b"v3ident=")[1:]
        if len(part) >= 40 and all(c in b"0123456789ABCDEF" for c in part[:40])
    )
    assert count == len(DEFAULT_AUTHORITIES)


def test_e2e_network_line_parses() -> None:
    a = parse_dir_authority(E2E_LINE)
    assert a == DirAuthority(
        nickname="auth0",
        address="127.0.0.1",
        dir_port=35022,
        or_port=35021,
        v3ident=bytes.fromhex("5B1E6C9C0D2A3E4F5061728394A5B6C7D8E9F0A1"),
        fingerprint=bytes.fromhex("8F9E0D1C2B3A49586776859403A2B1C0D9E8F7A6"),
    )
    # The value alone (as --dir-authority takes it) is the same authority.
    assert parse_dir_authority(E2E_LINE.removeprefix("DirAuthority ")) == a
    assert parse_dir_authority("dirauthority\t" + E2E_LINE[13:]) == a


def test_minimal_line_and_flags() -> None:
    a = parse_dir_authority(f"V3IDENT={V3} 10.0.0.1:80 {FP}")
    assert (a.nickname, a.or_port, a.ipv6) == (None, None, None)
    assert a.fingerprint == bytes.fromhex(FP)
    b = parse_dir_authority(
        f"n1 HS no-hs v3 bridge weight=2 upload=http://x download=y vote=z ORPORT=1 "
        f"v3ident={V3} ipv6=[2001:DB8::1]:9001 10.0.0.1:65535 {FP[:20]} {FP[20:]}"
    )
    assert (b.nickname, b.or_port, b.dir_port) == ("n1", 1, 65535)
    assert b.ipv6 == ("2001:db8::1", 9001)
    # A first word that is a legal nickname is the nickname, even a flag's name (as in tor).
    assert parse_dir_authority(f"bridge v3ident={V3} 10.0.0.1:80 {FP}").nickname == "bridge"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("", id="empty"),
        pytest.param("DirAuthority", id="keyword only"),
        pytest.param(f"n 10.0.0.1:80 {FP}", id="no v3ident"),
        pytest.param(f"n bridge 10.0.0.1:80 {FP}", id="bridge authority"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80", id="no fingerprint"),
        pytest.param(f"v3ident={V3} {FP}", id="no address"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80 {FP}0", id="fingerprint too long"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80 {FP[:-1]}", id="fingerprint too short"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80 {FP[:-1]}g", id="fingerprint not hex"),
        pytest.param(f"v3ident={V3[:-1]} 10.0.0.1:80 {FP}", id="v3ident short"),
        pytest.param(f"v3ident={V3}0 10.0.0.1:80 {FP}", id="v3ident long"),
        pytest.param(f"v3ident={V3} v3ident={V3} 10.0.0.1:80 {FP}", id="v3ident twice"),
        pytest.param(f"orport=1 orport=2 v3ident={V3} 10.0.0.1:80 {FP}", id="orport twice"),
        pytest.param(f"orport=0 v3ident={V3} 10.0.0.1:80 {FP}", id="orport 0"),
        pytest.param(f"orport=65536 v3ident={V3} 10.0.0.1:80 {FP}", id="orport too big"),
        pytest.param(f"orport= v3ident={V3} 10.0.0.1:80 {FP}", id="orport empty"),
        pytest.param(f"orport=+1 v3ident={V3} 10.0.0.1:80 {FP}", id="orport sign"),
        pytest.param(f"v3ident={V3} 10.0.0.1:0 {FP}", id="dirport 0"),
        pytest.param(f"v3ident={V3} 10.0.0.1 {FP}", id="no dirport"),
        pytest.param(f"v3ident={V3} 10.0.0.1: {FP}", id="empty dirport"),
        pytest.param(f"v3ident={V3} 10.0.0.256:80 {FP}", id="bad IPv4"),
        pytest.param(f"v3ident={V3} 010.0.0.1:80 {FP}", id="IPv4 leading zero"),
        pytest.param(f"v3ident={V3} 1host:80 {FP}", id="hostname"),
        pytest.param(f"v3ident={V3} ipv6=2001:db8::1:443 10.0.0.1:80 {FP}", id="ipv6 no brackets"),
        pytest.param(f"v3ident={V3} ipv6=[2001:db8::1] 10.0.0.1:80 {FP}", id="ipv6 no port"),
        pytest.param(f"v3ident={V3} ipv6=[10.0.0.1]:80 10.0.0.1:80 {FP}", id="ipv6 is IPv4"),
        pytest.param(f"v3ident={V3} ipv6=[fe80::1%eth0]:80 10.0.0.1:80 {FP}", id="scope id"),
        pytest.param(f"v3ident={V3} ipv6=[::1]:1 ipv6=[::2]:1 10.0.0.1:80 {FP}", id="ipv6 twice"),
        pytest.param(f"v3ident={V3} frobnicate 10.0.0.1:80 {FP}", id="unknown flag"),
        pytest.param(f"n1 n2 v3ident={V3} 10.0.0.1:80 {FP}", id="two nicknames"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80 {FP}\x00", id="NUL"),
        pytest.param(f"n\u00e9 v3ident={V3} 10.0.0.1:80 {FP}", id="non-ASCII"),
        pytest.param(f"v3ident={V3} 10.0.0.1:80 {FP}" + " " * 2000, id="too long"),
    ],
)
def test_malformed_lines_raise(line: str) -> None:
    with pytest.raises(DirAuthorityError):
        parse_dir_authority(line)


def test_error_is_a_config_error() -> None:
    assert issubclass(DirAuthorityError, ConfigError)


def test_line_round_trips() -> None:
    for a in (*DEFAULT_AUTHORITIES, parse_dir_authority(f"v3ident={V3} 10.0.0.1:80 {FP}")):
        assert parse_dir_authority(a.line()) == a
    assert DEFAULT_AUTHORITIES[0].line() == (
        "moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 "
        "128.31.0.39:9231 1A25C6358DB91342AA51720A5038B72742732498"
    )


def test_parse_several() -> None:
    lines = [a.line() for a in DEFAULT_AUTHORITIES[:3]]
    assert parse_dir_authorities(lines) == DEFAULT_AUTHORITIES[:3]
    with pytest.raises(DirAuthorityError, match="no DirAuthority"):
        parse_dir_authorities([])
    with pytest.raises(DirAuthorityError, match="same v3ident"):
        parse_dir_authorities(
            [lines[0], lines[1].replace(lines[1].split()[2], lines[0].split()[2])]
        )
    same_fp = lines[1].rsplit(" ", 1)[0] + " " + lines[0].rsplit(" ", 1)[1]
    with pytest.raises(DirAuthorityError, match="same fingerprint"):
        parse_dir_authorities([lines[0], same_fp])


def test_count_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorities, "MAX_DIR_AUTHORITIES", 2)
    lines = [a.line() for a in DEFAULT_AUTHORITIES[:3]]
    assert len(parse_dir_authorities(lines[:2])) == 2
    with pytest.raises(DirAuthorityError, match="more than 2"):
        parse_dir_authorities(lines)


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_dir_authority_errors(text: str) -> None:
    try:
        a = parse_dir_authority(text)
    except DirAuthorityError:
        return
    assert parse_dir_authority(a.line()) == a


_IPV4 = st.ip_addresses(v=4).map(str)
_PORTS = st.integers(min_value=1, max_value=65535)


@given(
    st.none() | st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,18}", fullmatch=True),
    _IPV4,
    _PORTS,
    st.none() | _PORTS,
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=20, max_size=20),
    st.none() | st.tuples(st.ip_addresses(v=6).map(str), _PORTS),
)
def test_generated_authorities_round_trip(
    nickname: str | None,
    address: str,
    dir_port: int,
    or_port: int | None,
    v3ident: bytes,
    fingerprint: bytes,
    ipv6: tuple[str, int] | None,
) -> None:
    authority = DirAuthority(nickname, address, dir_port, or_port, v3ident, fingerprint, ipv6)
    assert parse_dir_authority(authority.line()) == authority
    assert parse_dir_authority("DirAuthority " + authority.line()) == authority
