"""Serve one trained network on a Triton inference server (PyTriton), for clients that send events.

`serving(config)` loads the network the way in-process inference does (`prediction_model`: the
float32 softmax and the precision policy), binds it under a model name and version with the
tensors of payload.serving_contract, starts the bundled tritonserver on the given address and
ports and yields once the model is ready; leaving the context stops the server. Every answer
carries the provenance of the network that ran it, so a predictions file written through a server
names what one written in process names.

Triton listens on 0.0.0.0 unless told otherwise, so gRPC, HTTP and metrics are always given the
configured address (metrics are off unless a port is named). PyTriton protects Triton's
administrative endpoints (model repository, shared memory, statistics, trace, logging) with a
token of its own; a site's token (read from `token_file`) replaces it and also protects inference,
metadata and model config: Triton refuses those calls without the header
payload.serving_contract.TOKEN_HEADER (gRPC; `triton-access-token` over HTTP). Health stays open
for readiness probes. The model repository's index is among PyTriton's protected endpoints, so a
client without the token learns what is served from model metadata, not from the index.

Frameworks (TensorFlow, Keras, PyTriton) are imported when a server starts, never at import.
"""
from __future__ import annotations

import contextlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from payload import __version__
from payload.config import InferConfig
from payload.errors import ModelFileError, PayloadError
from payload.serving_contract import IMAGES, PROBABILITIES, PROVENANCE

IMAGE_SHAPE = (320, 320, 1)
PROBABILITY_SHAPE = (320, 320, 3)
# Endpoints a site's token protects on top of PyTriton's own list; `health` stays open.
TOKEN_ENDPOINTS = ("inference", "metadata", "model-config")


class ServerStartError(PayloadError):
    """The inference server could not start: a port in use, an address it cannot bind, TLS files
    it cannot read, or PyTriton missing. The message names the problem and what to do."""


@dataclass(frozen=True)
class ServeConfig:
    """What to serve and where. `model_name` None: `dune-<network>`; `metrics_port` None: no metrics;
    `max_queue_size` 0: an unbounded queue; `tls_cert`/`tls_key` together turn on gRPC TLS."""

    model_path: Path
    model_config: Optional[str] = None   # None: the model file's own network
    model_name: Optional[str] = None
    model_version: int = 1
    precision: str = "float32"
    gpus: int = 0
    build: str = "default"               # the build it was chosen as (provenance)
    device: str = "cpu"                  # cpu | gpu (provenance)
    max_batch_size: int = 16
    max_queue_delay_us: int = 0
    max_queue_size: int = 0
    address: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: Optional[int] = None
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    token_file: Optional[Path] = None


@dataclass(frozen=True)
class ServedModel:
    """A model being served: its Triton name and version, the network and where clients reach it."""

    name: str
    version: int
    network: str
    grpc_url: str
    provenance: dict
    alive: Callable[[], bool]            # False once tritonserver or the model's process is gone


def load_network(config: ServeConfig):
    """(Keras model ending in the softmax, network name) for `config`. Raises ModelFileError."""
    from payload.runners import network_name, prediction_model

    infer_config = InferConfig(model_config=config.model_config, precision=config.precision,
                               gpus=config.gpus)
    model = prediction_model(config.model_path, infer_config)
    return model, network_name(model)


def provenance_of(config: ServeConfig, network: str) -> dict:
    """The provenance every answer carries (payload.serving_contract.PROVENANCE_KEYS)."""
    return {"network": network, "model_file": config.model_path.name, "build": config.build,
            "precision": config.precision, "code_version": __version__, "device": config.device}


def infer_function(predict: Callable, provenance: dict) -> Callable:
    """The batched inference callable: images float32 [B,320,320,1] → probabilities and one
    provenance JSON per event."""
    import numpy as np
    from pytriton.decorators import batch

    tag = json.dumps(provenance, sort_keys=True).encode("utf-8")

    @batch
    def infer(**inputs):
        probabilities = np.asarray(predict(inputs[IMAGES]), dtype=np.float32)
        return {PROBABILITIES: probabilities,
                PROVENANCE: np.array([[tag]] * len(probabilities), dtype=np.bytes_)}

    return infer


def model_config(config: ServeConfig):
    """PyTriton's ModelConfig: the maximum batch, the dynamic batcher's delay and, when bounded,
    its queue (a full queue rejects requests at once: clients see UNAVAILABLE)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy

    policy = QueuePolicy(max_queue_size=config.max_queue_size) if config.max_queue_size else None
    batcher = DynamicBatcher(max_queue_delay_microseconds=config.max_queue_delay_us,
                             default_queue_policy=policy)
    return ModelConfig(max_batch_size=config.max_batch_size, batcher=batcher)


def triton_config(config: ServeConfig):
    """PyTriton's TritonConfig: every listener on `config.address`, TLS when given."""
    from pytriton.triton import TritonConfig

    metrics = config.metrics_port is not None
    tls = {}
    if config.tls_cert is not None:
        tls = dict(grpc_use_ssl=True, grpc_server_cert=Path(config.tls_cert),
                   grpc_server_key=Path(config.tls_key))
    return TritonConfig(grpc_address=config.address, grpc_port=config.grpc_port,
                        http_address=config.address, http_port=config.http_port,
                        allow_metrics=metrics, allow_gpu_metrics=metrics and config.gpus > 0,
                        allow_cpu_metrics=metrics,
                        metrics_address=config.address if metrics else None,
                        metrics_port=config.metrics_port, **tls)


