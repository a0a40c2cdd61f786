"""What ``webtunnel-pt probe`` found: the layers, their results, the exit statuses, and which layer
a failure belongs to.

Sans-I/O: :mod:`webtunnel_pt.probe.run` fills a :class:`ProbeReport` as the layers complete,
:mod:`webtunnel_pt.probe.output` renders it. The first failure stops the probe and selects the
exit status (:data:`EXIT_CODES`)::

    0  every layer worked and the identity matched     1  internal error     2  usage error
    10 DNS  11 TCP  12 outer TLS  13 upgrade  14 inner TLS  15 channel  16 identity mismatch
    17 CREATE_FAST  18 descriptor  19 consensus (the directory through the bridge: fetch or
                                      verification failed; ``--no-consensus`` skips the layer)

With ``--file`` (many bridges) the exit status says how many passed (:func:`batch_exit_code`)::

    0  every bridge passed (with --any: at least one did)      1  internal error
    2  usage error (bad option, unreadable file, no bridge line in it)
    3  some bridges failed, at least one passed (without --any)
    4  no bridge passed (a malformed line counts as a failed bridge)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webtunnel_pt.errors import (
    DialStage,
    TlsError,
    UpgradeError,
    UpgradeRejected,
    WebtunnelError,
    describe_failure,
)


class Layer(NamedTuple):
    """One layer of the probe: its key (in JSON), its title (in text), its exit status."""

    key: str
    title: str
    exit_code: int


#: Layers in order: key, title, exit status when this layer fails.
LAYERS: tuple[Layer, ...] = (
    Layer("dns", "DNS", 10),
    Layer("tcp", "TCP", 11),
    Layer("tls", "outer TLS", 12),
    Layer("upgrade", "upgrade", 13),
    Layer("inner_tls", "inner TLS", 14),
    Layer("channel", "channel", 15),
    Layer("create_fast", "CREATE_FAST", 17),
    Layer("descriptor", "descriptor", 18),
    Layer("consensus", "consensus", 19),
)
#: The layers the bridge dial covers, in order.
DIAL_LAYERS: tuple[str, ...] = ("dns", "tcp", "tls", "upgrade")
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
#: Valid certificates and descriptor, but not the identity the bridge line names.
EXIT_IDENTITY = 16
#: ``--file``: at least one bridge failed and at least one passed (not with ``--any``).
EXIT_SOME_FAILED = 3
#: ``--file``: no bridge passed.
EXIT_NONE_PASSED = 4
EXIT_CODES: dict[str, int] = {layer.key: layer.exit_code for layer in LAYERS} | {
    "identity": EXIT_IDENTITY
}
_TITLES = {layer.key: layer.title for layer in LAYERS}

#: The probe layer of each dial stage; through a proxy, reaching the bridge counts as TCP.
DIAL_STAGE_LAYERS: dict[DialStage, str] = {
    DialStage.DNS: "dns",
    DialStage.TCP_CONNECT: "tcp",
    DialStage.PROXY_CONNECT: "tcp",
    DialStage.PROXY_HANDSHAKE: "tcp",
    DialStage.TLS_HANDSHAKE: "tls",
    DialStage.UPGRADE: "upgrade",
}


@dataclass
class LayerResult:
    """One layer: ``status`` is ``ok``, ``failed`` or ``skipped``; ``seconds`` its own time."""

    layer: str
    status: str
    seconds: float | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def title(self) -> str:
        return _TITLES[self.layer]


@dataclass
class ProbeReport:
    target: str
    layers: list[LayerResult] = field(default_factory=list)
    exit_code: int = EXIT_OK
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def failed(self) -> LayerResult | None:
        """The layer that stopped the probe, if one did."""
        return next((r for r in self.layers if r.status == "failed"), None)


class LayerFailed(Exception):
    """Internal: stop the probe at ``layer`` with ``exit_code``; ``details`` go into the
    failed layer's result (the consensus layer names the check that failed there)."""

    def __init__(
        self,
        layer: str,
        exit_code: int,
        error: str,
        seconds: float | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.layer = layer
        self.exit_code = exit_code
        self.error = error
        self.seconds = seconds
        self.details = details or {}


def layer_failed(layer: str, exc: Exception, seconds: float | None) -> LayerFailed:
    """A failure at ``layer``; exceptions that are bugs, not network trouble, exit 1."""
    _reply, severity, message = describe_failure(exc)
    internal = severity == "error" and not isinstance(exc, WebtunnelError | OSError)
    return LayerFailed(layer, EXIT_INTERNAL if internal else EXIT_CODES[layer], message, seconds)


def dial_failure_layer(exc: BaseException) -> str:
    """Which dial layer an exception from ``dial_bridge`` belongs to: the stage it carries;
    without one (not raised by the dial), what its type says."""
    stage = exc.stage if isinstance(exc, WebtunnelError) else None
    if stage is not None:
        return DIAL_STAGE_LAYERS[stage]
    if isinstance(exc, UpgradeRejected | UpgradeError):
        return "upgrade"
    if isinstance(exc, TlsError):
        return "tls"
    return "tcp"


def batch_exit_code(passed: int, failed: int, *, any_passes: bool = False) -> int:
    """The exit status of ``probe --file``: ``passed`` and ``failed`` count input lines (a
    malformed line is a failed one); ``any_passes`` is ``--any``."""
    if passed and (not failed or any_passes):
        return EXIT_OK
    return EXIT_SOME_FAILED if passed else EXIT_NONE_PASSED
