"""Property-based fuzzing of the event-file reader: random bytes, damaged files, random HDF5 structures.

In process, `inspect_inputs` and a full pass of `iter_batches` may only raise EventFileError or
EmptySelection (anything else reaches the user as an unexpected exit 250/251 with a traceback).
Through the CLI, a small sample of the same files may only give the exit codes a bad input file
means (0, 9, 15), the reports, and no traceback.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from payload.errors import EmptySelection, EventFileError
from payload.events import inspect_inputs, iter_batches
from tests.faults.harness import LEDGER, TRACEBACK

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# The float32 datatype message of /images as HDF5 writes it: offset 0, precision 32, exponent at
# 23 (8 bits), mantissa at 0 (23 bits), exponent bias 127.
FLOAT32_MESSAGE = bytes([0, 0, 0x20, 0, 0x17, 8, 0, 0x17, 0x7F, 0, 0, 0])


def fuzz(examples: int) -> settings:
    """Hypothesis settings of these tests: no deadline (a file is written per example)."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def read_everything(path: Path, with_labels: bool, prefetch: int) -> int:
    """What the payload does with an input: inspect it, then stream every event."""
    inspect_inputs([path], require_labels=with_labels)
    events = 0
    for batch in iter_batches([path], 2, with_labels=with_labels, prefetch=prefetch):
        assert batch.images.shape[1:] == (320, 320, 1) and batch.images.dtype == np.float32
        events += len(batch.event_id)
    return events


def only_clean_errors(path: Path, with_labels: bool = True, prefetch: int = 0) -> None:
    try:
        read_everything(path, with_labels, prefetch)
    except EmptySelection as err:    # a readable file whose selection is empty: it says how many it has
        assert str(err).startswith("no events selected: 0 event(s) in 1 file(s)"), str(err)
    except EventFileError as err:    # a damaged file: named
        assert path.name in str(err), str(err)


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> bytes:
    """The bytes of a real 2-event file (payload.simulate), the seed of the damaged ones."""
    from payload.simulate import simulate_events

    return simulate_events(2, 21, path=tmp_path_factory.mktemp("fuzz-seed") / "seed.h5").read_bytes()


@pytest.fixture
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input.h5"


# ---------------------------------------------------------------------------------------------
# Random bytes and damaged files


@fuzz(150)
@given(body=st.binary(max_size=4096), signed=st.booleans(), with_labels=st.booleans())
@example(body=b"", signed=False, with_labels=True)
@example(body=b"\x00" * 600, signed=True, with_labels=True)
def test_random_bytes_are_refused_cleanly(scratch, body, signed, with_labels):
    scratch.write_bytes((HDF5_SIGNATURE if signed else b"") + body)
    only_clean_errors(scratch, with_labels)


def damaged(seed: bytes, changes) -> bytes:
    data = bytearray(seed)
    for where, value in changes:
        data[where % len(data)] = value
    return bytes(data)


MUTATIONS = st.lists(st.tuples(st.one_of(st.integers(0, 4095), st.integers(0, 1 << 20)),
                               st.integers(0, 255)), min_size=1, max_size=48)


@fuzz(150)
@given(changes=MUTATIONS, cut=st.one_of(st.none(), st.integers(1, 1 << 20)), prefetch=st.sampled_from([0, 2]))
def test_damaged_event_files_are_refused_cleanly(valid_file, scratch, changes, cut, prefetch):
    data = damaged(valid_file, changes)
    scratch.write_bytes(data[:cut] if cut else data)
    only_clean_errors(scratch, True, prefetch)


def test_a_damaged_datatype_message_is_named_as_a_corrupt_file(valid_file, scratch):
    # Found by the fuzzing above: an exponent bias no numpy type can hold makes h5py raise a bare
    # ValueError when the dataset's dtype is first read, after the file opened fine.
    data = bytearray(valid_file)
    data[data.index(FLOAT32_MESSAGE) + 10] = 0x60
    scratch.write_bytes(bytes(data))

    with pytest.raises(EventFileError, match="input.h5: its structure is unreadable .*file is corrupt"):
        inspect_inputs([scratch], require_labels=True)


# ---------------------------------------------------------------------------------------------
# Random HDF5 structures

DTYPES = st.sampled_from([np.float32, np.float16, np.float64, np.int8, np.uint8, np.int16, np.uint16,
                          np.int64, np.uint64, np.bool_, "S4", np.dtype([("a", np.float32), ("b", np.int8)])])
DIMS = st.sampled_from([0, 1, 2, 3, 7, 320])
FILLS = st.sampled_from(["zeros", "ones", "nan", "inf", "huge", "negative", "classes", "random"])


def _fill(shape, dtype, how: str, rng) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "V":
        return np.zeros(shape, dtype)
    if dtype.kind == "S":
        return np.full(shape, b"ab", dtype)
    values = {"zeros": np.zeros(shape), "ones": np.ones(shape), "nan": np.full(shape, np.nan),
              "inf": np.full(shape, np.inf), "huge": np.full(shape, 1e300), "negative": -np.ones(shape),
              "classes": rng.integers(0, 4, shape), "random": rng.normal(0, 1e3, shape)}[how]
    with np.errstate(all="ignore"):
        return values.astype(dtype)


