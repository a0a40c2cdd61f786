"""Which SOCKS reply a failed request gets, as tor chooses it.

    reply_for_end_reason(EndReason.RESOLVEFAILED)  -> SocksReply.HOST_UNREACHABLE
    reply_for_failure(exc)                         -> SocksReply for any exception

tor's ``stream_end_reason_to_socks5_response`` (reasons.c), keyed on the END reason of the
stream (tor-spec §6.3, §8.3; ``cells.EndReason``), masked with ``END_STREAM_REASON_MASK``:

    MISC 1            general failure (1)      DONE 6 (before CONNECTED)  connection refused (5)
    RESOLVEFAILED 2   host unreachable (4)     TIMEOUT 7                  TTL expired (6)
    CONNECTREFUSED 3  connection refused (5)   NOROUTE 8                  host unreachable (4)
    EXITPOLICY 4      not allowed (2)          HIBERNATING 9, INTERNAL 10, RESOURCELIMIT 11,
    DESTROY 5         general failure (1)      TORPROTOCOL 13             general failure (1)
    CONNRESET 12      connection refused (5)   anything else              general failure (1)

tor's internal reasons above 255 are there too (CANT_ATTACH, NET_UNREACHABLE -> network
unreachable, SOCKSPROTOCOL, PRIVATE_ADDR, ENTRYPOLICY -> not allowed). The exceptions: a
circuit destroyed under the stream is tor's END reason DESTROY (general failure), a deadline is
tor's TIMEOUT (TTL expired), and a refused internal address gets "not allowed" (2) where tor
sends a general failure: the reply then says what happened. Any other error of the project's
tree keeps its own ``socks_reply``. Sans-I/O.
"""

from __future__ import annotations

from webtunnel_pt.errors import CircuitDestroyed, SocksReply, StreamEnded, describe_failure
from webtunnel_pt.tor.cells import EndReason

__all__ = ["END_REASON_MASK", "END_REASON_REPLIES", "reply_for_end_reason", "reply_for_failure"]

#: tor's END_STREAM_REASON_MASK: the flag bits above it are tor's bookkeeping.
END_REASON_MASK = 0x1FF
#: tor's internal END reasons (never on the wire), or.h.
END_REASON_CANT_ATTACH = 257
END_REASON_NET_UNREACHABLE = 258
END_REASON_SOCKSPROTOCOL = 259
END_REASON_PRIVATE_ADDR = 262
END_REASON_ENTRYPOLICY = 263

END_REASON_REPLIES: dict[int, SocksReply] = {
    0: SocksReply.SUCCEEDED,
    EndReason.MISC: SocksReply.GENERAL_FAILURE,
    EndReason.RESOLVEFAILED: SocksReply.HOST_UNREACHABLE,
    EndReason.CONNECTREFUSED: SocksReply.CONNECTION_REFUSED,
    EndReason.EXITPOLICY: SocksReply.NOT_ALLOWED,
    EndReason.DESTROY: SocksReply.GENERAL_FAILURE,
    # DONE before CONNECTED: the other side closed without ever connecting.
    EndReason.DONE: SocksReply.CONNECTION_REFUSED,
    EndReason.TIMEOUT: SocksReply.TTL_EXPIRED,
    EndReason.NOROUTE: SocksReply.HOST_UNREACHABLE,
    EndReason.HIBERNATING: SocksReply.GENERAL_FAILURE,
    EndReason.INTERNAL: SocksReply.GENERAL_FAILURE,
    EndReason.RESOURCELIMIT: SocksReply.GENERAL_FAILURE,
    EndReason.CONNRESET: SocksReply.CONNECTION_REFUSED,
    EndReason.TORPROTOCOL: SocksReply.GENERAL_FAILURE,
    END_REASON_CANT_ATTACH: SocksReply.GENERAL_FAILURE,
    END_REASON_NET_UNREACHABLE: SocksReply.NETWORK_UNREACHABLE,
    END_REASON_SOCKSPROTOCOL: SocksReply.GENERAL_FAILURE,
    END_REASON_PRIVATE_ADDR: SocksReply.GENERAL_FAILURE,
    END_REASON_ENTRYPOLICY: SocksReply.NOT_ALLOWED,
}


def reply_for_end_reason(reason: int) -> SocksReply:
    """tor's SOCKS5 reply for a stream END reason; unknown reasons are a general failure."""
    return END_REASON_REPLIES.get(reason & END_REASON_MASK, SocksReply.GENERAL_FAILURE)


def reply_for_failure(exc: BaseException) -> SocksReply:
    """The reply for whatever made a request fail (see the module docstring)."""
    if isinstance(exc, CircuitDestroyed):
        return reply_for_end_reason(EndReason.DESTROY)
    if isinstance(exc, StreamEnded):
        return reply_for_end_reason(exc.reason)
    end_reason = getattr(exc, "end_reason", None)
    if isinstance(end_reason, int):  # a client error that carries the stream's END reason
        return reply_for_end_reason(end_reason)
    if isinstance(exc, TimeoutError):
        return SocksReply.TTL_EXPIRED
    return describe_failure(exc)[0]
