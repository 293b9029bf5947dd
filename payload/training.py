"""Training: stream labelled events from HDF5 files through the FC-DenseNet.

One run = `config.epochs` passes over the training events, each followed by a validation pass,
a reduce-on-plateau step of the learning rate and an early-stopping check. Events are selected by
skip/max over the concatenated inputs; the last `validation_split` of them are the validation set
(events in a file are independent, so a tail split is as good as a random one and reads each event
once). Each epoch mixes training events in windows of a few batches, in an order fixed by
(seed, epoch).

Checkpoints (every `checkpoint_every_s` and at every epoch end) hold all model variables (weights,
batch-norm statistics, dropout generator states), the optimizer state and the run state (epoch,
step within it, history, schedule). Resuming restores them and replays the same batch order, so a
resumed run ends where an uninterrupted one would.

The loop calls `model.train_on_batch`, the same compiled train step that `model.fit` runs, on any
Keras backend; owning the loop lets it poll `should_stop`, raise on a non-finite loss and
checkpoint in the middle of an epoch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from payload.checkpoint_format import KEEP as KEEP_CHECKPOINTS, NAME_RE as CHECKPOINT_RE, checkpoint_name
from payload.config import Progress, ProgressFn, Provenance, StepResult, StopFn, TrainConfig
from payload.errors import (EventFileError, ModelFileError, NoEventsError, StopRequested, TrainingDivergedError,
                            UnsupportedOptionError)
from payload.events import iter_batches, inspect_inputs, selected_count, source_name
from payload.losses import class_pixel_counts, make_loss, median_frequency_weights
from payload.metrics import ConfusionMatrix, write_metrics_json

DEFAULT_NETWORK = "small"
REDUCE_LR_FACTOR = 0.5
MIN_LEARNING_RATE = 1e-6
SHUFFLE_WINDOW = 8            # batches whose events are mixed together


@dataclass
class RunState:
    """What a checkpoint must hold, besides variables, to continue a run exactly."""

    model_config: str
    learning_rate: float
    class_weights: Optional[list] = None
    epoch: int = 0                      # epochs completed
    step: int = 0                       # batches completed in the current epoch
    loss_sum: float = 0.0               # sum of their losses
    best: float = math.inf              # best monitored loss so far
    epochs_since_best: int = 0          # for early stopping
    epochs_since_lr_change: int = 0     # for reduce-on-plateau
    stopped_early: bool = False
    history: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Event selection and batches


def training_network(model_config: Optional[str], init_model: Optional[Path]) -> str:
    """The network a run trains: the one asked for, else the one in the starting model file, else
    `small`. (A config that contradicts the file is refused when the file is loaded.)"""
    from payload.modelinfo import network_in_file

    if model_config is not None:
        return model_config
    if init_model is not None:
        held = network_in_file(init_model)
        if held is None:
            raise ModelFileError(f"model file {init_model} holds no network of this payload (missing, "
                                 "not a .keras file, or a foreign model): pass a model saved by a "
                                 "training job", path=str(init_model))
        return held
    return DEFAULT_NETWORK


def split_events(total: int, config: TrainConfig) -> tuple[int, int]:
    """(training, validation) event counts of the selection skip/max over `total` events."""
    selected = selected_count(total, config.skip_events, config.max_events)
    if selected == 0:
        raise NoEventsError(f"no events to train on: {total} event(s) in the inputs, "
                            f"skipEvents={config.skip_events}, maxEvents={config.max_events}")
    n_val = int(round(selected * config.validation_split))
    if config.validation_split > 0 and n_val == 0 and selected > 1:
        n_val = 1
    if n_val >= selected:
        raise NoEventsError(f"validation split {config.validation_split} of {selected} event(s) "
                            "leaves no event to train on")
    return selected - n_val, n_val


def shuffled(batches, batch_size: int, rng: np.random.Generator,
             window: int = SHUFFLE_WINDOW) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-batch a stream of labelled batches into (images, labels) of `batch_size` events, mixed
    within windows of `window` batches in the order drawn from `rng`. Only the last batch may be
    shorter, so the compiled step sees one batch shape (batches of the reader end at file ends)."""
    images, labels, held = [], [], 0
    for batch in batches:
        images.append(batch.images)
        labels.append(batch.labels)
        held += len(batch.images)
        if held >= window * batch_size:
            x, y = np.concatenate(images), np.concatenate(labels)
            order = rng.permutation(held)
            n_out = held - held % batch_size
            for start in range(0, n_out, batch_size):
                pick = order[start:start + batch_size]
                yield x[pick], y[pick]
            images, labels, held = [x[order[n_out:]]], [y[order[n_out:]]], held - n_out
    if held:
        x, y = np.concatenate(images), np.concatenate(labels)
        order = rng.permutation(held)
        for start in range(0, held, batch_size):
            pick = order[start:start + batch_size]
            yield x[pick], y[pick]


