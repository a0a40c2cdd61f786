"""front/exit_codes.py: distinct statuses, and which failure gets which."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import (
    CircuitBuildFailed,
    CircuitDestroyed,
    CircuitHandshakeError,
    ConfigError,
    ConsensusSignatureError,
    ConsensusStale,
    IdentityMismatch,
    KeyCertificateError,
    NoPathError,
    StreamEnded,
    TlsError,
)
from webtunnel_pt.front.exit_codes import (
    ExitStatus,
    bootstrap_status,
    exit_status_help,
    stream_status,
)
from webtunnel_pt.tor.cells import EndReason


def test_statuses_are_distinct_and_documented() -> None:
    values = [int(s) for s in ExitStatus]
    assert len(values) == len(set(values))
    text = exit_status_help()
    for status in ExitStatus:
        assert f"{int(status):>3}  " in text


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (
            ConsensusSignatureError("x", valid=0, needed=2, failures={}),
            ExitStatus.DIRECTORY_NOT_VERIFIED,
        ),
        (KeyCertificateError("x"), ExitStatus.DIRECTORY_NOT_VERIFIED),
        (ConsensusStale("x"), ExitStatus.DIRECTORY_NOT_VERIFIED),
        (IdentityMismatch("x", expected="a", actual="b"), ExitStatus.BOOTSTRAP_FAILED),
        (TlsError("x"), ExitStatus.BOOTSTRAP_FAILED),
        (TimeoutError(), ExitStatus.BOOTSTRAP_FAILED),
        (ConfigError("x"), ExitStatus.CONFIG),
        (CircuitBuildFailed("x", attempts=3), ExitStatus.CIRCUIT_FAILED),
        (NoPathError("no exit"), ExitStatus.CIRCUIT_FAILED),
    ],
)
def test_bootstrap_failures(exc: BaseException, status: ExitStatus) -> None:
    assert bootstrap_status(exc) == status


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (StreamEnded(EndReason.CONNECTREFUSED), ExitStatus.STREAM_REFUSED),
        (StreamEnded(EndReason.RESOLVEFAILED), ExitStatus.STREAM_REFUSED),
        (CircuitDestroyed(3), ExitStatus.CIRCUIT_FAILED),
        (CircuitHandshakeError("x"), ExitStatus.CIRCUIT_FAILED),
        (TimeoutError(), ExitStatus.CIRCUIT_FAILED),
    ],
)
def test_stream_failures(exc: BaseException, status: ExitStatus) -> None:
    assert stream_status(exc) == status
