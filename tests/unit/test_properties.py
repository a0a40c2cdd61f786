"""Property tests: every parser fails only with the package's own errors, and encoders round-trip.

Each parser faces input from the outside (tor's SOCKS client, a web server, torrc, the
environment); whatever arrives, the only exceptions allowed out are WebtunnelError subclasses.
"""

from __future__ import annotations

import ipaddress
import itertools
import string
import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from webtunnel_pt.errors import SocksReply, WebtunnelError
from webtunnel_pt.pt import args as pt_args
from webtunnel_pt.pt.args import (
    MAX_ARGS_BYTES,
    BridgeArgs,
    check_bridge_credentials,
    decode_socks_credentials,
    encode_socks_credentials,
    escape_args,
    parse_args,
)
from webtunnel_pt.pt.env import negotiate_version, parse_client_environment
from webtunnel_pt.socks.server import SocksServerHandshake
from webtunnel_pt.webtunnel.bridge import KNOWN_KEYS, bridge_config_from_args, parse_bridge_line
from webtunnel_pt.webtunnel.upgrade import UpgradeAccepted, UpgradeClient

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as it can reach us: no lone surrogates (everything arrives as decoded UTF-8).
TEXT = st.text(st.characters(exclude_categories=("Cs",)))
# Port numbers: ASCII digits, or digits of other scripts (str.isdigit() is true for many).
DIGITS = st.one_of(
    st.text(string.digits, min_size=1, max_size=6),
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=3),
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)] or [b""]


# -- an independent SOCKS5 client encoder (RFC 1928 / 1929) -----------------------------------


def socks5_client_bytes(host: str, port: int, args_text: str | None) -> bytes:
    if args_text is None:
        out = b"\x05\x01\x00"
    else:
        username, password = encode_socks_credentials(args_text)
        out = b"\x05\x02\x00\x02"
        out += bytes([1, len(username)]) + username + bytes([len(password)]) + password
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        address = bytes([3, len(host)]) + host.encode("ascii")
    else:
        address = bytes([1 if ip.version == 4 else 4]) + ip.packed
    return out + b"\x05\x01\x00" + address + struct.pack("!H", port)


# -- parsers never raise foreign exceptions ---------------------------------------------------


@PROPERTY
@given(st.one_of(TEXT, st.text(alphabet="ab=;\\", max_size=30)))
def test_parse_args_only_raises_own_errors(text):
    try:
        parse_args(text)
    except WebtunnelError:
        pass


SOCKS_PREFIXES = st.sampled_from(
    [
        b"",
        b"\x05",
        b"\x05\x02\x00\x02",
        b"\x05\x01\x00",
        b"\x05\x02\x00\x02\x01",
        b"\x05\x01\x00\x05\x01\x00",
        b"\x05\x01\x00\x05\x01\x00\x03",
        b"\x04\x01",
        b"\x04\x01\x00\x01",
    ]
)


@PROPERTY
@given(SOCKS_PREFIXES, st.binary(max_size=600), st.lists(st.integers(0, 700), max_size=8))
def test_socks_handshake_only_raises_own_errors(prefix, body, cuts):
    handshake = SocksServerHandshake(check_bridge_credentials)
    try:
        for piece in chunks(prefix + body, cuts):
            handshake.receive_data(piece)
            if (request := handshake.next_event()) is not None:
                pt_args.bridge_args(request)
                break
            handshake.data_to_send()
    except WebtunnelError:
        # After any refusal the reply (possibly empty) is ready to flush.
        assert isinstance(handshake.data_to_send(), bytes)


HTTP_PREFIXES = st.sampled_from(
    [
        b"",
        b"HTTP/1.1 ",
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 x\r\n",
        b"HTTP/1.0 200 OK\r\n",
    ]
)


@PROPERTY
@given(
    HTTP_PREFIXES, st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=8), st.booleans()
)
def test_upgrade_client_only_raises_own_errors(prefix, body, cuts, eof):
    client = UpgradeClient("h.example", "/p")
    client.data_to_send()
    try:
        for piece in chunks(prefix + body, cuts):
            client.receive_data(piece)
            event = client.next_event()
            if event is not None:
                assert isinstance(event, UpgradeAccepted)
                return
        if eof:
            client.receive_eof()
            client.next_event()
    except WebtunnelError:
        pass


URLS = st.one_of(
    TEXT,
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
        st.one_of(st.from_regex(r"\A[a-z0-9.-]{1,20}\Z"), st.just("[2001:db8::1]"), TEXT),
        st.one_of(st.just(""), DIGITS.map(lambda d: ":" + d)),
        TEXT,
    ),
)
ADDRS = st.one_of(
    TEXT,
    st.builds(
        lambda host, port: f"{host}:{port}",
        st.sampled_from(["192.0.2.1", "[2001:db8::1]", "cdn.example", "2001:db8::1", ""]),
        DIGITS,
    ),
)
ARG_VALUES = {"url": URLS, "addr": ADDRS}


VALID_URLS = st.sampled_from(
    ["https://h.example/p", "http://192.0.2.1:8080/p", "https://[2001:db8::1]/p%20q"]
)


