"""Inference and evaluation: stream events through a trained network, batch by batch.

The reader prefetches the next batches in a background thread while the compiled predict step
(`predict_on_batch`, softmax included) runs, and each batch's probabilities go straight to the
predictions file, so memory stays flat whatever the number of events.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from payload.config import InferConfig, Progress, ProgressFn, Provenance, StepResult, StopFn
from payload.errors import EmptySelection, StopRequested
from payload.events import CLASS_NAMES, Batch, PredictionWriter, inspect_inputs, iter_batches, selected_count
from payload.metrics import ConfusionMatrix, write_metrics_json


def prediction_model(model_path: Path, config: InferConfig):
    """The network of `model_path` (which must be `config.model_config` when that is given) under
    `config.precision`, ending in a float32 softmax so probabilities come out of the compiled step.
    Raises ModelFileError."""
    import keras

    from payload import distribute
    from payload.modelfile import load_model
    from payload.precision import dtype_policy

    with dtype_policy(config.precision), distribute.scope(distribute.plan_distribution(config.gpus)):
        network = load_model(model_path, config.model_config)
        probs = keras.layers.Softmax(dtype="float32", name="probabilities")(network.output)
        return keras.Model(network.input, probs, name=network.name)


def predict_batches(model, inputs: Sequence, config: InferConfig, *, with_labels: bool,
                    should_stop: Optional[StopFn] = None) -> Iterator[tuple[Batch, np.ndarray]]:
    """(batch, probabilities float32 [B, 320, 320, 3]) for the selected events, in order.
    With several GPUs (`config.gpus`) each batch holds `batch_size` events per GPU, split over them."""
    from payload import distribute

    plan = distribute.plan_distribution(config.gpus)
    predict = distribute.predict_step(model, plan)
    batches = iter_batches(inputs, plan.global_batch(config.batch_size), skip_events=config.skip_events,
                           max_events=config.max_events, with_labels=with_labels,
                           prefetch=config.prefetch_batches)
    for batch in batches:
        if should_stop is not None and should_stop():
            raise StopRequested(f"stop requested at {batch.source} event {batch.first_index}")
        yield batch, predict(batch.images)


def _network_name(network) -> str:
    from payload.model import config_name_of

    return config_name_of(network) or network.name


def _prediction_attrs(model_path: Path, network: str, config: InferConfig, provenance: Provenance, counts) -> dict:
    return {
        "model_version": provenance.model_version,
        "build": provenance.build,
        "code_version": provenance.code_version,
        "model_file": os.path.basename(model_path),
        "model_config": network,
        "precision": config.precision,
        "inputs": [os.path.basename(c.path) for c in counts],
        **dict(provenance.extra),
    }


def _count(inputs, config: InferConfig, require_labels: bool):
    counts = inspect_inputs(inputs, require_labels=require_labels)
    n = selected_count(sum(c.events for c in counts), config.skip_events, config.max_events)
    if n == 0:
        raise EmptySelection(f"no events selected: {sum(c.events for c in counts)} event(s) in "
                             f"{len(counts)} file(s), skipEvents={config.skip_events}, "
                             f"maxEvents={config.max_events}")
    return counts, n


def infer(inputs: Sequence[Path], model: Path, output_pred: Path, config: InferConfig, *,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> StepResult:
    """Classify every pixel of the selected events of `inputs` with the network in `model` and
    write the predictions file `output_pred` (class scores float16, or classes uint8), and with
    `output_plot` an event display of the first event with its prediction.

    Raises EventFileError / EmptySelection for bad inputs, ModelFileError for a model file that is
    unreadable or of another config, StopRequested; no partial predictions file is left behind.
    """
    inputs = list(inputs)
    counts, n = _count(inputs, config, require_labels=False)
    network = prediction_model(model, config)
    first_event = None
    done = 0
    with PredictionWriter(output_pred, n_events=n, output_format=config.output_format,
                          attrs=_prediction_attrs(model, _network_name(network), config, provenance, counts)) as writer:
        for batch, probs in predict_batches(network, inputs, config, with_labels=False, should_stop=should_stop):
            writer.write(batch.event_id, probs, from_logits=False)
            if first_event is None:
                first_event = (batch.images[0], probs[0].argmax(axis=-1), int(batch.event_id[0]))
            done += len(probs)
            if on_progress is not None:
                on_progress(Progress("inference", done, n))
    outputs = {str(output_pred): done}
    if output_plot is not None:
        from payload.display import event_display

        image, classes, event_id = first_event
        event_display((image, None), event_id, output_plot, predictions=classes)
        outputs[str(output_plot)] = 0
    return StepResult(mode="infer", processed_events=done, inputs=counts, outputs=outputs)


def evaluate(inputs: Sequence[Path], model: Path, config: InferConfig, *,
             output_metrics: Optional[Path] = None, output_pred: Optional[Path] = None,
             output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
             on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> StepResult:
    """Compare the network's classes with the truth labels of `inputs`: per-class IoU, efficiency
    and purity, mean IoU, pixel accuracy and the confusion matrix. Optionally writes them as JSON
    (`output_metrics`), the predictions (`output_pred`) and an event display of the first event
    with truth and prediction (`output_plot`). Errors as for `infer`.
    """
    inputs = list(inputs)
    counts, n = _count(inputs, config, require_labels=True)
    network = prediction_model(model, config)
    cm = ConfusionMatrix()
    first_event = None
    done = 0
    with contextlib.ExitStack() as stack:
        writer = None
        if output_pred is not None:
            writer = stack.enter_context(PredictionWriter(
                output_pred, n_events=n, output_format=config.output_format,
                attrs=_prediction_attrs(model, _network_name(network), config, provenance, counts)))
        for batch, probs in predict_batches(network, inputs, config, with_labels=True, should_stop=should_stop):
            classes = probs.argmax(axis=-1)
            cm.add(batch.labels, classes)
            if writer is not None:
                writer.write(batch.event_id, probs, from_logits=False)
            if first_event is None:
                first_event = (batch.images[0], batch.labels[0], classes[0], int(batch.event_id[0]))
            done += len(probs)
            if on_progress is not None:
                mean_iou = cm.metrics()["mean_iou"]
                on_progress(Progress("evaluation", done, n, metrics={} if mean_iou is None else {"mean_iou": mean_iou}))

    metrics = cm.metrics()
    outputs = {} if output_pred is None else {str(output_pred): done}
    if output_metrics is not None:
        document = {
            "mode": "evaluate",
            "events": done,
            "inputs": [asdict(c) for c in counts],
            "model_file": os.path.basename(model),
            "network": _network_name(network),
            "config": asdict(config),
            "metrics": metrics,
            "confusion_matrix": {"rows": "true class", "columns": "predicted class",
                                 "classes": list(CLASS_NAMES), "counts": cm.counts.tolist()},
            "provenance": asdict(provenance),
        }
        write_metrics_json(output_metrics, document)
        outputs[str(output_metrics)] = 0
    if output_plot is not None:
        from payload.display import event_display

        image, labels, classes, event_id = first_event
        event_display((image, labels), event_id, output_plot, predictions=classes)
        outputs[str(output_plot)] = 0
    return StepResult(mode="evaluate", processed_events=done, inputs=counts, outputs=outputs, metrics=metrics)

