"""bridge: bridge-line arguments (webtunnel-wire.md §2, §3 steps 1-2) and torrc bridge lines."""

from __future__ import annotations

import base64
import hashlib

import pytest

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.outbound.utls import UTLS_NOTICES
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import (
    REDACTED,
    BridgeConfig,
    bridge_config_from_args,
    parse_bridge_line,
)

SECRET = "D0CX0ykTaxzAgALpPd2hBMU6"
FINGERPRINT = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
PIN = base64.b64encode(hashlib.sha256(b"chain").digest()).decode()


def config(**args: str) -> BridgeConfig:
    return bridge_config_from_args(BridgeArgs(args.items()))


@pytest.fixture(autouse=True)
def fresh_utls_notices():
    """utls= notices are once per process; each test starts as a fresh process would."""
    UTLS_NOTICES.clear()
    yield
    UTLS_NOTICES.clear()


# -- url= -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "tls", "host", "port", "target"),
    [
        (f"https://tech.example.is/{SECRET}", True, "tech.example.is", 443, f"/{SECRET}"),
        ("http://example.net/p", False, "example.net", 80, "/p"),
        ("https://x.xyz:2053/p", True, "x.xyz", 2053, "/p"),
        ("http://example.net:8080/p", False, "example.net", 8080, "/p"),
        ("https://[2001:db8::1]:8443/p", True, "2001:db8::1", 8443, "/p"),
        ("https://[2001:db8::1]/p", True, "2001:db8::1", 443, "/p"),
        ("https://192.0.2.7/p", True, "192.0.2.7", 443, "/p"),
        ("https://h.example/a%20b/c", True, "h.example", 443, "/a%20b/c"),  # escapes kept
        ("https://h.example/a%2Fb", True, "h.example", 443, "/a%2Fb"),
        ("https://h.example/caf\u00e9", True, "h.example", 443, "/caf%C3%A9"),
        ("https://h.example/100%", True, "h.example", 443, "/100%25"),
        ("https://h.example/p?q=1#frag", True, "h.example", 443, "/p"),  # query, fragment dropped
        ("https://h.example//x", True, "h.example", 443, "//x"),  # one leading '/' removed
        ("https://h.example", True, "h.example", 443, "/"),
        ("https://h.example/", True, "h.example", 443, "/"),
        ("HTTPS://H.Example/P", True, "h.example", 443, "/P"),  # scheme/host case-insensitive
        ("https://h.example./p", True, "h.example", 443, "/p"),
        ("https://h.example/a;b=c:@!$&'()*+,~", True, "h.example", 443, "/a;b=c:@!$&'()*+,~"),
    ],
)
def test_url_forms(url, tls, host, port, target):
    cfg = config(url=url)
    assert (cfg.use_tls, cfg.url_host, cfg.url_port, cfg.request_target) == (
        tls,
        host,
        port,
        target,
    )
    # Without servername= and addr=, the URL host is also the server name and the TCP target.
    assert cfg.server_name == host
    assert (cfg.dial_host, cfg.dial_port) == (host, port)
    assert cfg.cert_pin is None and cfg.notices == ()


def test_raw_space_in_path_is_escaped_like_go():
    # Go's url.Parse accepts a space in the path and EscapedPath() writes %20
    # (webtunnel-wire.md §3 step 1: the request target is the *escaped* path).
    assert config(url="https://h.example/a b").request_target == "/a%20b"


def test_dial_literal_only_for_ip_hosts():
    assert config(url="https://192.0.2.7/p").dial_literal is True
    assert config(url="https://[2001:db8::1]/p").dial_literal is True
    assert config(url="https://h.example/p").dial_literal is False


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h.example/p",
        "wss://h.example/p",
        "h.example/p",
        "//h.example/p",
        "https:///p",
        "https://user@h.example/p",
        "https://user:pw@h.example/p",
        "https://h.example:0/p",
        "https://h.example:65536/p",
        "https://h.example:port/p",
        "https://[2001:db8::1/p",
        "https://[192.0.2.1]/p",
        "https://bad_label-.example/p",
        "https://h\u00e9.example/p",
        "https://h.example/p\r\n",
        "https://h.example/p\x00",
        "",
    ],
)
def test_bad_urls(url):
    with pytest.raises(BridgeArgsError):
        config(url=url)