def _training_batches(inputs, config: TrainConfig, n_train: int, epoch: int):
    batches = iter_batches(inputs, config.batch_size, skip_events=config.skip_events, max_events=n_train,
                           with_labels=True, prefetch=config.prefetch_batches)
    batches = shuffled(batches, config.batch_size, np.random.default_rng([config.seed, epoch]))
    if not config.crop_size:
        return ((images, labels) for images, labels in batches)
    return (_crop(images, labels, config, np.random.default_rng([config.seed, epoch, step]))
            for step, (images, labels) in enumerate(batches))


def _crop(images, labels, config: TrainConfig, rng: np.random.Generator):
    """([crops, origins], crop labels): one crop per event, drawn by a generator of its own step,
    so a resumed run draws the same crops."""
    from payload.sampling import crop_origins, cut

    origins = crop_origins(labels, config.crop_size, config.beam_fraction, rng)
    return [cut(images, origins, config.crop_size), origins], cut(labels, origins, config.crop_size)


def _learning_rate(config: TrainConfig, total_steps: int):
    """The optimizer's learning rate: a number (reduced on plateaus) or the warm-up + cosine schedule
    over the whole run, which lives in the optimizer's step counter and so resumes with it."""
    import keras

    if config.lr_schedule == "plateau":
        return config.learning_rate
    if config.lr_schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {config.lr_schedule!r}: plateau or cosine")
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 20, max(total_steps - warmup, 1), alpha=0.02,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


def _validation_batches(inputs, config: TrainConfig, n_train: int, n_val: int):
    return iter_batches(inputs, config.batch_size, skip_events=config.skip_events + n_train, max_events=n_val,
                        with_labels=True, prefetch=config.prefetch_batches)


def _class_weights(inputs, config: TrainConfig, n_train: int, report: ProgressFn) -> Optional[list]:
    if config.loss != "weighted":
        return None
    if config.class_weights is not None:
        return [float(w) for w in config.class_weights]
    report(Progress("counting classes for the loss weights", 0, n_train))
    batches = iter_batches(inputs, 64, skip_events=config.skip_events, max_events=n_train,
                           with_labels=True, prefetch=config.prefetch_batches)
    return list(median_frequency_weights(*class_pixel_counts(b.labels for b in batches)))


# ---------------------------------------------------------------------------------------------
# Checkpoints


def latest_checkpoint(directory: Optional[Path]) -> Optional[Path]:
    """The newest complete checkpoint in `directory`, or None. A checkpoint is written under a
    temporary name and renamed when complete, so a half-written one is never picked."""
    if directory is None or not Path(directory).is_dir():
        return None
    complete = [p for p in Path(directory).iterdir()
                if CHECKPOINT_RE.match(p.name) and (p / "state.json").is_file()]
    return max(complete, key=lambda p: p.name, default=None)


