"""The fault suite's fixtures, its per-scenario checks and the summary it prints at the end.

Every scenario runs the real trf (`python -m wrapper`, what the `dune-payload` console script
runs) in a fresh job directory, with recognisable credentials in its environment: AWS keys (the
real ones of the suite's SeaweedFS), BEARER_TOKEN, BEARER_TOKEN_FILE and X509_USER_PROXY. The
`scenario` fixture records every run and, after the test, checks what must hold whatever failed:

- the exit code is one the pilot reads as meant, no traceback reached the log, jobReport.json
  exists (unless SIGKILL or a scenario's `without_report`) and the two reports agree with the exit code;
- no file sits under a final output name after a failure, no partial file (`*.part`, `.tmp.*`)
  is left, and every input (local files, S3 objects) has the checksum it had before; after a
  failed upload, no multipart upload is open and no object is left under its S3 prefix;
- no secret value appears in stdout, stderr, any file of the job directory, or any exception
  text the scenario handed over.

- after a successful run, every output the report lists is the file on disk (size and adler32,
  `tests/outputs_on_disk.py`), and every output the arguments name is listed.

Those checks feed the ledger behind the summary (`scenarios run, passed; files lost; secrets
leaked`), so the figures are counted from what was verified, not written down. A test that injects
no fault calls `scenario.control()`: same checks, counted apart from the fault scenarios. The fault
scenarios are counted by kind: refused before any work (found from the runs themselves),
infrastructure and data (`MODULE_KINDS` below, or a test's `fault_kind` marker). The machinery
itself (runner, checks, ledger) lives in `tests/faults/harness.py`.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from tests.faults.harness import DATA, INFRASTRUCTURE, LEDGER, Scenario, Secrets, Trf  # noqa: E402
from tests.support import httpd, seaweed  # noqa: E402
from tests.support.triton import serve_python, triton_server, triton_test_model  # noqa: E402,F401 (fixtures)

_SCENARIO_OUTCOME = pytest.StashKey[dict]()
_SCENARIO = pytest.StashKey[Scenario]()

# The kind of fault each module's scenarios inject; a test whose fault is of another kind says so
# with `@pytest.mark.fault_kind(...)`. Whatever is declared, a scenario whose every run was refused
# before any work counts as a refusal (harness.refused_before_work).
MODULE_KINDS = {
    "test_faults_staging": INFRASTRUCTURE,     # the store or the server fails, the disk fills up
    "test_faults_uploads": INFRASTRUCTURE,
    "test_faults_outputs": INFRASTRUCTURE,     # the job directory is full, read-only or taken
    "test_faults_signals": INFRASTRUCTURE,     # the pilot stops the job
    "test_faults_deadlines": INFRASTRUCTURE,   # the queue's walltime runs out
    "test_faults_direct": INFRASTRUCTURE,
    "test_faults_serving": INFRASTRUCTURE,    # the inference server is gone, full, slow or cut off
    "test_faults_crash": INFRASTRUCTURE,       # the payload's process is killed under the trf
    "test_faults_fail_fast": INFRASTRUCTURE,   # the node has no GPU
    "test_secrets": INFRASTRUCTURE,            # a store that refuses or is not there, with credentials about
    "test_faults_data": DATA,                  # event files that are not what they should be, divergence
    "test_faults_model": DATA,                 # weights and manifests that do not fit the job
    "test_faults_names": DATA,                 # names from the task or the store that are hostile
    "test_faults_arguments": DATA,             # input lists too long for the report
    "test_faults_pilot": DATA,                 # what the pilot hands the trf: a damaged input, a diverging job
}


def pytest_configure(config):
    config.addinivalue_line("markers", "fault_kind(kind): what a fault scenario injects, where it "
                                       f"differs from its module's ({INFRASTRUCTURE} or {DATA})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if "scenario" not in getattr(item, "fixturenames", ()):
        return
    phases = item.stash.setdefault(_SCENARIO_OUTCOME, {})
    phases[report.when] = report.passed
    if report.when == "teardown":
        passed = bool(phases.get("call")) and all(phases.values())
        current = item.stash.get(_SCENARIO, None)
        # a test whose set-up failed before its scenario existed counts as a failed fault scenario
        LEDGER.count(current.kind() if current is not None else "", passed)


def pytest_terminal_summary(terminalreporter):
    if not LEDGER.run and not LEDGER.controls and not LEDGER.texts_scanned:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "fault suite")
    for line in LEDGER.summary(len(Secrets().values())):
        write(line)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def secrets(tmp_path_factory) -> Secrets:
    """The suite's credentials; the token file and the proxy exist with recognisable content."""
    found = Secrets(directory=tmp_path_factory.mktemp("credentials"))
    found.token_file.write_text(found.file_token + "\n")
    found.proxy.write_text(f"-----BEGIN CERTIFICATE-----\n{found.proxy_content}\n-----END CERTIFICATE-----\n")
    found.token_file.chmod(0o600)
    found.proxy.chmod(0o600)
    return found


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return httpd.self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def trf_env(secrets, tls_files) -> dict:
    """A worker node's environment: ours without stray credentials, plus the suite's secrets."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "BEARER_TOKEN", "X509_", "S3_ENDPOINT", "REQUESTS_CA", "CURL_CA"))
           and k not in ("PYTHONSTARTUP", "PanDA_TaskID", "PANDAID")}
    env.update(secrets.env())
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               REQUESTS_CA_BUNDLE=tls_files[0])
    return env


@pytest.fixture
def scenario(request, secrets):
    """The scenario of this test; its checks run after the test and fail it when they fail."""
    current = Scenario(request.node.name, secrets)
    marker = request.node.get_closest_marker("fault_kind")
    module = request.module.__name__.rpartition(".")[2]
    current.declared_kind = marker.args[0] if marker else MODULE_KINDS.get(module)
    if current.declared_kind not in (INFRASTRUCTURE, DATA):
        pytest.fail(f"{request.node.nodeid}: no kind of fault declared ({current.declared_kind!r}): add "
                    f"{module} to MODULE_KINDS (tests/faults/conftest.py) or mark the test "
                    f"fault_kind({INFRASTRUCTURE!r} or {DATA!r})")
    request.node.stash[_SCENARIO] = current
    yield current
    LEDGER.via_pilot += current.via_pilot and not current.is_control
    problems = current.verify()
    if not current.runs and not current.via_pilot:
        problems.append("the scenario ran nothing")
    assert not problems, f"scenario {current.name}: " + "; ".join(problems)


@pytest.fixture
def jobdir(tmp_path) -> Path:
    """An empty job directory, as the pilot gives a trf."""
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.fixture
def trf(scenario, jobdir, trf_env, tmp_path) -> Trf:
    """`trf(*args, jobdir=, env=)` runs the real CLI; `trf.start(...)` runs it in the background."""
    logs = tmp_path / "logs"
    logs.mkdir()
    return Trf(scenario, jobdir, trf_env, logs)


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size, readonly=False)` mounts a small tmpfs (we are root) and unmounts it afterwards."""
    mounted: list[Path] = []

    def mount(size: str = "1m", *, readonly: bool = False) -> Path:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        options = f"size={size},mode=0755" + (",ro" if readonly else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs at {path} (the fault suite runs as root): {done.stderr}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=True)


