#!/usr/bin/env python3
"""Where a whole `python -m wrapper.staging` process spends its wall time, next to s5cmd's total.

For each case (FILESxMIB objects on a loopback SeaweedFS, uploaded by scripts.bench.staging) and
each CPU set (`taskset -c 0`, `taskset -c 0,1`), --repeat rounds of, in a rotating order:
  - `python -c pass` (the interpreter's own start),
  - the staging process with phase marks (scripts/bench/staging_phases.py: the same
    `python -m wrapper.staging` argv, a few product functions wrapped with timers from outside),
  - the plain staging process (its total, so the marks' own cost shows),
  - `s5cmd cp` (its total).
Phases, in wall time: interpreter start, imports (ours, then boto3/botocore/s3transfer), client
set-up, listing (and heads), transfers, verification, renames, other (arguments, planning, free
space, printing), exit (interpreter shutdown). Medians over the rounds; shares of the median total.
Then one py-spy sampling of the plain process per case and CPU set (when py-spy is installed):
the share of samples in each kind of work. The SeaweedFS server itself is not pinned.

    python -m scripts.bench.staging_profile [--repeat 5] [--cases 8x64,256x1] [--cpus 0 0,1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from scripts.bench import staging
from tests.support import seaweed

ROOT = staging.ROOT
RESULTS = ROOT / "docs" / "results"
PHASES = ("interpreter start", "imports", "client set-up", "listing", "transfers", "verification",
          "renames", "other", "exit")
# py-spy sample kinds: the first that matches names a sample (markers in the whole stack, or in
# its leaf frame only)
KINDS = (("imports", "stack", ("<frozen importlib._bootstrap",)),
         ("client set-up (botocore models, session)", "stack", ("create_client", "get_credentials",
                                                                "Session.__init__")),
         ("socket reads", "leaf", ("(socket.py", "(http/client.py", "(ssl.py")),
         ("file open and write", "leaf", ("attempt (wrapper/staging/s3.py", "DeferredOpenFile", "IOWriteTask")),
         ("verification and renames", "leaf", ("verify (", "finalize (", "discard (")),
         ("request making (botocore: sign, build, parse, events)", "stack", ("_make_api_call",)),
         ("s3transfer scheduling", "stack", ("s3transfer",)))


def phases_of(marks: dict, spans: dict, spawned: float, ended: float) -> Dict[str, float]:
    """Wall seconds of each phase of one marked run (they sum to `ended - spawned`)."""
    total = lambda name: sum(spans.get(name, ()))  # noqa: E731
    phases = {"interpreter start": marks["started"] - spawned,
              "imports": (marks["product_imported"] - marks["started"])
              + (marks["libraries_imported"] - marks["client_start"]),
              "client set-up": marks["client_ready"] - marks["libraries_imported"],
              "listing": total("listing") + total("heads"),
              "transfers": total("download_all") - total("verify") - total("rename"),
              "verification": total("verify"), "renames": total("rename"),
              "exit": ended - marks["main_done"]}
    phases["other"] = ended - spawned - sum(phases.values())
    return phases


def copy_run(argv: List[str], target: Path, env: dict, total: int, marks: Path = None) -> dict:
    """One cold process copying into an empty `target`: its wall time, and its phases when marked."""
    target.mkdir()
    spawned = time.monotonic()
    subprocess.run(argv, check=True, env=env, cwd=target, stdout=subprocess.DEVNULL)
    ended = time.monotonic()
    landed = sum(p.stat().st_size for p in target.iterdir())
    shutil.rmtree(target)
    if landed != total:
        raise RuntimeError(f"{argv} landed {landed} bytes, {total} expected")
    run = {"total": ended - spawned}
    if marks is not None:
        run.update(marked_run(json.loads(marks.read_text()), spawned, ended))
    return run


def marked_run(recorded: dict, spawned: float, ended: float) -> dict:
    """Phases of one marked run from what scripts/bench/staging_phases.py recorded."""
    stamps, spans = recorded["marks"], recorded["spans"]
    run = {"phases": phases_of(stamps, spans, spawned, ended),
           # thread-seconds of verification and renames on the transfer threads, hidden behind transfers
           "overlapped": {name: sum(spans.get(f"{name}@threads", ())) for name in ("verify", "rename")}}
    if "get_whole@threads_last" in stamps:
        # how long staging went on once the last whole GET had its bytes: the main thread's backlog
        run["after_last_whole_get"] = stamps["download_all_last"] - stamps["get_whole@threads_last"]
    return run


def bare_start(cpus: str) -> float:
    """Wall seconds of `python -c pass` on `cpus`."""
    started = time.monotonic()
    subprocess.run(["taskset", "-c", cpus, sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - started


def one_round(server, scratch: Path, prefix: str, total: int, cpus: str, turn: int, env: dict) -> dict:
    """Each of the four processes once on `cpus`, the order rotated by `turn`."""
    pin = ["taskset", "-c", cpus]
    marks = scratch / "marks.json"
    marked = [sys.executable, "-m", "scripts.bench.staging_phases", str(marks), "--"]
    steps = {
        "python_pass": lambda: {"total": bare_start(cpus)},
        # the same arguments as the plain run: commands() is [python, -m, wrapper.staging, *arguments]
        "marked": lambda t: copy_run(pin + marked + staging.commands("ours", prefix, t, server.endpoint)[3:],
                                     t, env, total, marks),
        "ours": lambda t: copy_run(pin + staging.commands("ours", prefix, t, server.endpoint), t, env, total),
        "s5cmd": lambda t: copy_run(pin + staging.commands("s5cmd", prefix, t, server.endpoint), t, env, total),
    }
    names = list(steps)
    names = names[turn % 4:] + names[:turn % 4]
    done = {}
    for name in names:
        done[name] = steps[name]() if name == "python_pass" else steps[name](scratch / f"{name}-{turn}")
    return done


def summary(rounds: List[dict]) -> dict:
    """Medians over the rounds: phases, their shares of the marked total, and the three totals."""
    median = lambda values: round(statistics.median(values), 4)  # noqa: E731
    phases = {p: median([r["marked"]["phases"][p] for r in rounds]) for p in PHASES}
    marked = median([r["marked"]["total"] for r in rounds])
    totals = {name: median([r[name]["total"] for r in rounds]) for name in ("ours", "s5cmd", "python_pass")}
    tail = [r["marked"]["after_last_whole_get"] for r in rounds if "after_last_whole_get" in r["marked"]]
    return {"runs": len(rounds), "phases_s": phases, "marked_total_s": marked,
            "share": {p: round(s / marked, 3) for p, s in phases.items()},
            "overlapped_thread_s": {n: median([r["marked"]["overlapped"][n] for r in rounds])
                                    for n in ("verify", "rename")},
            "after_last_whole_get_s": median(tail) if tail else None,
            **{f"{name}_s": value for name, value in totals.items()},
            "marks_cost_s": round(marked - totals["ours"], 4),
            "vs_s5cmd": round(totals["s5cmd"] / totals["ours"], 3),
            "per_run": rounds}


def sampled(server, scratch: Path, prefix: str, total: int, cpus: str, env: dict) -> dict:
    """py-spy's view of one plain run on `cpus`: share of samples by kind, and the top leaf frames."""
    spy = staging.BIN / "py-spy"
    if not spy.exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw, target = scratch / "spy.txt", scratch / "spied"
    argv = [str(spy), "record", "--format", "raw", "--rate", "500", "--nonblocking", "-o", str(raw), "--",
            "taskset", "-c", cpus, *staging.commands("ours", prefix, target, server.endpoint)]
    copy_run(argv, target, env, total)
    return kinds_of(raw.read_text().splitlines())


