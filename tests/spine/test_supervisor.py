"""The supervised payload step's pieces that need no framework: causes, errors over the pipe, cgroups."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from wrapper import exitcodes as ec
from wrapper.errors import InputFileError, OutputFileError
from wrapper.payload_child import oom_cause
from wrapper.payload_step import error_fields, error_from_fields
from wrapper.supervisor import _memory_cgroup_oom_kills

# What the frameworks print when an allocation fails (TensorFlow 2.x BFC allocator, XLA, the CUDA
# driver API, TensorFlow's CPU allocator).
CAPTURED = {
    "tf-gpu": ("OOM when allocating tensor with shape[4,64,320,320] and type float on "
               "/job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc", "gpu"),
    "xla": ("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 26214400 bytes.", "gpu"),
    "cuda": ("CUDA_ERROR_OUT_OF_MEMORY: out of memory", ""),
    "tf-cpu": ("OOM when allocating tensor with shape[64,64,320,320] and type float on "
               "/job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu", "cpu"),
}


@pytest.mark.parametrize("name", CAPTURED)
def test_out_of_memory_messages_name_the_memory(name):
    text, device = CAPTURED[name]
    assert oom_cause(text, device) == ("host-oom" if name == "tf-cpu" else "gpu-oom")


def test_other_errors_are_not_out_of_memory():
    assert oom_cause("Segmentation fault (core dumped)", "gpu") is None
    assert oom_cause("InvalidArgumentError: logits and labels must have the same shape", "cpu") is None


def test_errors_cross_the_pipe_with_code_and_cause():
    for err in (InputFileError("model m.keras: corrupt", cause="corrupt", source="m.keras"),
                OutputFileError("no space left", cause="disk-full")):
        back = error_from_fields(pickle.loads(pickle.dumps(error_fields(err))))
        assert (back.message, back.exit_code, back.cause) == (err.message, err.exit_code, err.cause)


def test_an_event_file_removed_mid_run_is_input_error_removed_and_a_bad_one_corrupt():
    from payload.errors import EventFileError
    from wrapper.payload_step import payload_errors

    for removed, cause in ((True, "removed"), (False, "corrupt")):
        with pytest.raises(InputFileError) as raised, payload_errors():
            raise EventFileError("a.h5: gone", path="a.h5", removed=removed)
        assert (raised.value.cause, raised.value.source, raised.value.exit_code) == (cause, "a.h5", 9)


def test_the_new_exit_codes_are_in_the_one_table():
    assert ec.acronym(ec.EXEC_CRASH) == "TRF_EXEC_CRASH" and ec.acronym(ec.EXEC_OOM) == "TRF_EXEC_OOM"
    assert ec.safe(ec.EXEC_CRASH) == ec.EXEC_CRASH and ec.safe(ec.EXEC_OOM) == ec.EXEC_OOM


def test_the_oom_kill_counter_of_this_cgroup_is_read_where_the_kernel_has_one():
    memory = [line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
              if line.split(":", 2)[1] in ("", "memory") or "memory" in line.split(":", 2)[1].split(",")]
    files = [Path("/sys/fs/cgroup/memory") / p.lstrip("/") / "memory.oom_control" for p in memory] + \
            [Path("/sys/fs/cgroup") / p.lstrip("/") / "memory.events" for p in memory]
    counters = [f for f in files if f.is_file() and "oom_kill " in f.read_text()]
    if counters:
        expected = int(counters[0].read_text().split("oom_kill ")[1].split()[0])
        assert _memory_cgroup_oom_kills() == expected
    else:
        assert _memory_cgroup_oom_kills() is None
