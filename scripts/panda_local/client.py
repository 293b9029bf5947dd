"""Calls to panda-server's REST API (`/api/v1/<module>/<method>`) as a grid identity.

The server answers every call with `{"success": bool, "message": str, "data": ...}`; `call`
returns `data` and raises StackError with the server's message when `success` is false.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from scripts.panda_local.errors import StackError


@dataclass(frozen=True)
class ApiClient:
    """The server's HTTPS base URL (`https://127.0.0.1:PORT/api/v1`), the CA to trust and the
    proxy (certificate and key) to authenticate with."""

    base_url: str
    ca_cert: Path
    proxy: Path
    timeout_s: float = 120.0

    def call(self, endpoint: str, data: Optional[dict] = None, *, method: str = "POST") -> Any:
        """`endpoint` ("pilot/acquire_jobs") with `data` as JSON (POST) or query (GET)."""
        import requests

        response = requests.request(
            method, f"{self.base_url}/{endpoint}", timeout=self.timeout_s,
            cert=(str(self.proxy), str(self.proxy)), verify=str(self.ca_cert),
            headers={"Accept": "application/json"},
            **({"json": data or {}} if method == "POST" else {"params": data or {}}))
        if response.status_code != 200:
            raise StackError(f"{endpoint}: HTTP {response.status_code}: {response.text[:500]}")
        body = response.json()
        if not body.get("success"):
            raise StackError(f"{endpoint}: {body.get('message') or body}")
        return body.get("data")
