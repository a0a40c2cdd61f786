"""Put the logger tree back after a test ran ``cli.main``, which sets it up for the process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from webtunnel_pt import logs


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Handlers, level and propagation of the package's and asyncio's loggers, as they were."""
    loggers = [logging.getLogger(logs.LOGGER_NAME), logging.getLogger("asyncio")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                if handler not in handlers:
                    handler.close()
            for handler in handlers:
                logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
