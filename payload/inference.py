"""Inference and evaluation: stream events through a trained network, batch by batch.

The reader prefetches the next batches in a background thread while the network runs, in this
process (the compiled predict step, softmax included) or on an inference server with several
requests in flight (payload.runners), and each batch's probabilities go straight to the
predictions file, so memory stays flat whatever the number of events.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional, Sequence

from payload.config import InferConfig, Progress, ProgressFn, Provenance, StepResult, StopFn
from payload.errors import EmptySelection
from payload.events import CLASS_NAMES, PredictionWriter, inspect_inputs, iter_batches, selected_count
from payload.metrics import ConfusionMatrix, write_metrics_json
from payload.runners import Token, runner_for


def _prediction_attrs(runner, config: InferConfig, provenance: Provenance, counts) -> dict:
    return {
        "model_version": provenance.model_version,
        "build": provenance.build,
        "code_version": provenance.code_version,
        "precision": config.precision,
        "inputs": [os.path.basename(c.path) for c in counts],
        **dict(provenance.extra),
        **runner.attrs(),
    }


@contextlib.contextmanager
def _running(model: Optional[Path], config: InferConfig, token: Optional[Token],
             should_stop: Optional[StopFn]) -> Iterator:
    runner = runner_for(model, config, token=token, should_stop=should_stop)
    try:
        yield runner
    finally:
        runner.close()


def _batches(runner, inputs, config: InferConfig, *, with_labels: bool, should_stop: Optional[StopFn]):
    batches = iter_batches(inputs, runner.batch_size, skip_events=config.skip_events,
                           max_events=config.max_events, with_labels=with_labels,
                           prefetch=config.prefetch_batches)
    return runner.run(batches, should_stop)


def _count(inputs, config: InferConfig, require_labels: bool):
    counts = inspect_inputs(inputs, require_labels=require_labels)
    n = selected_count(sum(c.events for c in counts), config.skip_events, config.max_events)
    if n == 0:
        raise EmptySelection(f"no events selected: {sum(c.events for c in counts)} event(s) in "
                             f"{len(counts)} file(s), skipEvents={config.skip_events}, "
                             f"maxEvents={config.max_events}")
    return counts, n


def infer(inputs: Sequence[Path], model: Optional[Path], output_pred: Path, config: InferConfig, *,
          output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
          on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
          server_token: Optional[Token] = None) -> StepResult:
    """Classify every pixel of the selected events of `inputs` with the network in `model` (or on
    the server `config.server` names, sending `server_token` over TLS) and write the predictions
    file `output_pred` (class scores float16, or classes uint8), and with `output_plot` an event
    display of the first event with its prediction.

    Raises EventFileError / EmptySelection for bad inputs, ModelFileError for a model file that is
    unreadable or of another config, InferenceServerError, StopRequested; no partial predictions
    file is left behind.
    """
    inputs = list(inputs)
    counts, n = _count(inputs, config, require_labels=False)
    first_event = None
    done = 0
    with _running(model, config, server_token, should_stop) as runner:
        with PredictionWriter(output_pred, n_events=n, output_format=config.output_format,
                              attrs=_prediction_attrs(runner, config, provenance, counts)) as writer:
            for batch, probs in _batches(runner, inputs, config, with_labels=False, should_stop=should_stop):
                writer.write(batch.event_id, probs, from_logits=False)
                if first_event is None:
                    first_event = (batch.images[0], probs[0].argmax(axis=-1), int(batch.event_id[0]))
                done += len(probs)
                if on_progress is not None:
                    on_progress(Progress("inference", done, n))
            writer.attrs_at_close.update(_prediction_attrs(runner, config, provenance, counts))
    outputs = {str(output_pred): done}
    if output_plot is not None:
        from payload.display import event_display

        image, classes, event_id = first_event
        event_display((image, None), event_id, output_plot, predictions=classes)
        outputs[str(output_plot)] = 0
    return StepResult(mode="infer", processed_events=done, inputs=counts, outputs=outputs,
                      inference=runner.report())


def evaluate(inputs: Sequence[Path], model: Optional[Path], config: InferConfig, *,
             output_metrics: Optional[Path] = None, output_pred: Optional[Path] = None,
             output_plot: Optional[Path] = None, provenance: Provenance = Provenance(),
             on_progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
             server_token: Optional[Token] = None) -> StepResult:
    """Compare the network's classes with the truth labels of `inputs`: per-class IoU, efficiency
    and purity, mean IoU, pixel accuracy and the confusion matrix. Optionally writes them as JSON
    (`output_metrics`), the predictions (`output_pred`) and an event display of the first event
    with truth and prediction (`output_plot`). The network runs as for `infer`; errors as for `infer`.
    """
    inputs = list(inputs)
    counts, n = _count(inputs, config, require_labels=True)
    cm = ConfusionMatrix()
    first_event = None
    done = 0
    with _running(model, config, server_token, should_stop) as runner, contextlib.ExitStack() as stack:
        writer = None
        if output_pred is not None:
            writer = stack.enter_context(PredictionWriter(
                output_pred, n_events=n, output_format=config.output_format,
                attrs=_prediction_attrs(runner, config, provenance, counts)))
        for batch, probs in _batches(runner, inputs, config, with_labels=True, should_stop=should_stop):
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
        if writer is not None:
            writer.attrs_at_close.update(_prediction_attrs(runner, config, provenance, counts))

    metrics = cm.metrics()
    outputs = {} if output_pred is None else {str(output_pred): done}
    if output_metrics is not None:
        write_metrics_json(output_metrics, _metrics_document(runner, done, counts, config, metrics, cm, provenance))
        outputs[str(output_metrics)] = 0
    if output_plot is not None:
        from payload.display import event_display

        image, labels, classes, event_id = first_event
        event_display((image, labels), event_id, output_plot, predictions=classes)
        outputs[str(output_plot)] = 0
    return StepResult(mode="evaluate", processed_events=done, inputs=counts, outputs=outputs, metrics=metrics,
                      inference=runner.report())


def _metrics_document(runner, done: int, counts, config: InferConfig, metrics: dict, cm: ConfusionMatrix,
                      provenance: Provenance) -> dict:
    network = runner.attrs()
    return {
        "mode": "evaluate",
        "events": done,
        "inputs": [asdict(c) for c in counts],
        "model_file": network["model_file"],
        "network": network["model_config"],
        "config": asdict(config),
        "metrics": metrics,
        "confusion_matrix": {"rows": "true class", "columns": "predicted class",
                             "classes": list(CLASS_NAMES), "counts": cm.counts.tolist()},
        "provenance": asdict(provenance),
        "inference": runner.report(),
    }
