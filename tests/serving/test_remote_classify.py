"""payload.remote.classify on Triton's own answers, captured from real runs of the fault suite."""
from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from payload.remote import RETRYABLE, classify

# What tritonserver 2.51 answered when the PyTriton process serving the model was SIGKILLed
# mid-job (tests/faults/test_faults_serving.py, CI clone, 2026-12-03): it unloads the model first.
DYING = "Request for unknown model: 'test-slow-falls-back' version 1 is not at ready state"
# What it answers for a model it never had (test_a_model_the_server_lacks_exits_9_naming_it).
NEVER = "Request for unknown model: 'dune-nosuch' is not found"


@pytest.mark.parametrize("text, connected, kind", [
    (DYING, True, "lost"),          # it served this job: the server is going away
    (DYING, False, "not-ready"),    # at the start: its model is not ready (yet)
    (NEVER, False, "not-found"),
])
def test_triton_answers_name_what_happened(text, connected, kind):
    found, _detail = classify(InferenceServerException(text, status="StatusCode.UNAVAILABLE"),
                              connected=connected)
    assert found == kind


def test_a_server_lost_mid_job_is_retried_and_a_missing_model_is_not():
    assert "lost" in RETRYABLE and "not-ready" in RETRYABLE and "not-found" not in RETRYABLE