def kinds_of(lines: List[str]) -> dict:
    """{samples, kinds: {kind: share}, top_leaves: [[frame, share]...]} of py-spy's raw (collapsed) lines."""
    kinds: Dict[str, int] = {}
    leaves: Dict[str, int] = {}
    samples = blank = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if not stack.strip():
            blank += int(count)          # a thread caught outside any Python frame
            continue
        n = int(count)
        samples += n
        leaf = stack.rsplit(";", 1)[-1]
        kind = next((name for name, where, markers in KINDS
                     if any(m in (stack if where == "stack" else leaf) for m in markers)), "other Python")
        kinds[kind] = kinds.get(kind, 0) + n
        leaves[leaf] = leaves.get(leaf, 0) + n
    share = lambda n: round(n / max(samples, 1), 3)  # noqa: E731
    top = sorted(leaves.items(), key=lambda item: -item[1])[:8]
    by_share = sorted(kinds.items(), key=lambda item: -item[1])
    return {"samples": samples, "without_python_frame": blank, "kinds": {k: share(n) for k, n in by_share},
            "top_leaves": [[leaf, share(n)] for leaf, n in top]}


def machine() -> dict:
    """What ran it: CPU model, cores, load, Python and library versions."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import boto3
    import botocore

    return {"cpu": model, "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "boto3": boto3.__version__, "botocore": botocore.__version__,
            "s5cmd": subprocess.run([str(staging.BIN / "s5cmd"), "version"], capture_output=True,
                                    text=True).stdout.strip()}


def profile_case(server, scratch: Path, files: int, mib: int, cpu_sets: List[str], repeat: int) -> List[dict]:
    """One case on every CPU set: the rounds' summary and py-spy's view."""
    prefix = f"p{files}x{mib}"
    total = staging.upload_inputs(server.client(), prefix, files, mib)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **server.env(),
           "PYTHONPATH": str(ROOT)}
    results = []
    for cpus in cpu_sets:
        one_round(server, scratch, prefix, total, cpus, 0, env)          # warm-up, not counted
        rounds = [one_round(server, scratch, prefix, total, cpus, turn, env) for turn in range(repeat)]
        result = {"case": f"{files}x{mib}MiB", "files": files, "mib_each": mib, "cpus": cpus,
                  **summary(rounds), "py_spy": sampled(server, scratch, prefix, total, cpus, env)}
        print(f"{result['case']} on cpus {cpus}: ours {result['ours_s']} s, s5cmd {result['s5cmd_s']} s "
              f"({result['vs_s5cmd']}x); phases {result['phases_s']}", flush=True)
        results.append(result)
    return results


def table(report: dict) -> str:
    """The markdown page: phases x case x CPU set, seconds and share; totals and ratios under it."""
    results = report["results"]
    head = [f"{r['case']}, cpus {r['cpus']}" for r in results]
    lines = ["# Staging profile: where a whole `python -m wrapper.staging` process spends its time", "",
             f"Command: `{report['command']}`  ", f"Date: {report['date']}  ",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, load average at the "
             f"start {report['machine']['load_average']}; Python {report['machine']['python']}, boto3 "
             f"{report['machine']['boto3']}, s5cmd {report['machine']['s5cmd']}  ",
             f"Medians of {results[0]['runs']} rounds (each: `python -c pass`, the marked run, the plain run, "
             "s5cmd; order rotated); seconds, share of the marked run's total in brackets. The loopback "
             "SeaweedFS server shares the machine and is not pinned.", "",
             "| phase | " + " | ".join(head) + " |", "|---|" + "---|" * len(results)]
    for phase in PHASES:
        lines.append(f"| {phase} | " + " | ".join(f"{r['phases_s'][phase]:.3f} ({100 * r['share'][phase]:.0f} %)"
                                                  for r in results) + " |")
    rows = (("marked run, total", "marked_total_s"), ("plain `python -m wrapper.staging`, total", "ours_s"),
            ("`s5cmd cp`, total", "s5cmd_s"), ("`python -c pass`", "python_pass_s"))
    lines += [f"| **{label}** | " + " | ".join(f"{r[key]:.3f}" for r in results) + " |" for label, key in rows]
    lines.append("| verification + renames on the transfer threads (thread-seconds, hidden behind transfers) | "
                 + " | ".join(f"{sum(r['overlapped_thread_s'].values()):.3f}" for r in results) + " |")
    tails = ["–" if r["after_last_whole_get_s"] is None else f"{r['after_last_whole_get_s']:.3f}" for r in results]
    lines.append("| staging after the last whole GET ended | " + " | ".join(tails) + " |")
    lines.append("| **ours vs s5cmd (throughput ratio)** | " + " | ".join(f"{r['vs_s5cmd']:.2f}×" for r in results)
                 + " |")
    lines += ["", "py-spy (500 samples/s of the plain run; share of the samples of active threads by kind):", "",
              "| kind | " + " | ".join(head) + " |", "|---|" + "---|" * len(results)]
    kinds = sorted({k for r in results for k in r["py_spy"].get("kinds", {})})
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(f"{100 * r['py_spy'].get('kinds', {}).get(kind, 0):.0f} %"
                                                 for r in results) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list) -> int:
    """Profile every case on every CPU set; write the JSON and the markdown table; 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="8x64,256x1", help="FILESxMIB cases, comma-separated")
    parser.add_argument("--cpus", nargs="+", default=["0", "0,1"], help="taskset CPU lists to run on")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case and CPU set (>= 3)")
    parser.add_argument("--json", type=Path, default=RESULTS / "staging-profile.json")
    parser.add_argument("--md", type=Path, default=RESULTS / "staging-profile.md")
    args = parser.parse_args(argv)
    cases = [tuple(int(n) for n in c.split("x")) for c in args.cases.split(",") if c]
    report = {"command": "python -m scripts.bench.staging_profile " + " ".join(argv),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}
    scratch = Path(tempfile.mkdtemp(prefix="bench-staging-profile-"))
    server = seaweed.start(scratch / "seaweed")
    try:
        server.client().create_bucket(Bucket="bench")
        report["results"] = [r for files, mib in cases
                             for r in profile_case(server, scratch, files, mib, args.cpus, args.repeat)]
    finally:
        seaweed.stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    args.json.write_text(json.dumps(report, indent=1))
    args.md.write_text(table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
