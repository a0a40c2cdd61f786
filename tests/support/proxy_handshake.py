"""Drive a proxy client handshake (socks/client.py, outbound/http_connect.py) with a reply fed
whole, one byte at a time, or in the steps the handshake allows (``max_read_bytes``), which
must never pass the end of the proxy's reply."""

from __future__ import annotations

from webtunnel_pt.socks.client import ProxyConnected, ProxyHandshake


def drive(handshake: ProxyHandshake, incoming: bytes, mode: str) -> tuple[bytes, object]:
    """Feed ``incoming`` whole, byte by byte, or as the handshake allows; return what was
    sent and the event (or the exception raised)."""
    sent = handshake.data_to_send()
    if mode == "whole":
        pieces = [incoming]
    elif mode == "bytes":
        pieces = [incoming[i : i + 1] for i in range(len(incoming))]
    else:
        pieces = []
    try:
        event = handshake.next_event()
        for piece in pieces:
            handshake.receive_data(piece)
            event = handshake.next_event()
            sent += handshake.data_to_send()
        if mode == "bounded":
            rest = incoming
            while event is None and rest:
                size = handshake.max_read_bytes
                assert size > 0
                handshake.receive_data(rest[:size])
                rest = rest[size:]
                event = handshake.next_event()
                sent += handshake.data_to_send()
            if event is not None:
                assert handshake.max_read_bytes == 0
                assert rest == incoming[len(incoming) - len(rest) :]
                return sent, (event, rest)
    except Exception as exc:
        return sent + handshake.data_to_send(), exc
    return sent, event


MODES = ["whole", "bytes", "bounded"]
TLS_HELLO = b"\x16\x03\x01\x02\x00"  # what would follow the reply on the same socket


def connected(result: object, mode: str, tail: bytes = b"") -> ProxyConnected:
    if mode == "bounded":
        assert isinstance(result, tuple)
        event, rest = result
        assert rest == tail, "read past the proxy's reply"
    else:
        event = result
    assert isinstance(event, ProxyConnected), event
    return event
