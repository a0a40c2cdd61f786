"""Benchmarks for webtunnel-pt: ``python -m bench.run`` (``make bench``).

See docs/performance.md.
"""
