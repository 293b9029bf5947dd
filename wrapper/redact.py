"""Removes credentials from any text that may reach a log, a report or an exception message."""
from __future__ import annotations

import os
import re

# Values of these variables never appear in output, whatever text carries them.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "BEARER_TOKEN",
              "X509_USER_PROXY", "PANDA_AUTH_TOKEN", "OIDC_TOKEN")

_PATTERNS = (
    # user:pass@host; AWS secret keys hold '/', so the password part may too (bounded, so that a
    # long argument string full of URLs stays linear)
    (re.compile(r"(?i)(://)[^/\s:@]+(:[^\s@]{0,256})?@"), r"\1***@"),
    (re.compile(r"(?i)([?&](?:X-Amz-[A-Za-z-]+|Signature|AWSAccessKeyId|access_token|token|"
                r"authz|sig|se|sp|sv|sr)=)[^&\s]+"), r"\1***"),                     # signed URLs
    (re.compile(r"(?i)(authorization:\s*(?:bearer|basic|aws4-hmac-sha256)?\s*)\S+"), r"\1***"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1***"),
    # JWTs; only at the start of a token-character run, which keeps long runs linear
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "***"),
)


def redact(text: str) -> str:
    """`text` with URL credentials, signatures, bearer tokens and secret env values replaced by ***."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    token_file = os.environ.get("BEARER_TOKEN_FILE")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError:
            token = ""
        if len(token) >= 4:
            text = text.replace(token, "***")
    return text
