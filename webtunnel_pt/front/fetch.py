"""asyncio glue: ``webtunnel-pt fetch``, one HTTP(S) GET through the built-in client.

    webtunnel-pt fetch --bridge "<line>" [-f TORRC] [-o FILE] [--head] URL

It bootstraps (tor's progress lines on stderr), opens a stream to the URL's host and port
through the exit (the host name is resolved there, never here), runs TLS over the stream for
``https://`` (validated against the system CA store, or ``SSL_CERT_FILE``), sends one request
(:mod:`webtunnel_pt.front.http_get`) and writes the body to stdout or ``-o FILE``. The status
line and the timings go to stderr. Redirects are not followed: a 3xx is reported with its
``Location`` and exits with the HTTP error status. Exit statuses:
:mod:`webtunnel_pt.front.exit_codes`. Internal destinations are refused unless
``--allow-internal-addresses``, as by the SOCKS front.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from webtunnel_pt.deadlines import FETCH_READ_IDLE_S, FETCH_TLS_TIMEOUT_S, FRONT_STREAM_TIMEOUT_S
from webtunnel_pt.errors import ConfigError, describe_failure
from webtunnel_pt.front.commands import add_fetch_arguments, fetch_epilog
from webtunnel_pt.front.exit_codes import ExitStatus, bootstrap_status, stream_status
from webtunnel_pt.front.http_get import BodyChunk, HttpGet, ResponseHead, Url, parse_url
from webtunnel_pt.front.internal import internal_reason
from webtunnel_pt.front.options import FrontOptions
from webtunnel_pt.front.session import (
    ClientFactory,
    bootstrap,
    default_client_factory,
    load_options,
    make_client,
    print_line,
    register_secrets,
)
from webtunnel_pt.front.tls_stream import READ_CHUNK_BYTES, TlsStream
from webtunnel_pt.logs import Redactor
from webtunnel_pt.stop_signal import StopSignal, watching_signals

__all__ = ["add_arguments", "epilog", "fetch", "run"]

PROG = "webtunnel-pt fetch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fetch_arguments(parser)


def epilog() -> str:
    return fetch_epilog()


class _Timings:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.marks: list[tuple[str, float]] = []
        self._last = self.start

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.marks.append((name, now - self._last))
        self._last = now

    def line(self, body_bytes: int) -> str:
        parts = [f"{name} {seconds:.2f} s" for name, seconds in self.marks]
        total = time.monotonic() - self.start
        return f"timings: {', '.join(parts)}, total {total:.2f} s; {body_bytes} body bytes"


async def _wait(awaitable: Awaitable[Any], timeout_s: float) -> Any:
    async with asyncio.timeout(timeout_s):
        return await awaitable


class _Plain:
    """The stream itself, for http://; the same shape as :class:`TlsStream`."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self._reader = reader
        self._writer = writer

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def read(self, size: int = READ_CHUNK_BYTES) -> bytes:
        data: bytes = await self._reader.read(size)
        return data


@dataclass
class _Job:
    """One fetch: what to get, where its output goes."""

    url: Url
    head: bool
    output: BinaryIO
    err: TextIO
    redactor: Redactor
    timings: _Timings
    context: ssl.SSLContext | None

    def say(self, text: str) -> None:
        print_line(self.err, text, self.redactor)


async def _exchange(channel: _Plain | TlsStream, job: _Job) -> tuple[ExitStatus, int]:
    url, head, output, timings = job.url, job.head, job.output, job.timings
    get = HttpGet(url, head=head)
    await _wait(channel.write(get.request_bytes()), FETCH_READ_IDLE_S)
    status: ResponseHead | None = None
    body = 0
    first = True
    while True:
        data = await _wait(channel.read(), FETCH_READ_IDLE_S)
        if first:
            timings.mark("first byte")
            first = False
        for event in get.receive_data(data):
            if isinstance(event, ResponseHead):
                status = event
                job.say(event.status_line)
                location = event.header("location")
                if 300 <= event.status < 400 and location:
                    shown = "".join(c for c in location if c.isprintable())[:500]
                    job.say(f"redirect to {shown} not followed")
            elif isinstance(event, BodyChunk):
                body += len(event.data)
                try:
                    output.write(event.data)
                except (OSError, ValueError) as exc:
                    job.say(f"{PROG}: cannot write the body: {exc}")
                    return ExitStatus.OUTPUT_FAILED, body
            else:
                assert status is not None
                ok = 200 <= status.status < 300
                return (ExitStatus.OK if ok else ExitStatus.HTTP_ERROR), body


