"""Data parallelism with the framework's own strategies: all GPUs of a node, and several workers.

`plan_distribution(gpus, cluster)` decides; `make_strategy` builds the strategy once per process
(TensorFlow's MultiWorkerMirroredStrategy must exist before the first TensorFlow operation runs);
models are built and compiled inside `scope(plan)`; `train_step` / `predict_step` stand in for
`train_on_batch` / `predict_on_batch`.

Every worker reads the same global batch (same files, same seed, same order) and each replica
takes its own contiguous slice of it, so the gradient all-reduced over replicas is the gradient of
the global batch and every worker ends with the same weights. The training step is a plain custom
step (`strategy.run` + `GradientTape` + the compiled loss and optimizer): Keras 3's
`train_on_batch` fails under MultiWorkerMirroredStrategy when it reduces its scalar metrics
(tensorflow/tensorflow#72388). Batch-normalisation moving statistics are kept per replica by Keras;
`sync_batch_stats` averages them across replicas (the moving mean is linear in the batch means, so
averaging it is exact) before anything reads the weights.

The cluster is a TF_CONFIG mapping ({"cluster": {...}, "task": {...}}); this module knows nothing
of batch systems or PanDA.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional

import numpy as np

from payload.errors import CollectiveError

DEFAULT_TIMEOUT_S = 600.0

_built: dict = {}


@dataclass(frozen=True)
class DistributionPlan:
    """How one process takes part: `gpus` local devices (0: the CPU), `workers` processes in all."""

    kind: str = "default"
    gpus: int = 0
    workers: int = 1
    worker_index: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    cluster: Optional[Mapping] = None       # TF_CONFIG of a multi-worker plan
    device_type: str = "gpu"                # the local devices replicas run on ("cpu" in tests)

    @property
    def replicas(self) -> int:
        """Model replicas over the whole job: local devices × workers."""
        if self.kind == "default":
            return 1
        return max(self.gpus, 1) * self.workers

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def global_batch(self, per_replica: int) -> int:
        """Events per step over all replicas, for a per-replica batch of `per_replica`."""
        return per_replica * self.replicas

    def to_report(self) -> dict:
        report = asdict(self)
        report.pop("cluster")
        report["replicas"] = self.replicas
        return report


def _backend(backend: Optional[str]) -> str:
    return backend or os.environ.get("KERAS_BACKEND") or "tensorflow"


def plan_distribution(gpus: int, cluster: Optional[Mapping] = None, *, backend: Optional[str] = None,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> DistributionPlan:
    """The strategy for `gpus` usable local GPUs and an optional TF_CONFIG `cluster`:
    several workers → multi_worker; else more than one GPU → mirrored (TensorFlow) or
    jax_data_parallel (JAX, Keras distribution API); else the framework's default."""
    backend = _backend(backend)
    gpus = max(int(gpus), 0)
    workers, index = 1, 0
    if cluster:
        try:
            tasks = cluster["cluster"]
            order = [(kind, i) for kind in ("chief", "worker") for i in range(len(tasks.get(kind, ())))]
            index = order.index((cluster["task"]["type"], int(cluster["task"]["index"])))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"cluster must be a TF_CONFIG mapping with chief/worker tasks and this "
                             f"process's task, got {cluster!r}") from None
        workers = len(order)
    if workers > 1:
        if backend != "tensorflow":
            raise ValueError(f"multi-worker training needs the TensorFlow backend, not {backend}")
        return DistributionPlan("multi_worker", gpus, workers, index, timeout_s, cluster)
    if gpus > 1 and backend == "tensorflow":
        return DistributionPlan("mirrored", gpus, timeout_s=timeout_s)
    if gpus > 1 and backend == "jax":
        return DistributionPlan("jax_data_parallel", gpus, timeout_s=timeout_s)
    return DistributionPlan("default", min(gpus, 1), timeout_s=timeout_s)


