"""Event files: round trips, streaming over several files, prefetch thread, schema errors, predictions."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from payload.errors import EmptySelection, EventFileError, PayloadError
from payload.events import (
    CLASS_NAMES, FORMAT_VERSION, IMAGE_SHAPE, PREFETCH_THREAD_NAME, WRITER_THREAD_NAME, Batch, EventWriter,
    PredictionWriter, describe_file, inspect_inputs, iter_batches, read_event, read_predictions,
    write_events,
)
from payload.simulate import simulate_events


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == PREFETCH_THREAD_NAME and t.is_alive()]


def raw_file(path, **datasets):
    """An HDF5 file holding exactly the given datasets (to build files that break the schema)."""
    with h5py.File(path, "w") as f:
        for key, data in datasets.items():
            f.create_dataset(key, data=data)
    return path


def valid_arrays(n=3, seed=3):
    return simulate_events(n, seed)


def collect(batches):
    batches = list(batches)
    return (np.concatenate([b.event_id for b in batches]), np.concatenate([b.images for b in batches]),
            batches)


# ---------------------------------------------------------------------------------------------
# Round trip and attributes


def test_write_then_stream_gives_back_the_same_events(tmp_path):
    images, labels, _ = valid_arrays(5)
    ids = np.array([10, 11, 12, 13, 14])
    write_events(tmp_path / "e.h5", images, labels, ids, attrs={"seed": 3})

    batches = list(iter_batches([tmp_path / "e.h5"], 2, with_labels=True))

    assert [len(b.event_id) for b in batches] == [2, 2, 1]
    b = batches[0]
    assert isinstance(b, Batch)
    assert b.images.dtype == np.float32 and b.images.shape == (2, *IMAGE_SHAPE, 1)
    assert b.labels.dtype == np.uint8 and b.event_id.dtype == np.int64
    assert np.array_equal(np.concatenate([x.images[..., 0] for x in batches]), images)
    assert np.array_equal(np.concatenate([x.labels for x in batches]), labels)
    assert np.concatenate([x.event_id for x in batches]).tolist() == ids.tolist()
    assert [x.first_index for x in batches] == [0, 2, 4]
    assert {x.source for x in batches} == {str(tmp_path / "e.h5")}


def test_files_carry_the_schema_attributes_and_chunking(tmp_path):
    images, labels, _ = valid_arrays(2)
    write_events(tmp_path / "e.h5", images, labels, attrs={"seed": 3, "generator": "test"})
    with h5py.File(tmp_path / "e.h5") as f:
        assert f["images"].chunks == (1, *IMAGE_SHAPE) and f["images"].compression is not None
        assert f["labels"].dtype == np.uint8 and f["event_id"].dtype == np.int64
        assert f["event_id"][:].tolist() == [0, 1]
        assert list(f.attrs["classes"]) == list(CLASS_NAMES)
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f.attrs["detector"] == "ProtoDUNE-SP" and f.attrs["seed"] == 3
        assert "plane" in f.attrs and "normalisation" in f.attrs
    info = describe_file(tmp_path / "e.h5")
    assert info["events"] == 2 and info["attrs"]["generator"] == "test"


def test_event_writer_appends_in_pieces_and_numbers_events(tmp_path):
    images, labels, _ = valid_arrays(5)
    with EventWriter(tmp_path / "e.h5", with_labels=True, attrs={"seed": 3}) as writer:
        writer.append(images[:2], labels[:2])
        writer.append(images[2:, ..., None], labels[2:])    # a channel axis is accepted
        assert writer.n_events == 5
    event_id, got, _ = collect(iter_batches([tmp_path / "e.h5"], 4, prefetch=0))
    assert event_id.tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(got[..., 0], images)


@pytest.mark.parametrize("bad", [
    {"labels": "wrong range"}, {"images": "nan"}, {"images": "shape"}, {"labels": "missing"},
])
def test_event_writer_refuses_bad_arrays(tmp_path, bad):
    images, labels, _ = valid_arrays(2)
    if bad.get("labels") == "wrong range":
        labels = labels.copy()
        labels[0, 0, 0] = 3
    if bad.get("images") == "nan":
        images = images.copy()
        images[1, 5, 5] = np.nan
    if bad.get("images") == "shape":
        images = images[:, :100]
    if bad.get("labels") == "missing":
        labels = None
    with pytest.raises(ValueError):
        with EventWriter(tmp_path / "e.h5", with_labels=True) as writer:
            writer.append(images, labels)
    assert not (tmp_path / "e.h5").exists()


def test_read_event_returns_one_event(events_file):
    event_id, image, labels = read_event(events_file, 3)
    images, all_labels, ids = simulate_events(4, 7)
    assert event_id == ids[3]
    assert np.array_equal(image, images[3]) and np.array_equal(labels, all_labels[3])
    with pytest.raises(EventFileError, match="no event 12"):
        read_event(events_file, 12)


# ---------------------------------------------------------------------------------------------
# Streaming over several files


@pytest.fixture
def three_files(tmp_path):
    """Files of 5, 3 and 4 events whose ids tell file and position apart."""
    paths = []
    for k, n in enumerate((5, 3, 4)):
        images = np.zeros((n, *IMAGE_SHAPE), np.float32)
        images[:, 0, 0] = np.arange(n) + 1
        path = tmp_path / f"f{k}.h5"
        write_events(path, images, np.zeros((n, *IMAGE_SHAPE), np.uint8), 100 * k + np.arange(n))
        paths.append(path)
    return paths


ALL_IDS = [0, 1, 2, 3, 4, 100, 101, 102, 200, 201, 202, 203]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_skip_and_max_select_from_the_concatenated_files(three_files, prefetch):
    for skip in range(0, 13):
        for max_events in (-1, 0, 1, 2, 4, 7, 20):
            for batch_size in (1, 2, 3, 5):
                expected = ALL_IDS[skip:] if max_events < 0 else ALL_IDS[skip:skip + max_events]
                if not expected:
                    with pytest.raises(EmptySelection):
                        iter_batches(three_files, batch_size, skip_events=skip, max_events=max_events,
                                     prefetch=prefetch)
                    continue
                batches = list(iter_batches(three_files, batch_size, skip_events=skip,
                                            max_events=max_events, with_labels=True, prefetch=prefetch))
                assert np.concatenate([b.event_id for b in batches]).tolist() == expected
                for b in batches:
                    assert 1 <= len(b.event_id) <= batch_size
                    file_number = int(b.source[-4])           # .../fK.h5
                    positions = b.event_id - 100 * file_number
                    assert positions.tolist() == list(range(b.first_index, b.first_index + len(b.event_id)))
                    assert b.images[:, 0, 0, 0].tolist() == (positions + 1).tolist()


def test_a_single_path_is_accepted_as_the_sources(three_files):
    assert [b.event_id.tolist() for b in iter_batches(three_files[1], 8)] == [[100, 101, 102]]


def test_nothing_selected_raises_no_events_at_call_time(three_files):
    with pytest.raises(EmptySelection, match="12 event"):
        iter_batches(three_files, 2, skip_events=12)
    with pytest.raises(EmptySelection):
        iter_batches(three_files, 2, max_events=0)


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0}, {"batch_size": 2, "skip_events": -1}, {"batch_size": 2, "max_events": -2},
    {"batch_size": 2, "prefetch": -1},
])
def test_bad_arguments_are_value_errors(three_files, kwargs):
    with pytest.raises(ValueError):
        iter_batches(three_files, **kwargs)


def test_consumer_stopping_early_ends_the_thread_and_closes_the_file(three_files):
    before = len(prefetch_threads())
    batches = iter_batches(three_files, 1, prefetch=2)
    first = next(batches)
    assert first.event_id.tolist() == [0]
    assert len(prefetch_threads()) == before + 1
    batches.close()
    assert len(prefetch_threads()) == before
    # HDF5 refuses to reopen a file for writing while this process still holds it open
    with h5py.File(three_files[0], "a"):
        pass

    for batch in iter_batches(three_files, 2, prefetch=1):
        break
    del batch
    assert len(prefetch_threads()) == before


def test_errors_in_the_reading_thread_reach_the_consumer(tmp_path):
    images, labels, _ = valid_arrays(6)
    images[4, 10, 10] = np.inf
    raw_file(tmp_path / "bad.h5", images=images, labels=labels, event_id=np.arange(6) + 50)
    batches = iter_batches([tmp_path / "bad.h5"], 2, prefetch=2)
    assert next(batches).event_id.tolist() == [50, 51]
    assert next(batches).event_id.tolist() == [52, 53]
    with pytest.raises(EventFileError, match=r"event 4 \(event_id 54\).*NaN or infinite") as err:
        next(batches)
    assert err.value.event == 4 and err.value.path == str(tmp_path / "bad.h5")
    assert not prefetch_threads()
    # without validation the values come through as they are
    got = np.concatenate([b.images for b in iter_batches([tmp_path / "bad.h5"], 4, validate=False)])
    assert np.isinf(got[4]).any()


def test_labels_outside_the_classes_are_reported_with_their_event(tmp_path):
    images, labels, _ = valid_arrays(3)
    labels[2, 0, 0] = 7
    raw_file(tmp_path / "bad.h5", images=images, labels=labels, event_id=np.arange(3))
    with pytest.raises(EventFileError, match="bad.h5: event 2 .*outside 0..2") as err:
        list(iter_batches([tmp_path / "bad.h5"], 2, with_labels=True))
    assert err.value.event == 2
    # labels are not read, so not checked, when not asked for
    assert len(list(iter_batches([tmp_path / "bad.h5"], 2))) == 2


def test_non_float32_images_and_signed_labels_are_converted(tmp_path):
    images, labels, _ = valid_arrays(2)
    raw_file(tmp_path / "f64.h5", images=images.astype(np.float64), labels=labels.astype(np.int32),
             event_id=np.arange(2, dtype=np.int32))
    (batch,) = iter_batches([tmp_path / "f64.h5"], 2, with_labels=True)
    assert batch.images.dtype == np.float32 and batch.labels.dtype == np.uint8
    assert batch.event_id.dtype == np.int64
    assert np.array_equal(batch.images[..., 0], images) and np.array_equal(batch.labels, labels)


# ---------------------------------------------------------------------------------------------
# File objects


def test_file_objects_are_read_and_left_open(events_file, three_files):
    with open(events_file, "rb") as a, open(three_files[2], "rb") as b:
        counts = inspect_inputs([a, b], require_labels=True)
        assert [c.events for c in counts] == [12, 4]
        assert counts[0].path == str(events_file)
        event_id, images, batches = collect(iter_batches([a, b], 5, skip_events=10, with_labels=True))
        assert not a.closed and not b.closed
    assert event_id.tolist() == [10, 11, 200, 201, 202, 203]
    assert batches[0].source == str(events_file)
    expected, _, _ = simulate_events(12, 7)
    assert np.array_equal(images[:2, ..., 0], expected[10:])


def test_in_memory_buffers_work_and_get_a_display_name(three_files):
    buffer = io.BytesIO(three_files[1].read_bytes())
    (batch,) = iter_batches([buffer], 4)
    assert batch.event_id.tolist() == [100, 101, 102] and batch.source == "BytesIO"
    assert not buffer.closed


class DroppingConnection(io.BytesIO):
    """An in-memory file whose reads fail after `reads_left` calls, as a network reader's would."""

    name = "s3://bucket/events.h5"

    def __init__(self, data: bytes, reads_left: int):
        super().__init__(data)
        self.reads_left = reads_left

    def readinto(self, buffer):
        self.reads_left -= 1
        if self.reads_left < 0:
            raise ConnectionResetError("connection reset by peer")
        return super().readinto(buffer)

    read = None                                       # h5py then reads through readinto only


