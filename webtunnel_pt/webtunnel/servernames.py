"""Which TLS server name a dial sends when ``servername=`` lists several: lyrebird 0.8's rotation.

``servername=a.example,b.example`` (names trimmed, empty ones dropped; validated in
:mod:`webtunnel_pt.webtunnel.bridge`) gives the dial a list of candidate SNI names:

- the first dial of a list starts at a random position in it;
- every dial asks :meth:`ServerNameRotation.current` for the name to use;
- a dial that fails with that name after the name was sent (the TLS handshake or the HTTP
  upgrade, :data:`ROTATING_STAGES`) reports it with :meth:`ServerNameRotation.failed`, and the
  rotation moves to the next name only if the failed name is still the current one, so that
  several dials failing at once with the same name move it by one, not by one each;
- the state is kept per distinct list for the life of the process, in a
  :class:`RotationRegistry` bounded to :data:`MAX_ROTATIONS` lists.

What counts as a failed upgrade follows lyrebird's client: it advances after any error of its
HTTP upgrade step, and with uTLS (its default) the TLS handshake runs inside that step, on the
upgrade's first write; a failed DNS lookup or TCP connect does not advance (no name was sent).
Here: any failure in the TLS handshake (certificate refused, pin mismatch, alert, reset,
timeout) or in the upgrade (a status other than 101, a malformed answer, a close, a timeout)
advances; DNS, TCP, the upstream proxy and a cancelled dial (tor hung up) do not.

Sans-I/O. Methods never wait, so under asyncio no other task runs in the middle of one; the
lock makes them safe for library users who dial from several threads too.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable

from webtunnel_pt.errors import DialStage

#: Distinct ``servername=`` lists remembered. tor sends the bridge arguments with every
#: connection and a torrc holds tens of bridges, so real use stays far below this; the bound
#: only keeps a stream of ever-new lists (a library caller, a probe of a huge file) from growing
#: memory without end. Forgetting the least recently used list just starts it at a new random
#: position next time.
MAX_ROTATIONS = 1024

#: Dial stages whose failure moves the rotation on (see the module docstring).
ROTATING_STAGES = frozenset({DialStage.TLS_HANDSHAKE, DialStage.UPGRADE})

#: ``choose(n)`` -> a position in ``range(n)``; injectable so tests can pin the start.
Chooser = Callable[[int], int]


class ServerNameRotation:
    """The candidate names of one ``servername=`` list and the current position in it."""

    def __init__(self, names: tuple[str, ...], start: int, lock: threading.Lock) -> None:
        if not names:
            raise ValueError("a rotation needs at least one name")
        self.names = names
        self._position = start % len(names)
        self._lock = lock

    def current(self) -> str:
        """The name the next dial sends."""
        with self._lock:
            return self.names[self._position]

    def failed(self, name: str) -> bool:
        """A dial with ``name`` failed its TLS handshake or upgrade: move on if ``name`` is still
        the current one. Returns whether the rotation moved."""
        with self._lock:
            if self.names[self._position] != name:
                return False
            self._position = (self._position + 1) % len(self.names)
            return True


class RotationRegistry:
    """One :class:`ServerNameRotation` per distinct list, least recently used forgotten first."""

    def __init__(self, choose: Chooser = secrets.randbelow, limit: int = MAX_ROTATIONS) -> None:
        self._choose = choose
        self._limit = limit
        self._lock = threading.Lock()
        self._rotations: OrderedDict[tuple[str, ...], ServerNameRotation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rotations)

    def rotation(self, names: tuple[str, ...]) -> ServerNameRotation:
        """The rotation for ``names``, made (at a random start) the first time it is asked."""
        with self._lock:
            found = self._rotations.get(names)
            if found is not None:
                self._rotations.move_to_end(names)
                return found
            found = ServerNameRotation(names, self._choose(len(names)), self._lock)
            self._rotations[names] = found
            while len(self._rotations) > self._limit:
                self._rotations.popitem(last=False)
            return found


#: The process's registry: every dial without its own (``DialOptions.server_names``) uses it.
PROCESS_ROTATIONS = RotationRegistry()
