"""What the physics scripts share: where the repository is, how a run records its command and date,
and how a metric that may be undefined is printed."""
from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]


def command_line(module: str, argv: Sequence[str]) -> str:
    """The command that reproduces this run from the repository root, for a card or a summary."""
    return " ".join(["python", "-m", f"scripts.physics.{module}", *(shlex.quote(a) for a in argv)])


def utc_stamp() -> str:
    """Now, in UTC, as the cards write it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_metric(value: Optional[float]) -> str:
    """A metric with three decimals, or null where it is undefined (a class absent from the events)."""
    return "null" if value is None else f"{value:.3f}"
