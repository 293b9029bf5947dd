"""Failure messages in one shape, as Rucio's clients give them: which file, which source, which cause.

`input {uri} ({source}): {cause}: {detail}[, after N attempts]`. Every text passes through the
redaction helper, so a URL's userinfo, a signature or a token never reaches a message.
"""
from __future__ import annotations

from typing import Optional

from wrapper.causes import Cause
from wrapper.errors import InputFileError, OutputFileError
from wrapper.redact import redact


def attempts_text(attempts: Optional[int]) -> str:
    """", after 3 attempts" (nothing when the count is unknown or zero)."""
    if not attempts:
        return ""
    return f", after {attempts} attempt" + ("" if attempts == 1 else "s")


def printable(text: str) -> str:
    """`text` with control characters (NUL, newlines) escaped, so a hostile name cannot forge log lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def input_error(uri: str, source: str, cause: Cause, detail: str,
                attempts: Optional[int] = None) -> InputFileError:
    """An InputFileError (exit 9) naming the file, its source and the cause."""
    uri = printable(redact(uri))
    message = printable(redact(f"input {uri} ({source}): {cause}: {detail}{attempts_text(attempts)}"))
    return InputFileError(message, cause=cause, source=uri)


def output_error(path: str, url: str, cause: Cause, detail: str,
                 attempts: Optional[int] = None) -> OutputFileError:
    """An OutputFileError (exit 11) naming the output, its destination and the cause."""
    message = printable(redact(f"output {path} -> {url}: {cause}: {detail}{attempts_text(attempts)}"))
    return OutputFileError(message, cause=cause)
