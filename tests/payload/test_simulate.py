"""Synthetic events: class balance, beam and detector features, determinism, the Moyal sampler."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from payload.events import IMAGE_SHAPE, inspect_inputs, iter_batches
from payload.simulate import (
    BEAM_ROW_BAND, DEAD_WIRES, WIRES_PER_COL, event_rng, generate_event, moyal, simulate_events,
)


@pytest.fixture(scope="module")
def sample():
    return simulate_events(40, 2024)


def test_class_fractions_are_close_to_protodune(sample):
    _, labels, _ = sample
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    background, beam, cosmic = fractions
    assert 0.91 < background < 0.95
    assert 0.003 < beam < 0.008
    assert 0.045 < cosmic < 0.08
    per_event = np.array([np.bincount(x.ravel(), minlength=3) for x in labels])
    assert (per_event[:, 1] > 0).all() and (per_event[:, 2] > 0).all()


def test_images_are_normalised_and_labels_sit_on_charge(sample):
    images, labels, _ = sample
    assert images.dtype == np.float32 and images.shape == (40, *IMAGE_SHAPE)
    assert labels.dtype == np.uint8 and labels.max() == 2
    assert np.allclose(images.max(axis=(1, 2)), 1.0) and images.min() == 0.0
    assert (images[labels > 0] > 0).all()
    noise = (images > 0) & (labels == 0)
    assert noise.sum(axis=(1, 2)).min() > 10       # sparse noise hits, labelled background
    assert noise.mean() < 0.005


def test_the_beam_enters_from_the_left_in_its_band_and_slopes_down(sample):
    _, labels, _ = sample
    for event in labels:
        rows = np.flatnonzero((event[:, :3] == 1).any(axis=1))
        assert rows.size, "no beam at the upstream edge"
        assert BEAM_ROW_BAND[0] - 3 <= rows.mean() <= BEAM_ROW_BAND[1] + 3
    # downward in tick: the mean beam row 40 columns in lies below the entry row
    entry = [np.flatnonzero((e[:, :3] == 1).any(axis=1)).mean() for e in labels]
    later = [np.flatnonzero((e[:, 38:42] == 1).any(axis=1)).mean() for e in labels
             if (e[:, 38:42] == 1).any()]
    assert np.mean(later) < np.mean(entry)


def test_columns_of_dead_wires_are_empty(sample):
    images, _, _ = sample
    # column c collects wires floor(4.5 c) .. ceil(4.5 (c + 1)) - 1
    dead_columns = [c for c in range(IMAGE_SHAPE[1])
                    if DEAD_WIRES[int(c * WIRES_PER_COL):int(np.ceil((c + 1) * WIRES_PER_COL))].all()]
    assert len(dead_columns) >= 4
    assert not images[:, :, dead_columns].any()
    live = np.setdiff1d(np.arange(IMAGE_SHAPE[1]), dead_columns)
    assert (images[:, :, live] > 0).any(axis=(0, 1)).all()


def test_the_same_seed_gives_the_same_bytes_and_event_k_does_not_depend_on_n():
    a_images, a_labels, a_ids = simulate_events(4, 99)
    b_images, b_labels, b_ids = simulate_events(4, 99)
    assert a_images.tobytes() == b_images.tobytes() and a_labels.tobytes() == b_labels.tobytes()
    long_images, long_labels, _ = simulate_events(6, 99)
    assert long_images[:4].tobytes() == a_images.tobytes()
    tail_images, tail_labels, tail_ids = simulate_events(2, 99, first_event=4)
    assert tail_ids.tolist() == [4, 5]
    assert tail_images.tobytes() == long_images[4:].tobytes()
    assert tail_labels.tobytes() == long_labels[4:].tobytes()
    other, _, _ = simulate_events(4, 100)
    assert not np.array_equal(other, a_images)
    image, labels = generate_event(event_rng(99, 2))
    assert image.tobytes() == a_images[2].tobytes()


def test_moyal_samples_follow_the_law():
    x = moyal(np.random.default_rng(5), 400_000)
    # mean γ + ln 2; median -ln(median of chi-square(1)) = -ln(0.454936); mode 0
    assert abs(x.mean() - (np.euler_gamma + np.log(2))) < 0.02
    assert abs(np.median(x) + np.log(0.454936)) < 0.01
    counts, edges = np.histogram(x, bins=np.arange(-3, 6, 0.25))
    assert abs(edges[np.argmax(counts)] + 0.125) <= 0.25
    assert np.mean(x > 5) > np.mean(x < -2)          # the long Landau tail is on the right
    scaled = moyal(np.random.default_rng(5), 400_000, loc=2.0, scale=0.5)
    assert np.allclose(scaled, 2.0 + 0.5 * x)


def test_simulating_to_a_file_streams_through_the_event_writer(tmp_path):
    path = simulate_events(5, 31, path=tmp_path / "sim.h5", chunk_events=2)
    assert inspect_inputs([path], require_labels=True)[0].events == 5
    with h5py.File(path) as f:
        assert f.attrs["seed"] == 31 and f.attrs["generator"] == "payload.simulate"
    images, labels, ids = simulate_events(5, 31)
    got = list(iter_batches([path], 5, with_labels=True))[0]
    assert np.array_equal(got.images[..., 0], images) and np.array_equal(got.labels, labels)
    assert got.event_id.tolist() == ids.tolist()


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        simulate_events(-1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        simulate_events(1, -1, path="unused.h5")
