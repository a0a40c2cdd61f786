"""Front ends of the built-in Tor client: what turns :class:`TorClient` into something people use.

    webtunnel-pt socks --bridge "<line>" [--listen 127.0.0.1:9150] ...   socks_front.py
    webtunnel-pt fetch --bridge "<line>" [-o FILE] [--head] URL         fetch.py

Each front end exposes ``add_arguments(parser)`` and ``run(args, redactor) -> int`` for the
``Command`` table of :mod:`webtunnel_pt.cli`. The pure parts are separate modules: the torrc
reader (torrc.py), the shared option model (options.py, values.py), tor's internal-address rule
(internal.py), the END-reason to SOCKS-reply mapping (socks_reply.py), the SOCKS request core
with tor's RESOLVE extension (socks_proto.py), bootstrap progress lines (progress.py), the HTTP
GET exchange (http_get.py) and the exit statuses of ``fetch`` (exit_codes.py).
"""