def security_config(config: ServeConfig):
    """PyTriton's TritonSecurityConfig: its own random token for the administrative endpoints, or
    the site's token (the file's first line) for those and inference, metadata and model config."""
    from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, TritonSecurityConfig

    if config.token_file is None:
        return TritonSecurityConfig()
    token = read_token(Path(config.token_file))
    return TritonSecurityConfig(access_token=token,
                                restricted_endpoints=[*DEFAULT_PROTECTED_ENDPOINTS, *TOKEN_ENDPOINTS])


def read_token(path: Path) -> str:
    """The token in `path` (its first line, stripped). Raises ServerStartError without saying it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ServerStartError(f"token file {path}: {getattr(err, 'strerror', None) or err}; "
                               "give a readable file holding the token") from None
    token = lines[0].strip() if lines else ""
    # Triton's option is one command-line word: a token with blanks would be cut in two.
    if not token or any(c.isspace() for c in token):
        raise ServerStartError(f"token file {path} holds no token (its first line must be the token, "
                               "without blanks)")
    return token


def use_own_libpython() -> None:
    """Put this interpreter's library folder first on LD_LIBRARY_PATH (inherited by tritonserver):
    the Python backend stub links libpython, and the system's, of another build, breaks it
    (`'_thread.RLock' object has no attribute '_recursion_count'`)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != libdir]
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *paths])


def _tensors():
    import numpy as np
    from pytriton.model_config import Tensor

    inputs = [Tensor(name=IMAGES, dtype=np.float32, shape=IMAGE_SHAPE)]
    outputs = [Tensor(name=PROBABILITIES, dtype=np.float32, shape=PROBABILITY_SHAPE),
               Tensor(name=PROVENANCE, dtype=np.bytes_, shape=(1,))]
    return inputs, outputs


def _check_files(config: ServeConfig) -> None:
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ServerStartError("TLS needs both a certificate and its key: give both or neither")
    for what, path in (("TLS certificate", config.tls_cert), ("TLS key", config.tls_key)):
        if path is not None and not os.access(path, os.R_OK):
            raise ServerStartError(f"{what} {path} cannot be read; give a readable PEM file")
    if not config.model_path.is_file():
        raise ModelFileError(f"model file {config.model_path} does not exist", path=str(config.model_path))


def _predict(model, gpus: int) -> Callable:
    """The compiled predict step, traced once here so the first request does not pay for it."""
    import numpy as np

    from payload import distribute

    predict = distribute.predict_step(model, distribute.plan_distribution(gpus))
    predict(np.zeros((1, *IMAGE_SHAPE), np.float32))
    return predict


def _check_ports(config: ServeConfig) -> None:
    """Refuse a port another process listens on now, with its name, rather than after Triton's
    two-minute start-up timeout."""
    import socket

    ports = {"--grpcPort": config.grpc_port, "--httpPort": config.http_port, "--metricsPort": config.metrics_port}
    for option, port in ports.items():
        if port is None:
            continue
        with socket.socket(socket.AF_INET6 if ":" in config.address else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.address, port))
            except OSError as err:
                raise ServerStartError(f"cannot listen on {config.address}:{port} ({option}): {err.strerror}; "
                                       f"stop what uses it or give another {option}") from None


def _server_log_tail(triton) -> str:
    # PyTriton keeps tritonserver's output in memory; its last lines say why it did not start.
    server = getattr(triton, "_triton_server", None)
    lines = (server.logs() if server is not None else "").strip().splitlines()
    return " | ".join(lines[-3:])


@contextlib.contextmanager
def serving(config: ServeConfig) -> Iterator[ServedModel]:
    """Serve the network of `config.model_path` until the context ends; yields once it is ready.
    Raises ModelFileError for a model file that cannot be loaded, ServerStartError when the
    server cannot start."""
    _check_files(config)
    _check_ports(config)
    security = security_config(config)
    try:
        from pytriton.triton import Triton
    except ImportError as err:
        raise ServerStartError(f"PyTriton is not installed ({err}); run the server in the serve venv "
                               "(python -m scripts.tools.serve_venv) or the project's container") from None
    model, network = load_network(config)
    provenance = provenance_of(config, network)
    name = config.model_name or f"dune-{network}"
    inputs, outputs = _tensors()
    use_own_libpython()
    triton = Triton(config=triton_config(config), security_config=security)
    try:
        triton.bind(model_name=name, model_version=config.model_version,
                    infer_func=infer_function(_predict(model, config.gpus), provenance),
                    inputs=inputs, outputs=outputs, config=model_config(config), strict=True)
        try:
            triton.run()
        except Exception as err:  # PyTriton raises bare TimeoutError/RuntimeError on a failed start
            raise ServerStartError(f"tritonserver did not start on {config.address} ({type(err).__name__}: "
                                   f"{err}); its log: {_server_log_tail(triton) or 'empty'}") from None
        yield ServedModel(name, config.model_version, network, f"grpc://{_host(config.address)}:{config.grpc_port}",
                          provenance, triton.is_alive)
    finally:
        triton.stop()


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
