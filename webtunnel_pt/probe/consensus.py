"""The probe's ``consensus`` layer, described: what it was asked for (:class:`ConsensusOptions`),
what a verified directory reports (:func:`describe_directory`) and, when it fails, which check
failed and for which authority (:func:`describe_failure`).

    options = ConsensusOptions(authorities, state_dir=Path("~/.cache/webtunnel-pt"))
    summary, details = describe_directory(result.report, result.view, options)
    check, error, details = describe_failure(exc, options)

The layer itself runs in :mod:`webtunnel_pt.probe.run`: over the probe's open channel,
:func:`webtunnel_pt.tor.dirmgr.fetch_network_view` fetches the microdesc consensus, the key
certificates it needs and its microdescriptors through the bridge, and verifies them against
the configured authorities (tor-link.md §10; dir-spec §3.4.1, §5). Its own deadline
(:data:`~webtunnel_pt.deadlines.PROBE_CONSENSUS_TIMEOUT_S`, ``--consensus-timeout``) starts
with the layer.

The figures are public (valid-after, signature counts, relay counts, v3idents of authorities);
the layer names no bridge secret. Sans-I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webtunnel_pt.deadlines import PROBE_CONSENSUS_TIMEOUT_S
from webtunnel_pt.errors import (
    DIRECTORY_REQUESTS_ATTRIBUTE,
    ConsensusError,
    ConsensusNotYetValid,
    ConsensusSignatureError,
    ConsensusStale,
    KeyCertificateError,
    MicrodescError,
    NetdocError,
)
from webtunnel_pt.errors import (
    describe_failure as describe_error,
)

if TYPE_CHECKING:
    from webtunnel_pt.tor.authorities import DirAuthority
    from webtunnel_pt.tor.dirreport import DirectoryReport
    from webtunnel_pt.tor.netview import NetworkView

#: The checks a consensus layer can fail, by the error that says so (most specific first).
CHECKS: tuple[tuple[type[Exception], str], ...] = (
    (ConsensusSignatureError, "signatures"),
    (KeyCertificateError, "key certificate"),
    (ConsensusNotYetValid, "freshness (not yet valid)"),
    (ConsensusStale, "freshness (stale)"),
    (ConsensusError, "consensus document"),
    (NetdocError, "consensus document"),
    (MicrodescError, "microdescriptors"),
    (TimeoutError, "fetch (timed out)"),
)
#: Anything else (an HTTP refusal, a body over its bound, a closed channel): the fetch failed.
FETCH_CHECK = "fetch"


@dataclass(frozen=True)
class ConsensusOptions:
    """The consensus layer's configuration: whom to trust, where to cache, how long to take."""

    authorities: tuple[DirAuthority, ...]
    #: The directory cache's state directory; None: no cache.
    state_dir: Path | None = None
    timeout_s: float = PROBE_CONSENSUS_TIMEOUT_S
    #: Where the authorities come from, for the report: "built-in" or "--dir-authority".
    authorities_source: str = "built-in"


