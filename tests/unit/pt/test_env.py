"""pt_env: the TOR_PT_* environment (pt-protocol.md §2) as tor 0.4.9.11 passes it, and every
way it can be wrong."""

from __future__ import annotations

import ipaddress

import pytest

from webtunnel_pt.errors import ConfigError, EnvError, ProxyConfigError, VersionError
from webtunnel_pt.outbound.proxy_uri import ProxyConfig, ProxyScheme
from webtunnel_pt.pt.env import (
    ClientEnvironment,
    negotiate_version,
    parse_client_environment,
)

# Verified environment of tor 0.4.9.11 without proxy or bind options.
TOR_ENV = {
    "TOR_PT_MANAGED_TRANSPORT_VER": "1",
    "TOR_PT_CLIENT_TRANSPORTS": "webtunnel",
    "TOR_PT_STATE_LOCATION": "/var/lib/tor/pt_state/",
    "TOR_PT_EXIT_ON_STDIN_CLOSE": "1",
}


def env(**changes: str | None) -> dict[str, str]:
    out = dict(TOR_ENV)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# -- version ----------------------------------------------------------------------------------


@pytest.mark.parametrize("offered", ["1", "1,1a,2b,foo", "2,1", "foo,1"])
def test_version_1_is_chosen_when_offered(offered):
    assert negotiate_version(env(TOR_PT_MANAGED_TRANSPORT_VER=offered)) == "1"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_version_is_env_error(value):
    with pytest.raises(EnvError) as info:
        negotiate_version(env(TOR_PT_MANAGED_TRANSPORT_VER=value))
    assert str(info.value) == "no TOR_PT_MANAGED_TRANSPORT_VER environment variable"


@pytest.mark.parametrize("offered", ["2", "1a,2b", "11", " 1", "1.0"])
def test_no_common_version_is_version_error(offered):
    with pytest.raises(VersionError) as info:
        negotiate_version(env(TOR_PT_MANAGED_TRANSPORT_VER=offered))
    assert str(info.value) == "no-version"  # tor matches "VERSION-ERROR no-version" exactly
    assert isinstance(info.value, ConfigError)


# -- transports -------------------------------------------------------------------------------


def test_tor_environment_parses():
    parsed = parse_client_environment(TOR_ENV)
    assert parsed == ClientEnvironment(
        transports=("webtunnel",),
        unsupported=(),
        state_location="/var/lib/tor/pt_state/",
        exit_on_stdin_close=True,
        proxy=None,
        bind_v4=None,
        bind_v6=None,
    )


@pytest.mark.parametrize("value", [None, ""])
def test_missing_client_transports(value):
    with pytest.raises(EnvError) as info:
        parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS=value))
    assert str(info.value) == "no TOR_PT_CLIENT_TRANSPORTS environment variable"


def test_only_commas_name_no_transport():
    with pytest.raises(EnvError):
        parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS=",,"))


def test_client_and_server_transports_both_set():
    with pytest.raises(EnvError) as info:
        parse_client_environment(env(TOR_PT_SERVER_TRANSPORTS="webtunnel"))
    assert str(info.value) == "TOR_PT_[CLIENT,SERVER]_TRANSPORTS both set"


def test_server_transports_alone_is_refused():
    with pytest.raises(EnvError):
        parse_client_environment(
            env(TOR_PT_CLIENT_TRANSPORTS=None, TOR_PT_SERVER_TRANSPORTS="webtunnel")
        )


def test_unknown_transports_are_listed_as_unsupported_in_order():
    parsed = parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS="obfs4,webtunnel,snowflake"))
    assert parsed.transports == ("webtunnel",)
    assert parsed.unsupported == ("obfs4", "snowflake")


def test_only_unknown_transports():
    parsed = parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS="obfs4"))
    assert parsed.transports == ()
    assert parsed.unsupported == ("obfs4",)


def test_duplicate_transport_names_collapse():
    parsed = parse_client_environment(
        env(TOR_PT_CLIENT_TRANSPORTS="webtunnel,obfs4,webtunnel,obfs4")
    )
    assert parsed.transports == ("webtunnel",)
    assert parsed.unsupported == ("obfs4",)


def test_wildcard_selects_every_supported_transport():
    # The old '*' no longer comes from tor; the module treats it as "all we support".
    parsed = parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS="*"))
    assert parsed.transports == ("webtunnel",)
    assert parsed.unsupported == ()
    parsed = parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS="*,obfs4"))
    assert parsed.transports == ("webtunnel",)
    assert parsed.unsupported == ("obfs4",)