@st.composite
def structures(draw):
    """{name: what} for /images, /labels, /event_id and a stray member, each maybe absent."""
    events = draw(st.sampled_from([0, 1, 2, 3]))
    natural = {"images": (events, 320, 320), "labels": (events, 320, 320), "event_id": (events,)}
    members = {}
    for name in ("images", "labels", "event_id", "extra"):
        kind = draw(st.sampled_from(["dataset", "dataset", "dataset", "absent", "group", "soft-link",
                                     "dangling-link", "external-link"]))
        if kind != "dataset":
            members[name] = (kind,)
            continue
        shape = natural.get(name, (2,))
        if draw(st.booleans()):
            shape = tuple(draw(st.lists(DIMS, max_size=4)))
            if int(np.prod(shape, dtype=np.int64)) > 3 * 320 * 320:
                shape = shape[:2]
        natural_dtype = {"images": np.float32, "labels": np.uint8, "event_id": np.int64}.get(name, np.float32)
        dtype = draw(DTYPES) if draw(st.booleans()) else natural_dtype
        chunked = len(shape) > 0 and 0 not in shape and draw(st.booleans())
        members[name] = ("dataset", shape, dtype, draw(FILLS), chunked)
    return members


def write_structure(path: Path, members: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for name, (kind, *spec) in members.items():
            if kind == "dataset":
                shape, dtype, fill, chunked = spec
                data = _fill(shape, dtype, fill, rng)
                f.create_dataset(name, data=data, chunks=True if chunked else None,
                                 compression="gzip" if chunked else None)
            elif kind == "group":
                f.create_group(name).attrs["why"] = "a group where a dataset belongs"
            elif kind == "soft-link":
                f[name] = h5py.SoftLink("/extra")
            elif kind == "dangling-link":
                f[name] = h5py.SoftLink("/nowhere")
            elif kind == "external-link":
                f[name] = h5py.ExternalLink("absent-file.h5", "/images")


@fuzz(200)
@given(members=structures(), seed=st.integers(0, 2**32 - 1), with_labels=st.booleans(),
       prefetch=st.sampled_from([0, 2]))
def test_random_hdf5_structures_are_read_or_refused_cleanly(scratch, members, seed, with_labels, prefetch):
    write_structure(scratch, members, seed)
    only_clean_errors(scratch, with_labels, prefetch)


# ---------------------------------------------------------------------------------------------
# Through the CLI: a small sample of the same files

# A fuzzed file is generated, not chosen: it may still be whole (0), be damaged (9, naming it) or
# hold no event (15); each outcome is checked for its own evidence below.
ALLOWED_FOR_BAD_INPUT = {0, 9, 15}


def _cli_file(draw, valid: bytes, path: Path) -> None:
    kind = draw(st.sampled_from(["bytes", "damaged", "structure"]))
    if kind == "bytes":
        path.write_bytes(HDF5_SIGNATURE + draw(st.binary(max_size=2048)))
    elif kind == "damaged":
        path.write_bytes(damaged(valid, draw(MUTATIONS)))
    else:
        write_structure(path, draw(structures()), draw(st.integers(0, 2**32 - 1)))


@fuzz(6)
@given(data=st.data())
def test_the_cli_refuses_fuzzed_inputs_with_an_allowed_exit_and_no_traceback(
        data, valid_file, tmp_path_factory, trf_env, secrets, inputs_for_cli):
    jobdir = tmp_path_factory.mktemp("fuzz-job")
    events = jobdir.parent / f"{jobdir.name}.h5"
    _cli_file(data.draw, valid_file, events)

    done = subprocess.run([sys.executable, "-m", "wrapper", "--mode=evaluate", "--modelConfig=tiny",
                           f"--inputEventsFile={events}", f"--modelFile={inputs_for_cli}",
                           "--outputMetricsFile=metrics.json"], cwd=jobdir, env=trf_env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode in ALLOWED_FOR_BAD_INPUT, done.stderr[-3000:]
    assert TRACEBACK not in done.stderr
    report = json.loads((jobdir / "jobReport.json").read_text())
    assert report["exitCode"] == done.returncode
    if done.returncode == 0:
        assert json.loads((jobdir / "metrics.json").read_text())["mode"] == "evaluate"
    else:
        error = json.loads((jobdir / "payload_error_report.json").read_text())
        assert error == {"error_code": done.returncode, "error_diag": report["exitMsg"]}
        if done.returncode == 9:
            assert events.name in report["exitMsg"], report["exitMsg"]
        else:
            assert report["exitMsg"].startswith("no events selected: 0 event(s) in 1 file(s)"), report["exitMsg"]
        assert not (jobdir / "metrics.json").exists()
    for label, text in (("stdout", done.stdout), ("stderr", done.stderr),
                        ("jobReport.json", (jobdir / "jobReport.json").read_text())):
        assert not LEDGER.scan(secrets, f"fuzzed CLI input: {label}", text)


@pytest.fixture(scope="module")
def inputs_for_cli(data) -> Path:
    """The session's tiny model, for the jobs whose fuzzed input happens to be valid."""
    return data.model
