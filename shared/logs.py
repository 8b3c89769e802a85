"""Logging set-up for jetpost processes: our lines at the chosen level, libraries'
chatter (aiosmtpd per-command lines, pgserver's command echo) at WARNING."""

from __future__ import annotations

import logging

QUIET = ("mail.log", "pgserver", "faststream.access")


class FetchTimeoutNoise(logging.Filter):
    """Drops FastStream's report of an idle pull fetch that timed out.

    nats-py 2.16 can raise a bare asyncio.TimeoutError from an empty `fetch`
    (FastStream only suppresses nats.errors.TimeoutError), so FastStream's task
    supervisor logs a traceback and restarts the fetch loop. Nothing is lost: the
    loop resumes at once. Any other error still gets through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "is being executed" in message:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, TimeoutError) and "raised an exception" in message)


def faststream_logger() -> logging.Logger:
    logger = logging.getLogger("jetpost.broker")
    if not any(isinstance(f, FetchTimeoutNoise) for f in logger.filters):
        logger.addFilter(FetchTimeoutNoise())
    return logger


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
