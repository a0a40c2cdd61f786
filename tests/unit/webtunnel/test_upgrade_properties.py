"""Property tests of the upgrade client: the request, the 101 and the bytes behind it round-trip.

The request is read back by an independent peer, h11 as the server; responses are written here
byte by byte and fed in arbitrary pieces (webtunnel-wire.md §3 steps 6-8).
"""

from __future__ import annotations

import itertools
import string

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webtunnel_pt.errors import UpgradeError, UpgradeRejected, WebtunnelError
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.upgrade import (
    MAX_INFORMATIONAL_RESPONSES,
    MAX_RESPONSE_HEAD_BYTES,
    USER_AGENT,
    UpgradeAccepted,
    UpgradeClient,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def any_case(text: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(text), max_size=len(text))
    return flips.map(
        lambda up: "".join(c.upper() if u else c.lower() for c, u in zip(text, up, strict=True))
    )


def pieces_of(data: st.DataObject, wire: bytes, boundary: int) -> list[bytes]:
    """Split ``wire`` at drawn points, often near ``boundary``; never an empty piece (EOF)."""
    if len(wire) < 2:
        return [wire]
    inside = st.integers(1, len(wire) - 1)
    near = st.integers(max(1, boundary - 3), min(len(wire) - 1, boundary + 3))
    cuts = data.draw(st.sets(st.one_of(inside, near), max_size=10), label="cuts")
    points = sorted(cuts | {0, len(wire)})
    return [wire[a:b] for a, b in itertools.pairwise(points)]


def new_client() -> UpgradeClient:
    client = UpgradeClient("h.example", "/p")
    client.data_to_send()
    return client


# -- the request, read by h11 as the server ---------------------------------------------------

LABELS = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
DNS_NAMES = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
# RFC 3986 pchar: unreserved, sub-delims, ':' and '@', or a percent escape in either case.
PCHARS = st.sampled_from(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@")
ESCAPES = st.tuples(*[st.sampled_from(string.hexdigits)] * 2).map(lambda h: "%" + "".join(h))
SEGMENTS = st.lists(st.one_of(PCHARS, ESCAPES), max_size=12).map("".join)
TARGETS = st.lists(SEGMENTS, max_size=5).map(lambda segments: "/" + "/".join(segments))


def request_seen_by_server(wire: bytes) -> h11.Request:
    """Parse ``wire`` as h11's server does; check it is one body-less request and nothing else."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    assert server.their_state is h11.MIGHT_SWITCH_PROTOCOL
    assert server.trailing_data == (b"", False)  # nothing after the head
    assert (request.method, request.http_version) == (b"GET", b"1.1")
    return request


def uri_host(name: str) -> str:
    """RFC 9110 §7.2 / RFC 3986 §3.2.2: an IPv6 literal in brackets. No port, even a non-default
    one: the official client never sends one (webtunnel-wire.md §3.6)."""
    return f"[{name}]" if ":" in name else name


def mimic_headers(host: str) -> list[tuple[bytes, bytes]]:
    """The header block of Go's Request.Write for the official client (webtunnel-wire.md §3.6)."""
    return [
        (b"host", host.encode("ascii")),
        (b"user-agent", USER_AGENT.encode("ascii")),
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
    ]


@PROPERTY
@given(st.one_of(DNS_NAMES, IPV4, IPV6), TARGETS)
def test_request_reaches_an_h11_server_as_sent(host, target):
    request = request_seen_by_server(UpgradeClient(host, target).data_to_send())
    assert request.target == target.encode("ascii")
    assert list(request.headers) == mimic_headers(uri_host(host))


@st.composite
def bridge_urls(draw, hosts):
    """``(args, target, host)``: a bridge's url= (and servername=), its path and Host header
    (the URL host, whatever servername= says)."""
    scheme = draw(st.sampled_from(["https", "http"]))
    url_host = draw(hosts)
    default = 443 if scheme == "https" else 80
    port = draw(st.one_of(st.none(), st.just(default), st.integers(1, 65535)))
    target = draw(TARGETS)
    authority = uri_host(url_host)
    if port is not None:
        authority += f":{port}"
    pairs = [("url", f"{scheme}://{authority}{target}")]
    server_name = draw(st.one_of(st.none(), hosts))
    if server_name is not None:
        pairs.append(("servername", server_name))
    # lyrebird 0.8: servername= is the SNI only; Host is always the URL host.
    return BridgeArgs(pairs), target, uri_host(url_host)


def request_for(args: BridgeArgs) -> bytes:
    """The request bytes for a bridge line, built the way dial.dial_bridge builds them."""
    config = bridge_config_from_args(args)
    return UpgradeClient(config.host_header, config.request_target).data_to_send()


@PROPERTY
@given(bridge_urls(st.one_of(DNS_NAMES, IPV4, IPV6)))
def test_bridge_url_becomes_path_and_host_header(bridge):
    args, target, host = bridge
    request = request_seen_by_server(request_for(args))
    assert request.target == target.encode("ascii")
    (sent_host,) = [value for name, value in request.headers if name == b"host"]
    assert sent_host.decode("ascii").lower() == host.lower()  # DNS names ignore case
    assert list(request.headers)[1:] == mimic_headers(host)[1:]


# -- responses, written here and fed in arbitrary pieces --------------------------------------

# RFC 9110 §5.5/§5.6.2: tokens for names; VCHAR and obs-text for values and reason phrases.
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
VISIBLE = [*range(0x21, 0x7F), *range(0x80, 0x100)]
WORDS = st.lists(st.sampled_from(VISIBLE), min_size=1, max_size=12).map(bytes)
REASONS = st.lists(st.sampled_from([*VISIBLE, 0x20, 0x09]), max_size=30).map(bytes)
OWS = st.sampled_from([b"", b" ", b"\t", b" \t "])
# Names h11 or the client treat specially stay out of the random extras.
SPECIAL = {"connection", "upgrade", "content-length", "transfer-encoding"}
EXTRA_NAMES = st.text(TOKEN_CHARS, min_size=1, max_size=16).filter(
    lambda n: n.lower() not in SPECIAL
)


@st.composite
def header_values(draw, content=None):
    """``(wire value, value as parsed)``: optional whitespace around words joined by spaces."""
    value = draw(st.lists(WORDS, max_size=4).map(b" ".join)) if content is None else content
    return draw(OWS) + value + draw(OWS), value


@st.composite
def extra_headers(draw, max_size=4):
    names = draw(st.lists(EXTRA_NAMES, max_size=max_size))
    return [(name.encode("ascii"), *draw(header_values())) for name in names]


def http_head(status: int, reason: bytes, headers: list[tuple[bytes, bytes, bytes]]) -> bytes:
    lines = b"".join(name + b": " + wire + b"\r\n" for name, wire, _parsed in headers)
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, lines)


def as_parsed(headers: list[tuple[bytes, bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((name.decode().lower(), parsed.decode("latin-1")) for name, _, parsed in headers)


INFORMATIONAL_STATUS = st.one_of(st.just(100), st.integers(102, 199))


@st.composite
def informational_heads(draw):
    status = draw(INFORMATIONAL_STATUS)
    return http_head(status, draw(REASONS), draw(extra_headers(max_size=2)))


@st.composite
def switching_heads(draw):
    """``(head, reason, headers as parsed)`` of a usable 101, maybe after 1xx responses."""
    tokens = draw(st.lists(st.sampled_from(["keep-alive", "te", "x-hop"]), unique=True))
    tokens = draw(st.permutations(["upgrade", *tokens]))
    tokens = [draw(any_case(token)) for token in tokens]
    connection = draw(st.sampled_from([", ", ","])).join(tokens).encode("ascii")
    mimic = [
        (draw(any_case("Connection")).encode(), *draw(header_values(connection))),
        (
            draw(any_case("Upgrade")).encode(),
            *draw(header_values(draw(any_case("websocket")).encode())),
        ),
    ]
    headers = draw(st.permutations(mimic + draw(extra_headers())))
    reason = draw(REASONS)
    early = draw(st.lists(informational_heads(), max_size=MAX_INFORMATIONAL_RESPONSES))
    return b"".join(early) + http_head(101, reason, headers), reason, as_parsed(headers)


# Tunnel bytes: anything, including what looks like HTTP or the end of a head.
PAYLOADS = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\r\n\r\n", b"HTTP/1.1 101 Switching Protocols\r\n\r\n", b"\x16\x03"]),
    ),
    max_size=5,
).map(b"".join)


@PROPERTY
@given(switching_heads(), PAYLOADS, st.data())
def test_bytes_behind_the_101_are_handed_on_exactly_once(response, payload, data):
    head, reason, headers = response
    wire = head + payload
    pieces = pieces_of(data, wire, len(head))
    client = new_client()
    received = 0
    for index, piece in enumerate(pieces):
        client.receive_data(piece)
        received += len(piece)
        event = client.next_event()
        if received < len(head):
            assert event is None
            continue
        # Accepted by the piece that ends the head: what it carried past the head is handed
        # on, the pieces after it go straight to the tunnel.
        assert isinstance(event, UpgradeAccepted)
        assert (event.reason, event.headers) == (reason.decode("latin-1"), headers)
        assert event.trailing_data == wire[len(head) : received]
        assert event.trailing_data + b"".join(pieces[index + 1 :]) == payload
        return
    raise AssertionError("the 101 was never accepted")


def raised_while_feeding(pieces: list[bytes]) -> tuple[WebtunnelError, int]:
    """Feed ``pieces`` to a new client; return its error and how many bytes it had been given."""
    client = new_client()
    received = 0
    with pytest.raises(WebtunnelError) as info:  # h11's own or other errors would escape here
        for piece in pieces:
            client.receive_data(piece)
            received += len(piece)
            assert client.next_event() is None
    return info.value, received


@PROPERTY
@given(
    st.lists(informational_heads(), max_size=MAX_INFORMATIONAL_RESPONSES + 3),
    st.integers(200, 599),
    REASONS,
    extra_headers(),
    st.binary(max_size=64),
    st.data(),
)
def test_non_101_answer_is_refused_with_its_status(early, status, reason, headers, body, data):
    head = b"".join(early) + http_head(status, reason, headers)
    error, _ = raised_while_feeding(pieces_of(data, head + body, len(head)))
    if len(early) > MAX_INFORMATIONAL_RESPONSES:
        assert type(error) is UpgradeError
    else:
        assert type(error) is UpgradeRejected
        assert (error.status, error.reason) == (status, reason.decode("latin-1"))


@PROPERTY
@given(st.integers(100, 599), REASONS, st.integers(2, 4096), st.data())
def test_head_over_the_limit_is_refused_once_buffered(status, reason, excess, data):
    headers = [(b"Connection", b"upgrade", b""), (b"Upgrade", b"websocket", b"")]
    pad = (
        MAX_RESPONSE_HEAD_BYTES
        + excess
        - len(http_head(status, reason, [*headers, (b"X", b"", b"")]))
    )
    head = http_head(status, reason, [*headers, (b"X", b"a" * pad, b"")])
    assert len(head) == MAX_RESPONSE_HEAD_BYTES + excess
    # Some piece leaves more than the limit buffered while the head is still incomplete.
    crossing = data.draw(st.integers(MAX_RESPONSE_HEAD_BYTES + 1, len(head) - 1), label="crossing")
    pieces = [*pieces_of(data, head[:crossing], crossing), head[crossing:]]
    error, received = raised_while_feeding(pieces)
    assert type(error) is UpgradeError
    # by the first piece that takes the buffer past the limit
    ends = itertools.accumulate(map(len, pieces))
    assert received == next(end for end in ends if end > MAX_RESPONSE_HEAD_BYTES)
