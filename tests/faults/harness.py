"""The fault suite's machinery: the trf runner, the per-scenario checks, the ledger of what was verified.

`tests/faults/conftest.py` turns these into fixtures and prints the ledger at the end of the
session; the scenarios import `expect_failure` from here.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence
from urllib.parse import quote, quote_plus

import pytest

from tests.outputs_on_disk import output_problems

# What the pilot reads as meant (docs/design.md, 'The pilot contract'): never 2, 3, 255 or above 255.
ALLOWED_EXIT = frozenset({0, 4, 5, 7, 9, 11, 15, 16, 17, 64, 65, 67, 69, 80, 81, 250, 251,
                          128 + signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGUSR1})
TRACEBACK = "Traceback (most recent call last)"
PARTIAL = re.compile(r"(^\.tmp\.|\.part$|\.part\.[0-9A-Fa-f]{8}$|^\.ckpt-.*\.tmp$)")
SCAN_LIMIT = 64 << 20   # files of the job directory scanned for secrets whole, outputs included
STOP_GRACE_S = 2.0      # SIGKILL follows SIGTERM this soon in the signal scenarios

# What a fault scenario injects, counted apart in the summary. A scenario whose every run was refused
# before any work (an argument-error exit, no executor step in its report) is a refusal whatever it
# declared; the others declare infrastructure (the node, the store, the disk, signals, deadlines)
# or data (what the job was given: inputs, names, weights, manifests, settings that diverge).
REFUSAL, INFRASTRUCTURE, DATA = "refusal", "infrastructure", "data"
KINDS = (REFUSAL, INFRASTRUCTURE, DATA)
KIND_NAMES = {REFUSAL: "refused before any work (argument errors)",
              INFRASTRUCTURE: "infrastructure (storage, network, disk, signals, deadlines, node)",
              DATA: "data and model (inputs, names, weights, manifests, divergence)"}
KIND_SHORT = {REFUSAL: "refused before any work", INFRASTRUCTURE: "infrastructure", DATA: "data/model"}
ARGUMENT_EXITS = frozenset({4, 5, 7, 16, 17})


@dataclass(frozen=True)
class Secrets:
    """Recognisable credential values the whole suite runs with; none may ever be written out."""

    access_key: str = "AKIAFAULTSUITE7Q2X9ZW"
    secret_key: str = "faults-aws-SECRET-3d9f0b6e1c7a4e2f"
    bearer: str = "faults-BEARER-8c1d5e9a2b7f"
    file_token: str = "faults-TOKENFILE-5f3a9c2e7d"
    proxy_content: str = "faults-PROXY-6a2d8f4c1b"
    wrong_secret: str = "faults-WRONG-secret-4e7a1c9d"
    url_password: str = "faults-URLPASS-2b8e6f"
    runtime_token: str = "faults-XDGTOKEN-9d4b2e7a1c"   # only in $XDG_RUNTIME_DIR/bt_u<uid>, when a test puts it
    tmp_token: str = "faults-TMPTOKEN-3c8f1a6e2d"       # only in a private /tmp/bt_u<uid>, when a test puts it
    directory: Path = Path("/nonexistent")

    @property
    def token_file(self) -> Path:
        return self.directory / "bt_faults"

    @property
    def proxy(self) -> Path:
        return self.directory / "x509up_faults_7e3b"

    def values(self) -> dict[str, str]:
        """{what: value} of everything that must never appear in a log, report or message."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "BEARER_TOKEN": self.bearer, "BEARER_TOKEN_FILE content": self.file_token,
                "X509_USER_PROXY": str(self.proxy), "proxy content": self.proxy_content,
                "a wrong AWS secret": self.wrong_secret, "a URL password": self.url_password,
                "$XDG_RUNTIME_DIR/bt_u<uid> content": self.runtime_token,
                "/tmp/bt_u<uid> content": self.tmp_token}

    def forms(self) -> dict[str, dict[str, str]]:
        """{what: {needle: form}}: each value as is, URL-encoded and inside base64."""
        return _forms(tuple(self.values().items()))

    def env(self) -> dict[str, str]:
        """The credential part of a worker node's environment."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "BEARER_TOKEN": self.bearer, "BEARER_TOKEN_FILE": str(self.token_file),
                "X509_USER_PROXY": str(self.proxy), "XDG_RUNTIME_DIR": "/nonexistent-runtime-dir"}


@functools.lru_cache(maxsize=None)
def _forms(values: tuple) -> dict[str, dict[str, str]]:
    return {what: encoded_forms(value) for what, value in values}


def encoded_forms(value: str) -> dict[str, str]:
    """{needle: form} of the ways `value` can sit in a text: as is, as a URL carries it (quote with
    and without '/' kept, quote_plus), and inside base64 (standard and URL-safe alphabets).

    Base64 turns 3 bytes into 4 characters, so a value inside a longer encoded text reads
    differently as it starts 0, 1 or 2 bytes into a group: for each offset, the needle is the run of
    characters that depend on the value's bytes alone, which any such text holds."""
    forms = {value: "as is"}
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.setdefault(encoded, "URL-encoded")
    raw = value.encode()
    for alphabet, encode in (("base64", base64.b64encode), ("URL-safe base64", base64.urlsafe_b64encode)):
        for offset in range(3):
            text = encode(b"\0" * offset + raw).decode()
            first, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
            forms.setdefault(text[first:end], alphabet)
    return forms