def save_checkpoint(directory: Path, model, state: RunState) -> Path:
    """Write model variables, optimizer state and `state` to a new checkpoint in `directory`
    (atomically), keep the newest KEEP_CHECKPOINTS and return its path."""
    from keras import ops

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(state.epoch, state.step)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt-", suffix=".tmp", dir=directory))
    try:
        np.savez(tmp / "model.npz", *[ops.convert_to_numpy(v) for v in model.variables])
        np.savez(tmp / "optimizer.npz", *[ops.convert_to_numpy(v) for v in model.optimizer.variables])
        (tmp / "state.json").write_text(json.dumps(asdict(state)))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    older = sorted(p for p in directory.iterdir() if CHECKPOINT_RE.match(p.name))[:-KEEP_CHECKPOINTS]
    for path in older:
        shutil.rmtree(path, ignore_errors=True)
    return final


def _assign_all(variables, path: Path, what: str) -> None:
    try:
        with np.load(path) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError) as err:
        raise ModelFileError(f"checkpoint {path.parent}: its {what} are unreadable: {err}",
                             path=str(path)) from None
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise ModelFileError(f"checkpoint {path.parent}: its {what} do not fit this network", path=str(path),
                             mismatch=True)
    for variable, value in zip(variables, values):
        variable.assign(value)


