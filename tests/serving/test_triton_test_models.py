"""The fault-test models of tests/support/triton_models.py answer as their kinds say (one server each)."""
from __future__ import annotations

import queue

import numpy as np
import tritonclient.grpc as grpcclient

from payload.serving_contract import IMAGES, PROBABILITIES, PROVENANCE


def _client(server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.url.removeprefix("grpc://"))


def _request(images: np.ndarray):
    tensor = grpcclient.InferInput(IMAGES, list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    return [tensor]


def test_wrong_shape_model_shows_another_input(triton_test_model):
    server = triton_test_model("wrong-shape")
    meta = _client(server).get_model_metadata(server.model, as_json=True)
    assert server.model == "test-wrong-shape"
    assert meta["inputs"] == [{"name": IMAGES, "datatype": "FP16", "shape": ["-1", "160", "160", "1"]}]


def test_no_provenance_model_answers_probabilities_alone(triton_test_model):
    server = triton_test_model("no-provenance")
    meta = _client(server).get_model_metadata(server.model, as_json=True)
    assert [o["name"] for o in meta["outputs"]] == [PROBABILITIES]
    answer = _client(server).infer(server.model, _request(np.zeros((2, 320, 320, 1), np.float32)))
    np.testing.assert_allclose(answer.as_numpy(PROBABILITIES), 1 / 3, rtol=1e-6)


def test_slow_model_with_a_full_queue_refuses_as_unavailable(triton_test_model):
    # One batch of one runs (and sleeps), one request waits in the queue: the others are refused.
    server = triton_test_model("slow", delay=5, maxQueueSize=1, maxBatchSize=1)
    client, answers = _client(server), queue.Queue()
    images = np.zeros((1, 320, 320, 1), np.float32)
    for _ in range(5):
        client.async_infer(server.model, _request(images), lambda result, error: answers.put((result, error)))
    outcomes = [answers.get(timeout=120) for _ in range(5)]
    refused = [error for _, error in outcomes if error is not None]
    served = [result for result, error in outcomes if error is None]
    assert refused and all(e.status() == "StatusCode.UNAVAILABLE" for e in refused)
    assert served and served[0].as_numpy(PROVENANCE).shape == (1, 1)