async def fetch(
    options: FrontOptions,
    url: Url,
    redactor: Redactor,
    *,
    head: bool = False,
    output: BinaryIO,
    err: TextIO,
    factory: ClientFactory = default_client_factory,
    context: ssl.SSLContext | None = None,
) -> int:
    """Bootstrap, GET ``url``, write the body to ``output``; the exit status."""
    timings = _Timings()
    if options.reject_internal and (why := internal_reason(url.host)) is not None:
        print_line(
            err,
            f"{PROG}: refusing an internal destination ({why}); --allow-internal-addresses "
            "lets it through",
            redactor,
        )
        return ExitStatus.STREAM_REFUSED
    tor = make_client(options, factory, err=err, redactor=redactor)
    try:
        try:
            await bootstrap(tor)
        except Exception as exc:
            print_line(err, f"{PROG}: bootstrap failed: {describe_failure(exc)[2]}", redactor)
            return bootstrap_status(exc)
        timings.mark("bootstrap")
        try:
            reader, writer = await _wait(
                tor.open_connection(url.host, url.port, isolation=None), FRONT_STREAM_TIMEOUT_S
            )
        except Exception as exc:
            print_line(err, f"{PROG}: stream failed: {describe_failure(exc)[2]}", redactor)
            return stream_status(exc)
        timings.mark("connect")
        try:
            job = _Job(url, head, output, err, redactor, timings, context)
            return await _converse(reader, writer, job)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
    finally:
        await tor.aclose()


async def _converse(reader: Any, writer: Any, job: _Job) -> int:
    url = job.url
    channel: _Plain | TlsStream = _Plain(reader, writer)
    if url.tls:
        context = job.context or ssl.create_default_context()
        tls = TlsStream(reader, writer, context, url.host)
        try:
            await _wait(tls.handshake(), FETCH_TLS_TIMEOUT_S)
        except Exception as exc:  # ssl.SSLError, the stream's end (ConnectionError, its
            # END or DESTROY error), the deadline
            reason = getattr(exc, "verify_message", None) or describe_failure(exc)[2]
            job.say(f"{PROG}: TLS with {url.host} failed: {reason}")
            return ExitStatus.TLS_FAILED
        job.timings.mark("TLS")
        channel = tls
    try:
        status, body = await _exchange(channel, job)
    except Exception as exc:  # bad HTTP, TLS, or the stream cut (END, DESTROY, deadline)
        job.say(f"{PROG}: transfer failed: {describe_failure(exc)[2]}")
        return ExitStatus.BAD_RESPONSE
    with contextlib.suppress(OSError, ValueError):
        job.output.flush()
    job.say(job.timings.line(body))
    return status


async def _until_stopped(work: Awaitable[int], stop: StopSignal) -> int:
    with watching_signals(stop):
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(stop.event.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return ExitStatus.INTERRUPTED


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    """``webtunnel-pt fetch``: see :mod:`webtunnel_pt.front.exit_codes` for the status."""
    try:
        options = load_options(args)
        url = parse_url(args.url)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ExitStatus.CONFIG
    register_secrets(options, redactor)
    try:
        output: BinaryIO = open(args.output, "wb") if args.output else sys.stdout.buffer
    except OSError as exc:
        print(f"{PROG}: cannot open {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return ExitStatus.OUTPUT_FAILED
    try:
        work = fetch(options, url, redactor, head=args.head, output=output, err=sys.stderr)
        return asyncio.run(_until_stopped(work, StopSignal()))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    finally:
        if args.output:
            output.close()
