"""`dune-events`: simulate, convert, inspect and draw DUNE event files.

    dune-events simulate --events N --seed S -o FILE
    dune-events convert-csv FEATURES LABELS -o FILE
    dune-events show FILE --event K -o PNG [--predictions PRED]
    dune-events inspect FILE

Errors are one line on stderr and exit status 1 (never argparse's 2, which the PanDA pilot reads
as a setup timeout).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional, Sequence

from payload.errors import PayloadError

ERROR = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(ERROR, f"{self.prog}: error: {message}\n")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _simulate(args) -> None:
    from payload.simulate import simulate_events

    start = time.perf_counter()
    simulate_events(args.events, args.seed, path=args.output, first_event=args.first_event)
    took = time.perf_counter() - start
    print(f"{args.output}: {args.events} events (seed {args.seed}) in {took:.1f} s")


def _convert(args) -> None:
    from payload.csvformat import convert_csv

    n = convert_csv(args.features, args.labels, args.output)
    print(f"{args.output}: {n} events from {args.features} and {args.labels}")


def _show(args) -> None:
    from payload.display import event_display

    out = event_display(args.file, args.event, args.output, predictions=args.predictions)
    print(f"{out}: event {args.event} of {args.file}")


def _inspect(args) -> None:
    from payload.events import describe_file, inspect_inputs

    info = describe_file(args.file)
    if "images" in info["datasets"]:
        inspect_inputs([args.file], require_labels="labels" in info["datasets"])
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return
    print(f"{info['path']}: {info['events']} events")
    for key, ds in info["datasets"].items():
        print(f"  /{key:9s} {ds['dtype']:8s} {ds['shape']}  {ds['compression'] or ''}")
    for key, value in info["attrs"].items():
        print(f"  {key}: {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dune-events", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser("simulate", help="write synthetic ProtoDUNE-SP events with truth labels")
    sim.add_argument("--events", type=_non_negative, required=True, help="number of events")
    sim.add_argument("--seed", type=_non_negative, required=True, help="run seed")
    sim.add_argument("--first-event", type=_non_negative, default=0,
                     help="number of the first event (event k is the same whatever N)")
    sim.add_argument("-o", "--output", required=True, help="event file to write (HDF5)")
    sim.set_defaults(run=_simulate)

    conv = commands.add_parser("convert-csv", help="convert the original features/labels CSV pair")
    conv.add_argument("features", help="features CSV (header row, one event of 102,400 values per row)")
    conv.add_argument("labels", help="labels CSV, same layout, values 0 background, 1 beam, 2 cosmic")
    conv.add_argument("-o", "--output", required=True, help="event file to write (HDF5)")
    conv.set_defaults(run=_convert)

    show = commands.add_parser("show", help="draw one event (charge, truth, prediction) to a PNG")
    show.add_argument("file", help="event file")
    show.add_argument("--event", type=_non_negative, default=0, help="event index in the file")
    show.add_argument("--predictions", help="predictions file; the event is matched by event_id")
    show.add_argument("-o", "--output", required=True, help="PNG to write")
    show.set_defaults(run=_show)

    insp = commands.add_parser("inspect", help="check an event or predictions file and print its layout")
    insp.add_argument("file")
    insp.add_argument("--json", action="store_true", help="print the layout as JSON")
    insp.set_defaults(run=_inspect)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `dune-events` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (PayloadError, OSError, ValueError) as err:
        print(f"dune-events {args.command}: error: {err}", file=sys.stderr)
        return ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
