"""Progress lines on stdout: timestamped, at least once a minute during long work.

They keep `payload.stdout` fresh for the pilot's looping-job detector and tell an operator watching
the log how far the job is and when it will end.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from wrapper.console import log

if TYPE_CHECKING:
    from payload.api import Progress


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressPrinter:
    """A callback for the payload (`printer(Progress)`) plus a heartbeat thread.

    Lines come every `interval` seconds while progress is reported; the heartbeat prints
    "still working" when nothing was reported for `heartbeat` seconds (a long compile, a slow read).
    """

    def __init__(self, interval: float = 10.0, heartbeat: float = 50.0):
        self.interval, self.heartbeat = interval, heartbeat
        self._last_print = 0.0
        self._last_tick = time.monotonic()
        self._stage_start: dict[str, tuple] = {}   # stage -> (time, units done) at its first tick
        self._stage = "starting"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="progress-heartbeat", daemon=True)

    def __enter__(self) -> "ProgressPrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def stage(self, name: str) -> None:
        """Name what the job does now (used by the heartbeat line)."""
        self._stage = name
        self._last_tick = time.monotonic()
        log(f"{name}")

    def __call__(self, tick: Progress) -> None:
        now = time.monotonic()
        self._last_tick = now
        self._stage = tick.stage
        start, done0 = self._stage_start.setdefault(tick.stage, (now, tick.done))
        if now - self._last_print < self.interval and tick.done < tick.total:
            return
        self._last_print = now
        elapsed = now - start
        # The first tick of a stage only starts its clock: no rate can be told from it.
        rate = (tick.done - done0) / elapsed if elapsed > 0.5 else 0.0
        parts = [f"{tick.stage}: {tick.done}/{tick.total} {tick.unit}"]
        if tick.total > 0:
            parts.append(f"({100.0 * tick.done / tick.total:.1f}%)")
        if rate > 0:
            parts.append(f"{rate:.2f} {tick.unit}/s")
        if 0 < tick.done < tick.total and rate > 0:
            parts.append(f"ETA {_duration((tick.total - tick.done) / rate)}")
        parts += [f"{k}={v:.4g}" for k, v in tick.metrics.items()]
        log(" ".join(parts))

    def _beat(self) -> None:
        while not self._stop.wait(min(self.heartbeat, 5.0)):
            if time.monotonic() - self._last_tick >= self.heartbeat:
                self._last_tick = time.monotonic()
                log(f"still working: {self._stage}")
