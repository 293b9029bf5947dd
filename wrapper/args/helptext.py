"""`--help`: every argument of the table, grouped, with defaults, choices and ranges."""
from __future__ import annotations

import textwrap

from wrapper import exitcodes
from wrapper.args.argdefs import ARGS, BOOL

GROUPS = (("job", "The job"), ("outputs", "Outputs (LFNs in the job directory)"),
          ("training", "Training"), ("platform", "Platform and model builds"),
          ("inference", "Inference as a service (a Triton server runs the network)"),
          ("staging", "Inputs and object storage"), ("control", "Control"))

USAGE = """\
usage: dune-payload --mode=train|infer|evaluate --inputEventsFile=FILE[,FILE...] [options]

The DUNE beam/cosmic pixel classification payload as a PanDA transformation. Arguments follow the
trf grammar: --name=value or --name value; lists as commas, several words or JEDI compact lists
(ev.[001,002].h5); old-style name=value words; --argJSON=FILE; base64-encoded job parameters.

examples:
  dune-payload --mode=infer --inputEventsFile=ev.001.h5,ev.002.h5 --modelFile=model.keras \\
               --outputPredFile=pred.000042.h5
  dune-payload --mode=train --inputEventsFile=s3://events/train/*.h5 --outputModelFile=m.keras \\
               --epochs=10 --checkpointPrefix=s3://ckpt/task-42/
"""


def _describe(arg) -> str:
    text = arg.help
    if arg.choices:
        text += f" [choices: {', '.join(arg.choices)}]"
    if arg.minimum is not None or arg.maximum is not None:
        low = "" if arg.minimum is None else f"{arg.minimum:g}"
        high = "" if arg.maximum is None else f"{arg.maximum:g}"
        text += f" [range: {low}..{high}]"
    if arg.default not in (None, (), False) and arg.kind != BOOL:
        text += f" [default: {arg.default}]"
    return text


def help_text(width: int = 100) -> str:
    """The full help: usage, every argument by group, and the exit codes."""
    lines = [USAGE]
    for group, title in GROUPS:
        lines.append(f"{title}:")
        for arg in (a for a in ARGS if a.group == group):
            form = f"--{arg.name}" if arg.kind == BOOL else f"--{arg.name}={arg.metavar or arg.kind.upper()}"
            lines.append(f"  {form}")
            lines += textwrap.wrap(_describe(arg), width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
        lines.append("")
    lines.append("exit codes:")
    for code in sorted(exitcodes.BY_CODE):
        entry = exitcodes.BY_CODE[code]
        lines.append(f"  {code:>3} {entry.acronym:<30} {entry.meaning}")
    lines.append("  128+N TRF_SIG_<NAME>                   stopped by signal N (143: SIGTERM)")
    return "\n".join(lines)
