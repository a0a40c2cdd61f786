"""The built-in client end to end (issue 14): 3-hop circuits through the nginx-fronted bridge of
the private network, streams on them, isolation, a dying exit, a name the exit cannot resolve.

Nothing here takes the client's word alone for where a stream went:

- the path the API reports (``writer.get_extra_info("tor_path")``, RSA identities, bridge
  first) is matched against the network's own fingerprints;
- the exit is also identified by the network: the page server asks, while the connection is
  open, which tor process holds the other end of it (``TorNetwork.node_of_socket``);
- the middle is checked against the TCP connections the processes hold (it must have a channel
  with the bridge and one with the exit);
- a name only the exits can resolve (``EXIT_ONLY_NAME``, answered by the stack's name server)
  and one nobody can show that the exit resolved, and that a failure is the exit's answer.

Each test runs its own event loop (``asyncio.run``, as the repo's other tests do) and its own
``TorClient``; they share one state directory, so only the first fetches the directory.

Killing the exit: the relay stays listed Running (the authorities run with AssumeReachable), and
the relays that tried to extend to it refuse to connect to it for 60 s after their last failed
attempt (tor's OR_CONNECT_FAILURE_LIFETIME), even once it is back.  So that test is the module's
last, the module runs after every other test of the session (``E2E_RUN_LAST``, conftest.py),
and the module's teardown restarts every exit (``TorNetwork.restart`` waits until each
bootstrapped again and accepts on its ORPort): about 5 s, where a network of its own would
cost 30 s or more.  The teardown restarts the exits that were not killed too: the names they
resolved left them holding a UDP socket on 0.0.0.0 (libevent binds no address for a loopback
name server and the kernel autobinds it on the first query), which the session's loopback
audit would rightly count as a leak.  ``test_exits_resolver_is_their_only_foreign_socket``
checks first that this socket is the only one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from webtunnel_pt.errors import (
    CircuitDestroyed,
    ConfluxSetEnded,
    ResolveFailed,
    SocksReply,
    StreamEnded,
    StreamRefused,
    WebtunnelError,
)
from webtunnel_pt.tor import circuit_pool
from webtunnel_pt.tor.cells import EndReason
from webtunnel_pt.tor.client import TorClient
from webtunnel_pt.tor.ntor import HTYPE_NTOR as NTOR
from webtunnel_pt.tor.ntor_v3 import HTYPE_NTOR_V3 as NTOR_V3
from webtunnel_pt.tor.stream_io import TorStreamWriter

from .network import Node, TorNetwork
from .ports import LOOPBACK
from .procs import inet_sockets
from .stack import EXIT_ONLY_NAME, Page, Stack, serving_page

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("trust_stack_ca")]
#: After every other test of the session (conftest.py): see the module docstring.
E2E_RUN_LAST = True

T = TypeVar("T")

TEST_TIMEOUT_S = 180.0  # one test's event loop, bootstrap included
STREAM_TIMEOUT_S = 60.0  # one request and its whole answer
BODY_BYTES = 1 << 20  # /big: 1 MiB per stream
CONCURRENT_STREAMS = 20
PARTIAL_READ_BYTES = 64 * 1024  # read before the exit is killed: well inside one stream window
UNRESOLVABLE = "nonexistent.invalid"


@dataclass(frozen=True)
class Fetched:
    body: bytes
    circuit_id: int
    path: tuple[str, ...]  # RSA fingerprints, upper-case hex, bridge first
    exit_address: str | None
    congestion_control: bool  # the exit negotiated it (prop 324)
    htypes: tuple[int, ...]  # each hop's CREATE2 / EXTEND2 handshake type, bridge first
    conflux_paths: tuple[tuple[str, ...], ...] = ()  # each leg's path, when linked (prop 329)
    conflux_received: tuple[int, ...] = ()  # multiplexed messages each leg carried, so far
    conflux_switches: int = 0  # the exit's SWITCH messages, so far


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def circ_page(e2e_stack: Stack) -> Iterator[Page]:
    """1 MiB at /big; every visit records which tor process connected."""
    with serving_page(big_size=BODY_BYTES, identify_peer=e2e_stack.network.node_of_socket) as p:
        yield p


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tor-state")


@pytest.fixture(scope="module", autouse=True)
def exits_restarted_afterwards(e2e_stack: Stack) -> Iterator[None]:
    """Every exit (killed or not) started afresh and back before the session's loopback audit
    and whatever runs next."""
    yield
    net = e2e_stack.network
    net.restart(*(n.nickname for n in net.exits))
    assert net.foreign_sockets() == [], "restarted exits still hold off-loopback sockets"


def _client(stack: Stack, state_dir: Path) -> TorClient:
    return TorClient(
        [stack.bridge_line()],
        dir_authorities=stack.network.dir_authority_lines,
        state_dir=state_dir,
        distinct_subnets=False,
    )


def _run(stack: Stack, state_dir: Path, test: Callable[[TorClient], Awaitable[T]]) -> T:
    """``test(tor)`` on a bootstrapped client, in a fresh event loop, within TEST_TIMEOUT_S."""

    async def main() -> T:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            async with _client(stack, state_dir) as tor:
                return await test(tor)

    return asyncio.run(main())


# ---- HTTP over a tor stream ---------------------------------------------------------------


def _request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode()


def _body_of(response: bytes) -> bytes:
    head, sep, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    assert sep and status.split()[1:2] == [b"200"], f"unexpected answer {head[:200]!r}"
    return body


def _fetched(body: bytes, writer: TorStreamWriter) -> Fetched:
    sequencer = writer.get_extra_info("tor_conflux_sequencer")
    return Fetched(
        body,
        writer.get_extra_info("tor_circuit_id"),
        tuple(writer.get_extra_info("tor_path")),
        writer.get_extra_info("exit_address"),
        writer.get_extra_info("tor_congestion_control"),
        writer.get_extra_info("tor_hop_htypes"),
        writer.get_extra_info("tor_conflux_paths"),
        tuple(sequencer.received) if sequencer is not None else (),
        sum(sequencer.switches) if sequencer is not None else 0,
    )


async def _fetch(
    tor: TorClient, host: str, port: int, path: str = "/", isolation: object = None
) -> Fetched:
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        reader, writer = await tor.open_connection(host, port, isolation=isolation)
        try:
            writer.write(_request(host, port, path))
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    return _fetched(_body_of(response), writer)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _node(net: TorNetwork, fingerprint: str) -> Node:
    node = net.node_by_fingerprint(fingerprint)
    assert node is not None, f"the path names {fingerprint}, which is no server of the network"
    return node


def _assert_three_distinct_relays(net: TorNetwork, path: tuple[str, ...]) -> list[Node]:
    assert len(path) == 3, f"not a 3-hop path: {path}"
    hops = [_node(net, fp) for fp in path]
    assert hops[0] == net.bridge, f"the first hop is {hops[0].nickname}, not the bridge"
    assert len({h.nickname for h in hops}) == 3, f"a relay twice: {[h.nickname for h in hops]}"
    assert hops[2].is_exit, f"the last hop {hops[2].nickname} is not an exit"
    return hops


def _assert_ntor_v3_past_the_bridge(fetched: Fetched) -> None:
    """The bridge is created with ntor (its descriptor is what the client has), the middle
    and the exit (tor 0.4.9, ``Relay=4``) are extended to with ntor v3: real relays accepted our
    HTYPE 3 EXTEND2 and its keys carried the stream."""
    assert fetched.htypes == (NTOR, NTOR_V3, NTOR_V3), f"handshake types {fetched.htypes}"


def _assert_conflux_legs(net: TorNetwork, fetched: Fetched) -> None:
    """The stream's circuit is one leg of a linked pair (prop 329): both legs run bridge,
    middle, exit to the same exit through different middles."""
    legs = fetched.conflux_paths
    assert len(legs) == 2 and fetched.path in legs, f"conflux legs {legs}"
    hops = [_assert_three_distinct_relays(net, leg) for leg in legs]
    assert hops[0][2] == hops[1][2], "the legs end at different exits"
    assert hops[0][1] != hops[1][1], "the legs share their middle"


# ---- the tests ----------------------------------------------------------------------------


def test_page_through_bridge_middle_exit(
    e2e_stack: Stack, circ_page: Page, state_dir: Path
) -> None:
    """The page and 1 MiB arrive intact through three distinct relays, and the network agrees
    on which ones: the exit held the page server's peer socket, the middle holds channels
    with the bridge and the exit. By default, as with tor 0.4.9, the exit negotiated
    congestion control and linked the circuit with a second one into a conflux set (prop 329):
    the exit sent on both legs, switching between them, and what arrived is in order (the
    hash of the MiB)."""
    net = e2e_stack.network

    async def test(tor: TorClient) -> tuple[Fetched, Fetched]:
        small = await _fetch(tor, LOOPBACK, circ_page.port, "/")
        big = await _fetch(tor, LOOPBACK, circ_page.port, "/big")
        return small, big

    small, big = _run(e2e_stack, state_dir, test)
    assert small.body == circ_page.body
    assert _sha256(big.body) == _sha256(circ_page.big_body) and len(big.body) == BODY_BYTES
    for fetched, visit in zip((small, big), circ_page.visits[-2:], strict=True):
        bridge, middle, exit_ = _assert_three_distinct_relays(net, fetched.path)
        _assert_ntor_v3_past_the_bridge(fetched)
        assert visit.who == exit_, f"the page server saw {visit.who}, the API says {exit_}"
        peers = net.tcp_peers(middle.nickname)
        assert {bridge.nickname, exit_.nickname} <= peers, f"{middle.nickname} peers: {peers}"
        assert fetched.exit_address == LOOPBACK
        assert fetched.congestion_control, "no congestion control (on by default, as in tor)"
        _assert_conflux_legs(net, fetched)
    assert all(big.conflux_received), f"a leg carried nothing: {big.conflux_received}"
    assert big.conflux_switches >= 1, "the exit never switched legs"


def test_twenty_concurrent_streams_on_one_circuit(
    e2e_stack: Stack, circ_page: Page, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 streams with one isolation key share one circuit (with congestion control) and each
    carries 1 MiB intact."""
    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", True)
    visits_before = len(circ_page.visits)

    async def test(tor: TorClient) -> list[Fetched]:
        fetches = [
            _fetch(tor, LOOPBACK, circ_page.port, "/big", isolation="bulk")
            for _ in range(CONCURRENT_STREAMS)
        ]
        return list(await asyncio.gather(*fetches))

    results = _run(e2e_stack, state_dir, test)
    want = _sha256(circ_page.big_body)
    assert [_sha256(r.body) for r in results] == [want] * CONCURRENT_STREAMS
    assert len({r.circuit_id for r in results}) == 1, "the streams went on several circuits"
    assert all(r.congestion_control for r in results), "no congestion control on the circuit"
    _assert_three_distinct_relays(e2e_stack.network, results[0].path)
    _assert_ntor_v3_past_the_bridge(results[0])
    visits = circ_page.visits[visits_before:]
    assert len(visits) == CONCURRENT_STREAMS
    assert {v.who for v in visits} == {_node(e2e_stack.network, results[0].path[2])}