def test_missing_url():
    with pytest.raises(BridgeArgsError):
        config(ver="0.0.3")
    with pytest.raises(BridgeArgsError):
        bridge_config_from_args(BridgeArgs())


def test_first_url_wins_when_duplicated():
    args = BridgeArgs([("url", "https://a.example/1"), ("url", "https://b.example/2")])
    assert bridge_config_from_args(args).url_host == "a.example"


# -- servername=, addr= -----------------------------------------------------------------------


def test_servername_overrides_tls_name_only():
    cfg = config(url="https://front.example/p", servername="Real.Example")
    assert cfg.server_name == "real.example"
    assert cfg.server_names == ("real.example",)
    assert (cfg.url_host, cfg.dial_host, cfg.dial_port) == ("front.example", "front.example", 443)
    # lyrebird 0.8: Host stays the URL host (the standalone 0.0.2 client sends servername=).
    assert cfg.host_header == "front.example"
    assert cfg.verify_name is None


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("a.example,b.example", ("a.example", "b.example")),
        (" a.example , B.example ,", ("a.example", "b.example")),  # trimmed, lower-cased
        (",,a.example,,", ("a.example",)),  # empty names dropped
        ("a.example,a.example,b.example", ("a.example", "b.example")),  # duplicates once
        ("192.0.2.1, [::1]".replace("[::1]", "2001:db8::1"), ("192.0.2.1", "2001:db8::1")),
    ],
)
def test_servername_list(spec, names):
    cfg = config(url="https://h.example/p", servername=spec)
    assert cfg.server_names == names
    assert cfg.server_name == names[0]
    assert cfg.host_header == "h.example"


@pytest.mark.parametrize("spec", ["", ",", " , ,", "a.example,b c"])
def test_servername_list_without_valid_names_is_refused(spec):
    with pytest.raises(BridgeArgsError, match="servername="):
        config(url="https://h.example/p", servername=spec)


def test_utls_authority_is_the_name_to_verify():
    cfg = config(
        url="https://h.example/p", servername="front.example", **{"utls-authority": "Real.Example"}
    )
    assert (cfg.server_names, cfg.verify_name, cfg.host_header) == (
        ("front.example",),
        "real.example",
        "h.example",
    )
    assert cfg.notices == ()
    assert "certificate checked for real.example" in cfg.describe()


@pytest.mark.parametrize("value", ["*", " * ", "", "bad name"])
def test_bad_utls_authority_is_refused(value):
    with pytest.raises(BridgeArgsError, match="utls-authority="):
        config(url="https://h.example/p", **{"utls-authority": value})


def test_sni_imitation_sends_the_name_and_verifies_the_url_host():
    """lyrebird's sni-imitation=: SNI = the value, certificate = URL host; servername= and
    utls-authority= override each half."""
    cfg = config(url="https://h.example/p", **{"sni-imitation": "cdn.example"})
    assert (cfg.server_names, cfg.verify_name) == (("cdn.example",), "h.example")
    cfg = config(
        url="https://h.example/p",
        servername="s.example",
        **{"sni-imitation": "cdn.example", "utls-authority": "v.example"},
    )
    assert (cfg.server_names, cfg.verify_name) == (("s.example",), "v.example")


def test_name_to_verify_has_no_effect_without_tls():
    cfg = config(url="http://h.example/p", **{"utls-authority": "v.example"})
    assert cfg.verify_name is None
    assert cfg.notices == ("utls-authority= and sni-imitation= have no effect on an http:// url",)


@pytest.mark.parametrize("name", ["", "a b", "-bad.example", "x" * 64 + ".example", "a..b"])
def test_bad_servername(name):
    with pytest.raises(BridgeArgsError):
        config(url="https://h.example/p", servername=name)


