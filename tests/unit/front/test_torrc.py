"""front/torrc.py: tor's torrc syntax, the options read, ignored ones, errors with line numbers."""

from __future__ import annotations

import pytest

from tests.unit.front.vectors import AUTHORITY, BRIDGE, FINGERPRINT, OTHER_BRIDGE
from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front.torrc import MAX_TORRC_BYTES, parse_torrc, torrc_lines


def test_a_tor_users_file_is_read() -> None:
    text = f"""# my torrc
UseBridges 1
ClientTransportPlugin webtunnel exec /usr/bin/webtunnel-pt
Bridge {BRIDGE}
bridge {OTHER_BRIDGE}   # second one
DirAuthority {AUTHORITY}
SocksPort 127.0.0.1:9250
DataDirectory /var/lib/me
EnforceDistinctSubnets 0
ClientRejectInternalAddresses 0
"""
    config = parse_torrc(text)
    assert config.bridges == (BRIDGE, OTHER_BRIDGE)
    assert config.dir_authorities == (AUTHORITY,)
    assert config.socks_listen == ("127.0.0.1", 9250)
    assert config.data_directory == "/var/lib/me"
    assert config.distinct_subnets is False
    assert config.reject_internal is False
    assert config.notices == (
        "torrc line 3: ClientTransportPlugin ignored (not used by the built-in client)",
    )


def test_nothing_set_is_none() -> None:
    config = parse_torrc("# empty\n\n")
    assert config.bridges == () and config.socks_listen is None
    assert config.distinct_subnets is None and config.reject_internal is None


def test_keywords_are_case_insensitive_and_tabs_separate() -> None:
    config = parse_torrc("SOCKSPORT\t9300\nenforcedistinctsubnets 1\n")
    assert config.socks_listen == ("127.0.0.1", 9300)
    assert config.distinct_subnets is True


def test_backslash_continues_a_line_as_tor_does() -> None:
    # tor removes the backslash and newline; a comment line inside is dropped
    text = f"Bridge webtunnel 192.0.2.3:443 \\\n# a note\\\n  {FINGERPRINT} url=https://bridge.example/s3cr3t-path-x7k2 ver=0.0.3\nSocksPort 9\\\n150\n"
    assert torrc_lines(text) == [
        (1, "Bridge", BRIDGE.replace(f" {FINGERPRINT}", f"   {FINGERPRINT}")),
        (4, "SocksPort", "9150"),
    ]
    assert parse_torrc(text).bridges == (BRIDGE,)
    assert parse_torrc(text).socks_listen == ("127.0.0.1", 9150)


def test_quoted_values_take_c_escapes() -> None:
    assert torrc_lines('DataDirectory "/a b/\\"q\\"#x" # comment\n') == [
        (1, "DataDirectory", '/a b/"q"#x')
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n\nEnforceDistinctSubnets yes\n", "torrc line 3: EnforceDistinctSubnets takes 0 or 1"),
        ("ClientRejectInternalAddresses\n", "torrc line 1: ClientRejectInternalAddresses takes 0"),
        ("SocksPort 0.0.0.0:9050\n", "torrc line 1: SocksPort: 0.0.0.0 is not a loopback"),
        ("SocksPort unix:/tmp/s\n", "torrc line 1: SocksPort unix: sockets are not supported"),
        ("Bridge obfs4 192.0.2.1:443 cert=x\n", "torrc line 1: bridge line names the transport"),
        ("# c\nBridge webtunnel 192.0.2.1:443\n", "torrc line 2: bad bridge line"),
        ("DirAuthority auth0 127.0.0.1:1 AB\n", "torrc line 1: bad DirAuthority"),
        ('DataDirectory "/x\n', "torrc line 1: quoted value has no closing quote"),
        ('DataDirectory "/x" y\n', "torrc line 1: text after the closing quote"),
        ("DataDirectory\n", "torrc line 1: DataDirectory needs a value"),
    ],
)
def test_bad_values_name_their_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_torrc(text)
    assert str(caught.value).startswith(message)


def test_errors_hold_no_bridge_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_torrc(f"Bridge webtunnel 192.0.2.1:443 {FINGERPRINT} url=ftp://h/s3cr3t-path-x7k2\n")
    assert "s3cr3t" not in str(caught.value) and FINGERPRINT not in str(caught.value)


def test_socks_port_variants() -> None:
    assert parse_torrc("SocksPort auto\n").socks_listen == ("127.0.0.1", 0)
    assert parse_torrc("SocksPort [::1]:9150\n").socks_listen == ("::1", 9150)
    flagged = parse_torrc("SocksPort 9150 IsolateDestAddr\nSocksPort 9151\n")
    assert flagged.socks_listen == ("127.0.0.1", 9150)
    assert [n.split(":")[0] for n in flagged.notices] == ["torrc line 1", "torrc line 2"]
    off = parse_torrc("SocksPort 0\n")
    assert off.socks_listen is None and "SocksPort 0 ignored" in off.notices[0]


def test_oversized_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="over"):
        parse_torrc("#" * (MAX_TORRC_BYTES + 1))
