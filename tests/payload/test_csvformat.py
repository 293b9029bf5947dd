"""The original CSV format: exact round trip through the event file, and clear errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from payload.csvformat import VALUES_PER_EVENT, convert_csv
from payload.errors import EventFileError
from payload.events import iter_batches
from payload.simulate import simulate_events
from tests.support.csv_files import write_csv


@pytest.fixture(scope="module")
def events():
    return simulate_events(3, 17)


@pytest.fixture(scope="module")
def csv_template(tmp_path_factory, events):
    images, labels, _ = events
    folder = tmp_path_factory.mktemp("csv")
    write_csv(folder / "features.csv", folder / "labels.csv", images, labels)
    return folder


@pytest.fixture
def csv_pair(tmp_path, csv_template):
    """A fresh copy of the template pair, free to be broken by the test."""
    for name in ("features.csv", "labels.csv"):
        shutil.copy(csv_template / name, tmp_path / name)
    return tmp_path / "features.csv", tmp_path / "labels.csv"


def replace_line(path, number, text):
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines))


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_round_trip_is_exact(tmp_path, events, suffix):
    images, labels, _ = events
    features, truth = tmp_path / f"f{suffix}", tmp_path / f"l{suffix}"
    write_csv(features, truth, images, labels)

    assert convert_csv(features, truth, tmp_path / "out.h5", chunk_events=2) == 3

    batches = list(iter_batches([tmp_path / "out.h5"], 2, with_labels=True))
    assert np.concatenate([b.event_id for b in batches]).tolist() == [0, 1, 2]
    assert np.array_equal(np.concatenate([b.images for b in batches])[..., 0], images)
    assert np.array_equal(np.concatenate([b.labels for b in batches]), labels)


def test_the_csv_layout_is_a_header_and_one_event_per_row(csv_pair, events):
    features, truth = csv_pair
    lines = features.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("pixel0,pixel1,")
    row = np.array(lines[2].split(","), dtype=np.float32)
    assert row.size == VALUES_PER_EVENT and np.array_equal(row.reshape(320, 320), events[0][1])
    assert set(truth.read_text().splitlines()[1].split(",")) <= {"0", "1", "2"}


def test_raw_charges_are_normalised_per_event(tmp_path, events):
    images, labels, _ = events
    raw = images * np.array([50.0, 3.0, 700.0], np.float32)[:, None, None]
    write_csv(tmp_path / "f.csv", tmp_path / "l.csv", raw, labels)
    convert_csv(tmp_path / "f.csv", tmp_path / "l.csv", tmp_path / "out.h5")
    (batch,) = iter_batches([tmp_path / "out.h5"], 3)
    assert np.allclose(batch.images[..., 0], images, rtol=1e-6)
    assert batch.images.max(axis=(1, 2, 3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("which, line, text, message", [
    ("features", 3, "1,2,3\n", r"features.csv: line 3 \(event 1\) has 3 values, expected 102400"),
    ("labels", 4, ",".join(["0"] * (VALUES_PER_EVENT + 1)) + "\n",
     r"labels.csv: line 4 \(event 2\) has 102401 values"),
    ("features", 2, "abc," + ",".join(["0"] * (VALUES_PER_EVENT - 1)) + "\n",
     r"features.csv: line 2 \(event 0\) holds a non-numeric value 'abc'"),
    ("labels", 3, "3," + ",".join(["0"] * (VALUES_PER_EVENT - 1)) + "\n",
     r"labels.csv: line 3 \(event 1\) holds labels other than the integers 0..2"),
    ("labels", 2, "0.5," + ",".join(["0"] * (VALUES_PER_EVENT - 1)) + "\n", "labels other than"),
    ("features", 4, "nan," + ",".join(["0"] * (VALUES_PER_EVENT - 1)) + "\n", "NaN or infinite"),
])
def test_bad_rows_are_named_and_leave_no_output(tmp_path, csv_pair, which, line, text, message):
    features, truth = csv_pair
    replace_line(features if which == "features" else truth, line, text)
    with pytest.raises(EventFileError, match=message) as err:
        convert_csv(features, truth, tmp_path / "out.h5")
    assert err.value.event == line - 2
    assert not (tmp_path / "out.h5").exists()


def test_row_counts_must_match(tmp_path, csv_pair):
    features, truth = csv_pair
    lines = truth.read_text().splitlines(keepends=True)
    truth.write_text("".join(lines[:-1]))
    with pytest.raises(EventFileError, match="labels.csv: ends after 2 events but .*features.csv has more"):
        convert_csv(features, truth, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_empty_and_header_only_files_are_refused(tmp_path, csv_pair):
    features, truth = csv_pair
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EventFileError, match="empty.csv: empty file"):
        convert_csv(tmp_path / "empty.csv", truth, tmp_path / "out.h5")
    header = features.read_text().splitlines(keepends=True)[0]
    (tmp_path / "f0.csv").write_text(header)
    (tmp_path / "l0.csv").write_text(header)
    with pytest.raises(EventFileError, match="f0.csv: holds a header but no events"):
        convert_csv(tmp_path / "f0.csv", tmp_path / "l0.csv", tmp_path / "out.h5")
    with pytest.raises(EventFileError, match="missing.csv: no such file"):
        convert_csv(tmp_path / "missing.csv", truth, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
