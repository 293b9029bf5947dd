"""Keeps credentials out of the log records of the libraries staging drives.

botocore logs request headers at DEBUG (the access key, a session token), urllib3 logs the path
and query of a URL it retries (a presigned URL's signature): every record of those loggers is
redacted before any handler sees it, with the credential values boto3 found added to the
environment's. Filters sit on each library logger, because a logger's filters do not apply to
records that propagate from its children; it is installed again whenever a client is made, so
loggers of modules imported since are covered too.
"""
from __future__ import annotations

import logging
from typing import Iterable

from wrapper.redact import redact

LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "requests")


class _Redacting(logging.Filter):
    def __init__(self):
        super().__init__()
        self.secrets: set = set()

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self.scrub(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = _Redacting()


def guard_library_logs(secrets: Iterable[str] = ()) -> None:
    """Redact every record of the S3/HTTP libraries' loggers, also of these credential values."""
    _FILTER.secrets.update(s for s in secrets if s and len(s) >= 4)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.split(".")[0] in LIBRARIES and isinstance(logger, logging.Logger) \
                and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