# ---------------------------------------------------------------------------------------------
# The ledger behind the summary


@dataclass
class Ledger:
    """What the suite verified, counted as it happened."""

    run: int = 0                  # scenarios that inject a fault, of all kinds
    passed: int = 0
    kinds: dict = field(default_factory=lambda: {kind: [0, 0] for kind in KINDS})   # kind: [run, passed]
    via_pilot: int = 0
    controls: int = 0             # control runs (no fault injected): same checks, not counted as scenarios
    controls_passed: int = 0
    outputs_checked: int = 0      # outputs of successful runs compared with the disk (size, adler32)
    successful_runs: int = 0
    files_lost: list = field(default_factory=list)
    partial_left: list = field(default_factory=list)
    leaks: list = field(default_factory=list)
    texts_scanned: int = 0
    bytes_scanned: int = 0
    uploads_checked: int = 0      # --outputPrefix places listed for open multipart uploads and orphans
    exempt_seen: list = field(default_factory=list)

    def count(self, kind: Optional[str], passed: bool) -> None:
        """One finished scenario: a control (`kind` None) or a fault scenario of `kind` (one of
        KINDS, or "" when its set-up failed before its kind was known)."""
        if kind is None:
            self.controls += 1
            self.controls_passed += passed
            return
        self.run += 1
        self.passed += passed
        if kind:
            self.kinds[kind][0] += 1
            self.kinds[kind][1] += passed

    def summary(self, secret_values: int) -> list[str]:
        """The lines the suite prints at its end: a headline, then what each figure counts."""
        by_kind = ", ".join(f"{KIND_SHORT[kind]} {self.kinds[kind][1]}/{self.kinds[kind][0]}" for kind in KINDS)
        unknown = self.run - sum(run for run, _ in self.kinds.values())
        lines = [
            f"fault suite {self.passed}/{self.run} ({by_kind}), controls {self.controls_passed}/"
            f"{self.controls}, {len(self.files_lost)} lost, {len(self.partial_left)} partial, "
            f"{len(self.leaks)} secrets",
            f"fault scenarios run (a fault injected in each): {self.run} ({self.run - self.via_pilot} "
            f"through the CLI, {self.via_pilot} through the real pilot), passed: {self.passed}",
            *(f"  {KIND_NAMES[kind]}: {self.kinds[kind][0]}, passed: {self.kinds[kind][1]}" for kind in KINDS),
            *([f"  of no known kind (set-up failed): {unknown}, passed: 0"] if unknown else []),
            f"control runs (no fault; same checks, not counted above): {self.controls}, "
            f"passed: {self.controls_passed}",
            f"successful runs: {self.successful_runs}, their {self.outputs_checked} outputs compared with "
            "the files on disk (size, adler32)",
            f"files lost: {len(self.files_lost)}; partial files left: {len(self.partial_left)} "
            f"(S3 output prefixes checked for open multipart uploads and orphans: {self.uploads_checked})",
            f"secrets leaked: {len(self.leaks)} ({self.texts_scanned} texts, {self.bytes_scanned} bytes "
            f"scanned for {secret_values} secret values, each as is, URL-encoded and in base64)",
        ]
        lines += [f"  {problem}" for problem in self.files_lost + self.partial_left + self.leaks]
        if self.exempt_seen:
            lines.append(f"the pilot's own logs name the X509_USER_PROXY path (not its content) in "
                         f"{len(self.exempt_seen)} texts: panda-pilot logs `export X509_USER_PROXY=...`")
        return lines

    def scan(self, secrets: Secrets, label: str, text: str, exempt: frozenset = frozenset()) -> list[str]:
        """Look for every secret value, in each of its forms (`encoded_forms`), in `text`; record
        and return what leaked. A value named in `exempt` is not a leak but is listed apart
        (`exempt_seen`), so the summary still says so."""
        self.texts_scanned += 1
        self.bytes_scanned += len(text)
        found = []
        for what, forms in secrets.forms().items():
            form = next((form for needle, form in forms.items() if needle in text), None)
            if form is None:
                continue
            entry = f"{what} in {label}" if form == "as is" else f"{what} ({form}) in {label}"
            (self.exempt_seen if what in exempt else found).append(entry)
        self.leaks.extend(found)
        return found


