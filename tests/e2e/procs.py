"""Child processes of the e2e harness: start, wait on events, stop, reap, audit sockets.

Every process is started in its own session (so a Ctrl-C in a terminal reaches only the
harness, which then tears down in order) with stdout+stderr going to a log file.  Stopping
is by PID only: SIGTERM, then SIGKILL after a grace period; descendants (the managed PT a
client tor launched) are snapshotted *before* their parent is signalled and reaped after it.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL_INTERVAL_S = 0.05  # condition polling where no event exists (files written by tor)
TERM_GRACE_S = 5.0  # tor sometimes needs > 10 s after SIGTERM; we do not wait that long


class WaitTimeout(TimeoutError):
    """A condition did not become true before its deadline."""


class ProcessDied(RuntimeError):
    """A child exited while we were waiting for it to become ready."""


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    *,
    alive: Callable[[], None] | None = None,
) -> float:
    """Poll `condition` until true; return the elapsed seconds.

    `alive` is called on every round and should raise (ProcessDied) when waiting is pointless.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        if condition():
            return time.monotonic() - start
        if alive is not None:
            alive()
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def terminate(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """A Popen child the harness started itself (not in a :class:`ProcessGroup`): SIGTERM,
    then SIGKILL if it has not exited within ``grace_s``; reaped either way."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(read_text(path).splitlines()[-lines:])


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ProcessDied(
                f"{self.name} (pid {self.pid}) exited with {code}; output tail:\n"
                f"{tail(self.log_path)}"
            )


# ---- /proc helpers -------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): guards against signalling a recycled PID."""
    fields = _stat_fields(pid)
    return None if fields is None else (pid, fields[19])


def descendants(roots: Iterable[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = list(roots)
    while todo:
        for kid in children.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _is_live(ident: tuple[int, str]) -> bool:
    fields = _stat_fields(ident[0])
    return fields is not None and fields[19] == ident[1] and fields[0] not in ("Z", "X")


def _signal(ident: tuple[int, str], sig: signal.Signals) -> None:
    if _is_live(ident):
        try:
            os.kill(ident[0], sig)
        except ProcessLookupError:
            pass


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the harness dies without tearing down (CI
    cancellation, SIGKILL).  Linux ties this to the *thread* that started the child, so start
    processes from a thread that outlives them (pytest and the demo use the main thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# ---- the group -----------------------------------------------------------------------------


@dataclass
class ProcessGroup:
    """The processes one harness object started; stop_all() leaves none behind."""

    children: list[Child] = field(default_factory=list)
    # PIDs of descendants that did not exit by themselves after their parent and had to be
    # signalled by us (a PT that ignores tor's SIGTERM and stdin EOF ends up here).
    stragglers: list[int] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def find(self, name: str) -> Child:
        """The live-or-dead child started last under `name` (KeyError if none)."""
        for child in reversed(self.children):
            if child.name == name:
                return child
        raise KeyError(f"no process named {name!r} in this group")

    def kill(self, child: Child) -> None:
        """SIGKILL `child` (a crash, not a shutdown: no goodbye to its peers), reap it and its
        descendants, and forget it.  Start it again with :meth:`start`."""
        self._stop([child], TERM_GRACE_S, first=signal.SIGKILL)
        self.children.remove(child)

    def pids(self) -> list[int]:
        """Live PIDs of our children and all their descendants."""
        roots = [c.pid for c in self.children if c.running()]
        return roots + descendants(roots)

    def stop(self, child: Child, grace_s: float = TERM_GRACE_S) -> None:
        self._stop([child], grace_s)
        self.children.remove(child)

    def stop_all(self, grace_s: float = TERM_GRACE_S) -> None:
        self._stop(list(self.children), grace_s)
        self.children.clear()

    def _stop(
        self, children: list[Child], grace_s: float, first: signal.Signals = signal.SIGTERM
    ) -> None:
        live = [c for c in children if c.running()]
        kin = [i for i in map(_identity, descendants(c.pid for c in live)) if i is not None]
        for c in live:
            c.popen.send_signal(first)
        deadline = time.monotonic() + grace_s
        for c in live:
            try:
                c.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log(f"{c.name} (pid {c.pid}) ignored {first.name} for {grace_s:.0f}s; SIGKILL")
                c.popen.kill()
                c.popen.wait(timeout=10)
        # Descendants (the PT of a client tor) should exit on their own once tor is gone: tor
        # SIGTERMs them and closes their stdin.  Orphans belong to init now (no waitpid), so
        # poll until they are gone or zombies, then signal the stragglers and say so.
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                for ident in filter(_is_live, kin):
                    _log(f"descendant pid {ident[0]} still running; sending {sig.name}")
                    self.stragglers.append(ident[0])
                    _signal(ident, sig)
            try:
                wait_until(lambda: not any(map(_is_live, kin)), grace_s, "descendants to exit")
                return
            except WaitTimeout:
                continue
        raise WaitTimeout(f"descendants survived SIGKILL: {[i for i in kin if _is_live(i)]}")


def _log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


# ---- socket audit --------------------------------------------------------------------------


@dataclass(frozen=True)
class SocketEntry:
    pid: int
    proto: str
    local: tuple[IPAddress, int]
    remote: tuple[IPAddress, int]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOOPBACK_V4 = ipaddress.IPv4Address("127.0.0.1")
_UNSPECIFIED = (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv6Address("::"))
_SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")


def _decode_addr(hex_addr: str) -> tuple[IPAddress, int]:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp* prints the address as native-endian 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, int(port, 16)
    return ip, int(port, 16)


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, PermissionError):
        return inodes
    for fd in fds:
        try:
            m = _SOCKET_LINK.fullmatch(os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    return inodes


def inet_sockets(pids: Iterable[int]) -> list[SocketEntry]:
    """Every TCP/UDP socket (IPv4 and IPv6) the processes `pids` hold open."""
    found: list[SocketEntry] = []
    for pid in pids:
        inodes = _socket_inodes(pid)
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            for line in read_text(Path(f"/proc/{pid}/net/{proto}")).splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 10 and cols[9] in inodes:
                    local, remote = _decode_addr(cols[1]), _decode_addr(cols[2])
                    found.append(SocketEntry(pid, proto, local, remote))
    return found


def _on_loopback(end: tuple[IPAddress, int]) -> bool:
    """127.0.0.1, or unspecified with port 0 (not yet bound / not connected)."""
    return end[0] == _LOOPBACK_V4 or (end[0] in _UNSPECIFIED and end[1] == 0)


def foreign_sockets(pids: Iterable[int]) -> list[SocketEntry]:
    """Sockets of `pids` bound or connected anywhere but 127.0.0.1."""
    return [s for s in inet_sockets(pids) if not (_on_loopback(s.local) and _on_loopback(s.remote))]


def socket_owner(
    pids: Iterable[int], local: tuple[str, int], remote: tuple[str, int]
) -> int | None:
    """The pid among `pids` holding the open TCP connection `local` -> `remote`.

    Both ends are needed: Linux can give one local port to connections of different
    processes whose remote ends differ (seen here: an exit's connection to the page server and
    an authority's elsewhere).  Sockets in TIME_WAIT belong to nobody any more: ask while the
    connection is open.
    """
    want_local = (ipaddress.ip_address(local[0]), local[1])
    want_remote = (ipaddress.ip_address(remote[0]), remote[1])
    for pid in pids:
        for s in inet_sockets([pid]):
            if s.proto.startswith("tcp") and (s.local, s.remote) == (want_local, want_remote):
                return pid
    return None
