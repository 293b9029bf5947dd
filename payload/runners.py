"""Where the network runs for inference and evaluation: in this process, or on an inference server
with several requests in flight, falling back to this process when asked and the server is gone.

A runner turns the reader's batches into (batch, probabilities) in the batches' order and counts
where each event ran, for the outputs' provenance and the caller's report. The server's runner
imports no framework unless it falls back.
"""
from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from payload.config import InferConfig, StopFn
from payload.errors import InferenceServerError, StopRequested
from payload.events import Batch

Token = Callable[[], Optional[str]]


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


def network_name(network) -> str:
    """The network's config name (tiny, small, paper), else its Keras name."""
    from payload.model import config_name_of

    return config_name_of(network) or network.name


def _check_stop(batch: Batch, should_stop: Optional[StopFn]) -> None:
    if should_stop is not None and should_stop():
        raise StopRequested(f"stop requested at {batch.source} event {batch.first_index}")


class LocalRunner:
    """The network in this process: a compiled predict step, one batch after another. With several
    GPUs (`config.gpus`) each batch holds `batch_size` events per GPU, split over them."""

    def __init__(self, model_path: Path, config: InferConfig):
        from payload import distribute

        self.model_path = model_path
        self.config = config
        self.network = prediction_model(model_path, config)
        self.name = network_name(self.network)
        self._plan = distribute.plan_distribution(config.gpus)
        self._predict = distribute.predict_step(self.network, self._plan)
        self.batch_size = self._plan.global_batch(config.batch_size)
        self.events = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities float32 [B, 320, 320, 3] of one batch of images."""
        probs = self._predict(images)
        self.events += len(probs)
        return probs

    def run(self, batches: Iterable[Batch], should_stop: Optional[StopFn] = None) -> Iterator[tuple[Batch, np.ndarray]]:
        """(batch, probabilities) of each batch, in order."""
        for batch in batches:
            _check_stop(batch, should_stop)
            yield batch, self.predict(batch.images)

    def attrs(self) -> dict:
        """The network's part of a predictions file's attributes."""
        return {"model_file": os.path.basename(self.model_path), "model_config": self.name,
                "precision": self.config.precision, "inference": json.dumps(self.report())}

    def report(self) -> dict:
        """Where the network ran: here, on how many events."""
        return {"where": "in-process", "events": {"in-process": self.events}}

    def close(self) -> None:
        """Nothing to release: the network lives as long as the process."""


class ServerRunner:
    """The network on an inference server (payload.remote), `concurrency` requests in flight while
    the reader reads ahead and the writer writes behind. With `fallback` and a model file, a
    server that is gone (at the start or during the job) hands the rest of the batches, those in
    flight included, to a LocalRunner; the report says which events ran where."""

    def __init__(self, model_path: Optional[Path], config: InferConfig, *, token: Optional[Token] = None,
                 should_stop: Optional[StopFn] = None):
        from payload.remote import TritonNetwork

        self.spec = config.server
        self.config = config
        self.model_path = model_path
        self.batch_size = config.batch_size
        self.local: Optional[LocalRunner] = None
        self.fallback: dict = {}
        self.server_events = 0
        self._abandoned = False
        stop = should_stop or (lambda: False)
        self.network = TritonNetwork(self.spec, token=token, should_stop=lambda: self._abandoned or stop())
        try:
            self.network.connect()
        except InferenceServerError as err:
            self._fall_back(err, at_event=0)

    @property
    def name(self) -> str:
        return self.network.served.get("network") or (self.local.name if self.local else "")

    def run(self, batches: Iterable[Batch], should_stop: Optional[StopFn] = None) -> Iterator[tuple[Batch, np.ndarray]]:
        """(batch, probabilities) of each batch, in order."""
        window: deque = deque()
        pool = ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix="inference-request")
        try:
            for batch in batches:
                _check_stop(batch, should_stop)
                if self.local is not None and not window:
                    yield batch, self.local.predict(batch.images)
                    continue
                window.append((batch, pool.submit(self.network.predict, batch.images)))
                while window and (len(window) >= self.spec.concurrency or self.local is not None):
                    yield self._settle(*window.popleft())
            while window:
                yield self._settle(*window.popleft())
        finally:
            self._abandoned = self._abandoned or bool(window)
            pool.shutdown(wait=False, cancel_futures=True)

    def _settle(self, batch: Batch, answer: Future) -> tuple[Batch, np.ndarray]:
        if self.local is None:
            try:
                probs = answer.result()
                self.server_events += len(probs)
                return batch, probs
            except InferenceServerError as err:
                self._fall_back(err, at_event=self.server_events)
        answer.cancel()
        return batch, self.local.predict(batch.images)

    def _fall_back(self, err: InferenceServerError, *, at_event: int) -> None:
        if not (self.spec.fallback and err.gone and self.model_path is not None):
            raise err
        # Requests still in flight stop retrying: their batches run here instead.
        self._abandoned = True
        self.fallback = {"atEvent": at_event, "kind": err.kind, "reason": str(err)}
        self.local = LocalRunner(self.model_path, self.config)

    def attrs(self) -> dict:
        """The network's part of a predictions file's attributes: what the server said it ran."""
        served = self.network.served
        return {"model_file": served.get("model_file", ""), "model_config": self.name,
                "model_version": f"{self.network.name}:{self.network.version}",
                "build": served.get("build", ""), "precision": served.get("precision", ""),
                "inference": json.dumps(self.report())}

    def report(self) -> dict:
        """Where the network ran: the server (and what it did), and here after a fallback."""
        local = self.local.events if self.local else 0
        where = "server" if not local else ("in-process" if not self.server_events else "server, then in-process")
        report = {"where": where, **self.network.describe(),
                  "events": {"server": self.server_events, "in-process": local}}
        if self.fallback:
            report["fallback"] = self.fallback
        return report

    def close(self) -> None:
        self.network.close()


def runner_for(model_path: Optional[Path], config: InferConfig, *, token: Optional[Token] = None,
               should_stop: Optional[StopFn] = None):
    """The runner `config` asks for: a ServerRunner when it names a server, else a LocalRunner."""
    if config.server is not None:
        return ServerRunner(model_path, config, token=token, should_stop=should_stop)
    return LocalRunner(model_path, config)
