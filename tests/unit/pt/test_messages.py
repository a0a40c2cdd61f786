"""pt_messages: the exact stdout lines of a client PT (pt-protocol.md §3, §4)."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import LocalProtocolError
from webtunnel_pt.pt import messages as m


def test_fixed_lines():
    assert m.version() == "VERSION 1"
    assert m.version_error() == "VERSION-ERROR no-version"
    assert m.proxy_done() == "PROXY DONE"
    assert m.cmethods_done() == "CMETHODS DONE"


def test_error_lines():
    assert m.env_error("no TOR_PT_CLIENT_TRANSPORTS environment variable") == (
        "ENV-ERROR no TOR_PT_CLIENT_TRANSPORTS environment variable"
    )
    assert m.proxy_error("proxy is not supported") == "PROXY-ERROR proxy is not supported"
    assert m.cmethod_error("obfs4", "no such method") == "CMETHOD-ERROR obfs4 no such method"


def test_cmethod_lines():
    assert m.cmethod("webtunnel", "127.0.0.1", 41043) == "CMETHOD webtunnel socks5 127.0.0.1:41043"
    assert m.cmethod("webtunnel", "::1", 41043) == "CMETHOD webtunnel socks5 [::1]:41043"
    assert (
        m.cmethod("webtunnel", "127.0.0.1", 1, "socks4") == "CMETHOD webtunnel socks4 127.0.0.1:1"
    )


def test_status_version_line():
    assert m.status_version("webtunnel-pt", "0.1.0") == (
        "STATUS TYPE=version IMPLEMENTATION=webtunnel-pt VERSION=0.1.0"
    )


@pytest.mark.parametrize(
    "message", ["line one\nline two", "a\rb", "tab\there", "\x00nul", "\u2028sep"]
)
def test_free_text_is_flattened_to_one_printable_line(message):
    for line in (m.env_error(message), m.proxy_error(message), m.cmethod_error("w", message)):
        assert "\n" not in line and "\r" not in line and "\x00" not in line
        assert line.isprintable()


def test_empty_free_text_gets_a_placeholder():
    assert m.env_error("") == "ENV-ERROR unspecified error"
    assert m.env_error(" \n ") == "ENV-ERROR unspecified error"


@pytest.mark.parametrize("build", [m.env_error, m.proxy_error])
def test_free_text_lines_are_us_ascii(build):
    # §3: argument bytes are "any US-ASCII except NUL and LF". EnvError messages quote
    # environment values, which may hold non-ASCII text (e.g. a relative state path).
    line = build("TOR_PT_STATE_LOCATION is not an absolute path: donn\u00e9es/\u4e2d")
    assert line.isascii(), line


# -- LOG quoting (goptlib's encoder, §4.1) ----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "quoted"),
    [
        ("hello", '"hello"'),
        ("hello world", '"hello world"'),
        ('hello "quoted" world', r'"hello \042quoted\042 world"'),
        ("back\\slash", r'"back\134slash"'),
        ("two\nlines", r'"two\012lines"'),
        ("tab\t", r'"tab\011"'),
        ("caf\u00e9", r'"caf\303\251"'),
        ("\u4e2d", r'"\344\270\255"'),
        ("del\x7f", r'"del\177"'),
        ("a\x00b", '"ab"'),  # tor rejects a decoded NUL: drop it
        ("", '""'),
        ("'single' {}~!#$[]", "\"'single' {}~!#$[]\""),
    ],
)
def test_quote_value(message, quoted):
    assert m.quote_value(message) == quoted


def test_log_lines():
    assert m.log("notice", 'hello "quoted" world') == (
        r'LOG SEVERITY=notice MESSAGE="hello \042quoted\042 world"'
    )
    for severity in ("error", "warning", "notice", "info", "debug"):
        assert m.log(severity, "x") == f'LOG SEVERITY={severity} MESSAGE="x"'


def test_log_line_is_ascii_single_line():
    line = m.log("warning", '\u00e9\n\r\x00\x01"\\ end')
    assert line.isascii() and line.isprintable()


@pytest.mark.parametrize("severity", ["warn", "err", "NOTICE", "Info", "", "critical", "notice "])
def test_log_refuses_unknown_severity(severity):
    with pytest.raises(LocalProtocolError):
        m.log(severity, "x")


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "1 2", "1\n", "\u00e9", "a\tb"])
def test_invalid_tokens_raise(bad):
    with pytest.raises(LocalProtocolError):
        m.version(bad)
    with pytest.raises(LocalProtocolError):
        m.cmethod(bad, "127.0.0.1", 1)
    with pytest.raises(LocalProtocolError):
        m.cmethod_error(bad, "message")
    with pytest.raises(LocalProtocolError):
        m.status_version(bad, "1.0")
    with pytest.raises(LocalProtocolError):
        m.status_version("impl", bad)


@pytest.mark.parametrize("kind", ["socks4a", "http", "SOCKS5", ""])
def test_cmethod_refuses_unknown_kind(kind):
    with pytest.raises(LocalProtocolError):
        m.cmethod("webtunnel", "127.0.0.1", 1, kind)


@pytest.mark.parametrize("transport", ["web-tunnel", "1webtunnel"])
def test_cmethod_transport_must_be_a_c_identifier(transport):
    # §3: tor treats a CMETHOD whose name is not [A-Za-z_][A-Za-z0-9_]* as fatal.
    with pytest.raises(LocalProtocolError):
        m.cmethod(transport, "127.0.0.1", 1)


@pytest.mark.parametrize(
    ("host", "port"),
    [("localhost", 1), ("127.0.0.1", 0), ("a\nb", 1)],
)
def test_cmethod_address_must_be_ip_literal_with_nonzero_port(host, port):
    # §3: the address must be an IP literal with a non-zero port; a hostname is fatal in tor.
    with pytest.raises(LocalProtocolError):
        m.cmethod("webtunnel", host, port)
