"""``webtunnel-pt probe "<bridge line>"``: check a WebTunnel bridge layer by layer.

    DNS -> TCP -> outer TLS -> upgrade          (webtunnel_pt.webtunnel.dial, webtunnel-wire.md §3)
      -> inner TLS -> channel (VERSIONS, CERTS, NETINFO)   (tor-link.md §2, §4)
      -> CREATE_FAST -> descriptor (BEGIN_DIR /tor/server/authority)   (§5, §8.1, §10)
      -> consensus (microdesc consensus, key certificates, microdescriptors, verified)  (§10)

This module runs the layers (asyncio); :mod:`~webtunnel_pt.probe.report` holds what they found
and the exit statuses, :mod:`~webtunnel_pt.probe.output` renders it. Each layer is timed and
reported as soon as it completes, and waits at most for what is left of the probe's
:class:`Deadline` (``--timeout``); the first failure stops the probe. Success means every layer
worked, the descriptor's signatures verify, and both the link (CERTS) and the descriptor carry
the bridge line's identity. A bad or missing descriptor signature fails the descriptor layer (18).

The consensus layer (:mod:`~webtunnel_pt.probe.consensus`) has a deadline of its own that starts
with it (``--consensus-timeout``): over the same channel it fetches the directory with
:func:`~webtunnel_pt.tor.dirmgr.fetch_network_view` and verifies it against the configured
authorities. With a state directory, certificates and microdescriptors come from its cache
when it has them (:class:`ProbeCache`), but the consensus is always asked of the bridge: that
is what the layer checks. A directory that cannot be fetched or does not verify fails it (19),
naming the check and the authority.
Without :class:`ConsensusOptions` (``--no-consensus``) it is skipped.

The bridge URL path, the fingerprint and the Ed25519 identity are secrets: the output is
scrubbed of them by the :class:`Redactor` the command line passes in, unless it is unsafe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from webtunnel_pt.deadlines import PROBE_BACKSTOP_GRACE_S, PROBE_TIMEOUT_S, Deadline
from webtunnel_pt.errors import BridgeArgsError, DirectoryError, IdentityMismatch
from webtunnel_pt.logs import Redactor
from webtunnel_pt.outbound.proxy_uri import ProxyConfig
from webtunnel_pt.probe.bridge_list import parse_entry
from webtunnel_pt.probe.consensus import ConsensusOptions, describe_directory
from webtunnel_pt.probe.consensus import describe_failure as describe_consensus_failure
from webtunnel_pt.probe.output import format_json, format_layer, format_verdict
from webtunnel_pt.probe.report import (
    DIAL_LAYERS,
    EXIT_CODES,
    EXIT_IDENTITY,
    EXIT_INTERNAL,
    EXIT_USAGE,
    LAYERS,
    LayerFailed,
    LayerResult,
    ProbeReport,
    dial_failure_layer,
    layer_failed,
)
from webtunnel_pt.tor.cells import IPAddress
from webtunnel_pt.tor.channel import (
    Channel,
    ChannelCircuit,
    InnerTls,
    handshake_channel,
    start_inner_tls,
)
from webtunnel_pt.tor.crosscert import verify_ntor_onion_key_crosscert
from webtunnel_pt.tor.dircache import DirectoryCache
from webtunnel_pt.tor.directory import (
    SERVER_AUTHORITY_PATH,
    ServerDescriptor,
    check_descriptor_identity,
    parse_server_descriptor,
)
from webtunnel_pt.tor.dirmgr import fetch_network_view
from webtunnel_pt.tor.dirreport import DirectoryResult
from webtunnel_pt.webtunnel.bridge import BridgeConfig, BridgeLine
from webtunnel_pt.webtunnel.dial import DialOptions, DialReport, Tunnel, dial_bridge

T = TypeVar("T")

#: A layer started with (almost) nothing left still gets this long: asyncio refuses a zero TLS
#: handshake timeout. The probe's backstop deadline bounds the overshoot.
MIN_LAYER_WAIT_S = 0.1


# ---- the dial layers --------------------------------------------------------------------


def _name(entries: Any) -> str:
    """``getpeercert()`` subject/issuer -> ``CN=x, O=y``."""
    parts = [f"{key}={value}" for rdn in entries or () for key, value in rdn]
    return ", ".join(parts) or "?"


def _dial_layers(config: BridgeConfig, report: DialReport) -> list[LayerResult]:
    t = report.timings
    addresses = ", ".join(report.addresses) or config.dial_host
    layers = [
        LayerResult("dns", "ok", t.get("dns"), addresses, {"addresses": report.addresses}),
        LayerResult("tcp", "ok", t.get("tcp"), report.peer, {"peer": report.peer}),
    ]
    if config.use_tls:
        cert = report.peer_certificate or {}
        details = {
            "version": report.tls_version,
            "cipher": report.tls_cipher,
            "subject": _name(cert.get("subject")) if cert else None,
            "issuer": _name(cert.get("issuer")) if cert else None,
            "not_after": cert.get("notAfter"),
        }
        summary = f"{report.tls_version} {report.tls_cipher}"
        if cert:
            summary += (
                f"; subject {details['subject']}; issuer {details['issuer']}; "
                f"expires {details['not_after']}"
            )
        else:
            summary += "; certificate checked by the cert= pin"
        layers.append(LayerResult("tls", "ok", t.get("tls"), summary, details))
    else:
        layers.append(LayerResult("tls", "skipped", None, "http:// URL: no outer TLS"))
    upgrade = report.upgrade
    server = upgrade.header("server") if upgrade else None
    reason = upgrade.reason if upgrade else ""
    layers.append(
        LayerResult(
            "upgrade",
            "ok",
            t.get("upgrade"),
            f"101 {reason}; Server: {server or '-'}",
            {"status": 101, "reason": reason, "server": server},
        )
    )
    return layers


def _fmt_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def _peer_address(line: BridgeLine) -> IPAddress | None:
    host = line.address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _describe_descriptor(descriptor: ServerDescriptor) -> tuple[str, dict[str, Any]]:
    details = {
        "nickname": descriptor.nickname,
        "platform": descriptor.platform,
        "tor_version": descriptor.tor_version,
        "uptime_seconds": descriptor.uptime,
        "published": descriptor.published,
        "signatures_valid": True,
        "identity_matches": True,
    }
    summary = (
        f"nickname {descriptor.nickname}; {descriptor.platform or 'platform ?'}; "
        f"uptime {_fmt_uptime(descriptor.uptime)}; published {descriptor.published}; "
        "signatures valid; fingerprint and Ed25519 identity match"
    )
    return summary, details


class ProbeCache(DirectoryCache):
    """The directory cache as the probe uses it: certificates and microdescriptors come from
    it, but the consensus is always asked of the bridge (a cached one is never loaded), since
    serving a consensus that verifies is what the layer checks. What the bridge serves and
    verifies is stored as usual, for the next run and the other front ends."""

    def load_consensus(self, *args: Any, **kwargs: Any) -> None:
        return None


# ---- the probe -------------------------------------------------------------------------------


class Probe:
    """One probe run; ``on_layer`` sees each layer result as soon as it is known."""

    def __init__(
        self,
        line: BridgeLine,
        config: BridgeConfig,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
        on_layer: Callable[[LayerResult], None] = lambda result: None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.time,
        proxy: ProxyConfig | None = None,
        consensus: ConsensusOptions | None = None,
    ) -> None:
        """``redactor`` learns the relay identities as they are found; ``clock`` is wall time
        (certificate, descriptor and consensus validity); ``proxy`` is ``--proxy`` (as
        ``TOR_PT_PROXY``); ``consensus`` configures the consensus layer (None: skipped)."""
        if line.fingerprint is None:
            raise BridgeArgsError("the bridge line must contain the bridge fingerprint")
        self.line = line
        self.fingerprint: str = line.fingerprint
        self.config = config
        self.timeout_s = timeout_s
        self.on_layer = on_layer
        self.redactor = redactor
        self.clock = clock
        self.proxy = proxy
        self.consensus = consensus
        self.report = ProbeReport(config.redacted_url())
        self._deadline = Deadline.after(timeout_s)
        self._current = "dns"

    @property
    def current_layer(self) -> str:
        """The layer running now, or the one that ran last."""
        return self._current

    def _remaining(self) -> float:
        """What the next wait may take: what is left of the probe's deadline."""
        return max(MIN_LAYER_WAIT_S, self._deadline.remaining())

    def _emit(self, result: LayerResult) -> None:
        self.report.layers.append(result)
        self.on_layer(result)

    def _secret(self, *values: str) -> None:
        if self.redactor is not None:
            self.redactor.add(*values)

    async def run(self) -> ProbeReport:
        start = time.monotonic()
        self._deadline = Deadline.after(self.timeout_s)
        tunnel: Tunnel | None = None
        channel: Channel | None = None
        try:
            async with asyncio.timeout(self.timeout_s + PROBE_BACKSTOP_GRACE_S) as backstop:
                tunnel = await self._dial()
                tls = await self._layer("inner_tls", self._inner_tls(tunnel))
                channel = await self._layer("channel", self._channel(tunnel, tls))
                circuit = await self._layer("create_fast", self._create_fast(channel))
                await self._layer("descriptor", self._descriptor(channel, circuit))
                if self.consensus is not None:
                    # The consensus layer's own budget starts now; the backstop moves with it.
                    layer_s = self.consensus.timeout_s
                    backstop.reschedule(
                        asyncio.get_running_loop().time() + layer_s + PROBE_BACKSTOP_GRACE_S
                    )
                    await self._layer("consensus", self._consensus(channel, self.consensus))
        except LayerFailed as failed:
            self._fail(failed)
        except TimeoutError:
            self._fail(LayerFailed(self._current, EXIT_CODES[self._current], "timed out", None))
        finally:
            await self._close(channel, tunnel)
        self.report.total_seconds = time.monotonic() - start
        self._skip_rest()
        return self.report

    async def _layer(self, layer: str, step: Awaitable[tuple[T, str, dict[str, Any]]]) -> T:
        """Run one layer's coroutine; map its failure to the layer's exit code."""
        self._current = layer
        mark = time.monotonic()
        try:
            value, summary, details = await step
        except IdentityMismatch as exc:
            raise LayerFailed(layer, EXIT_IDENTITY, str(exc), time.monotonic() - mark) from exc
        except (asyncio.CancelledError, LayerFailed):
            raise
        except Exception as exc:
            failed = layer_failed(layer, exc, time.monotonic() - mark)
            if layer == "consensus" and self.consensus is not None:
                _check, failed.error, failed.details = describe_consensus_failure(
                    exc, self.consensus
                )
            raise failed from exc
        self._emit(LayerResult(layer, "ok", time.monotonic() - mark, summary, details))
        return value

    async def _dial(self) -> Tunnel:
        self._current = "dns"
        mark = time.monotonic()
        try:
            options = DialOptions(timeout_s=self._remaining(), proxy=self.proxy)
            tunnel = await dial_bridge(self.config, options)
        except (asyncio.CancelledError, LayerFailed):
            raise
        except Exception as exc:
            failed = layer_failed(dial_failure_layer(exc), exc, time.monotonic() - mark)
            self._emit_dial_layers_before(failed.layer)
            raise failed from exc
        for result in _dial_layers(self.config, tunnel.report):
            self._emit(result)
        return tunnel

    def _emit_dial_layers_before(self, layer: str) -> None:
        """The dial reports no times when it fails; earlier layers did complete."""
        for key in DIAL_LAYERS:
            if key == layer:
                return
            if key == "tls" and not self.config.use_tls:
                self._emit(LayerResult(key, "skipped", None, "http:// URL: no outer TLS"))
            else:
                self._emit(LayerResult(key, "ok", None, "completed"))

    async def _inner_tls(self, tunnel: Tunnel) -> tuple[InnerTls, str, dict[str, Any]]:
        tls = await start_inner_tls(
            tunnel.writer, timeout_s=self._remaining(), reader=tunnel.reader
        )
        summary = f"{tls.version} {tls.cipher} (SNI {tls.server_hostname})"
        details = {"version": tls.version, "cipher": tls.cipher, "sni": tls.server_hostname}
        return tls, summary, details

    async def _channel(self, tunnel: Tunnel, tls: InnerTls) -> tuple[Channel, str, dict[str, Any]]:
        channel = await handshake_channel(
            tunnel.reader,
            tunnel.writer,
            tls,
            expected_fingerprint=self.fingerprint,
            peer_address=_peer_address(self.line),
            timeout_s=self._remaining(),
            clock=self.clock,
        )
        identity = channel.identity
        self._secret(
            identity.rsa_fingerprint, identity.ed25519_base64, identity.ed25519_identity.hex()
        )
        skew = channel.clock_skew
        netinfo = channel.link.relay_netinfo
        details = {
            "link_protocol": channel.link_version,
            "rsa_identity": identity.rsa_fingerprint,
            "ed25519_identity": identity.ed25519_base64,
            "clock_skew_seconds": skew,
            "relay_sees_us_as": str(netinfo.other_address) if netinfo.other_address else None,
            "relay_addresses": [str(a) for a in netinfo.my_addresses],
        }
        skew_text = "unknown" if skew is None else f"{skew:+.0f} s"
        summary = (
            f"link protocol {channel.link_version}; RSA id {identity.rsa_fingerprint} (matches); "
            f"Ed25519 id {identity.ed25519_base64}; clock skew {skew_text}"
        )
        return channel, summary, details

    async def _create_fast(self, channel: Channel) -> tuple[ChannelCircuit, str, dict[str, Any]]:
        circuit = await channel.create_fast_circuit(timeout_s=self._remaining())
        return circuit, f"circuit {circuit.circ_id:#010x}", {"circuit_id": circuit.circ_id}

    async def _descriptor(
        self, channel: Channel, circuit: ChannelCircuit
    ) -> tuple[ServerDescriptor, str, dict[str, Any]]:
        response = await circuit.fetch_directory(SERVER_AUTHORITY_PATH, timeout_s=self._remaining())
        if response.status != 200:
            raise DirectoryError(
                f"{SERVER_AUTHORITY_PATH} answered HTTP {response.status} {response.reason}"
            )
        descriptor = parse_server_descriptor(response.body)
        check_descriptor_identity(descriptor, channel.identity, now=self.clock())
        verify_ntor_onion_key_crosscert(descriptor, self.clock())
        return descriptor, *_describe_descriptor(descriptor)

    async def _consensus(
        self, channel: Channel, options: ConsensusOptions
    ) -> tuple[DirectoryResult, str, dict[str, Any]]:
        cache = ProbeCache(options.state_dir) if options.state_dir is not None else None
        result = await fetch_network_view(
            channel,
            options.authorities,
            now=self.clock,
            cache=cache,
            timeout_s=options.timeout_s,
            deadline=Deadline.after(options.timeout_s),
        )
        return result, *describe_directory(result.report, result.view, options)

    def _fail(self, failed: LayerFailed) -> None:
        self._emit(
            LayerResult(
                failed.layer, "failed", failed.seconds, details=failed.details, error=failed.error
            )
        )
        self.report.exit_code = failed.exit_code

    def _skip_rest(self) -> None:
        seen = {r.layer for r in self.report.layers}
        for layer in LAYERS:
            if layer.key in seen:
                continue
            if layer.key == "consensus" and self.consensus is None and not self.report.failed:
                self._emit(LayerResult(layer.key, "skipped", summary="--no-consensus"))
            else:
                self._emit(LayerResult(layer.key, "skipped"))

    async def _close(self, channel: Channel | None, tunnel: Tunnel | None) -> None:
        if channel is not None:
            await channel.aclose()
        elif tunnel is not None:
            tunnel.writer.transport.abort()


