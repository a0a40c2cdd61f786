"""One circuit's part in a conflux set (prop 329), client side: it sends CONFLUX_LINK to the
exit, checks the LINKED that answers (and queues LINKED_ACK), and once the set is joined routes
the exit's multiplexed messages through the set's :class:`~webtunnel_pt.tor.conflux.
ConfluxSequencer` to the circuit that owns the streams.

    leg = ConfluxLeg(nonce, exit_hop)        # Circuit.conflux_link(nonce) makes and sends it
    events = leg.receive(circuit, hop, msg)  # LINKED, SWITCH and multiplexed messages
    leg.join(sequencer, index, owner)        # all legs linked: from now on, in order

The checks tor makes on a client (prop 329 §4.2.1), each a protocol violation: conflux cells
only from the last hop; LINKED only once, only after our LINK, with our nonce and version and
the sequence numbers of a fresh set; SWITCH and multiplexed messages only on a joined leg; LINK
and LINKED_ACK never (a client sends those).

Sans-I/O.
"""

from __future__ import annotations

import hmac
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import RelayCell, RelayCommand
from webtunnel_pt.tor.circuit_events import CircuitEvent, ConfluxLinked
from webtunnel_pt.tor.conflux import (
    MULTIPLEXED_COMMANDS,
    ConfluxSequencer,
    LinkBody,
    decode_switch,
)

if TYPE_CHECKING:
    from webtunnel_pt.tor.circuit import Circuit

__all__ = ["CONFLUX_COMMANDS", "ConfluxLeg", "LegState", "StreamOwner"]

CONFLUX_COMMANDS = frozenset(
    {
        RelayCommand.CONFLUX_LINK,
        RelayCommand.CONFLUX_LINKED,
        RelayCommand.CONFLUX_LINKED_ACK,
        RelayCommand.CONFLUX_SWITCH,
    }
)


class StreamOwner(Protocol):
    """The circuit whose stream table takes the set's multiplexed messages."""

    @property
    def hops(self) -> int: ...

    def deliver_stream_message(self, hop: int, message: RelayCell) -> list[CircuitEvent]: ...


class LegState(Enum):
    LINKING = "linking"  # LINK sent, LINKED awaited
    LINKED = "linked"  # LINKED checked, LINKED_ACK queued; waiting for the other legs
    JOINED = "joined"  # in the set: multiplexed messages go through the sequencer


class ConfluxLeg:
    """The conflux state of one circuit."""

    def __init__(self, nonce: bytes, exit_hop: int) -> None:
        self.nonce = nonce
        #: The hop the set's messages come from (a linked circuit is never extended).
        self.exit_hop = exit_hop
        self.state = LegState.LINKING
        #: The exit's LINKED (its desired UX), once received.
        self.linked: LinkBody | None = None
        self._sequencer: ConfluxSequencer[RelayCell] | None = None
        self._index = 0
        self._owner: StreamOwner | None = None  # set once joined
        self._owner_exit_hop = 0

    def join(
        self,
        sequencer: ConfluxSequencer[RelayCell],
        index: int,
        owner: StreamOwner,
    ) -> None:
        """All legs are linked: this one is leg ``index`` of the set whose streams ``owner``
        keeps."""
        if self.state is not LegState.LINKED:
            raise LocalProtocolError(f"a conflux leg in state {self.state.value} cannot join")
        self._sequencer, self._index, self._owner = sequencer, index, owner
        self._owner_exit_hop = owner.hops - 1
        self.state = LegState.JOINED

    def receive(self, circuit: Circuit, hop: int, message: RelayCell) -> list[CircuitEvent]:
        """A conflux or multiplexed message from ``hop`` of ``circuit`` (after its windows
        counted it)."""
        command = message.command
        if self._owner is not None and command in MULTIPLEXED_COMMANDS and hop == self.exit_hop:
            return self._deliver(message)  # the usual case: a joined leg's stream message
        if hop != self.exit_hop:
            raise CircuitProtocolError(
                f"conflux message {RelayCommand(command).name} from hop {hop + 1}, not the exit"
            )
        if command == RelayCommand.CONFLUX_LINKED:
            return self._on_linked(circuit, message)
        if command in (RelayCommand.CONFLUX_LINK, RelayCommand.CONFLUX_LINKED_ACK):
            raise CircuitProtocolError(f"relay sent {RelayCommand(command).name}, a client's")
        if self.state is not LegState.JOINED:
            raise CircuitProtocolError(
                f"{RelayCommand(command).name} on a conflux leg not yet in its set"
            )
        assert self._sequencer is not None and self._owner is not None
        if command == RelayCommand.CONFLUX_SWITCH:
            self._sequencer.switch(self._index, decode_switch(message.data))
            return []
        return self._deliver(message)

    def _deliver(self, message: RelayCell) -> list[CircuitEvent]:
        """Through the sequencer to the owner's streams, in order."""
        assert self._sequencer is not None and self._owner is not None
        owner = self._owner
        ready = self._sequencer.arrive(self._index, message)
        if len(ready) == 1:
            return owner.deliver_stream_message(self._owner_exit_hop, ready[0])
        events: list[CircuitEvent] = []
        for each in ready:
            events.extend(owner.deliver_stream_message(self._owner_exit_hop, each))
        return events

    def _on_linked(self, circuit: Circuit, message: RelayCell) -> list[CircuitEvent]:
        if self.state is not LegState.LINKING:
            raise CircuitProtocolError("a second conflux LINKED on one leg")
        body = LinkBody.decode(message.data)
        if not hmac.compare_digest(body.nonce, self.nonce):
            raise CircuitProtocolError("conflux LINKED with another nonce than our LINK")
        if body.last_seqno_sent or body.last_seqno_recv:
            raise CircuitProtocolError(
                "conflux LINKED of a fresh set with non-zero sequence numbers (data loss)"
            )
        self.linked = body
        self.state = LegState.LINKED
        circuit.send_conflux(RelayCell(RelayCommand.CONFLUX_LINKED_ACK, 0))
        return [ConfluxLinked(body.desired_ux)]
