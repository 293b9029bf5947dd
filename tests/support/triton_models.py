"""Models `dune-payload-serve` would never serve, on a real tritonserver (PyTriton), for fault tests.

Run in the serve venv (PyTriton needs numpy<2); tests start it through the `triton_test_model`
fixture of tests/support/triton.py, which waits for the ready line and stops it by PID:

    .serve-venv/bin/python -m tests.support.triton_models --kind slow --delay 5 --grpcPort 18001 --httpPort 18000

Kinds:
  wrong-shape     `images` of another shape and dtype (float16 [160,160,1]) than the contract's
  slow            sleeps --delay seconds per batch, then answers uniform probabilities (1/3) with a
                  provenance; with --maxQueueSize a full queue answers UNAVAILABLE
  no-provenance   uniform probabilities at once and no provenance output, as a model served by
                  someone else's Triton may be

Every listener binds 127.0.0.1 (metrics off). One line on stdout when ready; SIGTERM stops it.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from payload.serving import IMAGE_SHAPE, PROBABILITY_SHAPE, use_own_libpython
from payload.serving_contract import IMAGES, PROBABILITIES, PROVENANCE, PROVENANCE_KEYS

KINDS = ("wrong-shape", "slow", "no-provenance")
WRONG_SHAPE = (160, 160, 1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--delay", type=float, default=0.0, help="slow: seconds of sleep per batch")
    p.add_argument("--modelName", help="default: test-<kind>")
    p.add_argument("--maxBatchSize", type=int, default=4)
    p.add_argument("--maxQueueSize", type=int, default=0, help="0: unbounded")
    p.add_argument("--maxQueueDelayUs", type=int, default=0)
    p.add_argument("--grpcPort", type=int, required=True)
    p.add_argument("--httpPort", type=int, required=True)
    return p


def _tensors(kind: str):
    import numpy as np
    from pytriton.model_config import Tensor

    if kind == "wrong-shape":
        return ([Tensor(name=IMAGES, dtype=np.float16, shape=WRONG_SHAPE)],
                [Tensor(name=PROBABILITIES, dtype=np.float32, shape=(*WRONG_SHAPE[:2], 3))])
    outputs = [Tensor(name=PROBABILITIES, dtype=np.float32, shape=PROBABILITY_SHAPE)]
    if kind == "slow":
        outputs.append(Tensor(name=PROVENANCE, dtype=np.bytes_, shape=(1,)))
    return [Tensor(name=IMAGES, dtype=np.float32, shape=IMAGE_SHAPE)], outputs


def _infer(kind: str, delay: float):
    import numpy as np
    from pytriton.decorators import batch

    provenance = json.dumps({key: f"test-{kind}" for key in PROVENANCE_KEYS}).encode()

    @batch
    def infer(**inputs):
        images = inputs[IMAGES]
        time.sleep(delay)
        probabilities = np.full((*images.shape[:3], 3), 1 / 3, np.float32)
        answer = {PROBABILITIES: probabilities}
        if kind == "slow":
            answer[PROVENANCE] = np.array([[provenance]] * len(images), dtype=np.bytes_)
        return answer

    return infer


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy
    from pytriton.triton import Triton, TritonConfig

    stop: list = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stop.append(number))
    use_own_libpython()
    name = args.modelName or f"test-{args.kind}"
    policy = QueuePolicy(max_queue_size=args.maxQueueSize) if args.maxQueueSize else None
    config = ModelConfig(max_batch_size=args.maxBatchSize, batcher=DynamicBatcher(
        max_queue_delay_microseconds=args.maxQueueDelayUs, default_queue_policy=policy))
    inputs, outputs = _tensors(args.kind)
    ready_to, sys.stdout = sys.stdout, sys.stderr   # stdout: the ready line alone
    triton = Triton(config=TritonConfig(grpc_address="127.0.0.1", grpc_port=args.grpcPort,
                                        http_address="127.0.0.1", http_port=args.httpPort,
                                        allow_metrics=False))
    try:
        triton.bind(model_name=name, infer_func=_infer(args.kind, args.delay), inputs=inputs,
                    outputs=outputs, config=config, strict=True)
        triton.run()
        print(f"triton_models: serving {name} version 1 (kind {args.kind}) on grpc://127.0.0.1:{args.grpcPort}",
              file=ready_to, flush=True)
        while not stop:
            time.sleep(0.5)
    finally:
        triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
