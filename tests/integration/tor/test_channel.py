"""tor.channel over real loopback TLS against a scripted relay written here from the spec
(tor-link.md §2, §4, §5, §9): certificates made for the test run, padding ignored, DESTROY and
a closed link surface as CircuitDestroyed and ChannelClosed, waits end at their deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.scripted_relay import (
    answer_create_fast,
    read_cell,
    run,
    send,
    with_relay,
)
from webtunnel_pt.errors import ChannelClosed, CircuitDestroyed, HandshakeTimeout, IdentityMismatch
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    DestroyReason,
    destroy_cell,
)
from webtunnel_pt.tor.channel import start_inner_tls


def test_padding_ignored_destroy_raises(tmp_path: Path) -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        circ_id = await answer_create_fast(reader, writer, parser)
        begin = await read_cell(reader, parser)
        assert begin.command == CellCommand.RELAY and begin.circ_id == circ_id
        send(
            writer,
            Cell(0, CellCommand.PADDING, b""),
            Cell(0, CellCommand.VPADDING, b"xx"),
            Cell(0x80000099, CellCommand.DESTROY, b"\x01"),  # not ours: dropped
            destroy_cell(circ_id, DestroyReason.FINISHED),
        )
        await writer.drain()
        await reader.read()  # until the client closes

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            assert channel.link_version == 5
            assert channel.clock_skew is not None and abs(channel.clock_skew) < 5
            circuit = await channel.create_fast_circuit(timeout_s=5)
            with pytest.raises(CircuitDestroyed) as info:
                await circuit.begin_dir(timeout_s=5)
            assert info.value.reason == DestroyReason.FINISHED
            await channel.aclose()

    run(main())


def test_closed_link_raises_channel_closed(tmp_path: Path) -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        await read_cell(reader, parser)  # CREATE_FAST, then hang up

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            with pytest.raises(ChannelClosed):
                await channel.create_fast_circuit(timeout_s=5)
            with pytest.raises(ChannelClosed):
                await channel.create_fast_circuit(timeout_s=5)
            await channel.aclose()

    run(main())


def test_silent_relay_hits_the_deadline(tmp_path: Path) -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        await reader.read()

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            with pytest.raises(HandshakeTimeout, match="CREATED_FAST"):
                await channel.create_fast_circuit(timeout_s=0.2)
            await channel.aclose()

    run(main())


def test_wrong_fingerprint_over_tls(tmp_path: Path) -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        await reader.read()

    async def main() -> None:
        async with with_relay(tmp_path, script, fingerprint="A" * 40) as connect:
            with pytest.raises(IdentityMismatch):
                await connect()

    run(main())


def test_aclose_returns_when_the_relay_stops_reading(tmp_path: Path) -> None:
    """aclose() has a deadline even when the DESTROY cannot be written: the relay stops reading
    and our send buffer is full."""
    stop = asyncio.Event()

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
    ) -> None:
        await answer_create_fast(reader, writer, parser)
        # Stop reading the socket itself: asyncio's TLS server would otherwise keep buffering.
        writer.transport._ssl_protocol._transport.pause_reading()  # type: ignore[attr-defined]
        await stop.wait()

    async def main() -> None:
        async with with_relay(tmp_path, script) as connect:
            channel = await connect()
            await channel.create_fast_circuit(timeout_s=5)
            writer = channel._writer
            while not writer.transport.is_closing():
                writer.write(bytes(1 << 20))  # fill every buffer on the way
                if writer.transport.get_write_buffer_size() > 32 << 20:
                    break
            async with asyncio.timeout(10):
                await channel.aclose(timeout_s=0.3)
            stop.set()

    run(main())


def test_bytes_from_the_bridge_before_the_client_hello_are_refused() -> None:
    """They cannot be inner TLS; start_tls would otherwise pass them on as decrypted data."""
    from typing import cast

    from webtunnel_pt.errors import LinkProtocolError

    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"early")
        with pytest.raises(LinkProtocolError, match="5 bytes before the inner TLS"):
            await start_inner_tls(cast(asyncio.StreamWriter, None), reader=reader)

    asyncio.run(main())


def test_inner_tls_gets_only_what_is_left_of_the_deadline() -> None:
    """An expired budget fails at once, before any byte is written."""
    from typing import cast

    from webtunnel_pt.deadlines import Deadline
    from webtunnel_pt.tor.inner_tls import start_inner_tls as start

    async def main() -> None:
        with pytest.raises(HandshakeTimeout, match="no time left"):
            await start(cast(asyncio.StreamWriter, None), deadline=Deadline.after(0))

    asyncio.run(main())
