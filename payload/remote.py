"""The network on an inference server: a Triton gRPC client that sends batches of event images and
reads back probabilities (docs/design.md, 'Inference as a service').

tritonclient carries the protocol. This module adds what a job needs around it: the served model
checked against payload.serving_contract before any event is sent, requests split to the model's
largest batch, each request bounded in time and tried again with backoff while the server is busy
or briefly gone, and every failure named by its kind (KINDS), so that the caller can report it or
run the network itself instead. No framework is imported here, only numpy and tritonclient.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from payload.config import ServerSpec
from payload.errors import InferenceServerError
from payload.serving_contract import (IMAGES, PROBABILITIES, PROVENANCE, PROVENANCE_KEYS, TOKEN_HEADER,
                                      parse_server_url)

KINDS = {
    "unreachable": "no server answers at that address",
    "lost": "the server answered earlier in the job and no longer does",
    "not-ready": "the server is up but the model is not ready",
    "not-found": "the server has no such model or version",
    "refused": "the server refused the job's credentials",
    "mismatch": "the model's inputs or outputs are not those of the network",
    "too-large": "a request is larger than the server accepts",
    "overloaded": "the server's queue is full",
    "timeout": "the server did not answer in time",
    "failed": "the server failed to run the model",
}
# Kinds a later try may cure; the others say the job itself asks for something wrong.
RETRYABLE = frozenset({"unreachable", "lost", "not-ready", "overloaded", "timeout"})
IMAGE_SHAPE = (320, 320, 1)
OUTPUT_SHAPE = (320, 320, 3)
BACKOFF_S, BACKOFF_MAX_S = 0.5, 8.0
MAX_MESSAGE = 2**31 - 1
# gRPC reconnects to a server that went away with its own backoff, up to 2 minutes by default:
# longer than our retries wait, so a server back after a restart would never be seen again.
CHANNEL_ARGS = [("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.initial_reconnect_backoff_ms", 250), ("grpc.min_reconnect_backoff_ms", 250),
                ("grpc.max_reconnect_backoff_ms", 2000)]


@dataclass
class Tally:
    """What the server did for the job: requests answered, tries repeated, events, seconds."""

    requests: int = 0
    retries: int = 0
    events: int = 0
    seconds: float = 0.0


class TritonNetwork:
    """One model on one Triton server, shared by the threads that send the job's requests
    (tritonclient's gRPC client and its channel are safe to share between threads)."""

    def __init__(self, spec: ServerSpec, *, token: Optional[Callable[[], Optional[str]]] = None,
                 should_stop: Optional[Callable[[], bool]] = None, channel_args: Optional[list] = None):
        import tritonclient.grpc as grpcclient

        self.spec = spec
        self.address, self.tls = parse_server_url(spec.url)
        self.name, self.version = spec.model, spec.version
        self._grpc = grpcclient
        self._token = token
        self._should_stop = should_stop or (lambda: False)
        self._client = grpcclient.InferenceServerClient(
            self.address, ssl=self.tls, root_certificates=spec.ca_file if self.tls else None,
            channel_args=channel_args or CHANNEL_ARGS)
        self.max_batch = 0
        self.has_provenance = False
        self.served: dict = {}
        self.tally = Tally()
        self._lock = threading.Lock()
        self._connected = False

    # -- set-up ---------------------------------------------------------------------------------

    def connect(self) -> "TritonNetwork":
        """Check that the server answers, the model is ready and is the network (its tensors as
        payload.serving_contract says); learn its largest batch and version. Raises
        InferenceServerError before any event is sent."""
        self._call(lambda headers: self._client.is_server_live(headers=headers,
                                                               client_timeout=self.spec.timeout_s))
        ready = self._call(lambda headers: self._client.is_model_ready(
            self.name, self.version, headers=headers, client_timeout=self.spec.timeout_s))
        if not ready:
            self._check_known()
            raise self._error("not-ready", "the model is loaded but not ready; wait for the server "
                              "or ask its operators")
        metadata = self._call(lambda headers: self._client.get_model_metadata(
            self.name, self.version, headers=headers, as_json=True, client_timeout=self.spec.timeout_s))
        config = self._call(lambda headers: self._client.get_model_config(
            self.name, self.version, headers=headers, as_json=True, client_timeout=self.spec.timeout_s))
        self.max_batch = int(config.get("config", {}).get("max_batch_size", 0))
        self._check_tensors(metadata)
        self.version = self.version or max(metadata.get("versions", ["1"]), key=int)
        self._connected = True
        return self

    def _check_known(self) -> None:
        # Not the repository index: PyTriton guards it with a token of its own. The metadata of a
        # model the server does not know is refused as unknown; of one it knows, it is answered.
        try:
            self._client.get_model_metadata(self.name, self.version, headers=self._headers(),
                                            as_json=True, client_timeout=self.spec.timeout_s)
        except self._grpc_error() as err:
            kind, detail = classify(err, connected=False)
            if kind in ("not-found", "refused"):
                raise self._error(kind, detail) from None

    def _check_tensors(self, metadata: dict) -> None:
        if self.max_batch < 1:
            raise self._error("mismatch", "the model does not take batches (max_batch_size 0); serve "
                              "it with dune-payload-serve")
        inputs, outputs = _tensors(metadata.get("inputs", [])), _tensors(metadata.get("outputs", []))
        problems = [f"input {IMAGES} is {_describe(inputs.get(IMAGES))}, the network needs "
                    f"{_describe(('FP32', IMAGE_SHAPE))}"] if inputs.get(IMAGES) != ("FP32", IMAGE_SHAPE) else []
        problems += [f"inputs {sorted(set(inputs) - {IMAGES})} are not the network's"] if set(inputs) - {IMAGES} else []
        if outputs.get(PROBABILITIES) != ("FP32", OUTPUT_SHAPE):
            problems.append(f"output {PROBABILITIES} is {_describe(outputs.get(PROBABILITIES))}, the job "
                            f"reads {_describe(('FP32', OUTPUT_SHAPE))}")
        if problems:
            # the remedy first: the pilot keeps only the start of a long message
            raise self._error("mismatch", "serve the model with dune-payload-serve; " + "; ".join(problems))
        self.has_provenance = PROVENANCE in outputs

    # -- inference ------------------------------------------------------------------------------

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities float32 [B, 320, 320, 3] of `images` [B, 320, 320] or [B, 320, 320, 1],
        in requests of at most the model's largest batch. Raises InferenceServerError."""
        images = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        parts = [self._request(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _request(self, images: np.ndarray) -> np.ndarray:
        request = self._grpc.InferInput(IMAGES, list(images.shape), "FP32")
        request.set_data_from_numpy(images)
        wanted = [self._grpc.InferRequestedOutput(PROBABILITIES)]
        if self.has_provenance and not self.served:
            wanted.append(self._grpc.InferRequestedOutput(PROVENANCE))
        start = time.monotonic()
        result = self._call(lambda headers: self._client.infer(
            self.name, [request], model_version=self.version, outputs=wanted, headers=headers,
            client_timeout=self.spec.timeout_s))
        probs = result.as_numpy(PROBABILITIES)
        if probs is None or probs.shape != (len(images), *OUTPUT_SHAPE):
            raise self._error("mismatch", f"the server answered {len(images)} events with "
                              f"{None if probs is None else list(probs.shape)} probabilities")
        if len(wanted) > 1:
            self._note_provenance(result.as_numpy(PROVENANCE))
        with self._lock:
            self.tally.requests += 1
            self.tally.events += len(images)
            self.tally.seconds += time.monotonic() - start
        return probs

    def _note_provenance(self, values: Optional[np.ndarray]) -> None:
        if values is None or not values.size:
            return
        raw = values.reshape(-1)[0]
        try:
            found = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if isinstance(found, dict):
            self.served = {key: str(found.get(key, "")) for key in PROVENANCE_KEYS}

    # -- every call: credentials, retries, errors by kind ---------------------------------------

    def _headers(self) -> Optional[dict]:
        # A token goes only over TLS, as with HTTPS inputs: over plain gRPC anyone on the path reads it.
        token = self._token() if (self._token and self.tls) else None
        return {TOKEN_HEADER: token} if token else None

    def _call(self, call: Callable[[Optional[dict]], object]):
        attempt = 0
        while True:
            try:
                return call(self._headers())
            except self._grpc_error() as err:
                kind, detail = classify(err, connected=self._connected)
                if kind not in RETRYABLE or attempt >= self.spec.retries or self._should_stop():
                    raise self._error(kind, detail, tries=attempt + 1) from None
            with self._lock:
                self.tally.retries += 1
            self._wait(min(BACKOFF_MAX_S, BACKOFF_S * 2 ** attempt) * random.uniform(0.5, 1.0))
            attempt += 1

    def _grpc_error(self) -> type:
        from tritonclient.utils import InferenceServerException

        return InferenceServerException

    def _wait(self, seconds: float) -> None:
        # Thousands of grid jobs may lose one server at once: the jitter keeps them from coming
        # back in step; the stop check keeps a stopping job from waiting out its retries.
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._should_stop():
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def _error(self, kind: str, detail: str, *, tries: int = 1) -> InferenceServerError:
        where = f"model {self.name}{':' + self.version if self.version else ''} on {self.spec.url}"
        after = f" after {tries} tries" if tries > 1 else ""
        return InferenceServerError(f"inference server: {KINDS[kind]}{after} ({where}): {detail}",
                                    kind=kind, server=self.spec.url, model=self.name)

    def describe(self) -> dict:
        """Where the network ran, for reports: server, model, version, largest batch, what it did."""
        return {"server": self.spec.url, "model": self.name, "version": self.version,
                "maxBatch": self.max_batch, "concurrency": self.spec.concurrency,
                "requests": self.tally.requests, "retries": self.tally.retries,
                "requestSeconds": round(self.tally.seconds, 3), **({"served": self.served} if self.served else {})}

    def close(self) -> None:
        """Close the channel (requests still in flight end with an error)."""
        self._client.close()


def classify(err, *, connected: bool) -> tuple[str, str]:
    """(kind, detail) of a tritonclient InferenceServerException, by its gRPC status and text."""
    status = str(err.status() or "").upper()
    text = str(err.message() or err)
    low = text.lower()
    if "DEADLINE_EXCEEDED" in status or "deadline exceeded" in low:
        return "timeout", "no answer within the request's time limit (--inferenceTimeout)"
    if "restricted" in low or "UNAUTHENTICATED" in status or "PERMISSION_DENIED" in status:
        return "refused", f"{_short(text)}; check the job's token (BEARER_TOKEN or a token file) and that the address is grpcs://"
    if "larger than max" in low or "batch-size must be" in low or "batch size must be" in low:
        return "too-large", f"{_short(text)}; lower --batchSize"
    if "queue" in low and ("exceed" in low or "full" in low) or "RESOURCE_EXHAUSTED" in status:
        return "overloaded", _short(text)
    # A server going down unloads its models first: a model that served this job and is now "not at
    # ready state" (or unknown, seen when PyTriton's process is killed) means the server is being lost.
    if "not at ready state" in low or (connected and "unknown model" in low):
        return ("lost" if connected else "not-ready"), _short(text)
    # Triton may answer an unknown model with UNAVAILABLE: the text decides before that status does.
    if "NOT_FOUND" in status or "unknown model" in low or "not found" in low:
        return "not-found", f"{_short(text)}; check --inferenceModel"
    if "UNAVAILABLE" in status or "failed to connect" in low or "connection" in low:
        return ("lost" if connected else "unreachable"), _short(text)
    if "INVALID_ARG" in status or "unexpected shape" in low or "datatype" in low:
        return "mismatch", _short(text)
    return "failed", _short(text)


def _short(text: str) -> str:
    return " ".join(text.split())[:300]


def _tensors(described: list) -> dict:
    """{name: (datatype, shape without the batch axis)} of a model's inputs or outputs."""
    return {t["name"]: (t["datatype"], tuple(int(d) for d in t["shape"][1:])) for t in described}


def _describe(tensor) -> str:
    return "missing" if tensor is None else f"{tensor[0]} {list(tensor[1])}"