def test_errors_of_a_file_object_pass_through_unchanged(events_file):
    """A reader's own failure is not called a corrupt file: the caller classifies it."""
    opened = DroppingConnection(events_file.read_bytes(), reads_left=10**6)
    batches = iter_batches([opened], 2, prefetch=2)
    opened.reads_left = 3
    with pytest.raises(ConnectionResetError, match="reset by peer"):
        list(batches)
    assert not prefetch_threads()
    with pytest.raises(ConnectionResetError):
        inspect_inputs([DroppingConnection(events_file.read_bytes(), reads_left=0)], require_labels=False)


# ---------------------------------------------------------------------------------------------
# Bad files: every one is an EventFileError naming the file and the problem


def test_schema_problems_are_named(tmp_path):
    images, labels, _ = valid_arrays(2)
    ids = np.arange(2)
    cases = {
        "shape": (dict(images=images[:, :, :100], event_id=ids), r"/images has shape \[2, 320, 100\]"),
        "ndim": (dict(images=images[0], event_id=ids), r"/images has shape \[320, 320\]"),
        "dtype": (dict(images=images.astype(np.int16), event_id=ids), "/images has dtype int16"),
        "no_ids": (dict(images=images), "no /event_id dataset"),
        "no_images": (dict(labels=labels, event_id=ids), "no /images dataset"),
        "length": (dict(images=images, event_id=np.arange(3)), r"/event_id has shape \[3\], expected \[N\]"),
        "label_dtype": (dict(images=images, labels=labels.astype(np.float32), event_id=ids),
                        "/labels has dtype float32"),
        "label_shape": (dict(images=images, labels=labels[:1], event_id=ids), "/labels has shape"),
    }
    for name, (datasets, message) in cases.items():
        path = raw_file(tmp_path / f"{name}.h5", **datasets)
        with pytest.raises(EventFileError, match=f"{name}.h5: .*{message}") as err:
            inspect_inputs([path], require_labels=True)
        assert err.value.path == str(path)