def make_strategy(plan: DistributionPlan):
    """The strategy object of `plan` (a tf.distribute.Strategy, a keras.distribution.DataParallel,
    or None for the default), built once per process and plan."""
    key = (plan.kind, plan.gpus, plan.workers, plan.worker_index, plan.device_type)
    if key in _built:
        return _built[key]
    strategy = None
    if plan.kind == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy([f"/{plan.device_type}:{i}" for i in range(plan.gpus)])
    elif plan.kind == "multi_worker":
        import tensorflow as tf

        task = plan.cluster["task"]
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(dict(plan.cluster["cluster"])), task_type=task["type"],
            task_id=int(task["index"]), num_accelerators={"GPU": plan.gpus}, rpc_layer="grpc")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=plan.timeout_s)
        _bound_cluster_wait(plan.timeout_s)
        rendezvous(plan)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(resolver, communication_options=options)
        except (RuntimeError, *_collective_errors()) as err:
            raise CollectiveError(_collective_message(plan, err, "the other workers never joined")) from None
    elif plan.kind == "jax_data_parallel":
        import keras

        strategy = keras.distribution.DataParallel(
            devices=keras.distribution.list_devices(plan.device_type)[:plan.gpus])
        # set for the whole process: Keras shards each batch of train_on_batch / predict_on_batch
        # over the devices only while a distribution is set
        keras.distribution.set_distribution(strategy)
    _built[key] = strategy
    return strategy


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _own_address_and_peers(plan: DistributionPlan) -> tuple[str, list[str]]:
    """This worker's host:port and every other worker's, chief first, from the plan's TF_CONFIG."""
    task = plan.cluster["task"]
    tasks = plan.cluster["cluster"]
    mine = tasks[task["type"]][int(task["index"])]
    return mine, [a for kind in ("chief", "worker") for a in tasks.get(kind, ()) if a != mine]


def rendezvous(plan: DistributionPlan, poll_s: float = 0.2) -> None:
    """Wait, at most `plan.timeout_s`, until every other worker listens on its address.

    TensorFlow's start-up blocks without a timeout until all workers are up, so a worker that
    never started would hang the others for the whole walltime. Each worker listens on its own
    address meanwhile (its TensorFlow server takes the port over right after) and connects to every
    peer; a peer that is still missing at the deadline is named in the error."""
    import socket

    mine, peers = _own_address_and_peers(plan)
    host, port = _address(mine)
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as err:
        raise CollectiveError(f"worker {plan.worker_index}: cannot listen on {mine} ({err.strerror}): "
                              "the port is taken or the host name is not this node's; choose "
                              "another --workerPort") from None
    deadline = time.monotonic() + plan.timeout_s
    try:
        while peers:
            for peer in list(peers):
                try:
                    socket.create_connection(_address(peer), timeout=poll_s).close()
                    peers.remove(peer)
                except OSError:
                    continue
            if peers and time.monotonic() > deadline:
                raise CollectiveError(f"worker {plan.worker_index} of {plan.workers}: worker(s) "
                                      f"{', '.join(peers)} did not start within {plan.timeout_s:g} s; "
                                      "the job fails instead of waiting for them")
            if peers:
                time.sleep(poll_s)
    finally:
        listener.close()


def _bound_cluster_wait(timeout_s: float) -> None:
    """Make MultiWorkerMirroredStrategy give up on absent peers after `timeout_s` at start-up.

    Its wait for the cluster has no public setting and waits forever by default; the class
    attribute below is the one TensorFlow's own multi-worker tests set. The strategy also pings
    its peers every 30 s while it runs and aborts the collectives when one is gone."""
    from tensorflow.python.distribute import collective_all_reduce_strategy as car

    car.CollectiveAllReduceExtended._check_health_initial_timeout = max(int(timeout_s), 1)


def scope(plan: DistributionPlan):
    """Build and compile the model inside this context so its variables are mirrored."""
    strategy = make_strategy(plan)
    if strategy is None or plan.kind == "jax_data_parallel":
        return contextlib.nullcontext()
    return strategy.scope()


def _slices(array: np.ndarray, parts: int) -> list[np.ndarray]:
    """`parts` contiguous, non-empty slices; a batch shorter than `parts` is repeated to fill."""
    if len(array) < parts:
        array = np.resize(array, (parts, *array.shape[1:]))
    return np.array_split(array, parts)


