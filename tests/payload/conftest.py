"""Small real event files shared by the payload tests.

- `events_file`: 12 labelled synthetic events (seed 7), written once per session; read it, never
  change it.
- `unlabelled_events_file`: 5 synthetic events (seed 8) without /labels, as inference inputs.
- `make_events_file(name, n_events=4, seed=1, with_labels=True, first_event=0)`: writes a new
  synthetic file under the test's tmp_path and returns its path.
"""
from __future__ import annotations

import pytest

from payload.events import write_events
from payload.simulate import simulate_events


@pytest.fixture(scope="session")
def events_file(tmp_path_factory):
    return simulate_events(12, 7, path=tmp_path_factory.mktemp("events") / "labelled.h5")


@pytest.fixture(scope="session")
def unlabelled_events_file(tmp_path_factory):
    images, _, event_id = simulate_events(5, 8)
    path = tmp_path_factory.mktemp("events") / "unlabelled.h5"
    write_events(path, images, event_ids=event_id, attrs={"generator": "payload.simulate", "seed": 8})
    return path


@pytest.fixture
def make_events_file(tmp_path):
    def make(name="events.h5", n_events=4, seed=1, with_labels=True, first_event=0):
        path = tmp_path / name
        if with_labels:
            return simulate_events(n_events, seed, path=path, first_event=first_event)
        images, _, event_id = simulate_events(n_events, seed, first_event=first_event)
        write_events(path, images, event_ids=event_id)
        return path

    return make
