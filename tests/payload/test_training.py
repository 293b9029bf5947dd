"""Training with the `tiny` network on real synthetic event files: it learns, it resumes exactly,
it fails clearly."""
import json
import math
from dataclasses import replace

import keras
import numpy as np
import pytest

from payload.api import InferConfig, Progress, TrainConfig
from payload.errors import EmptySelection, EventFileError, ModelFileError, StopRequested, TrainingDivergedError
from payload.inference import evaluate
from payload.model import build_model
from payload.modelfile import load_model, save_model
from payload.checkpoints import RunState, latest_checkpoint, save_checkpoint
from payload.training import _end_epoch, train
from payload.training_data import shuffled, split_events

# 12 events (conftest): 10 train, 2 validation; batch 2 → 5 steps per epoch
BASE = TrainConfig(model_config="tiny", batch_size=2, epochs=2, learning_rate=1e-2, validation_split=0.2,
                   loss="cce", seed=3, checkpoint_every_s=1e9, reduce_lr_patience=0)


def _weights(path):
    return load_model(path, "tiny").get_weights()


def test_training_learns_and_writes_model_metrics_and_plot(events_file, tmp_path):
    ticks = []
    config = replace(BASE, epochs=3, loss="weighted")
    result = train([events_file], tmp_path / "dune.model", config, output_metrics=tmp_path / "metrics.json",
                   output_plot=tmp_path / "curve", on_progress=ticks.append)

    losses = result.history["loss"]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    assert result.processed_events == 12 and result.inputs[0].events == 12
    assert set(result.outputs) == {str(tmp_path / p) for p in ("dune.model", "metrics.json", "curve")}
    assert 0.0 <= result.metrics["val_iou_beam"] <= 1.0 and "val_mean_iou" in result.history

    assert load_model(tmp_path / "dune.model", "tiny").count_params() == build_model("tiny").count_params()
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["events"]["train"] == 10 and doc["events"]["validation"] == 2
    background, beam, cosmic = doc["class_weights"]  # median frequency, counted from the labels
    assert beam > cosmic > background and cosmic == pytest.approx(1.0)
    assert doc["history"]["loss"] == list(losses)
    assert (tmp_path / "curve").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The validation metrics are those of the saved network (with its calibrated logits) on the
    # 2 validation events, the last of the file.
    holdout = evaluate([events_file], tmp_path / "dune.model", InferConfig(model_config="tiny", skip_events=10))
    for key in ("iou_beam", "iou_cosmic", "purity_beam", "pixel_accuracy"):
        assert holdout.metrics[key] == pytest.approx(result.metrics[f"val_{key}"], abs=1e-6)

    steps = [t for t in ticks if t.unit == "steps"]
    assert steps[0] == Progress("train epoch 1/3", 1, 5, "steps", steps[0].metrics)
    assert {t.done for t in steps if t.stage == "train epoch 3/3"} == {1, 2, 3, 4, 5}


def test_resumed_run_ends_where_an_uninterrupted_one_does(events_file, tmp_path):
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = train([events_file], tmp_path / "straight.keras", replace(BASE, checkpoint_dir=straight_dir))

    # Checkpoint after every batch; stop in the middle of epoch 2 (5 train + 1 validation poll
    # in epoch 1, then the 2nd poll of epoch 2), as a job killed by its batch system would.
    polls = iter(range(100))
    saved = []
    config = replace(BASE, checkpoint_dir=resumed_dir, checkpoint_every_s=0.0)
    with pytest.raises(StopRequested, match="epoch 2/2"):
        train([events_file], tmp_path / "resumed.keras", config, should_stop=lambda: next(polls) == 7,
              on_checkpoint=saved.append)
    assert not (tmp_path / "resumed.keras").exists()
    assert [p.name for p in saved][-2:] == ["ckpt-e0001-s0000000", "ckpt-e0001-s0000001"]
    assert len([p for p in resumed_dir.iterdir()]) == 2  # older ones pruned

    resumed = train([events_file], tmp_path / "resumed.keras", config)
    assert resumed.resumed_from_epoch == 1
    # Multithreaded CPU reductions make two identical runs differ by about 2e-4 here; a resume
    # that lost the optimizer state is off by 0.25, one that lost the dropout state by 7e-3.
    for a, b in zip(_weights(tmp_path / "straight.keras"), _weights(tmp_path / "resumed.keras")):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)
    for key in ("loss", "val_loss", "val_mean_iou"):
        np.testing.assert_allclose(resumed.history[key], straight.history[key], rtol=1e-3)

    with np.load(latest_checkpoint(straight_dir) / "optimizer.npz") as a, \
            np.load(latest_checkpoint(resumed_dir) / "optimizer.npz") as b:
        assert a.files == b.files
        assert int(a["arr_0"]) == int(b["arr_0"]) == 10  # Adam iterations: 2 epochs of 5 steps
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=0.05, atol=1e-5)

    # A finished run resumed again trains no more and writes the same model.
    again = train([events_file], tmp_path / "again.keras", config)
    assert again.resumed_from_epoch == 2
    np.testing.assert_array_equal(_weights(tmp_path / "again.keras")[0], _weights(tmp_path / "resumed.keras")[0])