@pytest.mark.parametrize(
    ("addr", "host", "port"),
    [
        ("192.0.2.9:8443", "192.0.2.9", 8443),
        ("[2001:db8::9]:8443", "2001:db8::9", 8443),
        ("[2001:db8::9]", "2001:db8::9", 2053),  # no port: the url's port
        ("cdn.example", "cdn.example", 2053),
        ("cdn.example:443", "cdn.example", 443),
    ],
)
def test_addr_forms(addr, host, port):
    cfg = config(url="https://h.example:2053/p", addr=addr)
    assert (cfg.dial_host, cfg.dial_port, cfg.dial_literal) == (host, port, True)
    assert (cfg.url_host, cfg.url_port, cfg.server_name) == ("h.example", 2053, "h.example")


@pytest.mark.parametrize(
    "addr",
    [
        "2001:db8::9",  # IPv6 must be bracketed
        "2001:db8::9:443",
        "[2001:db8::9",
        "[2001:db8::9]443",
        "[2001:db8::9]:",
        "[192.0.2.9]:443",
        "192.0.2.9:0",
        "192.0.2.9:65536",
        "192.0.2.9:-1",
        "192.0.2.9:http",
        ":443",
        "",
    ],
)
def test_bad_addr(addr):
    with pytest.raises(BridgeArgsError):
        config(url="https://h.example/p", addr=addr)


@pytest.mark.parametrize("port", ["\u00b2", "\u0664\u0664\u0663"])
def test_non_ascii_digit_port_is_a_bridge_args_error(port):
    # str.isdigit() is true for '²' and Arabic-Indic digits; int() then either raises a
    # plain ValueError ('²') or silently accepts a port tor would never send ('٤٤٣' = 443).
    with pytest.raises(BridgeArgsError):
        config(url="https://h.example/p", addr=f"192.0.2.9:{port}")


# -- cert=, utls=, unknown keys ---------------------------------------------------------------


def test_cert_pin_valid():
    cfg = config(url="https://h.example/p", cert=PIN)
    assert cfg.cert_pin == hashlib.sha256(b"chain").digest()


@pytest.mark.parametrize(
    "cert",
    [
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        "",
        "not base64!",
        PIN.rstrip("="),  # padding required
        PIN[:-2] + "*=",
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),  # URL-safe alphabet is not std
    ],
)
def test_cert_pin_invalid(cert):
    with pytest.raises(BridgeArgsError):
        config(url="https://h.example/p", cert=cert)


def test_cert_pin_needs_https():
    with pytest.raises(BridgeArgsError):
        config(url="http://h.example/p", cert=PIN)


@pytest.mark.parametrize("value", ["none", "None", "NONE"])
def test_utls_none_is_silent(value):
    cfg = config(url="https://h.example/p", utls=value)
    assert cfg.utls == value
    assert cfg.notices == ()


@pytest.mark.parametrize("value", ["", "HelloRandomizedNoALPN", "hellochrome_58"])
def test_utls_unreproduced_gives_a_notice_once_per_process(value):
    cfg = config(url="https://h.example/p", utls=value)
    assert cfg.utls == value
    assert len(cfg.notices) == 1 and "utls" in cfg.notices[0]
    # The same name again (any spelling), on this or another bridge: no second notice.
    again = config(url="https://other.example/p", utls=value.upper())
    assert again.notices == ()


def test_utls_unknown_is_refused():
    with pytest.raises(BridgeArgsError):
        config(url="https://h.example/p", utls="hellonobody")


def test_ver_is_kept_and_ignored():
    cfg = config(url="https://h.example/p", ver="0.0.3")
    assert cfg.version == "0.0.3"
    assert cfg.notices == ()


def test_unknown_keys_give_one_sorted_notice():
    cfg = config(url="https://h.example/p", zeta="1", alpha="2")
    assert cfg.notices == ("ignoring unknown bridge arguments: alpha, zeta",)


# -- secrets never leak -----------------------------------------------------------------------


def test_redacted_url_and_describe_hide_the_path():
    cfg = config(url=f"https://tech.example.is/{SECRET}")
    assert cfg.redacted_url() == f"https://tech.example.is:443/{REDACTED}"
    assert SECRET not in cfg.redacted_url()
    assert cfg.describe() == f"https://tech.example.is:443/{REDACTED}"
    assert SECRET not in cfg.describe()
    assert cfg.describe(unsafe=True) == f"https://tech.example.is:443/{SECRET}"


