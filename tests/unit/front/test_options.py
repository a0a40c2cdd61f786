"""front/options.py and values.py: the shared options, validation, and the torrc merged under."""

from __future__ import annotations

import argparse

import pytest

from tests.unit.front.vectors import AUTHORITY, BRIDGE, OTHER_AUTHORITY, OTHER_BRIDGE
from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front.options import add_client_arguments, front_options
from webtunnel_pt.front.values import parse_listen

TORRC = f"""Bridge {OTHER_BRIDGE}
DirAuthority {OTHER_AUTHORITY}
SocksPort 9250
DataDirectory /from/torrc
EnforceDistinctSubnets 0
ClientRejectInternalAddresses 0
Log notice stdout
"""


def _args(*words: str, listen: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser, listen=listen)
    return parser.parse_args(list(words))


def test_defaults() -> None:
    options = front_options(_args("--bridge", BRIDGE))
    assert options.bridges == (BRIDGE,)
    assert options.listen == ("127.0.0.1", 9150)
    assert options.state_dir is None and options.dir_authorities is None
    assert options.distinct_subnets is True and options.reject_internal is True


def test_bridge_with_or_without_keyword() -> None:
    options = front_options(_args("--bridge", "Bridge " + BRIDGE, "--bridge", OTHER_BRIDGE))
    assert options.bridges == (BRIDGE, OTHER_BRIDGE)


def test_dir_authority_value_or_whole_line() -> None:
    options = front_options(
        _args(
            "--bridge",
            BRIDGE,
            "--dir-authority",
            AUTHORITY,
            "--dir-authority",
            "DirAuthority " + OTHER_AUTHORITY,
        )
    )
    assert options.dir_authorities is not None
    assert [a.nickname for a in options.dir_authorities] == ["auth0", "auth1"]


def test_torrc_fills_what_the_command_line_leaves() -> None:
    options = front_options(_args(), TORRC)
    assert options.bridges == (OTHER_BRIDGE,)
    assert options.listen == ("127.0.0.1", 9250)
    assert options.state_dir == "/from/torrc"
    assert options.dir_authorities is not None and len(options.dir_authorities) == 1
    assert options.distinct_subnets is False and options.reject_internal is False
    assert options.notices == ("torrc line 7: Log ignored (not used by the built-in client)",)


def test_command_line_wins_over_torrc() -> None:
    options = front_options(
        _args(
            "--bridge",
            BRIDGE,
            "--listen",
            "127.0.0.2:9999",
            "--state-dir",
            "/cli",
            "--dir-authority",
            AUTHORITY,
        ),
        TORRC,
    )
    assert options.bridges == (BRIDGE,)  # replaces the torrc's list
    assert options.listen == ("127.0.0.2", 9999)
    assert options.state_dir == "/cli"
    assert options.dir_authorities is not None
    assert [a.nickname for a in options.dir_authorities] == ["auth0"]


def test_flags_turn_checks_off_over_a_torrc_that_has_them_on() -> None:
    torrc = "EnforceDistinctSubnets 1\nClientRejectInternalAddresses 1\n"
    on = front_options(_args("--bridge", BRIDGE), torrc)
    assert on.distinct_subnets and on.reject_internal
    off = front_options(
        _args("--bridge", BRIDGE, "--no-distinct-subnets", "--allow-internal-addresses"), torrc
    )
    assert not off.distinct_subnets and not off.reject_internal


def test_fetch_has_no_listen_option() -> None:
    options = front_options(_args("--bridge", BRIDGE, listen=False))
    assert options.listen == ("127.0.0.1", 9150)
    with pytest.raises(SystemExit):
        _args("--listen", "127.0.0.1:1", listen=False)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ((), "no bridge given"),
        (("--bridge", "webtunnel 192.0.2.1:443 nothex"), "bad bridge line"),
        (("--bridge", BRIDGE, "--listen", "0.0.0.0:9150"), "is not a loopback address"),
        (("--bridge", BRIDGE, "--listen", "192.0.2.1:9150"), "is not a loopback address"),
        (("--bridge", BRIDGE, "--listen", "example.com:9150"), "is not an IP address"),
        (("--bridge", BRIDGE, "--listen", "127.0.0.1:70000"), "bad port"),
        (("--bridge", BRIDGE, "--dir-authority", "auth0 127.0.0.1:1 AB"), "^--dir-authority: "),
        (
            ("--bridge", BRIDGE, "--dir-authority", AUTHORITY, "--dir-authority", AUTHORITY),
            "^--dir-authority: ",
        ),
    ],
)
def test_bad_options_are_clear_errors(words: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        front_options(_args(*words))


def test_the_second_of_several_bad_authorities_is_named() -> None:
    words = ("--bridge", BRIDGE, "--dir-authority", AUTHORITY, "--dir-authority", "auth1 x")
    with pytest.raises(ConfigError, match=r"^--dir-authority #2: "):
        front_options(_args(*words))


def test_a_torrc_authority_set_that_does_not_hold_is_named_as_the_torrc() -> None:
    torrc = f"DirAuthority {AUTHORITY}\nDirAuthority {AUTHORITY}\n"
    with pytest.raises(ConfigError, match=r"^torrc: bad DirAuthority set: "):
        front_options(_args("--bridge", BRIDGE), torrc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9150", ("127.0.0.1", 9150)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:9050", ("127.0.0.1", 9050)),
        ("[::1]:9150", ("::1", 9150)),
        ("127.9.9.9:1", ("127.9.9.9", 1)),
    ],
)
def test_listen_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_listen_refuses_any_ipv6() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        parse_listen("[::]:9150")
