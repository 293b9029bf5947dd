"""Fixtures for the JEDI chain: both real pilots' sources, real event files and a real tiny model."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.jedi import pilots


@pytest.fixture(scope="session", params=["pilot-3.11.5.1", "pilot-3.7.0.36"])
def pilot(request, tmp_path_factory) -> pilots.Pilot:
    """Each pilot version in turn: 3.11.5.1 unpacked from the production tarball, 3.7.0.36 installed."""
    version = request.param.removeprefix("pilot-")
    if version == "3.7.0.36":
        return pilots.Pilot(version, None)
    return pilots.Pilot(version, pilots.unpack_pilot3(tmp_path_factory.mktemp("pilot3") / "src"))


@pytest.fixture(scope="session")
def chain_data(tmp_path_factory) -> Path:
    """Three small event files and a model of config `tiny` trained on one of them (real HDF5, Keras)."""
    from payload import api
    from payload.simulate import simulate_events

    data = tmp_path_factory.mktemp("jedi-data")
    for n in range(1, 4):
        simulate_events(2, 200 + n, path=data / f"events.{n}.h5")
    api.train([data / "events.1.h5"], data / "model.keras",
              api.TrainConfig(model_config="tiny", epochs=1, batch_size=2, validation_split=0.0))
    return data
