"""WLCG bearer tokens: where a job finds them (the WLCG Bearer Token Discovery order).

One list of places, read by the HTTPS staging (which sends the first token found) and by the
redaction (which removes every token found, wherever it sits in the order): the two cannot drift.
The places are read again at every call, so a token agent may renew a file while a long job runs.
"""
from __future__ import annotations

import os
from typing import Optional


def token_files() -> list[str]:
    """The files that may hold a token, in discovery order: BEARER_TOKEN_FILE,
    $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>."""
    uid = os.getuid()
    files = [os.environ.get("BEARER_TOKEN_FILE", "")]
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], f"bt_u{uid}"))
    files.append(f"/tmp/bt_u{uid}")
    return [path for path in files if path]


def discovered_tokens() -> list[str]:
    """Every token this process can find, in discovery order: BEARER_TOKEN, then each file's
    content (stripped); places that are unset, unreadable or empty give none."""
    found = [os.environ.get("BEARER_TOKEN", "").strip()]
    for path in token_files():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                found.append(handle.read().strip())
        except OSError:
            continue
    return [token for token in found if token]


def bearer_token() -> Optional[str]:
    """The token a request carries: the first one found, or None."""
    found = discovered_tokens()
    return found[0] if found else None