LEDGER = Ledger()

# ---------------------------------------------------------------------------------------------
# Running the trf


@dataclass(frozen=True)
class TrfRun:
    """One finished run of the trf: exit code, output, reports (None where absent)."""

    args: tuple
    jobdir: Path
    rc: int
    stdout: str
    stderr: str
    report: Optional[dict]
    error_report: Optional[dict]

    @property
    def message(self) -> str:
        return self.report["exitMsg"] if self.report else ""

    @property
    def cause(self) -> Optional[str]:
        return self.report.get("errorCause") if self.report else None

    def output_names(self) -> tuple:
        """The output LFNs the arguments name (hostile ones included, as given)."""
        return output_names(self.args)


def output_names(args: Sequence[str]) -> tuple:
    names = []
    for i, word in enumerate(args):
        match = re.match(r"--(output\w*File)(?:=(.*))?$", word, re.S)
        if match and match.group(1) != "outputPrefix":
            value = match.group(2) if match.group(2) is not None else (
                args[i + 1] if i + 1 < len(args) else "")
            names.extend(v for v in value.split(",") if v)
    return tuple(names)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Running:
    """A trf started in the background (own session, as the pilot starts it), to be stopped.

    `wrap` is a command the trf runs under (it must exec its arguments, keeping the PID)."""

    def __init__(self, args: tuple, jobdir: Path, env: dict, logs: Path, on_finish: Callable,
                 wrap: Sequence[str] = ()):
        self.args, self.jobdir, self._on_finish = args, jobdir, on_finish
        self.stdout_path, self.stderr_path = logs.with_suffix(".stdout"), logs.with_suffix(".stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([*wrap, sys.executable, "-m", "wrapper", *args], cwd=jobdir,
                                         env=env, stdout=out, stderr=err, start_new_session=True)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 180.0,
                 poll: float = 0.05) -> None:
        """Wait until `condition()` holds; fail naming `what` if the trf ends or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the trf ended (exit {self.proc.returncode}) before {what}:\n"
                            f"{self.stderr_path.read_text(errors='replace')[-3000:]}")
            time.sleep(poll)
        self.kill()
        pytest.fail(f"timed out waiting for {what}")

    def wait_for_output(self, text: str, timeout: float = 180.0) -> None:
        self.wait_for(lambda: text in self.stdout(), f"{text!r} on stdout", timeout)

    def stop(self, signum: int = signal.SIGTERM, grace_s: float = STOP_GRACE_S) -> TrfRun:
        """Signal the process group, as the pilot does; SIGKILL follows after `grace_s`."""
        os.killpg(self.proc.pid, signum)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.finish()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def finish(self, timeout: float = 300.0) -> TrfRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        run = TrfRun(self.args, self.jobdir, self.proc.returncode, self.stdout(),
                     self.stderr_path.read_text(errors="replace"),
                     _read_json(self.jobdir / "jobReport.json"),
                     _read_json(self.jobdir / "payload_error_report.json"))
        self._on_finish(run)
        return run


class Trf:
    """Runs the trf in job directories with the suite's environment; every run is recorded."""

    def __init__(self, scenario: "Scenario", jobdir: Path, env: dict, logs: Path):
        self.scenario, self.jobdir, self.env, self._logs = scenario, jobdir, env, logs
        self._count = itertools.count()

    def _env(self, extra: Optional[dict]) -> dict:
        env = dict(self.env)
        env.update(extra or {})
        return {k: v for k, v in env.items() if v is not None}

    def start(self, *args: str, jobdir: Optional[Path] = None, env: Optional[dict] = None,
              wrap: Sequence[str] = ()) -> Running:
        jobdir = jobdir or self.jobdir
        logs = self._logs / f"run{next(self._count)}"
        return Running(tuple(args), jobdir, self._env(env), logs, self.scenario.record, wrap)

    def __call__(self, *args: str, jobdir: Optional[Path] = None, env: Optional[dict] = None,
                 timeout: float = 300.0, wrap: Sequence[str] = ()) -> TrfRun:
        return self.start(*args, jobdir=jobdir, env=env, wrap=wrap).finish(timeout)


