"""Settings every test shares: quiet frameworks, the TensorFlow backend, no GPU probing surprises."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("PYTHONPATH", str(ROOT))


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory):
    """One SeaweedFS S3 server for the session (authentication on, loopback only), stopped by PID."""
    from tests.support import seaweed

    server = seaweed.start(tmp_path_factory.mktemp("seaweed"))
    yield server
    seaweed.stop(server)