def _per_replica(strategy, array: np.ndarray):
    parts = _slices(array, strategy.num_replicas_in_sync)
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])


def _collective_errors():
    import tensorflow as tf

    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError, tf.errors.InternalError)


def train_step(model, plan: DistributionPlan) -> Callable[[np.ndarray, np.ndarray], float]:
    """A function (images, labels) of one global batch → its mean training loss, updating `model`
    (compiled with its loss and optimizer inside `scope(plan)`)."""
    strategy = make_strategy(plan)
    if plan.kind not in ("mirrored", "multi_worker"):
        return lambda x, y: float(model.train_on_batch(x, y, return_dict=True)["loss"])
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    optimizer = model.optimizer

    def replica_step(x, y, total):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            # Keras divides a loss by the replicas under a strategy; weighing each replica by its
            # share of the events makes the sum over replicas the mean over the global batch
            share = tf.cast(tf.shape(x)[0], logits.dtype) * replicas / tf.cast(total, logits.dtype)
            loss = tf.cast(model.loss(y, logits), logits.dtype) * share
            if model.losses:
                loss = loss + tf.cast(tf.add_n(model.losses), logits.dtype) / replicas
            scaled = optimizer.scale_loss(loss)   # mixed_float16 loss scaling; identity otherwise
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function(reduce_retracing=True)
    def step(x, y, total):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y, total)), axis=None)

    def run(x: np.ndarray, y: np.ndarray) -> float:
        total = tf.constant(max(len(x), replicas), tf.float32)
        try:
            return float(step(_per_replica(strategy, x), _per_replica(strategy, y), total))
        except _collective_errors() as err:
            raise CollectiveError(_collective_message(plan, err)) from None

    return run


def predict_step(model, plan: DistributionPlan) -> Callable[[np.ndarray], np.ndarray]:
    """A function images → logits (numpy, one row per image). Mirrored: the batch is split over
    the local GPUs. Multi-worker: each worker predicts the whole batch itself (validation is small
    and every worker needs the same numbers to take the same decisions)."""
    strategy = make_strategy(plan)
    if plan.kind == "multi_worker":
        # predict_on_batch would gather every worker's copy of the batch into one output
        return lambda x: np.asarray(model(x, training=False))
    if plan.kind != "mirrored":
        return lambda x: np.asarray(model.predict_on_batch(x))
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return strategy.run(lambda part: model(part, training=False), args=(x,))

    def run(x: np.ndarray) -> np.ndarray:
        results = strategy.experimental_local_results(forward(_per_replica(strategy, x)))
        return np.concatenate([np.asarray(r) for r in results])[:len(x)]

    return run


def sync_batch_stats(model, plan: DistributionPlan) -> None:
    """Average the float non-trainable variables (batch-norm moving statistics) over all replicas,
    so every replica and worker holds the same values before a checkpoint or the model is saved."""
    if plan.kind not in ("mirrored", "multi_worker"):
        return
    import tensorflow as tf

    strategy = make_strategy(plan)
    variables = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
    if not variables:
        return

    def replica_sync():
        context = tf.distribute.get_replica_context()
        means = context.all_reduce("MEAN", [tf.identity(v.value) for v in variables])
        for variable, mean in zip(variables, means):
            variable.assign(mean)

    try:
        tf.function(lambda: strategy.run(replica_sync))()
    except _collective_errors() as err:
        raise CollectiveError(_collective_message(plan, err)) from None


def _collective_message(plan: DistributionPlan, err: Exception,
                        what: str = "a collective operation with the other workers failed") -> str:
    text = str(getattr(err, "message", err)).strip()
    first = text.splitlines()[0][:200] if text else ""
    # What happened and what follows come first: a job report keeps the message's first 256
    # characters, and the framework's own text is long.
    return (f"worker {plan.worker_index} of {plan.workers}: {what}: a worker died or stopped answering "
            f"within {plan.timeout_s:g} s; the job fails instead of hanging and a retry resumes from "
            f"the last complete checkpoint (peers {', '.join(_own_address_and_peers(plan)[1])}; "
            f"{type(err).__name__}: {first})")
