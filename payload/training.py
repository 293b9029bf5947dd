"""Training: stream labelled events from HDF5 files through the FC-DenseNet.

One run = `config.epochs` passes over the training events (payload.training_data), each followed
by a validation pass, a reduce-on-plateau step of the learning rate and an early-stopping check.

Checkpoints (every `checkpoint_every_s` and at every epoch end, payload.checkpoints) hold all
model variables, the optimizer state and the run state. Resuming restores them and replays the same
batch order, so a resumed run ends where an uninterrupted one would.

The loop calls `model.train_on_batch`, the same compiled train step that `model.fit` runs, on any
Keras backend; owning the loop lets it poll `should_stop`, raise on a non-finite loss and
checkpoint in the middle of an epoch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from payload import distribute
from payload.checkpoints import Checkpointer, RunState, latest_checkpoint, read_run_state, restore_variables
from payload.config import Progress, ProgressFn, Provenance, StepResult, StopFn, TrainConfig
from payload.errors import ModelFileError, StopRequested, TrainingDivergedError, UnsupportedOptionError
from payload.losses import make_loss
from payload.metrics import ConfusionMatrix, write_metrics_json
from payload.training_data import (Selection, class_weights, inputs_read_again, select_events, training_batches,
                                   validation_batches)

DEFAULT_NETWORK = "small"
REDUCE_LR_FACTOR = 0.5
MIN_LEARNING_RATE = 1e-6


# ---------------------------------------------------------------------------------------------
# The network and its learning rate


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


# ---------------------------------------------------------------------------------------------
# One epoch


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


@dataclass(frozen=True)
class Loop:
    """What every step of the run uses, fixed from the first epoch to the last."""

    config: TrainConfig
    events: Selection
    steps: int                          # batches per epoch
    model: object
    loss_fn: Callable
    plan: distribute.DistributionPlan
    train_step: Callable
    predict: Callable
    checkpoints: Checkpointer
    on_progress: ProgressFn
    should_stop: Optional[StopFn]


def _distributed(config: TrainConfig) -> tuple[distribute.DistributionPlan, TrainConfig]:
    """The run's plan with its strategy made, and `config` with the global batch size.
    MultiWorkerMirroredStrategy must exist before the framework runs its first operation."""
    plan = distribute.plan_distribution(config.gpus, config.cluster, timeout_s=config.collective_timeout_s)
    distribute.make_strategy(plan)
    return plan, dataclasses.replace(config, batch_size=plan.global_batch(config.batch_size))


def _first_state(checkpoint: Optional[Path], network: str, events: Selection, config: TrainConfig,
                 on_progress: ProgressFn) -> RunState:
    """The state of the checkpoint the run resumes from, or a fresh one (loss weights counted now)."""
    if checkpoint is not None:
        return read_run_state(checkpoint, network)
    return RunState(network, config.learning_rate, class_weights(events, config, on_progress))


def _check_crops(config: TrainConfig, plan: distribute.DistributionPlan, network) -> None:
    if config.crop_size > 0 and (plan.kind != "default" or not network.pixel_position):
        raise UnsupportedOptionError("training on crops needs one device and a network with position "
                                     f"channels (not {network.name!r}): train on whole events")


def _compiled_model(network, config: TrainConfig, plan: distribute.DistributionPlan, state: RunState,
                    steps: int, init_model: Optional[Path], checkpoint: Optional[Path]):
    """(model, loss) under `plan`'s scope, compiled with its optimizer built: with the weights of
    `init_model`, or all variables of `checkpoint` when the run resumes."""
    import keras

    from payload.model import build_model
    from payload.modelfile import load_model

    keras.utils.set_random_seed(config.seed)
    with distribute.scope(plan):
        # on crops: the same weights behind an input that also takes each crop's origin
        model = build_model(network, (None, None, 1), crops=True) if config.crop_size else build_model(network)
        if init_model is not None and checkpoint is None:
            model.set_weights(load_model(init_model, network.name).get_weights())
        loss_fn = make_loss(config.loss, state.class_weights)
        model.compile(optimizer=keras.optimizers.Adam(_learning_rate(config, steps * config.epochs)), loss=loss_fn)
        model.optimizer.build(model.trainable_variables)
        if checkpoint is not None:
            restore_variables(checkpoint, model)
    return model, loss_fn


def _step_functions(model, plan: distribute.DistributionPlan, crops: bool) -> tuple[Callable, Callable]:
    """(train_step, predict) of `model` under `plan`."""
    train_step, whole = distribute.train_step(model, plan), distribute.predict_step(model, plan)
    if not crops:
        return train_step, whole

    def predict(images):
        # validation runs on whole events: a crop network sees them as one crop at origin (0, 0)
        return whole([images, np.zeros((len(images), 2), np.int32)])

    return train_step, predict


def _run_epochs(loop: Loop, state: RunState) -> None:
    """Train and validate epoch after epoch, from where `state` stands to the last epoch or an early stop."""
    config = loop.config
    with inputs_read_again(loop.events.inputs):
        while state.epoch < config.epochs and not state.stopped_early:
            stage = f"train epoch {state.epoch + 1}/{config.epochs}"
            _train_epoch(loop, state, stage)
            logs = _epoch_logs(loop, state)
            _end_epoch(state, logs, config, loop.model.optimizer)
            loop.on_progress(Progress(stage, loop.steps, loop.steps, "steps",
                                      {k: v for k, v in logs.items() if v is not None}))
            loop.checkpoints.save(state)


def _train_epoch(loop: Loop, state: RunState, stage: str) -> None:
    """Train on the current epoch's batches from `state.step` on, checkpointing when one is due."""
    for step, (images, labels) in enumerate(training_batches(loop.events, loop.config, state.epoch)):
        if step < state.step:
            continue  # trained before the checkpoint this run resumed from
        _check_stop(loop.should_stop, stage)
        loss = loop.train_step(images, labels)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the training loss became {loss} at epoch {state.epoch + 1}, step {step + 1} of "
                f"{loop.steps}: lower the learning rate, use float32 or check the inputs")
        state.step, state.loss_sum = step + 1, state.loss_sum + loss
        loop.on_progress(Progress(stage, state.step, loop.steps, "steps", {"loss": state.loss_sum / state.step}))
        if state.step < loop.steps and loop.checkpoints.due():
            loop.checkpoints.save(state)


