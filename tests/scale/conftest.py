"""Fixtures for the scale tests: a real SeaweedFS (the staging tests' launcher), event files, and
checkpoint folders in the payload's layout."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from wrapper.staging import StagingOptions

_buckets = itertools.count()


@pytest.fixture
def s3env(seaweed_server, monkeypatch):
    """The endpoint and credentials in the environment, as on a worker node; nothing else AWS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in seaweed_server.env().items():
        monkeypatch.setenv(name, value)
    return seaweed_server


@pytest.fixture
def bucket(seaweed_server) -> str:
    name = f"scale{os.getpid()}-{next(_buckets)}"
    seaweed_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def options(tmp_path) -> StagingOptions:
    workdir = tmp_path / "job"
    workdir.mkdir()
    return StagingOptions(workdir=workdir, s3_path_style=True, retries=1, timeout_s=10.0)


@pytest.fixture
def make_checkpoint(tmp_path):
    """A checkpoint folder as payload.training writes it: model.npz, optimizer.npz, state.json."""
    def make(epoch: int, step: int = 0, config: str = "tiny", seed: int = 0) -> Path:
        folder = tmp_path / "written" / f"ckpt-e{epoch:04d}-s{step:07d}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(seed + epoch)
        np.savez(folder / "model.npz", rng.random((64, 3)).astype("float32"))
        np.savez(folder / "optimizer.npz", rng.random(16).astype("float32"))
        (folder / "state.json").write_text(json.dumps({"model_config": config, "epoch": epoch,
                                                       "step": step, "learning_rate": 1e-3}))
        return folder

    return make