def test_missing_labels_only_matter_when_required(unlabelled_events_file):
    assert inspect_inputs([unlabelled_events_file], require_labels=False)[0].events == 5
    with pytest.raises(EventFileError, match="no /labels dataset; training and evaluation need"):
        inspect_inputs([unlabelled_events_file], require_labels=True)
    with pytest.raises(EventFileError, match="no /labels"):
        iter_batches([unlabelled_events_file], 2, with_labels=True)


def test_unreadable_files_give_clear_errors(tmp_path, events_file):
    truncated = tmp_path / "truncated.h5"
    data = events_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "text.h5").write_text("pixel0,pixel1\n0,1\n")
    (tmp_path / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    cases = {
        truncated: r"is truncated: \d+ of its \d+ bytes are there; .*fetch it again",
        tmp_path / "empty.h5": r"empty file \(0 bytes\)",
        tmp_path / "text.h5": "is not an HDF5 file",
        tmp_path / "garbage.h5": "is not an HDF5 file|cannot be read as HDF5",
        tmp_path / "missing.h5": "no such file",
        tmp_path: "is a directory",
    }
    for path, message in cases.items():
        with pytest.raises(EventFileError, match=message) as err:
            inspect_inputs([path], require_labels=False)
        assert err.value.path == str(path)
        assert "Traceback" not in str(err.value)
    with pytest.raises(EventFileError, match="is truncated"):
        iter_batches([events_file, truncated], 2)
    with open(truncated, "rb") as handle:
        with pytest.raises(EventFileError, match="truncated"):
            inspect_inputs([handle], require_labels=False)
    with pytest.raises(EventFileError, match="empty file"):
        inspect_inputs([io.BytesIO()], require_labels=False)


def test_a_corrupt_chunk_is_reported_when_read(tmp_path, events_file):
    path = tmp_path / "corrupt.h5"
    shutil.copy(events_file, path)
    with h5py.File(path, "r") as f:
        offset = f["images"].id.get_chunk_info_by_coord((5, 0, 0)).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset)
        raw.write(b"\xff" * 64)
    with pytest.raises(EventFileError, match=r"corrupt.h5: /images events 4..5 are unreadable") as err:
        list(iter_batches([path], 2))
    assert err.value.event == 4


