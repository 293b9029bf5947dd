"""The supervised payload step's pieces that need no framework: causes, errors over the pipe, cgroups."""
from __future__ import annotations

import pickle
import signal
from pathlib import Path

import pytest

from payload.api import Progress, StepResult
from wrapper import exitcodes as ec
from wrapper.causes import Cause
from wrapper.errors import InputFileError, OutputFileError, PayloadOutOfMemory, TrfError
from wrapper.platform.memory_limits import memory_cgroup, oom_kills
from wrapper.step import messages
from wrapper.step.child import oom_cause
from wrapper.step.supervisor import _step_result, death_error

# What frameworks print when an allocation fails, each copied from the public log named beside it
# (the GPU ones cannot happen on a CPU machine), or captured from this suite's own runs.
CAPTURED = {
    # tensorflow/models#5527 (TF 1.x Faster R-CNN on a GPU): the BFC allocator's error.
    "tf-gpu": ("ResourceExhaustedError (see above for traceback): OOM when allocating tensor with "
               "shape[64,2016,9,9] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by "
               "allocator GPU_0_bfc", "gpu", "gpu-oom"),
    # jax-ml/jax#13428 (jaxlib on a GPU): XLA's error names no device; the job's device decides.
    "xla": ("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to "
            "allocate 6291456 bytes.", "gpu", "gpu-oom"),
    # tensorflow/tensorflow#30912 (TF 1.14, the CUDA driver API), on a job whose device is unknown.
    "cuda": ("E tensorflow/stream_executor/cuda/cuda_driver.cc:828] failed to allocate 32.00M "
             "(33554432 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY: out of memory", "", "gpu-oom"),
    # Captured here: TensorFlow 2.21 CPU, the trf training the tiny network with --batchSize=32
    # under `prlimit --data=1572864000` (tests/faults/test_faults_memory.py's set-up), its child's
    # last stderr lines before SIGABRT.
    "tf-cpu-new": ("terminate called after throwing an instance of 'std::bad_alloc'\n"
                   "  what():  std::bad_alloc", "cpu", "host-oom"),
    # The same on a GPU job: operator new failing is host memory whatever the device.
    "tf-gpu-job-new": ("terminate called after throwing an instance of 'std::bad_alloc'\n"
                       "  what():  std::bad_alloc", "gpu", "host-oom"),
}


@pytest.mark.parametrize("name", CAPTURED)
def test_out_of_memory_messages_name_the_memory(name):
    text, device, cause = CAPTURED[name]
    assert oom_cause(text, device) == cause


def test_other_errors_are_not_out_of_memory():
    assert oom_cause("Segmentation fault (core dumped)", "gpu") is None
    assert oom_cause("InvalidArgumentError: logits and labels must have the same shape", "cpu") is None


# The child's stderr tail on an abort after a CUDA allocation failure: TensorFlow's CHECK failure
# as in tensorflow/tensorflow#12237 (the driver's line), preceded by abseil's routine INFO line.
CUDA_ABORT_TAIL = [
    "I0000 00:00:1796241086.468843   32540 port.cc:153] oneDNN custom operations are on.",
    "2017-08-12 08:25:16.508376: E tensorflow/stream_executor/cuda/cuda_driver.cc:924] failed to "
    "allocate 1.51G (1617277696 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY",
    "I0000 00:00:1796241087.000001   32540 gpu_device.cc:2022] Created device",
]


def test_a_child_that_aborts_after_a_cuda_allocation_failure_is_gpu_oom_with_its_last_words():
    err = death_error(-signal.SIGABRT, CUDA_ABORT_TAIL, "gpu", 0, 0)
    assert (err.exit_code, err.cause) == (ec.EXEC_OOM, "gpu-oom")
    assert "--batchSize" in err.message and "larger GPU" in err.message
    assert "CUDA_ERROR_OUT_OF_MEMORY" in err.extra and "oneDNN" not in err.extra


def test_a_sigkill_the_oom_killer_counted_is_host_oom_and_one_it_did_not_is_a_crash():
    killed = death_error(-signal.SIGKILL, [], "cpu", 3, 4)
    assert (killed.exit_code, killed.cause) == (ec.EXEC_OOM, "host-oom")
    assert "OOM killer" in killed.message and "--batchSize" in killed.message
    assert "ramCount" in killed.message
    other = death_error(-signal.SIGKILL, [], "cpu", 4, 4)
    assert (other.exit_code, other.cause) == (ec.EXEC_CRASH, "payload-crashed")
    assert "killed by SIGKILL" in other.message
    unknown = death_error(-signal.SIGKILL, [], "cpu", None, None)
    assert unknown.cause == "payload-crashed"


