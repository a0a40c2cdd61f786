"""In which order ``probe --file`` writes its input lines' results: as their bridges finish, or
in input order (ordered ``--json``), holding back only what an earlier, unfinished line blocks.

Sans-I/O: :class:`ResultOrder` is told which bridges finished and answers with the input lines
that may be written now, in the order to write them. A malformed line is ready from the start;
a duplicate line is ready when the bridge it repeats is.
"""

from __future__ import annotations

from webtunnel_pt.probe.bridge_list import BadLine, BridgeList, Entry

Line = Entry | BadLine


class ResultOrder:
    """``ordered``: input order; otherwise each line as soon as it is ready."""

    def __init__(self, bridges: BridgeList, *, ordered: bool) -> None:
        self._entries = bridges.entries
        self.ordered = ordered
        self._finished: set[int] = set()
        self._next = 0  # ordered: the first line not yet handed out
        self._by_bridge: dict[int, list[Entry]] = {}
        #: Ordered: finished bridges whose first line waits for an earlier one.
        self.waiting = 0
        if not ordered:
            for entry in self._entries:
                if isinstance(entry, Entry):
                    self._by_bridge.setdefault(entry.bridge, []).append(entry)

    def start(self) -> list[Line]:
        """The lines ready before any bridge has finished: malformed lines (ordered: only those
        before the first bridge line)."""
        if self.ordered:
            return self._advance()
        return [e for e in self._entries if isinstance(e, BadLine)]

    def finished(self, bridge: int) -> list[Line]:
        """``bridge`` has its result: the lines that may be written now, in order."""
        self._finished.add(bridge)
        if not self.ordered:
            return list(self._by_bridge.pop(bridge, []))
        self.waiting += 1
        return self._advance()

    def _advance(self) -> list[Line]:
        ready: list[Line] = []
        while self._next < len(self._entries):
            entry = self._entries[self._next]
            if isinstance(entry, Entry):
                if entry.bridge not in self._finished:
                    break
                if entry.duplicate_of is None:
                    self.waiting -= 1
            ready.append(entry)
            self._next += 1
        return ready
