"""Exit statuses of ``webtunnel-pt fetch``, all in one place, and which failure gets which.

    0   the server answered 2xx (the body was written out)
    1   configuration error: bad option, bridge line, DirAuthority line, torrc or URL
    2   usage error (argparse)
    3   bootstrap failed: the bridge, its channel (including a wrong fingerprint) or the client
    4   the directory was not verified: consensus signatures, authority certificates, liveness
    5   the circuit failed: no path, handshake or extend refused, circuit destroyed, timeout
    6   the stream was refused: END from the exit (resolve failed, refused, exit policy), or an
        internal address refused locally (--allow-internal-addresses lifts that)
    7   HTTP error: the server answered, but not 2xx (3xx included: redirects are not followed)
    8   TLS to the destination failed (certificate not valid for the host, handshake error)
    9   the response was not valid HTTP, or the transfer was cut short
    10  writing the output failed (-o FILE, or stdout closed)
    130 interrupted (SIGINT / SIGTERM)

:func:`bootstrap_status` and :func:`stream_status` classify an exception by the stage it came
from. Sans-I/O.
"""

from __future__ import annotations

from enum import IntEnum

from webtunnel_pt.errors import (
    CircuitBuildFailed,
    CircuitBuildTimeout,
    ConfigError,
    DirectoryError,
    NoPathError,
    StreamEnded,
)

__all__ = ["ExitStatus", "bootstrap_status", "exit_status_help", "stream_status"]


class ExitStatus(IntEnum):
    OK = 0
    CONFIG = 1
    USAGE = 2
    BOOTSTRAP_FAILED = 3
    DIRECTORY_NOT_VERIFIED = 4
    CIRCUIT_FAILED = 5
    STREAM_REFUSED = 6
    HTTP_ERROR = 7
    TLS_FAILED = 8
    BAD_RESPONSE = 9
    OUTPUT_FAILED = 10
    INTERRUPTED = 130


_HELP = {
    ExitStatus.OK: "the server answered 2xx",
    ExitStatus.CONFIG: "configuration error (options, bridge line, torrc, URL)",
    ExitStatus.USAGE: "usage error",
    ExitStatus.BOOTSTRAP_FAILED: "bootstrap failed (bridge, channel, wrong fingerprint)",
    ExitStatus.DIRECTORY_NOT_VERIFIED: "the directory was not verified (authorities)",
    ExitStatus.CIRCUIT_FAILED: "the circuit failed",
    ExitStatus.STREAM_REFUSED: "the stream was refused (by the exit, or an internal address)",
    ExitStatus.HTTP_ERROR: "the server answered with a status other than 2xx",
    ExitStatus.TLS_FAILED: "TLS with the destination failed",
    ExitStatus.BAD_RESPONSE: "the response was not valid HTTP or was cut short",
    ExitStatus.OUTPUT_FAILED: "writing the output failed",
    ExitStatus.INTERRUPTED: "interrupted",
}


def exit_status_help() -> str:
    """The table for ``fetch --help``."""
    return "exit status:\n" + "\n".join(f"  {int(s):>3}  {_HELP[s]}" for s in ExitStatus)


def bootstrap_status(exc: BaseException) -> ExitStatus:
    """A failure of ``bootstrap()``: the directory's own errors, the first 3-hop circuit's,
    or else bootstrap failed (bridge, channel, link)."""
    if isinstance(exc, ConfigError):
        return ExitStatus.CONFIG
    if isinstance(exc, DirectoryError):
        return ExitStatus.DIRECTORY_NOT_VERIFIED
    if isinstance(exc, CircuitBuildFailed | CircuitBuildTimeout | NoPathError):
        return ExitStatus.CIRCUIT_FAILED
    return ExitStatus.BOOTSTRAP_FAILED


def stream_status(exc: BaseException) -> ExitStatus:
    """A failure of ``open_connection()``: refused by the exit, else the circuit failed."""
    if isinstance(exc, StreamEnded) or isinstance(getattr(exc, "end_reason", None), int):
        return ExitStatus.STREAM_REFUSED
    if isinstance(exc, ConfigError):
        return ExitStatus.CONFIG
    # CircuitDestroyed, a handshake or path error, a deadline: no circuit carried the stream.
    return ExitStatus.CIRCUIT_FAILED