def test_upload_through_the_congestion_window(
    e2e_stack: Stack, circ_page: Page, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 MiB up through the exit's SENDMEs (each checked against the digest we recorded): the
    Vegas window grows past its 124 initial cells and the page server hashes what arrived."""
    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", True)
    payload = circ_page.big_body * 4

    async def test(tor: TorClient) -> tuple[bytes, int, bool]:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            reader, writer = await tor.open_connection(LOOPBACK, circ_page.port)
            head = (
                f"POST /upload HTTP/1.0\r\nHost: {LOOPBACK}:{circ_page.port}\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
            response = await reader.read()
            window = writer.get_extra_info("tor_congestion_window")
            writer.close()
            await writer.wait_closed()
        assert window is not None, "tor 0.4.9's exit did not negotiate CC"
        return response, window.cwnd, window.in_slow_start

    response, cwnd, _in_slow_start = _run(e2e_stack, state_dir, test)
    assert _body_of(response) == _sha256(payload).encode()
    assert cwnd > 124, f"the congestion window never grew (cwnd {cwnd})"


def test_a_slow_reader_pauses_the_exit_and_resumes_it(
    e2e_stack: Stack, circ_page: Page, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With congestion control, a reader that reads nothing until 500 cells wait unread makes
    us send XOFF (the exit stops reading from the page server); reading them sends XON and the
    rest arrives intact. A lost XON would hang the read (the timeout); a malformed XOFF would
    end the circuit."""
    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", True)

    async def test(tor: TorClient) -> tuple[bytes, int, int]:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            reader, writer = await tor.open_connection(LOOPBACK, circ_page.port)
            flow = writer.get_extra_info("tor_stream_flow")
            assert flow is not None, "tor 0.4.9's exit did not negotiate CC"
            xoff = asyncio.Event()
            flow.on_xoff_sent = xoff.set
            writer.write(_request(LOOPBACK, circ_page.port, "/big"))
            await writer.drain()
            await xoff.wait()  # the exit filled our buffer past cc_xoff_client
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
        return response, flow.xoffs_sent, flow.xons_sent

    response, xoffs, xons = _run(e2e_stack, state_dir, test)
    assert _sha256(_body_of(response)) == _sha256(circ_page.big_body)
    assert xoffs >= 1 and xons >= 1, f"XOFFs {xoffs}, XONs {xons}"


def test_exits_answer_a_congestion_control_request(
    e2e_stack: Stack, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the request on, tor 0.4.9 exits (FlowCtrl=2, cc_alg at its default) answer the
    ntor v3 congestion-control request of prop 324 §10.3 with their sendme_inc (31 by
    default), and it reaches :func:`~webtunnel_pt.tor.circuit_pool.negotiated_cc` for the
    exit's hop. The circuits carry no stream: the client's side of congestion control is not
    this test's business."""
    negotiated: list[tuple[int, int, tuple[int, ...]]] = []

    def record(circuit: Any, hop: int, sendme_inc: int) -> None:
        negotiated.append((hop, sendme_inc, tuple(circuit.hop_htypes)))

    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", True)
    monkeypatch.setattr(circuit_pool, "negotiated_cc", record)

    async def test(tor: TorClient) -> int:
        return len(tor.circuits)

    built = _run(e2e_stack, state_dir, test)
    assert built >= 1
    assert negotiated, "no exit answered the congestion-control request"
    assert all(n == (2, 31, (NTOR, NTOR_V3, NTOR_V3)) for n in negotiated), negotiated


def test_isolation_keys_get_their_own_circuits(
    e2e_stack: Stack, circ_page: Page, state_dir: Path
) -> None:
    async def test(tor: TorClient) -> list[Fetched]:
        return [
            await _fetch(tor, LOOPBACK, circ_page.port, isolation=key)
            for key in ("alice", "bob", "alice")
        ]

    alice, bob, alice_again = _run(e2e_stack, state_dir, test)
    assert alice.body == bob.body == alice_again.body == circ_page.body
    assert alice.circuit_id != bob.circuit_id, "two isolation keys shared a circuit"
    assert alice_again.circuit_id == alice.circuit_id, "one key did not keep its circuit"
    for fetched in (alice, bob):
        _assert_three_distinct_relays(e2e_stack.network, fetched.path)


def test_a_name_only_the_exit_can_resolve(
    e2e_stack: Stack, circ_page: Page, state_dir: Path
) -> None:
    """BEGIN with a host name and RESOLVE both go to the exit's resolver."""

    async def test(tor: TorClient) -> tuple[Fetched, list[str]]:
        fetched = await _fetch(tor, EXIT_ONLY_NAME, circ_page.port)
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            return fetched, await tor.resolve(EXIT_ONLY_NAME)

    fetched, addresses = _run(e2e_stack, state_dir, test)
    assert fetched.body == circ_page.body
    assert fetched.exit_address == LOOPBACK  # CONNECTED carries what the exit resolved
    assert addresses == [LOOPBACK]
    asked = [q.lower() for q in e2e_stack.names.queries]  # once: the exit caches the answer
    assert EXIT_ONLY_NAME in asked, f"the exits' name server was asked {asked}"


def test_a_name_nobody_resolves_ends_with_the_exits_reason(
    e2e_stack: Stack, circ_page: Page, state_dir: Path
) -> None:
    async def test(tor: TorClient) -> tuple[BaseException, BaseException]:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            return (
                await _failure(tor.open_connection(UNRESOLVABLE, circ_page.port)),
                await _failure(tor.resolve(UNRESOLVABLE)),
            )

    refused, unresolved = _run(e2e_stack, state_dir, test)
    assert isinstance(refused, StreamRefused), repr(refused)
    assert refused.reason == EndReason.RESOLVEFAILED, refused
    assert "RESOLVEFAILED" in str(refused)
    assert refused.socks_reply == SocksReply.HOST_UNREACHABLE  # what tor would answer
    assert isinstance(unresolved, ResolveFailed), repr(unresolved)
    asked = [q.lower() for q in e2e_stack.names.queries]
    assert UNRESOLVABLE in asked, "the failure did not come from the exit's resolver"


async def _failure(call: Coroutine[Any, Any, object]) -> BaseException:
    try:
        result = await call
    except WebtunnelError as exc:
        return exc
    raise AssertionError(f"expected a failure, got {result!r}")


def test_exits_resolver_is_their_only_foreign_socket(e2e_stack: Stack) -> None:
    """What the module's teardown restarts the exits for, and nothing else (see the module
    docstring): an unconnected UDP socket on 0.0.0.0 in an exit, nowhere else."""
    net = e2e_stack.network
    exit_pids = {net.processes.find(n.nickname).pid for n in net.exits}
    for entry in net.foreign_sockets():
        assert entry.pid in exit_pids, f"not an exit's: {entry}"
        assert entry.proto == "udp" and str(entry.local[0]) == "0.0.0.0", entry
        assert entry.remote[1] == 0, f"a connected socket: {entry}"
    assert inet_sockets(exit_pids), "the audit sees no socket of the exits"


def test_killing_the_exit_mid_stream(
    e2e_stack: Stack, circ_page: Page, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream whose exit dies fails with the circuit's error and reason; the next stream
    with the same isolation key succeeds on a new circuit through the other exit.

    The client's INFO log (each failed build names its middle and exit) is captured, so a
    failure here says which hop refused; ``E2E_TOR_LOG=info`` adds the relays' side."""
    caplog.set_level(logging.INFO, logger="webtunnel_pt")
    net = e2e_stack.network
    killed: list[Node] = []

    async def test(tor: TorClient) -> tuple[Fetched, BaseException, int, Fetched]:
        reader, writer = await tor.open_connection(LOOPBACK, circ_page.port, isolation="doomed")
        doomed = _fetched(b"", writer)
        exit_ = _assert_three_distinct_relays(net, doomed.path)[2]
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            writer.write(_request(LOOPBACK, circ_page.port, "/big"))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            received = len(await reader.readexactly(PARTIAL_READ_BYTES))
        assert circ_page.visits[-1].who == exit_, "the API and the network disagree on the exit"
        await asyncio.to_thread(net.kill, exit_.nickname)
        killed.append(exit_)
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            try:
                while chunk := await reader.read(65536):
                    received += len(chunk)
            except WebtunnelError as exc:
                error: BaseException = exc
            else:
                raise AssertionError(f"the stream ended cleanly after {received} bytes")
            writer.close()
            after = await _fetch(tor, LOOPBACK, circ_page.port, isolation="doomed")
        return doomed, error, received, after

    doomed, error, received, after = _run(e2e_stack, state_dir, test)
    assert received < BODY_BYTES
    assert isinstance(error, (CircuitDestroyed, StreamEnded)), repr(error)
    assert isinstance(error.reason, int) and str(error), repr(error)
    print(f"the stream's end after {received} bytes: {type(error).__name__}: {error}")
    assert after.body == circ_page.body
    assert after.circuit_id != doomed.circuit_id
    others = {n.fingerprint for n in net.exits} - {killed[0].fingerprint}
    assert after.path[2] in others, f"the new circuit exits at {after.path[2]}"
    assert circ_page.visits[-1].who == _node(net, after.path[2])


def test_one_legs_end_ends_the_conflux_set(
    e2e_stack: Stack, circ_page: Page, state_dir: Path
) -> None:
    """When the leg that does not keep the streams is closed (DESTROY to the relays) in the
    middle of a download, the set ends with it: the stream on the other leg fails rather than
    wait for data the exit may have sent on the closed leg, as tor tears a set down; the next
    stream gets a new set."""

    async def test(tor: TorClient) -> tuple[Fetched, BaseException, bool, Fetched]:
        reader, writer = await tor.open_connection(LOOPBACK, circ_page.port, isolation="legs")
        first = _fetched(b"", writer)
        owner = next(c for c in tor.circuits if c.circ_id == first.circuit_id)
        other = next(leg for leg in owner.conflux_legs if leg is not owner)
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            writer.write(_request(LOOPBACK, circ_page.port, "/big"))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(PARTIAL_READ_BYTES)
            await other.aclose()
            try:
                while await reader.read(65536):
                    pass
            except WebtunnelError as exc:
                error: BaseException = exc
            else:
                raise AssertionError("the stream ended cleanly after its set lost a leg")
            writer.close()
            after = await _fetch(tor, LOOPBACK, circ_page.port, isolation="legs")
        return first, error, owner.is_open, after

    first, error, owner_open, after = _run(e2e_stack, state_dir, test)
    assert len(first.conflux_paths) == 2, "the stream's circuit was not linked"
    assert isinstance(error, ConfluxSetEnded), repr(error)
    assert not owner_open, "the leg that kept the streams outlived its set"
    assert after.body == circ_page.body and after.circuit_id != first.circuit_id
    _assert_conflux_legs(e2e_stack.network, after)
