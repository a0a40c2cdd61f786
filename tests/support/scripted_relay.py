"""A relay side written from the spec (tor-link.md §2, §4, §5, §7, §9) for the tests of the
built-in Tor client: relay keys and certificates made for the test run, a scripted relay over
real loopback TLS, the crypto end of a one-hop CREATE_FAST circuit (:class:`FakeRelay`), and
the relay ends of a multi-hop circuit (:class:`FakePath`, built with :class:`FakeHandshake`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
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

from webtunnel_pt.errors import CircuitHandshakeError
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    Netinfo,
    RelayCell,
    RelayCommand,
    decode_relay_payload,
    encode_cell,
    encode_netinfo,
    encode_relay_payload,
    versions_cell,
    with_digest,
)
from webtunnel_pt.tor.certs import CROSS_CERT_PREFIX, rsa_fingerprint
from webtunnel_pt.tor.channel import Channel, handshake_channel, start_inner_tls
from webtunnel_pt.tor.circuit import Circuit, CircuitExtended, CircuitOpen
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


# ---- multi-hop circuits (CREATE2 / EXTEND2) ------------------------------------------------

#: The fake handshake's type: ntor's, so the cells look like the real thing.
FAKE_HTYPE = 2
FAKE_ONIONSKIN_LEN = 84
FAKE_REPLY_LEN = 64


def _fake_auth(onionskin: bytes, y: bytes) -> bytes:
    return hashlib.sha256(b"fake-ntor auth" + onionskin + y).digest()


def _fake_keys(onionskin: bytes, y: bytes) -> HopKeys:
    return HopKeys.from_material(kdf_tor(onionskin + y, 72))


class FakeHandshake:
    """An ntor-shaped stand-in for the circuit tests: HTYPE 2, 84 bytes of client data, a
    64-byte reply ``Y | AUTH`` where AUTH = SHA-256 over both sides (checked, like ntor's),
    keys from KDF-TOR. Not a key exchange: only the circuit's handling is under test."""

    htype = FAKE_HTYPE

    def __init__(self, seed: int = 0) -> None:
        stretched = hashlib.shake_256(b"fake-ntor %d" % seed)
        self.onionskin = stretched.digest(FAKE_ONIONSKIN_LEN)
        self.completed: list[bytes] = []

    def complete(self, reply: bytes) -> HopKeys:
        self.completed.append(reply)
        if len(reply) != FAKE_REPLY_LEN:
            raise CircuitHandshakeError("fake handshake reply is not 64 bytes")
        y, auth = reply[:32], reply[32:]
        if not hmac.compare_digest(auth, _fake_auth(self.onionskin, y)):
            raise CircuitHandshakeError("fake handshake AUTH does not match")
        return _fake_keys(self.onionskin, y)


def fake_server_reply(onionskin: bytes, y: bytes = bytes(range(32))) -> tuple[bytes, HopKeys]:
    """The relay's HDATA for a :class:`FakeHandshake` and the keys both ends then share."""
    return y + _fake_auth(onionskin, y), _fake_keys(onionskin, y)


class _HopEnd:
    def __init__(self, keys: HopKeys) -> None:
        self.forward, self.backward = AesCtr(keys.kf), AesCtr(keys.kb)
        self.fd, self.bd = hashlib.sha1(keys.df), hashlib.sha1(keys.db)


@dataclass(frozen=True)
class Received:
    """A relay cell as the hop it was meant for saw it."""

    hop: int
    message: RelayCell
    early: bool
    #: The hop's running forward digest right after this cell (what its SENDME v1 carries).
    digest: bytes


class FakePath:
    """The relay ends of a multi-hop circuit, all hops in one object: hop ``i`` peels its
    layer of every cell that reaches it and takes the cell when it recognizes it (Recognized 0
    and the digest matches), as tor-spec §5.5 says; it answers through the hops before it."""

    def __init__(self, circ_id: int) -> None:
        self.circ_id = circ_id
        self.hops: list[_HopEnd] = []

    def add_hop(self, keys: HopKeys) -> None:
        self.hops.append(_HopEnd(keys))

    def created2(self, create2: Cell, y: bytes = bytes(range(32))) -> Cell:
        """Check a CREATE2 and answer it as the first hop."""
        assert create2.command == CellCommand.CREATE2 and create2.circ_id == self.circ_id
        htype, hlen = struct.unpack_from(">HH", create2.payload)
        assert htype == FAKE_HTYPE and hlen == FAKE_ONIONSKIN_LEN
        hdata, keys = fake_server_reply(create2.payload[4 : 4 + hlen], y)
        self.add_hop(keys)
        return Cell(self.circ_id, CellCommand.CREATED2, struct.pack(">H", len(hdata)) + hdata)

    def receive(self, cell: Cell) -> Received:
        assert cell.circ_id == self.circ_id
        assert cell.command in (CellCommand.RELAY, CellCommand.RELAY_EARLY), cell.command
        payload = cell.payload
        for index, hop in enumerate(self.hops):
            payload = hop.forward.process(payload)
            if payload[1:3] != b"\0\0":
                continue
            digest = hop.fd.copy()
            digest.update(with_digest(payload, bytes(4)))
            if digest.digest()[:4] == payload[5:9]:
                hop.fd = digest
                early = cell.command == CellCommand.RELAY_EARLY
                return Received(index, decode_relay_payload(payload), early, digest.digest())
        raise AssertionError("no hop recognized the cell")

    def send_payload(self, hop: int, payload: bytes) -> Cell:
        """A 509-byte plaintext payload (digest field zero) from ``hop``, digested and layered."""
        end = self.hops[hop]
        end.bd.update(payload)
        wire = with_digest(payload, end.bd.digest())
        for index in range(hop, -1, -1):
            wire = self.hops[index].backward.process(wire)
        return Cell(self.circ_id, CellCommand.RELAY, wire)

    def send(self, hop: int, message: RelayCell) -> Cell:
        return self.send_payload(hop, encode_relay_payload(message))

    def backward_digest(self, hop: int) -> bytes:
        return self.hops[hop].bd.digest()


#: IPv4 127.0.0.1:9001 and a legacy id: an NSPEC-prefixed list as the ntor helper encodes it.
TEST_LINK_SPECIFIERS = bytes.fromhex("0200067f00000123290214") + b"\xaa" * 20


def extended2(path: FakePath, hop: int, extend: Received) -> Cell:
    """Answer an EXTEND2 the way ``hop`` relays the new hop's CREATED2 back, and add that hop."""
    assert extend.hop == hop and extend.message.command == RelayCommand.EXTEND2 and extend.early
    data = extend.message.data
    htype, hlen = struct.unpack_from(">HH", data, len(data) - 4 - FAKE_ONIONSKIN_LEN)
    assert htype == FAKE_HTYPE and hlen == FAKE_ONIONSKIN_LEN
    hdata, keys = fake_server_reply(data[-FAKE_ONIONSKIN_LEN:])
    reply = path.send(hop, RelayCell(RelayCommand.EXTENDED2, 0, struct.pack(">H", 64) + hdata))
    path.add_hop(keys)
    return reply


def build_circuit(
    hops: int = 3, circ_id: int = 0x80000010, **kwargs: int
) -> tuple[Circuit, FakePath]:
    """A circuit of ``hops`` hops (CREATE2, then EXTEND2s) against a :class:`FakePath`."""
    circuit = Circuit(circ_id, 5, **kwargs)
    path = FakePath(circ_id)
    circuit.create(FakeHandshake(0))
    (create,) = circuit.cells_to_send()
    assert circuit.receive_cell(path.created2(create)) == [CircuitOpen(1)]
    for n in range(1, hops):
        circuit.extend(TEST_LINK_SPECIFIERS, FakeHandshake(n))
        (cell,) = circuit.cells_to_send()
        assert circuit.receive_cell(extended2(path, n - 1, path.receive(cell))) == [
            CircuitExtended(n + 1)
        ]
    assert circuit.hops == len(path.hops) == hops
    return circuit, path
