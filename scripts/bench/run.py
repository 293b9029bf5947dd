#!/usr/bin/env python3
"""The project's benchmarks: the spine's own rows, then each area's benchmark script.

Speed goals are ratios to a baseline measured in the same run on the same machine. The spine's
first row is the one the spine issue asks for: the wall time of an argument error
(`python -m wrapper --bogus=1` in an empty directory) against a bare `python -c pass`, each the
median of --runs runs, the two interleaved so that load on a shared machine biases both alike.

Every other area keeps its benchmark in `scripts/bench/<area>.py` with a `main(argv) -> int`, and
may add a `figures(argv) -> list[dict]` whose figures (`name`, `ratio`, `samples`, ...) go into
--json (then the driver calls that instead); it is imported only when its area is selected, and
listed as unavailable when the module does not exist.

    python -m scripts.bench.run                          # every area
    python -m scripts.bench.run --only=spine --runs=21
    python -m scripts.bench.run --only=staging --json staging.json   # {"figures": [...]}
    python -m scripts.bench.run --only=spine,staging --area-args staging="--cases 2x8 --repeat 5"
    python -m scripts.bench.run --only=flops --area-args flops="--json flops.json"   # speed against the limit
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = __package__ or "scripts.bench"

# area → its module in this package (None: rows measured here)
AREAS = {"spine": None, "payload": "payload", "events": "events", "staging": "staging",
         "platform": "platform", "child": "child", "scale": "scale", "serving": "serving",
         "flops": "flops"}

JEDI_DRY_RUN = ["--mode=infer", "--inputEventsFile=ev.[001,002].h5", "--modelFile=model.keras",
                "--outputPredFile=pred.000042.h5", "--dryRun"]


@dataclass(frozen=True)
class Row:
    area: str
    name: str
    ours_s: float
    baseline_name: str
    baseline_s: float

    @property
    def ratio(self) -> float:
        return self.ours_s / self.baseline_s


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONSTARTUP", None)
    return env


def _timed_run(argv: list[str], expect: int) -> float:
    """Wall time of one process started in a fresh empty directory (the pilot's job directory)."""
    with tempfile.TemporaryDirectory(prefix="bench-spine-") as jobdir:
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=jobdir, env=_env(), capture_output=True)
        elapsed = time.perf_counter() - start
        if done.returncode != expect:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}, expected {expect}: "
                               f"{done.stderr.decode(errors='replace')[-500:]}")
        if "--bogus=1" in argv and not (Path(jobdir) / "jobReport.json").exists():
            raise RuntimeError("the argument error wrote no jobReport.json")
    return elapsed


def _interleaved(runs: int, ours: Callable[[], float], baseline: Callable[[], float]) -> tuple[float, float]:
    """Medians of `runs` alternating measurements (who goes first alternates too)."""
    a, b = [], []
    for run in range(runs):
        if run % 2:
            b.append(baseline())
            a.append(ours())
        else:
            a.append(ours())
            b.append(baseline())
    return statistics.median(a), statistics.median(b)


def spine_rows(runs: int) -> list[Row]:
    """The spine's rows: argument error, dry run and --help, each against a bare interpreter."""
    python = sys.executable
    bare = lambda: _timed_run([python, "-c", "pass"], 0)  # noqa: E731
    _timed_run([python, "-m", "wrapper", "--bogus=1"], 7)  # warm the page cache and .pyc files
    cases = [("argument error (--bogus=1)", [python, "-m", "wrapper", "--bogus=1"], 7),
             ("dry run of a JEDI-shaped job", [python, "-m", "wrapper", *JEDI_DRY_RUN], 0),
             ("--help", [python, "-m", "wrapper", "--help"], 0)]
    rows = []
    for name, argv, expect in cases:
        ours, base = _interleaved(runs, lambda: _timed_run(argv, expect), bare)
        rows.append(Row("spine", name, ours, "python -c pass", base))
    return rows


def _area_main(module_name: str) -> Optional[Callable]:
    """The area benchmark's `figures` (else its `main`), or None when its module does not exist (yet)."""
    name = f"{PACKAGE}.{module_name}"
    if importlib.util.find_spec(name) is None:
        return None
    module = importlib.import_module(name)
    return getattr(module, "figures", None) or module.main


def run_area(area: str, module_name: str, args: list[str], figures: list) -> str:
    """Run one area's benchmark in this process; returns its status for the summary.

    The figures an area's `figures()` returns are added to `figures`."""
    try:
        main = _area_main(module_name)
    except Exception as err:  # an area that cannot even import is reported, the others still run
        return f"failed to import: {type(err).__name__}: {err}"
    if main is None:
        return f"unavailable (no scripts/bench/{module_name}.py)"
    print(f"\n== {area}: python -m {PACKAGE}.{module_name} {' '.join(args)}", flush=True)
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except Exception:
        traceback.print_exc()
        return "failed (exception, see above)"
    if isinstance(code, list):
        figures.extend(dict(f, area=area) for f in code)
        code = 0
    return "ok" if not code else f"failed (exit {code})"


def print_rows(rows: list[Row]) -> None:
    print(f"{'area':<8} {'benchmark':<32} {'ours':>10} {'baseline':>10}  {'ratio':>7}  baseline")
    for row in rows:
        print(f"{row.area:<8} {row.name:<32} {row.ours_s * 1e3:>8.1f}ms {row.baseline_s * 1e3:>8.1f}ms"
              f"  {row.ratio:>6.2f}x  {row.baseline_name}", flush=True)


def main(argv: list[str]) -> int:
    """Run the selected areas and print their rows, statuses and figures; 1 when one failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(AREAS),
                        help=f"comma list of areas to run (default: all of {', '.join(AREAS)})")
    parser.add_argument("--runs", type=int, default=15, help="runs per side of each spine row (median)")
    parser.add_argument("--area-args", action="append", default=[], metavar="AREA=ARGS",
                        help="arguments for one area's script, e.g. staging=\"--files 2 --mib 8\"")
    parser.add_argument("--json", type=Path, help="write the figures, spine rows and area statuses here")
    args = parser.parse_args(argv)
    selected = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in selected if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(AREAS)}")
    extra = {}
    for item in args.area_args:
        area, _, text = item.partition("=")
        extra[area] = shlex.split(text)

    rows: list[Row] = []
    status: dict[str, str] = {}
    figures: list[dict] = []
    if "spine" in selected:
        rows = spine_rows(args.runs)
        print_rows(rows)
        status["spine"] = "ok"
    for area in selected:
        if AREAS[area] is not None:
            status[area] = run_area(area, AREAS[area], extra.get(area, []), figures)

    print("\nareas:")
    for area in selected:
        print(f"  {area:<9} {status[area]}")
    for figure in figures:
        print(f"  {figure['name']:<24} {figure['ratio']:>6.3f}  ({figure.get('samples')} samples)")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures,
                                         "rows": [dict(asdict(r), ratio=round(r.ratio, 3)) for r in rows],
                                         "areas": status}, indent=1))
    return 0 if all(s == "ok" or s.startswith("unavailable") for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