def read_run_state(path: Path, model_config: str) -> RunState:
    """The run state of checkpoint `path`, which must be of the `model_config` network."""
    path = Path(path)
    try:
        state = RunState(**json.loads((path / "state.json").read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise ModelFileError(f"checkpoint {path} is unreadable: {err}", path=str(path)) from None
    if state.model_config != model_config:
        raise ModelFileError(f"checkpoint {path} is of the {state.model_config!r} network, not "
                             f"{model_config!r}: use another checkpoint directory", path=str(path),
                             mismatch=True)
    return state


def restore_variables(path: Path, model) -> None:
    """Load the model and optimizer variables of checkpoint `path` into `model` (compiled, its
    optimizer built)."""
    _assign_all(model.variables, Path(path) / "model.npz", "model variables")
    _assign_all(model.optimizer.variables, Path(path) / "optimizer.npz", "optimizer variables")


# ---------------------------------------------------------------------------------------------
# One epoch


@contextmanager
def _inputs_read_again(inputs) -> Iterator[None]:
    """Each epoch reads the inputs again: a file that has gone since they were checked at the start
    was removed while the run went on, not misnamed or never staged. Say so (a workflow manager that
    aborts a job may clean its directory before the job has seen the signal)."""
    try:
        yield
    except EventFileError as err:
        gone = [source_name(s) for s in inputs if isinstance(s, (str, os.PathLike)) and not os.path.exists(s)]
        if not gone:
            raise
        raise EventFileError(f"{', '.join(gone)}: removed while the job ran (read at its start, gone now); "
                             "another process deleted it, e.g. one cleaning up after a stop signal",
                             path=gone[0], removed=True) from None


def _check_stop(should_stop: Optional[StopFn], where: str) -> None:
    if should_stop is not None and should_stop():
        raise StopRequested(f"stop requested during {where}")


def validate(model, loss_fn, batches, should_stop: Optional[StopFn] = None, predict=None,
             class_weights: Optional[Sequence[float]] = None) -> dict:
    """Validation loss (without the L2 penalty) and segmentation metrics, keys prefixed `val_`.
    `predict` (images → logits) defaults to `model.predict_on_batch`. With the `class_weights` of
    a weighted loss, classes are taken after the logit shift the saved model will carry
    (payload.modelfile.save_model), so these metrics are those of the saved model."""
    from keras import ops

    predict = predict or model.predict_on_batch
    shift = 0.0 if class_weights is None else -np.log(np.asarray(class_weights, np.float32))

    cm = ConfusionMatrix()
    loss_sum, n = 0.0, 0
    for batch in batches:
        _check_stop(should_stop, "validation")
        logits = predict(batch.images)
        loss_sum += float(ops.convert_to_numpy(loss_fn(batch.labels, logits))) * len(logits)
        n += len(logits)
        cm.add(batch.labels, np.argmax(logits + shift, axis=-1))
    return {"val_loss": loss_sum / n, **{f"val_{k}": v for k, v in cm.metrics().items()}}


def _end_epoch(state: RunState, logs: dict, config: TrainConfig, optimizer) -> None:
    """Record the epoch, then reduce the learning rate on a plateau and decide on early stopping,
    both watching the validation loss (the training loss when there is no validation set)."""
    for key, value in logs.items():
        state.history.setdefault(key, []).append(None if value is None else float(value))
    monitored = logs.get("val_loss", logs["loss"])
    if monitored < state.best:
        state.best, state.epochs_since_best, state.epochs_since_lr_change = monitored, 0, 0
    else:
        state.epochs_since_best += 1
        state.epochs_since_lr_change += 1
    if (config.lr_schedule == "plateau" and config.reduce_lr_patience
            and state.epochs_since_lr_change >= config.reduce_lr_patience):
        state.learning_rate = max(state.learning_rate * REDUCE_LR_FACTOR, MIN_LEARNING_RATE)
        optimizer.learning_rate = state.learning_rate
        state.epochs_since_lr_change = 0
    if config.early_stopping_patience and state.epochs_since_best >= config.early_stopping_patience:
        state.stopped_early = True
    state.epoch += 1
    state.step, state.loss_sum = 0, 0.0


# ---------------------------------------------------------------------------------------------
# The run


def train(inputs: Sequence[Path], output_model: Path, config: TrainConfig, *,
          init_model: Optional[Path] = None, output_metrics: Optional[Path] = None,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          on_checkpoint: Optional[Callable[[Path], None]] = None) -> StepResult:
    """Train the `config.model_config` network on labelled event files and write it to exactly
    `output_model` (a `.keras` file whatever its name).

    Starts from `init_model` if given, or continues from the latest complete checkpoint in
    `config.checkpoint_dir` when `config.resume`. After the weighted loss, the saved network's
    logits are shifted by −log(class weight) so that its softmax gives class probabilities
    (payload.modelfile.save_model); validation metrics are those of that saved network. Writes the metrics JSON (validation metrics,
    history) and the training-curve PNG when asked. Raises EventFileError / NoEventsError for bad
    inputs, ModelFileError for a bad init model or checkpoint, TrainingDivergedError when the loss
    stops being finite, StopRequested when `should_stop()` turns true.
    """
    import keras

    from payload.modelfile import load_model, save_model
    from payload.model import build_model, describe, get_config
    from payload.precision import dtype_policy

    from payload import distribute

    # MultiWorkerMirroredStrategy must exist before the framework runs its first operation
    plan = distribute.plan_distribution(config.gpus, config.cluster, timeout_s=config.collective_timeout_s)
    distribute.make_strategy(plan)
    config = dataclasses.replace(config, batch_size=plan.global_batch(config.batch_size))
    inputs = list(inputs)
    counts = inspect_inputs(inputs, require_labels=True)
    n_train, n_val = split_events(sum(c.events for c in counts), config)
    model_config = get_config(training_network(config.model_config, init_model))
    checkpoint = latest_checkpoint(config.checkpoint_dir) if config.resume else None
    report = progress or (lambda _: None)

    if checkpoint is not None:
        state = read_run_state(checkpoint, model_config.name)
    else:
        state = RunState(model_config.name, config.learning_rate, _class_weights(inputs, config, n_train, report))

    crops = config.crop_size > 0
    if crops and (plan.kind != "default" or not model_config.pixel_position):
        raise UnsupportedOptionError("training on crops needs one device and a network with position "
                                     f"channels (not {model_config.name!r}): train on whole events")
    steps = math.ceil(n_train / config.batch_size)
    with dtype_policy(config.precision):
        keras.utils.set_random_seed(config.seed)
        with distribute.scope(plan):
            # on crops: the same weights behind an input that also takes each crop's origin
            model = build_model(model_config, (None, None, 1), crops=True) if crops else build_model(model_config)
            if init_model is not None and checkpoint is None:
                model.set_weights(load_model(init_model, model_config.name).get_weights())
            loss_fn = make_loss(config.loss, state.class_weights)
            learning_rate = _learning_rate(config, steps * config.epochs)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_fn)
            model.optimizer.build(model.trainable_variables)
            resumed_from = None
            if checkpoint is not None:
                restore_variables(checkpoint, model)
                resumed_from = state.epoch
        train_step = distribute.train_step(model, plan)
        predict = distribute.predict_step(model, plan)
        if crops:
            def predict(images, _predict=predict):
                return _predict([images, np.zeros((len(images), 2), np.int32)])
        last_checkpoint = time.monotonic()

        def checkpoint_now() -> None:
            nonlocal last_checkpoint
            path = save_checkpoint(config.checkpoint_dir, model, state)
            last_checkpoint = time.monotonic()
            if on_checkpoint is not None:
                on_checkpoint(path)

        with _inputs_read_again(inputs):
            while state.epoch < config.epochs and not state.stopped_early:
                stage = f"train epoch {state.epoch + 1}/{config.epochs}"
                for step, (images, labels) in enumerate(_training_batches(inputs, config, n_train, state.epoch)):
                    if step < state.step:
                        continue  # trained before the checkpoint this run resumed from
                    _check_stop(should_stop, stage)
                    loss = train_step(images, labels)
                    if not math.isfinite(loss):
                        raise TrainingDivergedError(
                            f"the training loss became {loss} at epoch {state.epoch + 1}, step {step + 1} of "
                            f"{steps}: lower the learning rate, use float32 or check the inputs")
                    state.step, state.loss_sum = step + 1, state.loss_sum + loss
                    report(Progress(stage, state.step, steps, "steps", {"loss": state.loss_sum / state.step}))
                    if (config.checkpoint_dir is not None and state.step < steps
                            and time.monotonic() - last_checkpoint >= config.checkpoint_every_s):
                        checkpoint_now()
                distribute.sync_batch_stats(model, plan)   # every worker validates the same weights
                logs = {"loss": state.loss_sum / max(state.step, 1),
                        "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))}
                if n_val:
                    report(Progress(f"validation {state.epoch + 1}/{config.epochs}", 0, n_val))
                    logs.update(validate(model, loss_fn, _validation_batches(inputs, config, n_train, n_val),
                                         should_stop, predict, state.class_weights))
                _end_epoch(state, logs, config, model.optimizer)
                report(Progress(stage, steps, steps, "steps", {k: v for k, v in logs.items() if v is not None}))
                if config.checkpoint_dir is not None:
                    checkpoint_now()

        save_model(model, output_model, class_weights=state.class_weights)

    history = {key: tuple(values) for key, values in state.history.items()}
    final = {key: values[-1] for key, values in history.items()}
    outputs = {str(output_model): 0}
    if output_metrics is not None:
        document = {
            "mode": "train",
            "model": describe(model_config),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "events": {"train": n_train, "validation": n_val, "inputs": [asdict(c) for c in counts]},
            "class_weights": state.class_weights,
            "epochs_run": state.epoch,
            "stopped_early": state.stopped_early,
            "resumed_from_epoch": resumed_from,
            "metrics": final,
            "history": state.history,
            "provenance": asdict(provenance),
        }
        write_metrics_json(output_metrics, document)
        outputs[str(output_metrics)] = 0
    if output_plot is not None:
        from payload.plots import training_curve

        training_curve(state.history, output_plot, title=f"FC-DenseNet {model_config.name}")
        outputs[str(output_plot)] = 0
    return StepResult(mode="train", processed_events=n_train + n_val, inputs=counts, outputs=outputs,
                      metrics=final, resumed_from_epoch=resumed_from, history=history)

