"""A relay side written from the spec (tor-link.md §2, §4, §5, §9) for the tests of the built-in
Tor client: relay keys and certificates made for the test run, a scripted relay over real
loopback TLS, and the crypto end of a one-hop CREATE_FAST circuit (:class:`FakeRelay`)."""

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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    Netinfo,
    RelayCell,
    decode_relay_payload,
    encode_cell,
    encode_netinfo,
    encode_relay_payload,
    versions_cell,
    with_digest,
)
from webtunnel_pt.tor.certs import CROSS_CERT_PREFIX, rsa_fingerprint
from webtunnel_pt.tor.channel import Channel, handshake_channel, start_inner_tls
from webtunnel_pt.tor.kdf import kdf_tor
from webtunnel_pt.tor.onionskin import HopKeys
from webtunnel_pt.tor.relay_crypto import AesCtr

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


#: The relay's CREATE_FAST material Y (fixed, so the keys are too).
Y = bytes(range(20))


class FakeRelay:
    """The relay end of a one-hop circuit."""

    def __init__(self, create_fast: Cell) -> None:
        x = create_fast.payload[:20]
        material = kdf_tor(x + Y, 92)
        self.created = Cell(create_fast.circ_id, CellCommand.CREATED_FAST, Y + material[:20])
        keys = HopKeys.from_material(material[20:])
        self.forward, self.backward = AesCtr(keys.kf), AesCtr(keys.kb)
        self.fd, self.bd = hashlib.sha1(keys.df), hashlib.sha1(keys.db)
        self.circ_id = create_fast.circ_id

    def receive(self, cell: Cell) -> RelayCell:
        assert cell.command == CellCommand.RELAY and cell.circ_id == self.circ_id
        plain = self.forward.process(cell.payload)
        self.fd.update(with_digest(plain, bytes(4)))
        assert plain[1:3] == b"\0\0" and plain[5:9] == self.fd.digest()[:4]
        return decode_relay_payload(plain)

    def send(self, message: RelayCell) -> Cell:
        payload = encode_relay_payload(message)
        self.bd.update(payload)
        wire = self.backward.process(with_digest(payload, self.bd.digest()))
        return Cell(self.circ_id, CellCommand.RELAY, wire)