# ---------------------------------------------------------------------------------------------
# Predictions


def logits_for(n, seed=0):
    return np.random.default_rng(seed).normal(0, 3, (n, *IMAGE_SHAPE, 3)).astype(np.float32)


def writer_threads():
    return [t for t in threading.enumerate() if t.name == WRITER_THREAD_NAME and t.is_alive()]


@pytest.mark.parametrize("background", [True, False])
def test_scores_are_probabilities_in_float16_with_provenance(tmp_path, background):
    logits = logits_for(5)
    attrs = {"model_version": "v1", "build": "cuda-bf16", "code_version": "0.1.0",
             "inputs": ["a.h5", "b.h5"], "extra": {"site": "BNL"}}
    with PredictionWriter(tmp_path / "p.h5", n_events=5, attrs=attrs, background=background) as writer:
        assert len(writer_threads()) == int(background)
        buffer = logits[:3].copy()
        writer.write([7, 8, 9], buffer)
        buffer[:] = 0                                  # the caller may reuse its buffer at once
        writer.write(np.array([10, 11]), logits[3:])
    assert not writer_threads()

    preds = read_predictions(tmp_path / "p.h5")
    assert preds.scores.dtype == np.float16 and preds.scores.shape == (5, *IMAGE_SHAPE, 3)
    assert np.allclose(preds.scores.astype(np.float32).sum(-1), 1.0, atol=3e-3)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    assert np.allclose(preds.scores, e / e.sum(-1, keepdims=True), atol=1e-3)
    agree = np.mean(preds.classes == logits.argmax(-1))
    assert agree > 0.999                       # only float16 ties may differ
    assert preds.event_id.tolist() == [7, 8, 9, 10, 11]
    a = preds.attrs
    assert a["model_version"] == "v1" and a["build"] == "cuda-bf16" and a["code_version"] == "0.1.0"
    assert a["inputs"] == ["a.h5", "b.h5"] and a["output_format"] == "scores"
    assert a["extra"] == '{"site": "BNL"}' and a["created"].startswith("20")
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["scores"].chunks == (1, *IMAGE_SHAPE, 3)
    one = read_predictions(tmp_path / "p.h5", event_id=10)
    assert one.event_id.tolist() == [10] and np.array_equal(one.scores[0], preds.scores[3])
    with pytest.raises(EventFileError, match="no prediction for event_id 12"):
        read_predictions(tmp_path / "p.h5", event_id=12)


