"""Test data: reproducible bytes, real HDF5 event files, and what a directory holds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def payload(size: int, seed: int = 0) -> bytes:
    """`size` reproducible bytes that do not compress away."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def write_events(path: Path, events: int, seed: int = 1) -> Path:
    """A real labelled event file, written by the payload's own writer: sparse tracks over a few
    noise hits, so it compresses as real events do."""
    from payload.events import write_events as write_event_file

    rng = np.random.default_rng(seed)
    images = np.zeros((events, 320, 320), np.float32)
    labels = np.zeros((events, 320, 320), np.uint8)
    for event in range(events):
        for _ in range(12):
            row, col = rng.integers(0, 320, 2)
            length = rng.integers(20, 200)
            cols = np.clip(col + np.arange(length), 0, 319)
            rows = np.clip(row + (np.arange(length) * rng.uniform(-1, 1)).astype(int), 0, 319)
            images[event, rows, cols] = rng.uniform(0.1, 1.0, length)
            labels[event, rows, cols] = rng.integers(1, 3)
        images[event] += rng.random((320, 320)).astype(np.float32) * (rng.random((320, 320)) < 0.02)
    write_event_file(path, images, labels, attrs={"seed": seed})
    return path


def files_under(root: Path) -> set:
    """Every file below `root`, relative, to see what a staging call left behind."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def events_and_tiny_model(events: dict, model: Path, trained_on: Path, timeout_s: float = 600) -> None:
    """Synthetic event files ({path: seed}, 2 events each) and a `tiny` model trained one epoch on
    `trained_on`, made in a child process so the framework never loads in the caller's."""
    script = ("import json, sys; from pathlib import Path; from payload import api; "
              "from payload.simulate import simulate_events; spec = json.loads(sys.argv[1]); "
              "[simulate_events(2, seed, path=Path(path)) for path, seed in spec['events'].items()]; "
              "api.train([Path(spec['trained_on'])], Path(spec['model']), api.TrainConfig("
              "model_config='tiny', epochs=1, batch_size=2, validation_split=0.0))")
    spec = {"events": {str(path): seed for path, seed in events.items()}, "model": str(model),
            "trained_on": str(trained_on)}
    made = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s)
    if made.returncode != 0:
        raise RuntimeError(f"making event files and a model failed: {made.stderr[-2000:]}")