@st.composite
def bridge_args(draw):
    pairs = [("url", draw(st.one_of(VALID_URLS, URLS)))] if draw(st.integers(0, 3)) else []
    keys = draw(st.lists(st.one_of(st.sampled_from(sorted(KNOWN_KEYS)), TEXT), max_size=5))
    pairs += [(key, draw(ARG_VALUES.get(key, TEXT))) for key in keys]
    return BridgeArgs(pairs)


@PROPERTY
@given(bridge_args())
@example(BridgeArgs([("url", "https://h.example/p"), ("addr", "192.0.2.1:\u00b2")]))
@example(BridgeArgs([("url", "https://h.example:\u00b2/p")]))
def test_bridge_config_only_raises_own_errors(args):
    try:
        bridge_config_from_args(args)
    except WebtunnelError:
        pass


BRIDGE_TOKENS = st.one_of(
    TEXT,
    st.sampled_from(["Bridge", "webtunnel", "2B936CD554AF5B16678DE517CC3866AA11170BC4", "x=y"]),
    ADDRS,
    URLS.map(lambda url: "url=" + url),
)


@PROPERTY
@given(st.one_of(TEXT, st.lists(BRIDGE_TOKENS, max_size=6).map(" ".join)))
@example("webtunnel 192.0.2.1:\u00b2 url=https://h.example/p")
def test_parse_bridge_line_only_raises_own_errors(line):
    try:
        parse_bridge_line(line)
    except WebtunnelError:
        pass


ENV_KEYS = st.sampled_from(
    [
        "TOR_PT_MANAGED_TRANSPORT_VER",
        "TOR_PT_CLIENT_TRANSPORTS",
        "TOR_PT_SERVER_TRANSPORTS",
        "TOR_PT_STATE_LOCATION",
        "TOR_PT_EXIT_ON_STDIN_CLOSE",
        "TOR_PT_PROXY",
        "TOR_PT_OUTBOUND_BIND_ADDRESS_V4",
        "TOR_PT_OUTBOUND_BIND_ADDRESS_V6",
    ]
)
ENV_VALUES = st.one_of(
    TEXT, st.sampled_from(["1", "webtunnel", "*", "/abs/", "[::1]", "127.0.0.1", "1,2", ""])
)


@PROPERTY
@given(st.dictionaries(st.one_of(ENV_KEYS, TEXT), ENV_VALUES))
def test_environment_parsers_only_raise_own_errors(env):
    for parse in (negotiate_version, parse_client_environment):
        try:
            parse(env)
        except WebtunnelError:
            pass


# -- round trips ------------------------------------------------------------------------------


def assert_same_args(args: BridgeArgs, pairs: list[tuple[str, str]]) -> None:
    assert list(args) == list(dict.fromkeys(key for key, _ in pairs))
    for key in args:
        assert list(args.get_all(key)) == [v for k, v in pairs if k == key]


KEYS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="="), min_size=1)


@PROPERTY
@given(st.lists(st.tuples(KEYS, TEXT), max_size=6))
def test_parse_args_inverts_escape_args(pairs):
    assert_same_args(parse_args(escape_args(pairs)), pairs)


# tor never puts NUL in an argument string and never authenticates with an empty one.
ARG_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=510
).filter(lambda t: len(t.encode()) <= MAX_ARGS_BYTES)


@PROPERTY
@given(ARG_TEXT)
def test_socks_credentials_round_trip(text):
    username, password = encode_socks_credentials(text)
    assert 1 <= len(username) <= 255 and 1 <= len(password) <= 255
    assert decode_socks_credentials(username, password) == text


HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.text(string.ascii_letters + string.digits + ".-", min_size=1, max_size=255),
)
# Up to 510 bytes once escaped: some fit in the username alone, some are split at byte 255.
ARG_PAIRS = st.lists(
    st.tuples(KEYS.filter(lambda k: len(k) < 20), TEXT.filter(lambda v: len(v) < 40)),
    min_size=1,
    max_size=8,
).filter(lambda pairs: len(escape_args(pairs).encode()) <= MAX_ARGS_BYTES)


@PROPERTY
@given(
    HOSTS,
    st.integers(0, 65535),
    st.one_of(st.none(), ARG_PAIRS),
    st.lists(st.integers(0, 1200), max_size=10),
)
def test_socks5_request_round_trip(host, port, pairs, cuts):
    args_text = None if pairs is None else escape_args(pairs)
    handshake = SocksServerHandshake(check_bridge_credentials)
    requests = []
    for piece in chunks(socks5_client_bytes(host, port, args_text), cuts):
        handshake.receive_data(piece)
        event = handshake.next_event()
        if event is not None:
            requests.append(event)
    (request,) = requests
    assert (request.version, request.port) == (5, port)
    if is_ip(host):
        assert ipaddress.ip_address(request.host) == ipaddress.ip_address(host)
    else:
        assert request.host == host
    if pairs is None:
        assert pt_args.bridge_args(request) is None
    else:
        args = pt_args.bridge_args(request)
        assert args is not None
        assert_same_args(args, pairs)
    handshake.reply(SocksReply.SUCCEEDED)
    greeting_and_auth = b"\x05\x00" if pairs is None else b"\x05\x02\x01\x00"
    assert handshake.data_to_send() == greeting_and_auth + b"\x05\x00\x00\x01" + bytes(6)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