def test_a_segfault_without_an_allocation_failure_is_a_crash():
    err = death_error(-signal.SIGSEGV, ["Fatal Python error: Segmentation fault"], "gpu", 0, 0)
    assert (err.exit_code, err.cause) == (ec.EXEC_CRASH, "payload-crashed")
    assert "killed by SIGSEGV" in err.message and "Segmentation fault" in err.extra


def test_errors_cross_the_pipe_with_code_and_cause():
    for err in (InputFileError("model m.keras: corrupt", cause=Cause.CORRUPT, source="m.keras"),
                OutputFileError("no space left", cause=Cause.DISK_FULL), TrfError("no cause")):
        back = pickle.loads(pickle.dumps(messages.Failed.of(err, {}))).error()
        assert (back.message, back.exit_code, back.cause) == (err.message, err.exit_code, err.cause)
        assert back.source == getattr(err, "source", "")


EVERY_MESSAGE = (
    messages.StopRequest(), messages.Started(123, "/code"),
    messages.ProgressTick(Progress("train", 3, 10)), messages.CheckpointSaved(Path("ckpt-1")),
    messages.Result(StepResult("infer", 5, (), {"p.h5": 5}), {"a.h5": {"bytes_fetched": 10}}),
    messages.Stopped(), messages.Failed("bad", 9, cause=Cause.CORRUPT),
    messages.OutOfMemory(Cause.GPU_OOM, "OOM when allocating"), messages.Unexpected("KeyError", "'x'"),
)


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_pickles_to_an_equal_one(message):
    assert pickle.loads(pickle.dumps(message)) == message


def test_final_messages_become_the_result_or_the_error_they_name():
    stats = {"a.h5": {"bytes_fetched": 10}}
    result = StepResult("infer", 5, (), {"p.h5": 5})
    assert _step_result(messages.Result(result, stats), lambda: None) is result
    with pytest.raises(PayloadOutOfMemory) as gpu:
        _step_result(messages.OutOfMemory(Cause.GPU_OOM, "OOM when allocating"), lambda: None)
    assert (gpu.value.cause, gpu.value.exit_code) == (Cause.GPU_OOM, ec.EXEC_OOM)
    assert "--batchSize" in gpu.value.message
    with pytest.raises(PayloadOutOfMemory) as host:
        _step_result(messages.OutOfMemory(Cause.HOST_OOM, "MemoryError"), lambda: None)
    assert host.value.cause is Cause.HOST_OOM and "ramCount" in host.value.message
    with pytest.raises(TrfError) as bug:
        _step_result(messages.Unexpected("KeyError", "'x'"), lambda: None)
    assert bug.value.exit_code == ec.UNEXPECTED_OTHER and "unexpected KeyError" in bug.value.message
    reason = TrfError("the time limit")
    with pytest.raises(TrfError) as stopped:
        _step_result(messages.Stopped(), lambda: reason)
    assert stopped.value is reason


def test_an_event_file_removed_mid_run_is_input_error_removed_and_a_bad_one_corrupt():
    from payload.errors import EventFileError
    from wrapper.step.request import payload_errors

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
        assert oom_kills() == expected
    else:
        assert oom_kills() is None


def test_memory_cgroup_files_of_both_versions_are_read_with_their_limit_peak_and_kills(tmp_path):
    v2 = tmp_path / "v2" / "job"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text("734003200\n")
    (v2 / "memory.peak").write_text("734000000\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    found = memory_cgroup(tmp_path / "v2", "0::/job\n")
    assert (found.version, found.limit, found.peak, found.oom_kills) == (2, 734003200, 734000000, 1)
    (v2 / "memory.max").write_text("max\n")
    assert memory_cgroup(tmp_path / "v2", "0::/job\n").limit is None

    v1 = tmp_path / "v1" / "memory" / "slurm" / "job_7"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")     # v1's "no limit"
    (v1 / "memory.max_usage_in_bytes").write_text("52428800\n")
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    found = memory_cgroup(tmp_path / "v1", "4:memory:/slurm/job_7\n1:cpu:/\n")
    assert (found.version, found.limit, found.peak, found.oom_kills) == (1, None, 52428800, 2)
    assert memory_cgroup(tmp_path / "v1", "1:cpu:/\n") is None