def test_latest_checkpoint_skips_incomplete_ones(tmp_path):
    model = build_model("tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    done = save_checkpoint(tmp_path, model, RunState("tiny", 1e-3, epoch=1))
    (tmp_path / "ckpt-e0002-s0000000").mkdir()          # renamed but empty: not written by us
    (tmp_path / ".ckpt-x1y2.tmp").mkdir()                # a save cut short
    (tmp_path / ".ckpt-x1y2.tmp" / "state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) == done
    assert latest_checkpoint(tmp_path / "nothing-here") is None


def test_a_checkpoint_of_another_network_is_refused(events_file, tmp_path):
    model = build_model("tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    save_checkpoint(tmp_path / "ckpt", model, RunState("tiny", 1e-3, epoch=1))
    config = replace(BASE, model_config="small", checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(ModelFileError, match="'tiny' network, not 'small'"):
        train([events_file], tmp_path / "m.keras", config)


def test_an_init_model_of_another_network_is_refused(events_file, tmp_path):
    save_model(build_model("tiny"), tmp_path / "tiny.keras")
    with pytest.raises(ModelFileError, match="tiny.keras holds the 'tiny' network"):
        train([events_file], tmp_path / "m.keras", replace(BASE, model_config="small"),
              init_model=tmp_path / "tiny.keras")


def test_a_non_finite_loss_stops_training_naming_epoch_and_step(events_file, tmp_path):
    config = replace(BASE, loss="weighted", class_weights=(1.0, math.inf, 1.0))
    with pytest.raises(TrainingDivergedError, match=r"became (inf|nan) at epoch 1, step 1 of 5"):
        train([events_file], tmp_path / "m.keras", config)
    assert not (tmp_path / "m.keras").exists()


def test_an_input_removed_between_epochs_is_named_as_removed_not_as_missing(events_file, tmp_path):
    link = tmp_path / "staged.h5"
    link.symlink_to(events_file)   # as a copytool stages it; the replica itself stays

    def remove_at_epoch_2(tick):
        if tick.stage.startswith("train epoch 2/") and link.is_symlink():
            link.unlink()

    with pytest.raises(EventFileError, match=r"staged.h5: removed while the job ran") as raised:
        train([link], tmp_path / "m.keras", replace(BASE, epochs=3), on_progress=remove_at_epoch_2)
    assert raised.value.removed and raised.value.path == str(link)
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(EventFileError, match="no such file") as never_there:
        train([tmp_path / "never.h5"], tmp_path / "m.keras", BASE)
    assert not never_there.value.removed


def test_mixed_precision_training_saves_a_float32_model_and_restores_the_policy(events_file, tmp_path):
    result = train([events_file], tmp_path / "m.keras", replace(BASE, epochs=1, precision="mixed_bfloat16"))
    assert math.isfinite(result.metrics["loss"])
    assert keras.mixed_precision.dtype_policy().name == "float32"
    assert load_model(tmp_path / "m.keras", "tiny").get_layer("down0_l0_conv").compute_dtype == "float32"


def test_bad_selections_and_unlabelled_files_fail_before_training(events_file, unlabelled_events_file, tmp_path):
    with pytest.raises(EmptySelection, match="skipEvents=12"):
        train([events_file], tmp_path / "m.keras", replace(BASE, skip_events=12))
    with pytest.raises(EmptySelection, match="leaves no event"):
        train([events_file], tmp_path / "m.keras", replace(BASE, max_events=2, validation_split=1.0))
    with pytest.raises(EventFileError, match="unlabelled.h5"):
        train([unlabelled_events_file], tmp_path / "m.keras", BASE)


def test_split_takes_the_validation_events_from_the_tail_of_the_selection():
    assert split_events(100, replace(BASE, validation_split=0.1)) == (90, 10)
    assert split_events(100, replace(BASE, skip_events=50, max_events=20, validation_split=0.25)) == (15, 5)
    assert split_events(3, replace(BASE, validation_split=0.1)) == (2, 1)   # at least one
    assert split_events(3, replace(BASE, validation_split=0.0)) == (3, 0)


class _Labelled:
    def __init__(self, ids):
        self.images = np.asarray(ids, np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
        self.labels = np.asarray(ids, np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)


def test_shuffled_mixes_events_into_full_batches_deterministically():
    # files of 5 and 4 events read in batches of 3: the reader gives 3+2 and 3+1
    stream = [_Labelled([0, 1, 2]), _Labelled([3, 4]), _Labelled([5, 6, 7]), _Labelled([8])]
    runs = [list(shuffled(iter(stream), 3, np.random.default_rng([1, 0]), window=2)) for _ in range(2)]
    sizes = [len(x) for x, _ in runs[0]]
    assert sizes == [3, 3, 3]
    events = np.concatenate([x[:, 0, 0, 0] for x, _ in runs[0]])
    assert sorted(events.tolist()) == list(range(9)) and events.tolist() != list(range(9))
    for x, y in runs[0]:
        assert (x[:, 0, 0, 0] == y[:, 0, 0]).all()  # images keep their labels
    assert all((a[0] == b[0]).all() for a, b in zip(*runs))


def test_learning_rate_halves_on_a_plateau_and_early_stopping_ends_the_run():
    optimizer = keras.optimizers.Adam(1e-3)
    config = replace(BASE, reduce_lr_patience=2, early_stopping_patience=3)
    state = RunState("tiny", 1e-3)
    for val_loss in (1.0, 0.9, 0.95, 0.93):  # improves twice, then two epochs without
        _end_epoch(state, {"loss": 1.0, "val_loss": val_loss}, config, optimizer)
    assert state.learning_rate == pytest.approx(5e-4)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(5e-4)
    assert not state.stopped_early
    _end_epoch(state, {"loss": 1.0, "val_loss": 0.92}, config, optimizer)
    assert state.stopped_early and state.epoch == 5
    assert state.history["val_loss"] == [1.0, 0.9, 0.95, 0.93, 0.92]


def test_crop_training_learns_saves_a_whole_event_network_and_resumes_exactly(events_file, tmp_path):
    crops = replace(BASE, epochs=3, crop_size=64, loss="dice", lr_schedule="cosine", warmup_steps=3,
                    checkpoint_dir=tmp_path / "straight")
    straight = train([events_file], tmp_path / "straight.keras", crops)

    assert straight.history["loss"][-1] < straight.history["loss"][0]
    lr = straight.history["learning_rate"]
    assert lr[0] > lr[-1] and lr[-1] < 1e-3   # the cosine decay, not a constant rate
    model = load_model(tmp_path / "straight.keras")   # the file names its network
    assert model.input_shape == (None, 320, 320, 1)

    polls = iter(range(100))
    config = replace(crops, checkpoint_dir=tmp_path / "resumed", checkpoint_every_s=0.0)
    with pytest.raises(StopRequested):
        train([events_file], tmp_path / "resumed.keras", config, should_stop=lambda: next(polls) == 8)
    train([events_file], tmp_path / "resumed.keras", config)
    for a, b in zip(_weights(tmp_path / "straight.keras"), _weights(tmp_path / "resumed.keras")):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)


def test_crops_keep_their_absolute_place_in_the_event():
    from payload.sampling import crop_origins, cut

    labels = np.zeros((3, 320, 320), np.uint8)
    labels[:, 170, 5:40] = 1
    rng = np.random.default_rng(0)
    origins = crop_origins(labels, 64, 1.0, rng)
    assert ((origins >= 0) & (origins <= 320 - 64)).all()
    crops = cut(labels, origins, 64)
    assert crops.shape == (3, 64, 64) and (crops == 1).any(axis=(1, 2)).all()   # every crop holds beam
    for crop, (r, c) in zip(crops, origins):
        np.testing.assert_array_equal(crop, labels[0, r:r + 64, c:c + 64])
    with pytest.raises(ValueError, match="crop size"):
        crop_origins(labels, 400, 0.5, rng)


def test_position_channels_of_a_crop_are_those_of_the_whole_event():
    from payload.model import PixelPosition

    image = np.random.default_rng(1).random((1, 320, 320, 1)).astype(np.float32)
    whole = keras.ops.convert_to_numpy(PixelPosition()(image))
    part = keras.ops.convert_to_numpy(PixelPosition()(image[:, 96:160, 32:96], np.array([[96, 32]])))
    np.testing.assert_allclose(part, whole[:, 96:160, 32:96], atol=1e-6)
