"""outbound.proxy_uri: the TOR_PT_PROXY grammar and ProxyConfig."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webtunnel_pt.errors import ProxyConfigError
from webtunnel_pt.outbound.proxy_uri import ProxyConfig, ProxyScheme, parse_proxy_uri

SECRET = "hunter2-Pr0xy"


# -- URI parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # The exact strings tor 0.4.9.11 generates (pt-protocol.md §2.1).
        ("socks4a://1.2.3.4:1080", ProxyConfig(ProxyScheme.SOCKS4A, "1.2.3.4", 1080)),
        ("socks4a://[::1]:1080", ProxyConfig(ProxyScheme.SOCKS4A, "::1", 1080)),
        ("socks5://127.0.0.1:9050", ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 9050)),
        (
            "socks5://u:p@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "u", "p"),
        ),
        ("http://127.0.0.1:3128", ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 3128)),
        (
            "http://user:pw@[2001:db8::1]:8080",
            ProxyConfig(ProxyScheme.HTTP, "2001:db8::1", 8080, "user", "pw"),
        ),
        # No percent-encoding: user info ends at the last '@', the password at the first ':'.
        (
            "socks5://us:er:p@ss@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "us", "er:p@ss"),
        ),
        (
            "socks5://u%41:p%2F@127.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS5, "127.0.0.1", 1080, "u%41", "p%2F"),
        ),
        (
            "http://user:p/?#@127.0.0.1:1",
            ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 1, "user", "p/?#"),
        ),
        (
            "http://user:@127.0.0.1:65535",
            ProxyConfig(ProxyScheme.HTTP, "127.0.0.1", 65535, "user", ""),
        ),
        (
            "socks4a://ident@10.0.0.1:1080",
            ProxyConfig(ProxyScheme.SOCKS4A, "10.0.0.1", 1080, "ident"),
        ),
        # Names are accepted (hand-written configurations), lower-cased; schemes too.
        ("SOCKS5://Proxy.Example:1080", ProxyConfig(ProxyScheme.SOCKS5, "proxy.example", 1080)),
    ],
)
def test_parse_valid(uri: str, expected: ProxyConfig) -> None:
    assert parse_proxy_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "not an absolute URI"),
        ("127.0.0.1:1080", "not an absolute URI"),
        ("socks5:/127.0.0.1:1080", "not an absolute URI"),
        ("socks4://127.0.0.1:1080", "'socks4' is not supported"),
        ("https://127.0.0.1:443", "'https' is not supported"),
        ("socks5://127.0.0.1", "port from 1 to 65535"),
        ("socks5://127.0.0.1:", "port from 1 to 65535"),
        ("socks5://127.0.0.1:0", "port from 1 to 65535"),
        ("socks5://127.0.0.1:65536", "port from 1 to 65535"),
        ("socks5://127.0.0.1:+80", "port from 1 to 65535"),
        ("socks5://127.0.0.1:\u0661\u0660\u0668\u0660", "port from 1 to 65535"),
        ("socks5://::1:1080", "IPv6 address must be written in brackets"),
        ("socks5://[::1:1080", "invalid IPv6 address in brackets"),
        ("socks5://[1.2.3.4]:1080", "invalid IPv6 address in brackets"),
        ("socks5://[::1]1080", "port from 1 to 65535"),
        ("socks5://:1080", "has no host"),
        ("socks5://bad_host!:1080", "not a valid host name"),
        ("socks5://127.0.0.1:1080/", "must not have a path"),
        ("socks5://127.0.0.1:1080?x", "must not have a query"),
        ("socks5://127.0.0.1:1080#x", "must not have a fragment"),
        ("socks5:// 127.0.0.1:1080", "whitespace or control characters"),
        ("socks5://127.0.0.1:1080\n", "whitespace or control characters"),
        ("socks5://u@127.0.0.1:1080", "must be user:password"),
        ("socks5://:p@127.0.0.1:1080", "user name is empty"),
        ("socks5://u:@127.0.0.1:1080", "password must be 1 to 255 bytes"),
        (f"socks5://{'u' * 256}:p@127.0.0.1:1080", "user name must be 1 to 255 bytes"),
        ("socks5://u:" + "\u00e9" * 128 + "@127.0.0.1:1080", "password must be 1 to 255 bytes"),
        ("socks4a://u:p@127.0.0.1:1080", "no password"),
        (f"socks4a://{'u' * 256}@127.0.0.1:1080", "user id is longer than 255 bytes"),
        ("http://user@127.0.0.1:3128", "must be user:password"),
        ("http://:pw@127.0.0.1:3128", "user name is empty"),
    ],
)
def test_parse_invalid(uri: str, reason: str) -> None:
    with pytest.raises(ProxyConfigError, match=reason):
        parse_proxy_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        f"socks5://u:{SECRET}@127.0.0.1:99999",
        f"socks5://u:{SECRET}@[::1:1080",
        f"socks5://u:{SECRET}@127.0.0.1:1080/path",
        f"socks4a://u:{SECRET}@127.0.0.1:1080",
        f"gopher://u:{SECRET}@127.0.0.1:1080",
        f"socks5://u:{SECRET * 30}@127.0.0.1:1080",
    ],
)
def test_errors_never_show_the_password(uri: str) -> None:
    with pytest.raises(ProxyConfigError) as info:
        parse_proxy_uri(uri)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)


_VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(
    user=st.text(_VISIBLE.filter(lambda c: c != ":"), min_size=1, max_size=40),
    password=st.text(_VISIBLE, min_size=1, max_size=40),
)
def test_user_info_round_trips_as_tor_writes_it(user: str, password: str) -> None:
    """tor pastes user and password in unescaped; only a ':' in the user name is ambiguous."""
    config = parse_proxy_uri(f"socks5://{user}:{password}@[::1]:1080")
    assert (config.username, config.password, config.host, config.port) == (
        user,
        password,
        "::1",
        1080,
    )


@given(st.text(max_size=80))
def test_parse_raises_only_proxy_config_errors(text: str) -> None:
    for uri in (text, "socks5://" + text, "http://u:p@" + text):
        try:
            parse_proxy_uri(uri)
        except ProxyConfigError:
            pass


def test_config_hides_the_password() -> None:
    config = parse_proxy_uri(f"socks5://alice:{SECRET}@[::1]:1080")
    assert SECRET not in repr(config)
    assert config.describe() == "socks5 proxy [::1]:1080 with credentials"
    assert SECRET not in config.describe()
    assert parse_proxy_uri("http://127.0.0.1:3128").describe() == "http proxy 127.0.0.1:3128"


def test_config_is_frozen() -> None:
    config = parse_proxy_uri("socks5://127.0.0.1:1080")
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
