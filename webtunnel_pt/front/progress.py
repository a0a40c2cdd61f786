"""Bootstrap progress lines, as tor prints them.

    lines = ProgressLines()
    lines.line_for(event)   -> "Bootstrapped 10% (conn_done): Connected to a relay" or None

An event is anything with ``percent`` (or ``progress``) and ``tag`` attributes and optionally
``summary``: the client's progress events, whatever their class. A missing summary is taken
from :data:`BOOTSTRAP_PHASES`, tor's table (bootstrap.c ``bootstrap_status_to_string``); a
percentage that does not move forward prints nothing, as tor reports each phase once. Sans-I/O.
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP_PHASES", "ProgressLines", "format_progress"]

#: tor's bootstrap phases: tag -> (percent, summary).
BOOTSTRAP_PHASES: dict[str, tuple[int, str]] = {
    "starting": (0, "Starting"),
    "conn_pt": (1, "Connecting to pluggable transport"),
    "conn_done_pt": (2, "Connected to pluggable transport"),
    "conn": (5, "Connecting to a relay"),
    "conn_done": (10, "Connected to a relay"),
    "handshake": (14, "Handshaking with a relay"),
    "handshake_done": (15, "Handshake with a relay done"),
    "onehop_create": (20, "Establishing an encrypted directory connection"),
    "requesting_status": (25, "Asking for networkstatus consensus"),
    "loading_status": (30, "Loading networkstatus consensus"),
    "loading_keys": (40, "Loading authority key certs"),
    "requesting_descriptors": (45, "Asking for relay descriptors"),
    "loading_descriptors": (50, "Loading relay descriptors"),
    "enough_dirinfo": (75, "Loaded enough directory info to build circuits"),
    "ap_conn": (80, "Connecting to a relay to build circuits"),
    "ap_conn_done": (85, "Connected to a relay to build circuits"),
    "ap_handshake": (89, "Finishing handshake with a relay to build circuits"),
    "ap_handshake_done": (90, "Handshake finished with a relay to build circuits"),
    "circuit_create": (95, "Establishing a Tor circuit"),
    "done": (100, "Done"),
}
#: A summary is the client's text; keep a line a line.
MAX_SUMMARY_CHARS = 200


def format_progress(percent: int, tag: str, summary: str) -> str:
    summary = " ".join(summary.split())[:MAX_SUMMARY_CHARS]
    return f"Bootstrapped {percent}% ({tag}): {summary}"


class ProgressLines:
    """Turns progress events into tor's lines, each phase once, never backwards."""

    def __init__(self) -> None:
        self.last_percent = -1

    def line_for(self, event: object) -> str | None:
        tag = str(getattr(event, "tag", "") or "")
        known = BOOTSTRAP_PHASES.get(tag)
        percent = getattr(event, "percent", getattr(event, "progress", None))
        if not isinstance(percent, int):
            if known is None:
                return None
            percent = known[0]
        if percent <= self.last_percent or not 0 <= percent <= 100:
            return None
        self.last_percent = percent
        summary = getattr(event, "summary", None)
        if not isinstance(summary, str) or not summary:
            summary = known[1] if known is not None else tag
        return format_progress(percent, tag or "unknown", summary)