def test_probabilities_are_stored_as_given(tmp_path):
    logits = logits_for(2, seed=1)
    e = np.exp(logits)
    probs = e / e.sum(-1, keepdims=True)
    for from_logits in (None, False):
        path = tmp_path / f"p{from_logits}.h5"
        with PredictionWriter(path, n_events=2) as writer:
            writer.write([0, 1], probs, from_logits=from_logits)
        assert np.allclose(read_predictions(path).scores, probs, atol=1e-3)
    with PredictionWriter(tmp_path / "forced.h5", n_events=2) as writer:
        writer.write([0, 1], probs, from_logits=True)         # softmax of probabilities: flatter
    assert read_predictions(tmp_path / "forced.h5").scores.max() < probs.max() - 0.1


def test_classes_format_stores_the_argmax(tmp_path):
    logits = logits_for(3)
    with PredictionWriter(tmp_path / "c.h5", n_events=3, output_format="classes") as writer:
        writer.write([1, 2, 3], logits)
    preds = read_predictions(tmp_path / "c.h5")
    assert preds.scores is None and preds.classes.dtype == np.uint8
    assert np.array_equal(preds.classes, logits.argmax(-1))
    assert preds.attrs["output_format"] == "classes"


def test_an_error_inside_the_writer_removes_the_partial_file(tmp_path):
    path = tmp_path / "p.h5"
    with pytest.raises(RuntimeError, match="model crashed"):
        with PredictionWriter(path, n_events=4) as writer:
            writer.write([0, 1], logits_for(2))
            raise RuntimeError("model crashed")
    assert not path.exists()
    assert not writer_threads()


@pytest.mark.parametrize("background", [True, False])
def test_a_write_failure_reaches_the_caller_and_leaves_no_file(tmp_path, background):
    """A file-size limit makes the disk 'full' after 2 MB: the error surfaces, no file remains."""
    code = f"""
import resource, signal, sys
import numpy as np
from payload.events import PredictionWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
try:
    with PredictionWriter({str(tmp_path / "p.h5")!r}, n_events=12, background={background}) as writer:
        for first in range(0, 12, 2):
            writer.write([first, first + 1], np.zeros((2, 320, 320, 3), np.float32))
except OSError as err:
    print("OSError", err)
    sys.exit(0)
sys.exit(1)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OSError" in result.stdout and "p.h5: writing failed (File too large)" in result.stdout
    assert not (tmp_path / "p.h5").exists()


def test_the_event_count_is_checked(tmp_path):
    path = tmp_path / "p.h5"
    with pytest.raises(PayloadError, match="3 of 4 events written"):
        with PredictionWriter(path, n_events=4) as writer:
            writer.write([0, 1, 2], logits_for(3))
    assert not path.exists()
    with pytest.raises(ValueError, match="more than the 2 announced"):
        with PredictionWriter(path, n_events=2) as writer:
            writer.write([0, 1, 2], logits_for(3))
    assert not path.exists()
    with pytest.raises(ValueError, match="output_format"):
        PredictionWriter(path, n_events=2, output_format="png")
    with pytest.raises(ValueError, match=r"outputs must be \[B, 320, 320, 3\]"):
        with PredictionWriter(path, n_events=2) as writer:
            writer.write([0, 1], logits_for(2)[..., :2])


def test_unwritable_output_is_an_os_error_naming_the_path(tmp_path):
    with pytest.raises(OSError, match="creating the file failed"):
        with PredictionWriter(tmp_path / "no" / "p.h5", n_events=1):
            pass


def test_importing_the_data_modules_does_not_import_a_framework():
    code = ("import sys, payload.events, payload.simulate, payload.csvformat, payload.display, "
            "payload.cli; bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch', 'matplotlib') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