def test_describe_mentions_dial_target_and_server_name():
    cfg = config(
        url=f"http://[2001:db8::1]:8080/{SECRET}", addr="[2001:db8::2]:80", servername="sni.example"
    )
    assert cfg.redacted_url() == f"http://[2001:db8::1]:8080/{REDACTED}"
    text = cfg.describe()
    assert SECRET not in text
    assert text == (
        f"http://[2001:db8::1]:8080/{REDACTED} via [2001:db8::2]:80 (server name sni.example)"
    )
    listed = config(url=f"https://h.example/{SECRET}", servername="a.example,b.example")
    assert (
        listed.describe() == f"https://h.example:443/{REDACTED} (server name a.example,b.example)"
    )
    assert SECRET in cfg.describe(unsafe=True)


def test_error_messages_do_not_contain_the_path():
    for args in (
        {"url": f"https://h.example:99999/{SECRET}"},
        {"url": f"ftp://h.example/{SECRET}"},
        {"url": f"https://u@h.example/{SECRET}"},
        {"url": f"https://h.example/{SECRET}", "cert": "bad"},
        {"url": f"https://h.example/{SECRET}", "addr": "2001:db8::1"},
    ):
        with pytest.raises(BridgeArgsError) as info:
            config(**args)
        assert SECRET not in str(info.value)


# -- parse_bridge_line ------------------------------------------------------------------------

LINE = (
    f"webtunnel [2001:db8:2ba7:5f68:dc7e:27ca:1f5d:128d]:443 {FINGERPRINT} "
    f"url=https://tech.example.is/{SECRET} ver=0.0.3"
)


@pytest.mark.parametrize("prefix", ["", "Bridge ", "bridge ", "  Bridge\t"])
def test_parse_bridge_line(prefix):
    line = parse_bridge_line(prefix + LINE)
    assert line.transport == "webtunnel"
    assert line.address == "[2001:db8:2ba7:5f68:dc7e:27ca:1f5d:128d]:443"
    assert line.fingerprint == FINGERPRINT
    assert line.args.pairs() == [("url", f"https://tech.example.is/{SECRET}"), ("ver", "0.0.3")]


def test_parse_bridge_line_without_fingerprint_and_port():
    line = parse_bridge_line("Bridge webtunnel 192.0.2.3 url=https://h.example/p")
    assert (line.transport, line.address, line.fingerprint) == ("webtunnel", "192.0.2.3", None)
    assert line.args["url"] == "https://h.example/p"


def test_parse_bridge_line_without_transport_defaults_to_webtunnel():
    line = parse_bridge_line(f"192.0.2.3:443 {FINGERPRINT.lower()}")
    assert line.transport == "webtunnel"
    assert line.fingerprint == FINGERPRINT  # normalised to upper case
    assert len(line.args) == 0


def test_parse_bridge_line_keeps_equals_in_values_and_feeds_bridge_config():
    line = parse_bridge_line("webtunnel 192.0.2.3:443 url=https://h.example/p?a=b x=")
    assert line.args.pairs() == [("url", "https://h.example/p?a=b"), ("x", "")]
    assert bridge_config_from_args(line.args).request_target == "/p"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bridge",
        "webtunnel",
        f"webtunnel 192.0.2.3:443 {FINGERPRINT[:-1]}",  # 39 hex digits
        f"webtunnel 192.0.2.3:443 {FINGERPRINT}0",  # 41
        f"webtunnel 192.0.2.3:443 {FINGERPRINT[:-1]}G",
        f"webtunnel 192.0.2.3:443 {FINGERPRINT} url=https://h/p notkv",
        f"webtunnel 192.0.2.3:443 {FINGERPRINT} =value",
        "webtunnel 192.0.2.3:443 url=https://h/p =value",
        "webtunnel 2001:db8::1 url=https://h/p",  # unbracketed IPv6
        "webtunnel 192.0.2.3:0 url=https://h/p",
        "webtunnel [2001:db8::1 url=https://h/p",
    ],
)
def test_parse_bridge_line_errors(text):
    with pytest.raises(BridgeArgsError):
        parse_bridge_line(text)


def test_parse_bridge_line_unicode_superscript_port():
    with pytest.raises(BridgeArgsError):
        parse_bridge_line("webtunnel 192.0.2.3:\u00b2 url=https://h.example/p")