def test_supported_set_is_injectable():
    parsed = parse_client_environment(env(TOR_PT_CLIENT_TRANSPORTS="b,a,c"), supported=("a", "b"))
    assert parsed.transports == ("b", "a")
    assert parsed.unsupported == ("c",)


# -- bind addresses ---------------------------------------------------------------------------


def test_bind_addresses_valid():
    parsed = parse_client_environment(
        env(
            TOR_PT_OUTBOUND_BIND_ADDRESS_V4="203.0.113.4",
            TOR_PT_OUTBOUND_BIND_ADDRESS_V6="[2001:db8::4]",  # tor always brackets it
        )
    )
    assert parsed.bind_v4 == ipaddress.IPv4Address("203.0.113.4")
    assert parsed.bind_v6 == ipaddress.IPv6Address("2001:db8::4")


def test_bind_v6_without_brackets_is_tolerated():
    parsed = parse_client_environment(env(TOR_PT_OUTBOUND_BIND_ADDRESS_V6="2001:db8::4"))
    assert parsed.bind_v6 == ipaddress.IPv6Address("2001:db8::4")


def test_empty_bind_addresses_mean_default_routing():
    parsed = parse_client_environment(
        env(TOR_PT_OUTBOUND_BIND_ADDRESS_V4="", TOR_PT_OUTBOUND_BIND_ADDRESS_V6="")
    )
    assert (parsed.bind_v4, parsed.bind_v6) == (None, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V4", "203.0.113"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V4", "localhost"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V4", "[203.0.113.4]"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V4", "2001:db8::4"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", "[2001:db8::4"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", "2001:db8::4]"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", "[203.0.113.4]"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", "[2001:db8::zz]"),
        ("TOR_PT_OUTBOUND_BIND_ADDRESS_V6", "[]"),
    ],
)
def test_bind_addresses_invalid(name, value):
    with pytest.raises(EnvError):
        parse_client_environment(env(**{name: value}))


# -- state location, stdin, proxy -------------------------------------------------------------


@pytest.mark.parametrize("state", ["pt_state/", "./pt_state", "~/pt_state", "pt"])
def test_relative_state_location_is_refused(state):
    with pytest.raises(EnvError):
        parse_client_environment(env(TOR_PT_STATE_LOCATION=state))


@pytest.mark.parametrize("value", [None, ""])
def test_state_location_is_optional(value):
    assert parse_client_environment(env(TOR_PT_STATE_LOCATION=value)).state_location is None


def test_windows_state_location_is_absolute():
    parsed = parse_client_environment(env(TOR_PT_STATE_LOCATION="C:\\Tor\\Data\\pt_state\\"))
    assert parsed.state_location == "C:\\Tor\\Data\\pt_state\\"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        (None, False),
        ("", False),
        ("0", False),
        ("true", False),
        (" 1", False),
        ("1 ", False),
        ("01", False),
        ("yes", False),
    ],
)
def test_exit_on_stdin_close_only_when_exactly_1(value, expected):
    parsed = parse_client_environment(env(TOR_PT_EXIT_ON_STDIN_CLOSE=value))
    assert parsed.exit_on_stdin_close is expected


def test_proxy_is_parsed_and_empty_means_none():
    assert parse_client_environment(env(TOR_PT_PROXY="socks5://u:p@127.0.0.1:1080")).proxy == (
        ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "u", "p")
    )
    assert parse_client_environment(env(TOR_PT_PROXY="")).proxy is None
    assert parse_client_environment(env(TOR_PT_PROXY=None)).proxy is None


def test_bad_proxy_is_a_proxy_config_error():
    with pytest.raises(ProxyConfigError, match="needs a port from 1 to 65535") as info:
        parse_client_environment(env(TOR_PT_PROXY="socks5://127.0.0.1:99999"))
    assert not isinstance(info.value, EnvError)  # PROXY-ERROR, not ENV-ERROR


def test_env_errors_come_before_proxy_errors():
    """As before TOR_PT_PROXY moved here: a bad bind address is an ENV-ERROR even when the
    proxy is bad too."""
    with pytest.raises(EnvError):
        parse_client_environment(
            env(TOR_PT_PROXY="gopher://x:1", TOR_PT_OUTBOUND_BIND_ADDRESS_V4="nope")
        )