# ---------------------------------------------------------------------------------------------
# The per-scenario checks


def size_of(path: Path) -> int:
    """The size of a file another process may remove at any moment (0 when it is gone)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> Optional[str]:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


class Scenario:
    """One named fault scenario: what it ran, what it read, and the checks that always apply."""

    def __init__(self, name: str, secrets: Secrets, ledger: Ledger = LEDGER):
        self.name = name
        self.secrets = secrets
        self.ledger = ledger
        self.allow_traceback = False        # --debug prints tracebacks of expected failures
        self.runs: list[TrfRun] = []
        self.texts: list[tuple[str, str, frozenset]] = []
        self._inputs: dict[Path, Optional[str]] = {}
        self._objects: dict[tuple, tuple] = {}
        self._kept: set = set()
        self._no_report: Optional[str] = None
        self.via_pilot = False
        self.is_control = False
        self.declared_kind: Optional[str] = None   # set by conftest from the test's module or marker
        self.uploads: list[tuple] = []
        self._output_problems: list[str] = []

    def control(self) -> None:
        """This test injects no fault (a control run, a dry run, a job meant to succeed): its runs
        get every check, but the summary does not count it as a fault scenario."""
        self.is_control = True

    def kind(self) -> Optional[str]:
        """What the summary counts this scenario as: None for a control, REFUSAL when every run
        was refused before any work, else the kind it declared."""
        if self.is_control:
            return None
        if self.runs and all(refused_before_work(run) for run in self.runs):
            return REFUSAL
        return self.declared_kind

    def without_report(self, reason: str) -> None:
        """The job directory cannot hold jobReport.json (read-only, say): its absence is no failure."""
        self._no_report = reason

    def s3_upload_target(self, client, bucket: str, prefix: str) -> None:
        """An --outputPrefix the trf uploads to: after a failed run no multipart upload may be left
        open under it, and no object either (a failed job publishes nothing)."""
        self.uploads.append((client, bucket, prefix))

    def record(self, run: TrfRun) -> None:
        """A finished run; a successful one's outputs are compared with the disk at once, before
        the test can touch them."""
        self.runs.append(run)
        if run.rc == 0 and run.report is not None and "--dryRun" not in run.args:
            self._output_problems += self._outputs_on_disk(run)

    def _outputs_on_disk(self, run: TrfRun) -> list[str]:
        where = f"run in {run.jobdir.name}"
        problems, checked = output_problems(run.jobdir, run.report)
        listed = set(checked)
        problems += [f"exit 0 but the report lists no output {lfn}" for lfn in run.output_names()
                     if lfn not in listed]
        self.ledger.successful_runs += 1
        self.ledger.outputs_checked += len(checked)
        return [f"{where}: {problem}" for problem in problems]

    def input(self, *paths: Path) -> None:
        """Files the trf reads: they must be byte-for-byte the same afterwards."""
        for path in paths:
            self._inputs[Path(path)] = file_digest(Path(path))

    def s3_input(self, client, bucket: str, key: str) -> None:
        """An S3 object the trf reads: it must be the same afterwards."""
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        self._objects[(bucket, key)] = (client, digest(body))

    def scan(self, label: str, text: str, exempt: frozenset = frozenset()) -> None:
        """Hand over a text (an exception message, a pilot file) for the secrets scan."""
        self.texts.append((label, text, exempt))

    def keep(self, path: Path) -> None:
        """A file under a final name that this (failed) scenario expects, e.g. one there before."""
        self._kept.add(Path(path))

    # -- checks --------------------------------------------------------------------------------

    def verify(self) -> list[str]:
        problems: list[str] = list(self._output_problems)
        for run in self.runs:
            problems += self._run_problems(run)
        for path, before in self._inputs.items():
            if file_digest(path) != before:
                self.ledger.files_lost.append(f"{self.name}: input {path.name} changed or vanished")
                problems.append(f"input {path} changed or vanished")
        for (bucket, key), (client, before) in self._objects.items():
            try:
                after = digest(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            except Exception as err:  # noqa: BLE001 - any failure to read it back is a loss
                after = f"unreadable: {type(err).__name__}"
            if after != before:
                self.ledger.files_lost.append(f"{self.name}: object s3://{bucket}/{key} changed or vanished")
                problems.append(f"object s3://{bucket}/{key} changed or vanished")
        for label, text, exempt in self.texts:
            problems += self.ledger.scan(self.secrets, f"{self.name}: {label}", text, exempt)
        if any(run.rc != 0 for run in self.runs):
            for client, bucket, prefix in self.uploads:
                problems += self._upload_leftovers(client, bucket, prefix)
        return problems

    def _upload_leftovers(self, client, bucket: str, prefix: str) -> list[str]:
        """Multipart uploads left open and objects left under `prefix` by a failed job (real S3 calls)."""
        problems = []
        pending = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        self.ledger.uploads_checked += 1
        for upload in pending:
            self.ledger.partial_left.append(f"{self.name}: multipart upload of s3://{bucket}/{upload['Key']} "
                                            "left open")
            problems.append(f"multipart upload {upload['Key']} left open on S3")
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        for obj in listed:
            self.ledger.partial_left.append(f"{self.name}: orphaned object s3://{bucket}/{obj['Key']}")
            problems.append(f"object {obj['Key']} left on S3 by a failed job")
        return problems

    def _run_problems(self, run: TrfRun) -> list[str]:
        problems = []
        where = f"run in {run.jobdir.name}"
        if run.rc not in ALLOWED_EXIT and run.rc != -signal.SIGKILL:
            problems.append(f"{where}: exit {run.rc} is not one the pilot reads as meant")
        if not self.allow_traceback and (TRACEBACK in run.stderr or TRACEBACK in run.stdout):
            problems.append(f"{where}: a traceback reached the log:\n{run.stderr[-2000:]}")
        if run.report is None and run.rc != -signal.SIGKILL and self._no_report is None:
            problems.append(f"{where}: jobReport.json missing (exit {run.rc})")
        if run.report is not None:
            if run.report["exitCode"] != run.rc and run.rc != -signal.SIGKILL:
                problems.append(f"{where}: jobReport exitCode {run.report['exitCode']} != exit {run.rc}")
            expected = (None if run.report["exitCode"] == 0 else
                        {"error_code": run.report["exitCode"], "error_diag": run.report["exitMsg"]})
            if run.error_report != expected:
                problems.append(f"{where}: payload_error_report.json {run.error_report} != {expected}")
        failed = run.rc != 0
        for lfn in run.output_names():
            final = Path(os.path.normpath(run.jobdir / lfn))
            if failed and (final.exists() or final.is_symlink()) and final not in self._kept:
                self.ledger.files_lost.append(f"{self.name}: {lfn} left under its final name by a failed job")
                problems.append(f"{where}: {lfn} left under its final name")
        killed = run.rc == -signal.SIGKILL   # nothing can clean up after SIGKILL
        for path in [] if killed else _walk(run.jobdir, with_dirs=True):
            if PARTIAL.search(path.name):
                self.ledger.partial_left.append(f"{self.name}: {path.name} left in the job directory")
                problems.append(f"{where}: partial file {path.name} left")
        problems += self.ledger.scan(self.secrets, f"{self.name}: stdout", run.stdout)
        problems += self.ledger.scan(self.secrets, f"{self.name}: stderr", run.stderr)
        for path in _walk(run.jobdir):
            if path.is_file() and path.stat().st_size < SCAN_LIMIT:
                problems += self.ledger.scan(self.secrets, f"{self.name}: {path.name}",
                                             path.read_bytes().decode("latin-1"))
        return problems


# panda-pilot 3.7.0.36 logs the payload command it runs, `export X509_USER_PROXY=<path>;` included:
# the proxy's path (never its content) is in the pilot's own logs. Listed apart in the summary.
PILOT_LOGS_PROXY_PATH = frozenset({"X509_USER_PROXY"})


def scan_pilot_run(scenario: Scenario, root: Path) -> int:
    """Hand every file of a pilot run directory to the scenario's secrets scan: pilot.stdout, the
    pilot's own logs, what reached Harvester, the job directory, and each member of every log
    tarball (`*.tgz`, `*.tar.gz`) the pilot made. Returns the number of texts handed over.

    The trf's own files are also scanned by the run's checks, with no exemption."""
    count = 0
    for path in _walk(root):
        if not path.is_file() or path.is_symlink() or path.stat().st_size >= SCAN_LIMIT:
            continue
        label = str(path.relative_to(root))
        if path.name.endswith((".tgz", ".tar.gz")):
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.isfile() and member.size < SCAN_LIMIT:
                        scenario.scan(f"{label}:{member.name}", tar.extractfile(member).read().decode("latin-1"),
                                      PILOT_LOGS_PROXY_PATH)
                        count += 1
        scenario.scan(label, path.read_bytes().decode("latin-1"), PILOT_LOGS_PROXY_PATH)
        count += 1
    return count


def refused_before_work(run: TrfRun) -> bool:
    """The run ended with an argument error and its report shows no step begun."""
    return (run.rc in ARGUMENT_EXITS and run.report is not None
            and run.report.get("executor") == [])


def _walk(directory: Path, with_dirs: bool = False) -> Iterable[Path]:
    try:
        return [p for p in Path(directory).rglob("*") if with_dirs or not p.is_dir()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# Assertions every scenario makes


def expect_failure(run: TrfRun, code: int, *, cause: Optional[str] = None, mentions: Sequence[str] = (),
                   acronym: Optional[str] = None) -> dict:
    """The run failed with `code`; both reports say so; the message names what it must.
    Returns the job report."""
    assert run.rc == code, f"exit {run.rc}, expected {code}:\n{run.stderr[-3000:]}"
    assert run.report is not None, "jobReport.json missing"
    assert run.report["exitCode"] == code
    if acronym:
        assert run.report["exitAcronym"] == acronym
    assert run.error_report == {"error_code": code, "error_diag": run.report["exitMsg"]}
    if cause is not None:
        assert run.report.get("errorCause") == cause, run.report.get("errorCause")
    for text in mentions:
        assert text in run.report["exitMsg"], f"{text!r} not in {run.report['exitMsg']!r}"
        assert text in run.stderr, f"{text!r} not in stderr"
    assert run.report["files"]["output"] == []
    return run.report