# ---- the command ----------------------------------------------------------------------------


def register_secrets(line: BridgeLine, config: BridgeConfig, redactor: Redactor) -> None:
    """Teach ``redactor`` the bridge's secrets: its URL path and query, its fingerprint."""
    redactor.add_bridge(line.args.get("url", ""), config.request_target, line.fingerprint)


def prepare(text: str, redactor: Redactor) -> tuple[BridgeLine, BridgeConfig]:
    """Parse the bridge line (the fingerprint is required) and register its secrets."""
    line, config = parse_entry(text)
    register_secrets(line, config, redactor)
    return line, config


def main(
    bridge: str,
    *,
    redactor: Redactor,
    json_output: bool = False,
    timeout_s: float = PROBE_TIMEOUT_S,
    proxy: ProxyConfig | None = None,
    consensus: ConsensusOptions | None = None,
    stdout: TextIO | None = None,
) -> int:
    """``webtunnel-pt probe``, its options parsed by :mod:`webtunnel_pt.cli`; returns the exit
    status. ``consensus`` is None with ``--no-consensus``."""
    out = stdout if stdout is not None else sys.stdout
    try:
        line, config = prepare(bridge, redactor)
    except BridgeArgsError as exc:
        print(f"webtunnel-pt probe: {redactor.scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE

    lines = LineWriter(out)

    def show(result: LayerResult) -> None:
        if not json_output:
            lines.write(redactor.scrub(format_layer(result)))

    if not json_output:
        target = config.describe(unsafe=redactor.unsafe)
        if proxy is not None:
            target += f" through {proxy.describe()}"
        lines.write(redactor.scrub(f"probing {target}"))
    probe = Probe(
        line,
        config,
        timeout_s=timeout_s,
        on_layer=show,
        redactor=redactor,
        proxy=proxy,
        consensus=consensus,
    )
    try:
        report = asyncio.run(probe.run())
    except KeyboardInterrupt:
        return EXIT_INTERNAL
    if json_output:
        lines.write(redactor.scrub(format_json(report)))
    else:
        lines.write(format_verdict(report))
    return report.exit_code


class LineWriter:
    """The probe's output. A reader that goes away (``probe … | head -1``) ends the output,
    not the probe: the exit status still tells the result, and no traceback is printed."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> None:
        if self._gone:
            return
        try:
            print(text, file=self._stream, flush=True)
        except BrokenPipeError:
            self._gone = True
            if self._stream is sys.stdout:
                # Python flushes stdout again at exit; let that land nowhere instead of failing.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
