"""Test data for staging: reproducible bytes, real HDF5 event files, and what a directory holds."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def payload(size: int, seed: int = 0) -> bytes:
    """`size` reproducible bytes that do not compress away."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def write_events(path: Path, events: int, seed: int = 1) -> Path:
    """A real HDF5 events file in the layout of docs/design.md, 'File formats': sparse tracks,
    chunked and compressed."""
    import h5py

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
    with h5py.File(path, "w") as out:
        for name, data in (("images", images), ("labels", labels)):
            out.create_dataset(name, data=data, chunks=(1, 320, 320), compression="gzip", compression_opts=1)
        out.create_dataset("event_id", data=np.arange(events, dtype=np.int64))
        out.attrs.update({"detector": "ProtoDUNE-SP", "plane": "W", "format_version": 1, "seed": seed})
    return path


def files_under(root: Path) -> set:
    """Every file below `root`, relative, to see what a staging call left behind."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}
