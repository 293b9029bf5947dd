"""Fixtures of the serving tests: the real servers (tests/support/triton.py) and a tiny model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.samples import events_and_tiny_model
from tests.support.triton import serve_python, triton_server, triton_test_model  # noqa: F401 (fixtures)


@dataclass(frozen=True)
class TinyModel:
    """A `tiny` network trained one epoch (`model`) and the event file it was trained on."""

    model: Path
    events: Path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyModel:
    """A `tiny` model trained one epoch on a synthetic event file (made in a child process)."""
    folder = tmp_path_factory.mktemp("tiny-model")
    events, model = folder / "events.h5", folder / "tiny.keras"
    events_and_tiny_model({events: 7}, model, events)
    return TinyModel(model, events)


