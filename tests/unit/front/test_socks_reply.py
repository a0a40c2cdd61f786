"""front/socks_reply.py: tor's stream_end_reason_to_socks5_response, one case per reason."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import (
    BridgeUnreachable,
    CircuitDestroyed,
    HandshakeTimeout,
    SocksReply,
    StreamEnded,
)
from webtunnel_pt.front.socks_reply import (
    END_REASON_CANT_ATTACH,
    END_REASON_ENTRYPOLICY,
    END_REASON_NET_UNREACHABLE,
    END_REASON_PRIVATE_ADDR,
    END_REASON_SOCKSPROTOCOL,
    reply_for_end_reason,
    reply_for_failure,
)
from webtunnel_pt.tor.cells import DestroyReason, EndReason


@pytest.mark.parametrize(
    ("reason", "reply"),
    [
        (EndReason.MISC, SocksReply.GENERAL_FAILURE),
        (EndReason.RESOLVEFAILED, SocksReply.HOST_UNREACHABLE),
        (EndReason.CONNECTREFUSED, SocksReply.CONNECTION_REFUSED),
        (EndReason.EXITPOLICY, SocksReply.NOT_ALLOWED),
        (EndReason.DESTROY, SocksReply.GENERAL_FAILURE),
        (EndReason.DONE, SocksReply.CONNECTION_REFUSED),
        (EndReason.TIMEOUT, SocksReply.TTL_EXPIRED),
        (EndReason.NOROUTE, SocksReply.HOST_UNREACHABLE),
        (EndReason.HIBERNATING, SocksReply.GENERAL_FAILURE),
        (EndReason.INTERNAL, SocksReply.GENERAL_FAILURE),
        (EndReason.RESOURCELIMIT, SocksReply.GENERAL_FAILURE),
        (EndReason.CONNRESET, SocksReply.CONNECTION_REFUSED),
        (EndReason.TORPROTOCOL, SocksReply.GENERAL_FAILURE),
        (EndReason.NOTDIRECTORY, SocksReply.GENERAL_FAILURE),  # default branch in tor
        (END_REASON_CANT_ATTACH, SocksReply.GENERAL_FAILURE),
        (END_REASON_NET_UNREACHABLE, SocksReply.NETWORK_UNREACHABLE),
        (END_REASON_SOCKSPROTOCOL, SocksReply.GENERAL_FAILURE),
        (END_REASON_PRIVATE_ADDR, SocksReply.GENERAL_FAILURE),
        (END_REASON_ENTRYPOLICY, SocksReply.NOT_ALLOWED),
        (0, SocksReply.SUCCEEDED),
        (200, SocksReply.GENERAL_FAILURE),  # unknown
        (0x200 | EndReason.EXITPOLICY, SocksReply.NOT_ALLOWED),  # tor's flag bits are masked
    ],
)
def test_end_reason(reason: int, reply: SocksReply) -> None:
    assert reply_for_end_reason(reason) == reply


def test_every_wire_end_reason_is_covered() -> None:
    """A new EndReason member must be placed in the table on purpose (tor's default otherwise)."""
    from webtunnel_pt.front.socks_reply import END_REASON_REPLIES

    missing = [r for r in EndReason if r not in END_REASON_REPLIES]
    assert missing == [EndReason.NOTDIRECTORY]


class _ClientStreamError(Exception):
    """Stands for a client error class that carries the END reason under another name."""

    def __init__(self, end_reason: int) -> None:
        super().__init__("refused")
        self.end_reason = end_reason


@pytest.mark.parametrize(
    ("exc", "reply"),
    [
        (StreamEnded(EndReason.RESOLVEFAILED), SocksReply.HOST_UNREACHABLE),
        (StreamEnded(EndReason.CONNECTREFUSED), SocksReply.CONNECTION_REFUSED),
        (StreamEnded(EndReason.EXITPOLICY), SocksReply.NOT_ALLOWED),
        (StreamEnded(EndReason.TIMEOUT), SocksReply.TTL_EXPIRED),
        # a DESTROY reason is not an END reason: the stream's END reason is DESTROY
        (CircuitDestroyed(DestroyReason.TIMEOUT), SocksReply.GENERAL_FAILURE),
        (CircuitDestroyed(DestroyReason.RESOURCELIMIT), SocksReply.GENERAL_FAILURE),
        (_ClientStreamError(EndReason.EXITPOLICY), SocksReply.NOT_ALLOWED),
        (TimeoutError(), SocksReply.TTL_EXPIRED),
        (HandshakeTimeout("link"), SocksReply.TTL_EXPIRED),
        (BridgeUnreachable("x", SocksReply.NETWORK_UNREACHABLE), SocksReply.NETWORK_UNREACHABLE),
        (ValueError("bug"), SocksReply.GENERAL_FAILURE),
    ],
)
def test_failure(exc: BaseException, reply: SocksReply) -> None:
    assert reply_for_failure(exc) == reply
