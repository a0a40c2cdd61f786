"""A private Tor network on 127.0.0.1: 3 authorities, relays (two exits), one bridge.

    with running_network(tmp_dir) as net:
        net.bridge_line(url)            # "webtunnel 127.0.0.1:9 <FP> url=... ver=0.0.2"
        net.client_torrc(...)           # everything a bridge client needs
        net.foreign_sockets()           # [] unless something left loopback
        net.kill("exit0")               # SIGKILL one relay (a crash) ...
        net.restart("exit0")            # ... and have it back, bootstrapped and accepting
        net.node_of_socket(peer, server)    # which tor holds that connection

Two exits, so that a test can kill the exit of a circuit and a client still has somewhere to
exit.  The authorities run with `AssumeReachable 1`, so a killed relay stays Running in the
consensus: a test that kills one restarts it (`restart` waits until it is back) before the
network is handed to the next test; that costs a few seconds, a second network 30 s or more.

Facts behind the torrc options: the project's private-tor-network notes.  Every torrc,
including the key-generation runs, names only our local authorities, sets
`UseDefaultFallbackDirs 0` and `TestingTorNetwork 1`, and tor gets an empty
`--defaults-torrc`, so nothing here can reach the public Tor network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from .ports import LOOPBACK, free_port, wait_accepting
from .procs import (
    ProcessGroup,
    SocketEntry,
    WaitTimeout,
    foreign_sockets,
    inet_sockets,
    read_text,
    socket_owner,
    tail,
    wait_until,
)
from .readiness import BOOTSTRAPPED_100, wait_ready

TOR = "tor"
TOR_GENCERT = "tor-gencert"
BRING_UP_TIMEOUT_S = 180.0  # bring-up + consensus on this kind of machine: 15-35 s
KEYGEN_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 60.0  # a relay with its keys and cached consensus: a few seconds
PLACEHOLDER_BRIDGE_ADDRESS = "127.0.0.1:9"  # the PT ignores the Bridge-line address

_TIMING = [
    "V3AuthVotingInterval 10",
    "V3AuthVoteDelay 2",
    "V3AuthDistDelay 2",
    "TestingV3AuthInitialVotingInterval 10",
    "TestingV3AuthInitialVoteDelay 2",
    "TestingV3AuthInitialDistDelay 2",
    "V3AuthNIntervalsValid 2",
]
_EXIT_POLICY = [
    "ExitRelay 1",
    "ExitPolicyRejectPrivate 0",
    "ExitPolicyRejectLocalInterfaces 0",
    "ExitPolicy accept 127.0.0.1:*",
    "ExitPolicy reject 127.0.0.0/8",
    "ExitPolicy reject 10.0.0.0/8",
    "ExitPolicy reject 172.16.0.0/12",
    "ExitPolicy reject 192.168.0.0/16",
    "ExitPolicy reject 169.254.0.0/16",
    "ExitPolicy reject 0.0.0.0/8",
    # Clients judge exits by the microdescriptor policy summary, which keeps only accept
    # rules for whole ports: without `accept *:*` nobody would pick this exit.  The bind
    # address below keeps every exit connection on loopback anyway.
    "ExitPolicy accept *:*",
    "OutboundBindAddressExit 127.0.0.1",
    # An exit refuses streams arriving from a relay missing from its own consensus ("from
    # unknown relay", END reason misc); a consensus of a young network can lag behind the
    # relays. wait_ready waits for every relay's bootstrap as well.
    "RefuseUnknownExits 0",
]
_NO_EXIT = ["ExitRelay 0", "ExitPolicy reject *:*"]


def synthetic_bridge_address(url: str) -> str:
    """The placeholder a WebTunnel server publishes: 2001:db8::/32 + SHA-256("WEBTUNNEL+" + url)
    bytes 4-15, port 443 (webtunnel-wire.md §2)."""
    digest = hashlib.sha256(f"WEBTUNNEL+{url}".encode()).digest()
    return f"[{ipaddress.IPv6Address(bytes.fromhex('20010db8') + digest[4:16])}]:443"


def _log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Node:
    """One tor server process: authority, relay or bridge."""

    nickname: str
    data_dir: Path
    or_port: int
    dir_port: int | None = None
    fingerprint: str = ""  # RSA identity, 40 upper-case hex
    v3ident: str = ""  # authorities only
    is_exit: bool = False

    @property
    def torrc(self) -> Path:
        return self.data_dir / "torrc"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "notice.log"

    @property
    def or_address(self) -> str:
        return f"{LOOPBACK}:{self.or_port}"

    def dir_authority_line(self) -> str:
        return (
            f"DirAuthority {self.nickname} orport={self.or_port} no-v2 v3ident={self.v3ident} "
            f"{LOOPBACK}:{self.dir_port} {self.fingerprint}"
        )


def common_torrc_lines(data_dir: Path, authority_lines: Sequence[str]) -> list[str]:
    """Options every tor in the test network (clients included) carries."""
    return [
        f"DataDirectory {data_dir}",
        "TestingTorNetwork 1",
        "UseDefaultFallbackDirs 0",
        *authority_lines,
        "AddressDisableIPv6 1",
        "ClientUseIPv6 0",
        f"OutboundBindAddress {LOOPBACK}",
        "RunAsDaemon 0",
    ]


@dataclass
class TorNetwork:
    base_dir: Path
    authorities: list[Node]
    relays: list[Node]
    bridge: Node
    processes: ProcessGroup = field(default_factory=ProcessGroup)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def empty_defaults(self) -> Path:
        return self.base_dir / "empty-defaults-torrc"

    @property
    def resolv_conf(self) -> Path:
        return self.base_dir / "resolv.conf"

    @property
    def bridge_fingerprint(self) -> str:
        return self.bridge.fingerprint

    @property
    def dir_authority_lines(self) -> list[str]:
        return [a.dir_authority_line() for a in self.authorities]

    @property
    def servers(self) -> list[Node]:
        return [*self.authorities, *self.relays, self.bridge]

    def tor_argv(self, torrc: Path, *extra: str) -> list[str]:
        return [TOR, "--defaults-torrc", str(self.empty_defaults), "-f", str(torrc), *extra]

    def bridge_line(
        self,
        url: str,
        *,
        fingerprint: str | None = None,
        address: str = PLACEHOLDER_BRIDGE_ADDRESS,
        **args: str,
    ) -> str:
        """`webtunnel <addr> <fp> url=<url> [k=v ...] ver=0.0.2` (without `Bridge `)."""
        fp = self.bridge.fingerprint if fingerprint is None else fingerprint
        extra = "".join(f" {k}={v}" for k, v in args.items())
        return f"webtunnel {address} {fp} url={url}{extra} ver=0.0.2"

    def client_torrc(
        self,
        data_dir: Path,
        *,
        socks_port: int,
        bridge_lines: Sequence[str],
        pt_argv: Sequence[str],
        log_path: Path,
        log_level: str = "info",
        extra_lines: Sequence[str] = (),
    ) -> str:
        """`extra_lines` are appended as given (e.g. `Socks5Proxy 127.0.0.1:<port>`)."""
        lines = [
            *common_torrc_lines(data_dir, self.dir_authority_lines),
            f"SocksPort {LOOPBACK}:{socks_port}",
            f"Log {log_level} file {log_path}",
            "UseBridges 1",
            f"ClientTransportPlugin webtunnel exec {' '.join(pt_argv)}",
            *(f"Bridge {line}" for line in bridge_lines),
            "EnforceDistinctSubnets 0",
            "ClientRejectInternalAddresses 0",
            "PathsNeededToBuildCircuits 0.67",
            f"OutboundBindAddressPT {LOOPBACK}",
            *extra_lines,
        ]
        return "\n".join(lines) + "\n"

    def foreign_sockets(self) -> list[SocketEntry]:
        return foreign_sockets(self.processes.pids())

    def resolver_sockets_only(self, entries: Sequence[SocketEntry]) -> bool:
        """Whether ``entries`` are all an exit's DNS socket: unconnected UDP on 0.0.0.0, which
        libevent leaves after an exit resolved a name through the loopback name server (the
        kernel autobinds it on the first query). A restart of the exits clears them."""
        exit_pids = {self.processes.find(n.nickname).pid for n in self.exits}
        return all(
            e.pid in exit_pids
            and e.proto == "udp"
            and str(e.local[0]) == "0.0.0.0"
            and e.remote[1] == 0
            for e in entries
        )

    # ---- nodes and their processes ---------------------------------------------------------

    def node(self, nickname: str) -> Node:
        for n in self.servers:
            if n.nickname == nickname:
                return n
        raise KeyError(f"no node {nickname!r} in this network")

    def node_by_fingerprint(self, fingerprint: str) -> Node | None:
        """The node whose RSA identity is `fingerprint` (hex, any case), else None."""
        want = fingerprint.upper()
        return next((n for n in self.servers if n.fingerprint == want), None)

    @property
    def exits(self) -> list[Node]:
        return [r for r in self.relays if r.is_exit]

    def node_of_socket(self, local: tuple[str, int], remote: tuple[str, int]) -> Node | None:
        """The tor server holding the open TCP connection `local` -> `remote`: e.g. the exit
        behind a connection a test server accepted (local = its peer, remote = the server)."""
        nodes = {n.nickname: n for n in self.servers}
        pids = {c.pid: nodes[c.name] for c in self.processes.children if c.name in nodes}
        pid = socket_owner(pids, local, remote)
        return None if pid is None else pids[pid]

    def tcp_peers(self, nickname: str) -> set[str]:
        """The servers `nickname` has an open TCP connection with, in either direction (a
        channel: relays keep them to authorities and to the relays their circuits use)."""
        nodes = {n.nickname for n in self.servers}
        live = {c.pid: c.name for c in self.processes.children if c.name in nodes}
        held = {
            pid: [s for s in inet_sockets([pid]) if s.proto.startswith("tcp") and s.remote[1]]
            for pid in live
        }
        # By both ends: one local port can serve connections of several processes.
        owner = {(s.local, s.remote): live[pid] for pid, sockets in held.items() for s in sockets}
        mine = [s for pid, sockets in held.items() if live[pid] == nickname for s in sockets]
        return {owner[s.remote, s.local] for s in mine if (s.remote, s.local) in owner} - {nickname}

    def running(self, nickname: str) -> bool:
        try:
            return self.processes.find(nickname).running()
        except KeyError:
            return False

    def kill(self, *nicknames: str) -> None:
        """SIGKILL relays (no DESTROY, no goodbye: their peers see the TCP connections die).
        They stay listed Running (AssumeReachable): restart them before other tests run."""
        for nickname in nicknames:
            self.processes.kill(self.processes.find(self.node(nickname).nickname))
            _log(f"killed {nickname}")

    def restart(self, *nicknames: str, timeout_s: float = RESTART_TIMEOUT_S) -> float:
        """Start servers again with the same torrc and keys (killing those still running);
        return once each logged `Bootstrapped 100%` anew and accepts on its ORPort (the
        seconds it took)."""
        self.kill(*(n for n in nicknames if self.running(n)))
        started = []
        for nickname in nicknames:
            node = self.node(nickname)
            already = len(read_text(node.log_path))
            child = self.processes.start(
                node.nickname, self.tor_argv(node.torrc), log_path=node.data_dir / "stdout.log"
            )
            started.append((node, already, child))
        t0 = time.monotonic()
        for node, already, child in started:
            remaining = max(1.0, timeout_s - (time.monotonic() - t0))
            try:
                wait_until(
                    partial(_logged_since, node.log_path, already, BOOTSTRAPPED_100),
                    remaining,
                    f"{node.nickname} to bootstrap after a restart",
                    alive=child.check_alive,
                )
                wait_accepting(node.or_port, remaining, node.nickname, alive=child.check_alive)
            except WaitTimeout as exc:
                raise WaitTimeout(f"{exc}; {node.nickname} log:\n{tail(node.log_path)}") from None
        took = time.monotonic() - t0
        _log(f"{', '.join(nicknames)} restarted in {took:.1f}s")
        return took

    def stop(self) -> None:
        start = time.monotonic()
        self.processes.stop_all()
        _log(f"network stopped in {time.monotonic() - start:.1f}s")


# ---- torrc for servers ---------------------------------------------------------------------


def _debug_log_lines(node: Node) -> list[str]:
    """With ``E2E_TOR_LOG=<severity>`` (say ``info``) in the environment, each relay also
    logs its circuit, channel and OR-connection events at that severity to ``debug.log``
    next to its notice log: what a flaky e2e test needs to say which hop refused what."""
    severity = os.environ.get("E2E_TOR_LOG", "")
    if not severity:
        return []
    return [f"Log [circ,or,channel,net,protocol,edge]{severity} file {node.data_dir / 'debug.log'}"]


def _server_lines(net: TorNetwork, node: Node) -> list[str]:
    return [
        *common_torrc_lines(node.data_dir, net.dir_authority_lines),
        f"Nickname {node.nickname}",
        f"Address {LOOPBACK}",
        f"ORPort {LOOPBACK}:{node.or_port}",
        *([f"DirPort {LOOPBACK}:{node.dir_port}"] if node.dir_port else []),
        "SocksPort 0",
        f"Log notice file {node.log_path}",
        *_debug_log_lines(node),
        "ContactInfo e2e@bridge.test",
        "AssumeReachable 1",
        f"ServerDNSResolvConfFile {net.resolv_conf}",
        "ServerDNSDetectHijacking 0",
        "ServerDNSAllowBrokenConfig 1",
        *_TIMING,
    ]


def _authority_torrc(net: TorNetwork, node: Node) -> list[str]:
    exits = ",".join(r.fingerprint for r in net.relays if r.is_exit)
    return [
        *_server_lines(net, node),
        "AuthoritativeDirectory 1",
        "V3AuthoritativeDirectory 1",
        "TestingDirAuthVoteGuard *",
        "TestingDirAuthVoteHSDir *",
        f"TestingDirAuthVoteExit {exits}",
        "TestingDirAuthVoteExitIsStrict 1",
        *_NO_EXIT,
    ]


def _relay_torrc(net: TorNetwork, node: Node) -> list[str]:
    return [*_server_lines(net, node), *(_EXIT_POLICY if node.is_exit else _NO_EXIT)]


def _bridge_torrc(net: TorNetwork, node: Node) -> list[str]:
    return [
        *_server_lines(net, node),
        "BridgeRelay 1",
        "BridgeDistribution none",
        "PublishServerDescriptor 0",
        *_NO_EXIT,
    ]


# ---- key generation ------------------------------------------------------------------------


def _run(argv: Sequence[str], *, stdin: bytes = b"", cwd: Path | None = None) -> str:
    done = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=KEYGEN_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()}{done.stdout.decode()}"
        )
    return done.stdout.decode()


def _make_authority_cert(node: Node) -> str:
    """tor-gencert keys in <data_dir>/keys; returns the v3 identity fingerprint."""
    keys = node.data_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    _run(
        [
            TOR_GENCERT,
            "--create-identity-key",
            "-m",
            "12",
            "-a",
            f"{LOOPBACK}:{node.dir_port}",
            "-i",
            str(keys / "authority_identity_key"),
            "-s",
            str(keys / "authority_signing_key"),
            "-c",
            str(keys / "authority_certificate"),
            "--passphrase-fd",
            "0",
        ],
        stdin=b"e2e-test-passphrase\n",
        cwd=keys,
    )
    for line in (keys / "authority_certificate").read_text().splitlines():
        if line.startswith("fingerprint "):
            return line.split()[1].upper()
    raise RuntimeError("tor-gencert wrote a certificate without a fingerprint line")


def _list_fingerprints(net: TorNetwork, nodes: Sequence[Node]) -> list[str]:
    """Generate each node's relay keys with `tor --list-fingerprint` (in parallel)."""
    placeholder = f"DirAuthority keygen orport=1 no-v2 v3ident={'0' * 40} {LOOPBACK}:1 {'0' * 40}"
    procs = []
    for node in nodes:
        torrc = node.data_dir / "torrc.keygen"
        torrc.write_text(
            "\n".join(
                [
                    *common_torrc_lines(node.data_dir, [placeholder]),
                    f"Nickname {node.nickname}",
                    f"Address {LOOPBACK}",
                    f"ORPort {LOOPBACK}:{node.or_port}",
                    "SocksPort 0",
                    "Log warn stderr",
                ]
            )
            + "\n"
        )
        procs.append(
            subprocess.Popen(
                net.tor_argv(torrc, "--list-fingerprint"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    fingerprints = []
    for node, proc in zip(nodes, procs, strict=True):
        out, _ = proc.communicate(timeout=KEYGEN_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"tor --list-fingerprint failed for {node.nickname}: {out!r}")
        fingerprints.append((node.data_dir / "fingerprint").read_text().split()[1].upper())
    return fingerprints


def _logged_since(path: Path, offset: int, text: str) -> bool:
    return text in read_text(path)[offset:]


# ---- bring-up ------------------------------------------------------------------------------


def start_network(
    base_dir: Path,
    *,
    middles: int = 2,
    exits: int = 2,
    timeout_s: float = BRING_UP_TIMEOUT_S,
    nameserver: tuple[str, int] | None = None,
) -> TorNetwork:
    """Generate keys, start every tor, wait until a bridge client could bootstrap.

    `nameserver` is the (loopback) resolver the relays use; without one, 127.0.0.1:53, where
    nothing is expected to listen (every exit resolution fails).
    """
    t0 = time.monotonic()
    base_dir.mkdir(parents=True, exist_ok=True)

    def node(nick: str, *, dir_port: bool = False, is_exit: bool = False) -> Node:
        return Node(
            nick, base_dir / nick, free_port(), free_port() if dir_port else None, is_exit=is_exit
        )

    auths = [node(f"auth{i}", dir_port=True) for i in range(3)]
    relays = [node(f"exit{i}", is_exit=True) for i in range(exits)]
    relays += [node(f"middle{i}") for i in range(middles)]
    net = TorNetwork(base_dir, auths, relays, node("bridge"))
    net.empty_defaults.write_text("")
    host, port = nameserver or (LOOPBACK, 53)
    net.resolv_conf.write_text(f"nameserver {host}:{port}\n")
    for n in net.servers:
        n.data_dir.mkdir(mode=0o700, exist_ok=True)

    v3idents = [_make_authority_cert(a) for a in auths]
    fps = _list_fingerprints(net, net.servers)
    nodes = [replace(n, fingerprint=fp) for n, fp in zip(net.servers, fps, strict=True)]
    net.authorities = [replace(a, v3ident=v) for a, v in zip(nodes[:3], v3idents, strict=True)]
    net.relays, net.bridge = nodes[3:-1], nodes[-1]
    net.timings["keys_s"] = time.monotonic() - t0
    _log(f"keys generated in {net.timings['keys_s']:.1f}s; bridge {net.bridge.fingerprint}")

    try:
        for n, render in [
            *((a, _authority_torrc) for a in net.authorities),
            *((r, _relay_torrc) for r in net.relays),
            (net.bridge, _bridge_torrc),
        ]:
            n.torrc.write_text("\n".join(render(net, n)) + "\n")
            net.processes.start(
                n.nickname, net.tor_argv(n.torrc), log_path=n.data_dir / "stdout.log"
            )
        wait_ready(net, max(1.0, timeout_s - (time.monotonic() - t0)))
    except BaseException:
        net.stop()
        raise
    net.timings["bring_up_s"] = time.monotonic() - t0
    _log("network ready: " + ", ".join(f"{k}={v:.1f}" for k, v in net.timings.items()))
    return net


@contextmanager
def running_network(
    base_dir: Path,
    *,
    middles: int = 2,
    exits: int = 2,
    timeout_s: float = BRING_UP_TIMEOUT_S,
    nameserver: tuple[str, int] | None = None,
) -> Iterator[TorNetwork]:
    net = start_network(
        base_dir, middles=middles, exits=exits, timeout_s=timeout_s, nameserver=nameserver
    )
    try:
        yield net
    finally:
        net.stop()