@dataclass(frozen=True)
class Data:
    """Real files every scenario may read (never write): events and a model of config `tiny`."""

    directory: Path
    events: Path            # 4 labelled events
    unlabelled: Path        # 4 events without /labels
    huge: Path              # 4 labelled events whose hits hold 3e38: finite, but they overflow
    model: Path             # a tiny FC-DenseNet trained on `events`

    def all(self) -> tuple:
        return (self.events, self.unlabelled, self.huge, self.model)


@pytest.fixture(scope="session")
def data(tmp_path_factory, trf_env) -> Data:
    """Built once: synthetic events (payload.simulate) and a model trained by the trf itself."""
    import numpy as np

    from payload.events import write_events
    from payload.simulate import simulate_events

    directory = tmp_path_factory.mktemp("fault-data")
    events = simulate_events(4, 11, path=directory / "events.h5")
    images, labels, event_id = simulate_events(4, 12)
    write_events(directory / "unlabelled.h5", images, event_ids=event_id)
    write_events(directory / "huge.h5", np.where(images > 0, np.float32(3e38), np.float32(0)), labels,
                 event_id)
    job = tmp_path_factory.mktemp("model-job")
    done = subprocess.run([sys.executable, "-m", "wrapper", "--mode=train", f"--inputEventsFile={events}",
                           "--modelConfig=tiny", "--epochs=1", "--batchSize=2", "--validationSplit=0",
                           "--outputModelFile=model.keras"], cwd=job, env=trf_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (job / "model.keras").rename(directory / "model.keras")
    return Data(directory, events, directory / "unlabelled.h5", directory / "huge.h5",
                directory / "model.keras")


@pytest.fixture
def inputs(scenario, data) -> Data:
    """The session's data, registered as this scenario's inputs (checked unchanged afterwards)."""
    scenario.input(*data.all())
    return data


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory, secrets):
    """The suite's SeaweedFS (loopback, authentication on, the suite's keys), stopped by PID."""
    server = seaweed.start(tmp_path_factory.mktemp("seaweed"), access_key=secrets.access_key,
                           secret_key=secrets.secret_key)
    yield server
    seaweed.stop(server)


_buckets = itertools.count()


@dataclass(frozen=True)
class S3Place:
    """A fresh bucket on a SeaweedFS, its client, and the trf environment that points there."""

    server: object
    client: object
    bucket: str

    @property
    def env(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.server.endpoint}

    def put(self, key: str, body: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture
def s3(s3_server) -> S3Place:
    client = s3_server.client()
    bucket = f"faults-{os.getpid()}-{next(_buckets)}"
    client.create_bucket(Bucket=bucket)
    return S3Place(s3_server, client, bucket)


@pytest.fixture
def https(tls_files):
    """A loopback HTTPS server (the suite's certificate is the CA bundle of the trf's env)."""
    server = httpd.LoopbackHTTP(tls=tls_files).start()
    yield server
    server.stop()


