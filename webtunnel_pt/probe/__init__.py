"""``webtunnel-pt probe``: check a bridge layer by layer, with the built-in Tor link.

    report.py (S)   layers, results, exit statuses, which layer a failure belongs to
    output.py (S)   text lines, the verdict, the JSON document, the exit-status help
    run.py          the layers over the network (asyncio); loads ``cryptography``

The command line imports ``run`` only when ``probe`` runs (and ``output`` for its ``--help``), so
managed mode never loads any of it.
"""
