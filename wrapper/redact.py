"""Removes credentials from any text that may reach a log, a report or an exception message."""
from __future__ import annotations

import os
import re
from typing import Optional
from urllib.parse import quote, quote_plus

from wrapper.tokens import discovered_tokens

# Values of these variables never appear in output, whatever text carries them. Bearer tokens
# (BEARER_TOKEN and the token files) come from wrapper.tokens, the places the staging reads.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "BEARER_TOKEN",
              "X509_USER_PROXY", "PANDA_AUTH_TOKEN", "OIDC_TOKEN")
MIN_SECRET = 4     # shorter values would blank ordinary words

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


def redact(text: str, values: Optional[list[str]] = None) -> str:
    """`text` with URL credentials, signatures, bearer tokens (by pattern, and by value wherever
    wrapper.tokens finds them) and secret env values replaced by ***. A caller redacting many
    texts at once passes `values` (secret_values()), so the token files are read once."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for value in secret_values() if values is None else values:
        text = text.replace(value, "***")
    return text


def secret_values() -> list[str]:
    """Every secret value of this process (SECRET_ENV, every discovered bearer token), each also
    as a URL carries it (percent-encoded, '+' for spaces), longest first so that no shorter value
    leaves part of a longer one behind."""
    values = {os.environ.get(name, "") for name in SECRET_ENV} | set(discovered_tokens())
    forms = {form for value in values if len(value) >= MIN_SECRET
             for form in (value, quote(value, safe=""), quote(value), quote_plus(value))}
    return sorted(forms, key=len, reverse=True)
