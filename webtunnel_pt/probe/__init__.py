"""``webtunnel-pt probe``: check a bridge layer by layer, with the built-in Tor link.

    report.py (S)   layers, results, exit statuses, which layer a failure belongs to
    output.py (S)   text lines, the verdict, the JSON document, the exit-status help
    consensus.py (S)  the consensus layer: options, the figures of a verified directory,
                    the check and authorities named when it fails
    run.py          the layers over the network (asyncio); loads ``cryptography``
    bridge_list.py (S)  ``--file``: the input lines, comments, bad lines, duplicates
    order.py (S)    ``--file``: which lines' results may be written now (input or finish order)
    table.py (S)    ``--file``: live lines, the summary table and counts, JSON Lines
    batch.py        ``--file``: many probes at once (asyncio TaskGroup, bounded concurrency)

The command line imports ``run`` and ``batch`` only when ``probe`` runs (and ``output`` for
its ``--help``), so managed mode never loads any of it.
"""
