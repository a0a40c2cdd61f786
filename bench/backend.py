"""The upgrade server behind nginx for the benchmark: one request head, ``101``, then a job.

    python -m bench.backend --listen 127.0.0.1:P

After the ``101`` the client names its job in the first byte of the tunnel:

    ``E``                  echo every byte until the client closes
    ``U`` + u64 length     upload: read ``length`` bytes and throw them away, then answer ``K``
    ``D`` + u64 length     download: send ``length`` bytes, then wait for the client to close

One thread per connection with blocking sockets and large buffers (``recv_into`` and ``sendall``
release the GIL), so that this end costs little next to the relays being measured. Threads get
small stacks: the per-tunnel memory test keeps a thousand connections open at once.
"""

from __future__ import annotations

import argparse
import signal
import socket
import struct
import sys
import threading

MAX_REQUEST_HEAD_BYTES = 16 * 1024
BUFFER_BYTES = 1024 * 1024
THREAD_STACK_BYTES = 256 * 1024
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
_LENGTH = struct.Struct(">Q")
#: Shared by every download: its content does not matter, only that it is not re-made each time.
_PAYLOAD = memoryview(bytes(range(256)) * (BUFFER_BYTES // 256))


def _read_head(conn: socket.socket) -> bytes:
    """Return the bytes after the request head (the client may send its job in the same write)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > MAX_REQUEST_HEAD_BYTES:
            raise ConnectionError("no request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"upgrade" not in head.lower():
        raise ConnectionError("not an upgrade request")
    return rest


def _recv_exactly(conn: socket.socket, pending: bytearray, n: int) -> bytes:
    while len(pending) < n:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed early")
        pending += chunk
    out = bytes(pending[:n])
    del pending[:n]
    return out


def _serve(conn: socket.socket) -> None:
    buf = bytearray(BUFFER_BYTES)
    view = memoryview(buf)
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray(_read_head(conn))
        conn.sendall(SWITCHING)
        job = _recv_exactly(conn, pending, 1)
        if job == b"E":
            if pending:
                conn.sendall(pending)
            while n := conn.recv_into(buf):
                conn.sendall(view[:n])
        elif job == b"U":
            (left,) = _LENGTH.unpack(_recv_exactly(conn, pending, _LENGTH.size))
            left -= len(pending)
            while left > 0:
                n = conn.recv_into(view[: min(left, BUFFER_BYTES)])
                if not n:
                    raise ConnectionError("upload cut short")
                left -= n
            conn.sendall(b"K")
            while conn.recv_into(buf):
                pass
        elif job == b"D":
            (left,) = _LENGTH.unpack(_recv_exactly(conn, pending, _LENGTH.size))
            while left > 0:
                chunk = _PAYLOAD[: min(left, len(_PAYLOAD))]
                conn.sendall(chunk)
                left -= len(chunk)
            while conn.recv_into(buf):
                pass


def _serve_quietly(conn: socket.socket) -> None:
    try:
        _serve(conn)
    except OSError as exc:
        print(f"bench-backend: connection ended: {exc}", file=sys.stderr)


def serve(host: str, port: int) -> None:
    threading.stack_size(THREAD_STACK_BYTES)
    with socket.create_server((host, port), backlog=4096) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve_quietly, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", required=True, help="HOST:PORT on loopback")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(host, int(port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
