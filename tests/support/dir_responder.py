"""A bridge's directory side for the dirmgr tests: after the link handshake of
:mod:`tests.support.scripted_relay` it answers CREATE_FAST, then serves a
:class:`~tests.support.fake_network.FakeNetwork`'s documents on BEGIN_DIR streams (tor-link.md
§10), possibly compressed, and records every path asked for. Answers go out as the circuit and
stream package windows allow (tor-link.md §8.4: 1000 and 500 cells, refilled by 100 and 50 per
SENDME), so an answer of thousands of cells flows as the client's SENDMEs come back, as from a
real relay; a client that sent too few SENDMEs would stall it.

    responder = DirResponder(net)
    responder.consensus_encoding = "x-tor-lzma"
    responder.bodies["/tor/status-vote/current/consensus-microdesc"] = (b"...", "deflate")
    async with with_relay(tmp_path, responder.script) as connect: ...
    responder.paths   # every GET, in order
    responder.circuits, responder.sendmes   # CREATE_FASTs answered, SENDMEs received
    responder.window_waits   # times an answer waited for a SENDME: it needed the client's
"""

from __future__ import annotations

import asyncio
import base64
import lzma
import zlib
from collections import deque
from dataclasses import dataclass, field

from tests.support.fake_network import FakeNetwork
from tests.support.scripted_relay import FakeRelay, read_cell, send
from webtunnel_pt.tor.cells import MAX_RELAY_DATA, CellCommand, CellParser, RelayCell, RelayCommand
from webtunnel_pt.tor.circuit import (
    CIRCUIT_SENDME_INCREMENT,
    CIRCUIT_WINDOW,
    STREAM_SENDME_INCREMENT,
    STREAM_WINDOW,
)

CONSENSUS_PATH = "/tor/status-vote/current/consensus-microdesc"
_ENCODERS = {
    "identity": lambda b: b,
    "deflate": zlib.compress,
    "x-tor-lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
}


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class _Answer:
    """An answer being sent on one stream: the DATA chunks left and the stream's window."""

    chunks: deque[bytes]
    window: int = STREAM_WINDOW


@dataclass
class DirResponder:
    net: FakeNetwork
    consensus_encoding: str = "identity"
    #: path -> (raw body as sent, Content-Encoding): served as is, before anything else.
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    #: v3ident (upper-case hex) -> certificate served instead of the network's.
    certificates: dict[str, bytes] = field(default_factory=dict)
    #: digest (base64 without "=") -> microdescriptor served instead of the network's.
    microdescs: dict[str, bytes] = field(default_factory=dict)
    #: paths recorded but never answered (a bridge that goes silent)
    stall: set[str] = field(default_factory=set)
    #: path prefix -> HTTP status line answered instead of the document (e.g. "404 Not found")
    refuse: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    circuits: int = 0
    sendmes: int = 0
    window_waits: int = 0
    _circuit_window: int = CIRCUIT_WINDOW
    _answers: dict[int, _Answer] = field(default_factory=dict)

    def answer(self, path: str) -> tuple[bytes, str]:
        if path in self.bodies:
            return self.bodies[path]
        if path == CONSENSUS_PATH:
            return _ENCODERS[self.consensus_encoding](self.net.consensus), self.consensus_encoding
        if path.startswith("/tor/keys/fp-sk/"):
            wanted = {
                pair.split("-")[0] for pair in path.removeprefix("/tor/keys/fp-sk/").split("+")
            }
            certs = [
                self.certificates.get(a.v3ident, a.certificate)
                for a in self.net.authorities
                if a.v3ident in wanted
            ]
            return b"".join(certs), "identity"
        if path.startswith("/tor/micro/d/"):
            by_digest = {r.microdesc_digest: r.microdesc for r in self.net.relays}
            by_digest.update(self.microdescs)
            names = path.removeprefix("/tor/micro/d/").split("-")
            assert all(len(_unb64(n)) == 32 for n in names)
            found = b"".join(by_digest[n] for n in names if n in by_digest)
            return zlib.compress(found), "deflate"
        raise AssertionError(f"unexpected path {path}")

    async def script(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        create = await read_cell(reader, parser)
        assert create.command == CellCommand.CREATE_FAST
        self.circuits += 1
        relay = FakeRelay(create)
        send(writer, relay.created)
        self._circuit_window = CIRCUIT_WINDOW
        self._answers.clear()
        requests: dict[int, bytes] = {}
        while True:
            cell = await read_cell(reader, parser)
            if cell.command == CellCommand.DESTROY:
                return
            message = relay.receive(cell)
            if message.command == RelayCommand.BEGIN_DIR:
                requests[message.stream_id] = b""
                send(writer, relay.send(RelayCell(RelayCommand.CONNECTED, message.stream_id)))
            elif message.command == RelayCommand.DATA:
                requests[message.stream_id] += message.data
                if b"\r\n\r\n" in requests[message.stream_id]:
                    self._serve(message.stream_id, requests.pop(message.stream_id))
            elif message.command == RelayCommand.SENDME:
                self._sendme(message.stream_id)
            self._pump(writer, relay)
            await writer.drain()

    def _sendme(self, stream_id: int) -> None:
        self.sendmes += 1
        if stream_id == 0:
            self._circuit_window += CIRCUIT_SENDME_INCREMENT
        elif stream_id in self._answers:
            self._answers[stream_id].window += STREAM_SENDME_INCREMENT

    def _serve(self, stream_id: int, request: bytes) -> None:
        path = request.split(b" ")[1].decode()
        self.paths.append(path)
        if path in self.stall:
            return
        status = next((line for pre, line in self.refuse.items() if path.startswith(pre)), None)
        body, encoding = (b"", "identity") if status else self.answer(path)
        head = f"HTTP/1.0 {status or '200 OK'}\r\nContent-Encoding: {encoding}\r\n\r\n".encode()
        data = head + body
        chunks = deque(data[at : at + MAX_RELAY_DATA] for at in range(0, len(data), MAX_RELAY_DATA))
        self._answers[stream_id] = _Answer(chunks)

    def _pump(self, writer: asyncio.StreamWriter, relay: FakeRelay) -> None:
        """Send what the windows allow; END once an answer's last DATA cell is out."""
        for stream_id, answer in list(self._answers.items()):
            while answer.chunks and answer.window > 0 and self._circuit_window > 0:
                chunk = answer.chunks.popleft()
                send(writer, relay.send(RelayCell(RelayCommand.DATA, stream_id, chunk)))
                answer.window -= 1
                self._circuit_window -= 1
            if answer.chunks:
                self.window_waits += 1
            else:
                send(writer, relay.send(RelayCell(RelayCommand.END, stream_id, bytes([6]))))
                del self._answers[stream_id]