def _epoch_logs(loop: Loop, state: RunState) -> dict:
    """The epoch's training loss and learning rate, and the validation metrics when there are events to
    validate on."""
    from keras import ops

    distribute.sync_batch_stats(loop.model, loop.plan)   # every worker validates the same weights
    logs = {"loss": state.loss_sum / max(state.step, 1),
            "learning_rate": float(ops.convert_to_numpy(loop.model.optimizer.learning_rate))}
    events, config = loop.events, loop.config
    if events.n_val:
        loop.on_progress(Progress(f"validation {state.epoch + 1}/{config.epochs}", 0, events.n_val))
        logs.update(validate(loop.model, loop.loss_fn, validation_batches(events, config), loop.should_stop,
                             loop.predict, state.class_weights))
    return logs


def _metrics_document(state: RunState, network, config: TrainConfig, events: Selection,
                      resumed_from: Optional[int], provenance: Provenance) -> dict:
    """The metrics JSON of a run that trained `network` (a payload.model.ModelConfig): its last
    epoch's metrics, the whole history and what the run was given."""
    from payload.model import describe

    return {
        "mode": "train",
        "model": describe(network),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "events": {"train": events.n_train, "validation": events.n_val, "inputs": [asdict(c) for c in events.counts]},
        "class_weights": state.class_weights,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "resumed_from_epoch": resumed_from,
        "metrics": {key: values[-1] for key, values in state.history.items()},
        "history": state.history,
        "provenance": asdict(provenance),
    }


def _training_result(state: RunState, network, config: TrainConfig, events: Selection,
                     resumed_from: Optional[int], provenance: Provenance, output_model: Path,
                     output_metrics: Optional[Path], output_plot: Optional[Path]) -> StepResult:
    """Write the metrics JSON and the training curve where asked; the run's StepResult."""
    outputs = {str(output_model): 0}
    if output_metrics is not None:
        write_metrics_json(output_metrics, _metrics_document(state, network, config, events, resumed_from, provenance))
        outputs[str(output_metrics)] = 0
    if output_plot is not None:
        from payload.plots import training_curve

        training_curve(state.history, output_plot, title=f"FC-DenseNet {network.name}")
        outputs[str(output_plot)] = 0
    history = {key: tuple(values) for key, values in state.history.items()}
    return StepResult(mode="train", processed_events=events.n_train + events.n_val, inputs=events.counts,
                      outputs=outputs, metrics={key: values[-1] for key, values in history.items()},
                      resumed_from_epoch=resumed_from, history=history)


def train(inputs: Sequence[Path], output_model: Path, config: TrainConfig, *,
          init_model: Optional[Path] = None, output_metrics: Optional[Path] = None,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          on_checkpoint: Optional[Callable[[Path], None]] = None) -> StepResult:
    """Train the `config.model_config` network on labelled event files and write it to exactly
    `output_model` (a `.keras` file whatever its name).

    Starts from `init_model` if given, or continues from the latest complete checkpoint in
    `config.checkpoint_dir` when `config.resume`. After the weighted loss, the saved network's
    logits are shifted by −log(class weight) so that its softmax gives class probabilities
    (payload.modelfile.save_model); validation metrics are those of that saved network. Writes the
    metrics JSON (validation metrics, history) and the training-curve PNG when asked. Raises
    EventFileError / EmptySelection for bad inputs, ModelFileError for a bad init model or
    checkpoint, TrainingDivergedError when the loss stops being finite, StopRequested when
    `should_stop()` turns true.
    """
    from payload.model import get_config
    from payload.modelfile import save_model
    from payload.precision import dtype_policy

    plan, config = _distributed(config)
    events = select_events(inputs, config)
    network = get_config(training_network(config.model_config, init_model))
    checkpoint = latest_checkpoint(config.checkpoint_dir) if config.resume else None
    on_progress = on_progress or (lambda _: None)
    state = _first_state(checkpoint, network.name, events, config, on_progress)
    _check_crops(config, plan, network)
    resumed_from = None if checkpoint is None else state.epoch
    steps = math.ceil(events.n_train / config.batch_size)
    with dtype_policy(config.precision):
        model, loss_fn = _compiled_model(network, config, plan, state, steps, init_model, checkpoint)
        train_step, predict = _step_functions(model, plan, config.crop_size > 0)
        checkpoints = Checkpointer(config.checkpoint_dir, config.checkpoint_every_s, model, on_checkpoint)
        loop = Loop(config, events, steps, model, loss_fn, plan, train_step, predict, checkpoints, on_progress,
                    should_stop)
        _run_epochs(loop, state)
        save_model(model, output_model, class_weights=state.class_weights)
    return _training_result(state, network, config, events, resumed_from, provenance, output_model,
                            output_metrics, output_plot)
