"""Front ends of the built-in Tor client: what turns :class:`TorClient` into something people use.

    webtunnel-pt socks --bridge "<line>" [--listen 127.0.0.1:9150] ...   socks_front.py
    webtunnel-pt fetch --bridge "<line>" [-o FILE] [--head] URL         fetch.py

Each front end exposes ``add_arguments(parser)`` and ``run(args, redactor) -> int`` for the
``Command`` table of :mod:`webtunnel_pt.cli`, gathered with their help in commands.py (light to
import: the runners load the rest when chosen). session.py builds and bootstraps the client
(the only place that knows ``TorClient``'s constructor) and watches SIGINT/SIGTERM;
tls_stream.py runs TLS over any stream pair. The pure parts are separate modules: the torrc
reader (torrc.py), the shared option model (options.py, values.py), tor's internal-address rule
(internal.py), the END-reason to SOCKS-reply mapping (socks_reply.py), the SOCKS request core
with tor's RESOLVE extension (socks_proto.py), bootstrap progress lines (progress.py), the HTTP
GET exchange (http_get.py) and the exit statuses of ``fetch`` (exit_codes.py).
"""
