"""tor.channel over real loopback TLS against a scripted relay written here from the spec
(tor-link.md §2, §4, §5, §9): certificates made for the test run, padding ignored, DESTROY and
a closed link surface as CircuitDestroyed and ChannelClosed, waits end at their deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from webtunnel_pt.errors import ChannelClosed, CircuitDestroyed, HandshakeTimeout, IdentityMismatch
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    DestroyReason,
    Netinfo,
    destroy_cell,
    encode_cell,
    encode_netinfo,
    versions_cell,
)
from webtunnel_pt.tor.certs import CROSS_CERT_PREFIX, rsa_fingerprint
from webtunnel_pt.tor.channel import Channel, handshake_channel, start_inner_tls
from webtunnel_pt.tor.kdf import kdf_tor

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
HOURS_AHEAD = 24 * 30


def _x509(
    key: rsa.RSAPrivateKey, name: str, issuer_key: rsa.RSAPrivateKey, issuer: str
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def _ed_cert(
    cert_type: int, key_type: int, certified: bytes, signer: ed25519.Ed25519PrivateKey, ext: bool
) -> bytes:
    hours = int(time.time() // 3600) + HOURS_AHEAD
    body = struct.pack(">BBIB", 1, cert_type, hours, key_type) + certified
    if ext:
        body += b"\x01" + struct.pack(">HBB", 32, 4, 0) + signer.public_key().public_bytes(*RAW)
    else:
        body += b"\x00"
    return body + signer.sign(body)


def _cross_cert(identity: bytes, rsa_key: rsa.RSAPrivateKey) -> bytes:
    signed = identity + struct.pack(">I", int(time.time() // 3600) + HOURS_AHEAD)
    digest = hashlib.sha256(CROSS_CERT_PREFIX + signed).digest()
    size = rsa_key.key_size // 8
    padded = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    numbers = rsa_key.private_numbers()
    sig = pow(int.from_bytes(padded, "big"), numbers.d, numbers.public_numbers.n).to_bytes(
        size, "big"
    )
    return signed + bytes([len(sig)]) + sig


@dataclass
class RelayKeys:
    tls_ctx: ssl.SSLContext
    certs_payload: bytes
    fingerprint: str


def make_relay_keys(tmp: Path) -> RelayKeys:
    """A relay's key set as tor 0.4.9 presents it (types 2, 4, 5, 7), made for this test."""
    rsa_id = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    link_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    id_cert = _x509(rsa_id, "www.relayid.com", rsa_id, "www.relayid.com")
    tls_cert = _x509(link_key, "www.relaylink.net", rsa_id, "www.relayid.com")
    (tmp / "cert.pem").write_bytes(tls_cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        link_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    ed_id = ed25519.Ed25519PrivateKey.generate()
    signing = ed25519.Ed25519PrivateKey.generate()
    tls_der = tls_cert.public_bytes(serialization.Encoding.DER)
    certs = {
        2: id_cert.public_bytes(serialization.Encoding.DER),
        4: _ed_cert(4, 1, signing.public_key().public_bytes(*RAW), ed_id, ext=True),
        5: _ed_cert(5, 3, hashlib.sha256(tls_der).digest(), signing, ext=False),
        7: _cross_cert(ed_id.public_key().public_bytes(*RAW), rsa_id),
    }
    payload = bytes([len(certs)]) + b"".join(
        struct.pack(">BH", t, len(body)) + body for t, body in certs.items()
    )
    return RelayKeys(ctx, payload, rsa_fingerprint(rsa_id.public_key()))


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, CellParser], Awaitable[None]]


async def read_cell(reader: asyncio.StreamReader, parser: CellParser) -> Cell:
    while (cell := parser.next_cell()) is None:
        data = await reader.read(4096)
        assert data, "client closed"
        parser.receive_data(data)
    return cell


def send(writer: asyncio.StreamWriter, *cells: Cell) -> None:
    writer.write(b"".join(encode_cell(c, 5) for c in cells))


async def relay_handshake(
    keys: RelayKeys, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> CellParser:
    parser = CellParser()
    assert (await read_cell(reader, parser)).command == CellCommand.VERSIONS
    parser.link_version = 5
    writer.write(encode_cell(versions_cell((3, 4, 5)), None))
    netinfo = Netinfo(int(time.time()), ipaddress.IPv4Address("127.0.0.1"), ())
    send(
        writer,
        Cell(0, CellCommand.CERTS, keys.certs_payload),
        Cell(0, CellCommand.AUTH_CHALLENGE, bytes(32) + bytes.fromhex("00010003")),
        Cell(0, CellCommand.NETINFO, encode_netinfo(netinfo)),
    )
    assert (await read_cell(reader, parser)).command == CellCommand.NETINFO
    return parser


async def answer_create_fast(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: CellParser
) -> int:
    create = await read_cell(reader, parser)
    assert create.command == CellCommand.CREATE_FAST and create.circ_id & 0x80000000
    y = bytes(20)
    kh = kdf_tor(create.payload[:20] + y, 20)
    send(writer, Cell(create.circ_id, CellCommand.CREATED_FAST, y + kh))
    return create.circ_id


@asynccontextmanager
async def with_relay(
    tmp: Path, script: Script, fingerprint: str | None = None
) -> AsyncIterator[Callable[[], Awaitable[Channel]]]:
    keys = make_relay_keys(tmp)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            parser = await relay_handshake(keys, reader, writer)
            await script(reader, writer, parser)
        except (AssertionError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=keys.tls_ctx)
    port = server.sockets[0].getsockname()[1]

    async def connect() -> Channel:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        tls = await start_inner_tls(writer, timeout_s=5)
        return await handshake_channel(
            reader, writer, tls, expected_fingerprint=fingerprint or keys.fingerprint, timeout_s=5
        )

    async with server:
        yield connect


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


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
    from webtunnel_pt.tor.channel import start_inner_tls

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
