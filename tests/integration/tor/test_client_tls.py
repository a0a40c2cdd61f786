"""TLS to the destination over a Tor stream (TorStreamWriter.start_tls, tor.stream_transport):
the stream's link is a loopback TCP connection to a TLS server made for the test, so the bytes
the stream carries are a real TLS session. The certificate is checked against the host asked
for; a wrong name fails the handshake; data flows both ways; a stream end reaches asyncio's
reader; a reader that stops reading stops consumption (no SENDMEs)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from pathlib import Path

import pytest

from tests.support.certs import make_pki
from webtunnel_pt.tor.cells import EndReason
from webtunnel_pt.tor.stream_io import TorStream, TorStreamWriter


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


class TcpLink:
    """A stream link whose far end is a TCP connection: what the stream sends goes to the
    socket; what the socket delivers is fed to the stream as the exit's DATA."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.consumed_bytes = 0
        self.ended: list[int] = []
        self.stream: TorStream | None = None
        self.task: asyncio.Task[None] | None = None
        self.fed = 0
        self.expect = 0
        self.fed_enough = asyncio.Event()  # at least `expect` bytes were fed to the stream

    def start(self, stream: TorStream) -> None:
        self.stream = stream
        self.task = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        assert self.stream is not None
        while data := await self.reader.read(498):
            self.stream.feed_data(data)
            self.fed += len(data)
            if self.expect and self.fed >= self.expect:
                self.fed_enough.set()
        self.stream.feed_end(EndReason.DONE)

    def consumed(self, stream_id: int, nbytes: int) -> None:
        self.consumed_bytes += nbytes

    def send_data(self, stream_id: int, data: bytes) -> int:
        self.writer.write(data)
        return len(data)

    def end_stream(self, stream_id: int, reason: int) -> None:
        self.ended.append(reason)
        self.writer.close()

    async def drain(self) -> None:
        await self.writer.drain()

    async def aclose(self) -> None:
        self.writer.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task})


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def tor_stream(port: int, host: str = "127.0.0.1") -> tuple[TcpLink, TorStreamWriter]:
    link = TcpLink(*await asyncio.open_connection("127.0.0.1", port))
    stream = TorStream(link, 1, peername=(host, 443), extra={"tor_circuit_id": 9})
    link.start(stream)
    return link, TorStreamWriter(stream)


def test_tls_to_the_destination_carries_data_both_ways(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=pki.server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            link, tor_writer = await tor_stream(port)
            client_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
            reader, writer = await tor_writer.start_tls(client_ctx)
            assert writer.get_extra_info("ssl_object") is not None
            assert writer.get_extra_info("peername") == ("127.0.0.1", 443)
            payload = bytes(range(256)) * 1000
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            assert link.consumed_bytes > len(payload)  # the TLS records, as they were read
            writer.close()
            await writer.wait_closed()
            assert link.ended == [EndReason.DONE]
            await link.aclose()
        left = [t for t in asyncio.all_tasks() if t.get_name().startswith("tor stream")]
        assert left == []

    run(main())


def test_a_certificate_for_another_name_fails_the_handshake(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=pki.server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            link, tor_writer = await tor_stream(port, host="example.com")
            client_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
            with pytest.raises(ssl.SSLCertVerificationError):
                await tor_writer.start_tls(client_ctx)
            await link.aclose()

    run(main())


def test_a_reader_that_stops_reading_stops_consumption(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    big = 1 << 20

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"z" * big)
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(flood, "127.0.0.1", 0, ssl=pki.server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            link, tor_writer = await tor_stream(port)
            link.expect = big  # plus the TLS overhead: all the data has arrived
            client_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
            reader, writer = await tor_writer.start_tls(client_ctx)
            first = await reader.readexactly(1000)
            assert first == b"z" * 1000
            # asyncio's reader pauses the transport past twice its limit: the Tor stream then
            # stops consuming, so once everything has arrived in the stream's buffer, what was
            # consumed (what SENDMEs would be sent for) is still far below it.
            await link.fed_enough.wait()
            held = link.consumed_bytes
            assert held < big // 2
            rest = await reader.readexactly(big - len(first))  # reading resumes consumption
            assert rest == b"z" * (big - len(first))
            assert link.consumed_bytes > held
            writer.close()
            await link.aclose()

    run(main())
