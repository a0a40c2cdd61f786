"""Certificates made for the test run with trustme: a test CA and server certificates."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("bridge.test", "127.0.0.1", "::1")


@dataclass
class Pki:
    ca: trustme.CA
    ca_file: Path
    server_context: ssl.SSLContext

    def server_context_for(self, *names: str, expired: bool = False) -> ssl.SSLContext:
        kwargs = {}
        if expired:
            now = datetime.datetime.now(datetime.UTC)
            kwargs = {
                "not_before": now - datetime.timedelta(days=30),
                "not_after": now - datetime.timedelta(days=1),
            }
        cert = self.ca.issue_cert(*names, **kwargs)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx


def bad_certificate_context(pki: Pki, kind: str) -> ssl.SSLContext:
    """A server context the PT must refuse: ``expired`` (from the trusted test CA) or
    ``self-signed`` (from a CA nobody trusts)."""
    if kind == "expired":
        return pki.server_context_for("127.0.0.1", expired=True)
    if kind == "self-signed":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
        return ctx
    raise ValueError(kind)


def make_pki(directory: Path) -> Pki:
    ca = trustme.CA()
    ca_file = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*SERVER_NAMES).configure_cert(ctx)
    return Pki(ca, ca_file, ctx)