def utc(seconds: float) -> str:
    """``2026-12-03 04:00:00`` (UTC), as a consensus writes its times."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _cache_figures(report: DirectoryReport, options: ConsensusOptions) -> dict[str, Any]:
    """What came from the cache and what from the bridge."""
    if options.state_dir is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "consensus": str(report.consensus_source),
        "certificates_fetched": report.certificates_fetched,
        "certificates_cached": report.certificates_cached,
        "microdescs_fetched": report.microdescs_fetched,
        "microdescs_cached": report.microdescs_cached,
        "problems": list(report.cache_problems),
    }


def _cache_summary(cache: dict[str, Any]) -> str:
    if not cache["enabled"]:
        return "cache off"
    consensus = "from cache" if cache["consensus"] == "cache" else "fetched"
    problems = len(cache["problems"])
    refused = f"; {_plural(problems, 'cache problem')}" if problems else ""
    return (
        f"cache: consensus {consensus}, certificates {cache['certificates_fetched']} fetched "
        f"+ {cache['certificates_cached']} cached, microdescs {cache['microdescs_fetched']} "
        f"fetched + {cache['microdescs_cached']} cached{refused}"
    )


def describe_directory(
    report: DirectoryReport, view: NetworkView, options: ConsensusOptions
) -> tuple[str, dict[str, Any]]:
    """The layer's summary line and its JSON details, for a directory that verified."""
    cache = _cache_figures(report, options)
    details: dict[str, Any] = {
        "valid_after": utc(view.valid_after),
        "fresh_until": utc(view.fresh_until),
        "valid_until": utc(view.valid_until),
        "signatures": report.signatures,
        "signatures_valid": report.signatures_valid,
        "authorities": report.authorities,
        "authorities_source": options.authorities_source,
        "consensus_relays": report.consensus_relays,
        "relays": report.relays,
        "exits": report.exits,
        "microdescs": report.microdescs,
        "discarded_microdescs": report.discarded_microdescs,
        "requests": report.requests,
        "certificates_fetched": report.certificates_fetched,
        "refetch_error": report.refetch_error,
        "timings": {step: round(seconds, 6) for step, seconds in report.timings},
        "cache": cache,
    }
    lacking = report.consensus_relays - report.relays
    relays = _plural(report.relays, "relay")
    if lacking:
        relays += f" ({lacking} listed without a microdescriptor)"
    summary = (
        f"valid-after {details['valid_after']}; signatures {report.signatures} "
        f"({options.authorities_source}); {relays}, {_plural(report.exits, 'exit')}; "
        f"{_plural(report.requests, 'request')}; {_cache_summary(cache)}"
    )
    return summary, details


def check_of(exc: BaseException) -> str:
    """The name of the check an error from the directory fetch failed."""
    return next((name for kind, name in CHECKS if isinstance(exc, kind)), FETCH_CHECK)


#: Hex digits of a v3ident shown in a message: the whole one (40) reads as a fingerprint, which
#: the output scrubs wherever it appears (:class:`~webtunnel_pt.logs.Redactor`).
V3IDENT_PREFIX_CHARS = 8


def _nicknames(options: ConsensusOptions) -> dict[str, str | None]:
    return {a.v3ident.hex().upper(): a.nickname for a in options.authorities}


def authority_name(v3ident: str, nickname: str | None) -> str:
    """``auth0 (v3ident 0A1B2C3D...)``: how a message names a configured authority."""
    short = f"v3ident {v3ident[:V3IDENT_PREFIX_CHARS]}..."
    return f"{nickname} ({short})" if nickname else short


def _signature_message(exc: ConsensusSignatureError, options: ConsensusOptions) -> str:
    names = _nicknames(options)
    failed = "; ".join(
        f"{authority_name(ident, names.get(ident))}: {why}"
        for ident, why in sorted(exc.failures.items())
    )
    return (
        f"consensus signed validly by {exc.valid} of {len(options.authorities)} configured "
        f"authorities, {exc.needed} needed" + (f": {failed}" if failed else "")
    )


def describe_failure(
    exc: BaseException, options: ConsensusOptions
) -> tuple[str, str, dict[str, Any]]:
    """(check, error text, details) of a consensus layer that failed with ``exc``. For a
    signature failure the text names each configured authority that did not count by the
    nickname it was configured with and the start of its v3ident (a whole one would be
    scrubbed), and says why; the details list them likewise."""
    check = check_of(exc)
    _reply, _severity, message = describe_error(exc)
    details: dict[str, Any] = {"check": check, "authorities_source": options.authorities_source}
    requests = getattr(exc, DIRECTORY_REQUESTS_ATTRIBUTE, None)
    if isinstance(requests, int):
        details["requests"] = requests
    if isinstance(exc, ConsensusSignatureError):
        names = _nicknames(options)
        message = _signature_message(exc, options)
        details["signatures_valid"] = exc.valid
        details["signatures_needed"] = exc.needed
        details["authorities"] = len(options.authorities)
        details["failed_authorities"] = [
            {
                "nickname": names.get(ident),
                "v3ident_prefix": ident[:V3IDENT_PREFIX_CHARS],
                "reason": why,
            }
            for ident, why in sorted(exc.failures.items())
        ]
    return check, f"{check} check failed: {message}", details
