"""`dune-events` end to end, as a separate process: simulate, inspect, convert-csv, show, errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from payload.events import iter_batches
from payload.simulate import simulate_events
from tests.support.csv_files import write_csv


ROOT = Path(__file__).resolve().parents[2]


def dune_events(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "payload.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_simulate_inspect_and_show(tmp_path):
    run = dune_events("simulate", "--events", 3, "--seed", 5, "-o", "sim.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "sim.h5: 3 events (seed 5)" in run.stdout
    images, labels, _ = simulate_events(3, 5)
    (batch,) = iter_batches([tmp_path / "sim.h5"], 3, with_labels=True)
    assert np.array_equal(batch.images[..., 0], images) and np.array_equal(batch.labels, labels)

    run = dune_events("inspect", "sim.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "sim.h5: 3 events" in run.stdout and "/labels" in run.stdout and "seed: 5" in run.stdout

    run = dune_events("show", "sim.h5", "--event", 2, "-o", "ev.png", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    png = imread(tmp_path / "ev.png")
    assert png.shape[0] > 300 and png[..., :3].std() > 0.05


def test_convert_csv(tmp_path):
    images, labels, _ = simulate_events(2, 6)
    write_csv(tmp_path / "f.csv", tmp_path / "l.csv", images, labels)
    run = dune_events("convert-csv", "f.csv", "l.csv", "-o", "out.h5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "out.h5: 2 events" in run.stdout
    (batch,) = iter_batches([tmp_path / "out.h5"], 2, with_labels=True)
    assert np.array_equal(batch.images[..., 0], images)


@pytest.mark.parametrize("args, message", [
    (("inspect", "missing.h5"), "missing.h5: no such file"),
    (("inspect", "text.h5"), "text.h5: is not an HDF5 file"),
    (("simulate", "--events", "-4", "--seed", "1", "-o", "x.h5"), "--events: must be >= 0"),
    (("simulate", "--events", "many", "--seed", "1", "-o", "x.h5"), "not an integer: 'many'"),
    (("simulate", "--seed", "1", "-o", "x.h5"), "required: --events"),
    (("simulate", "--events", "1", "--seed", "1", "-o", "nodir/x.h5"), "creating the file failed"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    ((), "required: COMMAND"),
    (("convert-csv", "f.csv", "missing.csv", "-o", "o.h5"), "missing.csv: no such file"),
])
def test_errors_are_one_line_and_exit_1(tmp_path, args, message):
    (tmp_path / "text.h5").write_text("not hdf5\n")
    (tmp_path / "f.csv").write_text("a,b\n1,2\n")
    run = dune_events(*args, cwd=tmp_path)
    assert run.returncode == 1
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "o.h5").exists()


def test_help_exits_0(tmp_path):
    run = dune_events("show", "--help", cwd=tmp_path)
    assert run.returncode == 0 and "--predictions" in run.stdout
