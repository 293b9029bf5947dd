"""The local PanDA for people: build its venv, or bring the whole stack up and keep it up.

    python -m scripts.panda_local venv              # build (or check) the PanDA venv, print its python
    python -m scripts.panda_local up --dir /tmp/pd  # start it; prints what panda-client needs; Ctrl-C stops

From the repository root. With the stack up, in another shell: `source /tmp/pd/user.env` and
`python -m scripts.jedi.task ... --submit` sends a task as the test user; JEDI makes its jobs for the queues of
panda_local/queues.py (`psql` on the printed socket shows them).
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

from scripts.panda_local import stack, venv
from scripts.panda_local.errors import StackError


def main(argv: list[str]) -> int:
    """Build the PanDA venv, or start the stack and keep it up until a signal; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m scripts.panda_local", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("venv", help="build or check the PanDA venv")
    up = commands.add_parser("up", help="start the stack and keep it up until Ctrl-C")
    up.add_argument("--dir", type=Path, required=True, help="where the stack lives (created)")
    args = parser.parse_args(argv)
    try:
        if args.command == "venv":
            print(venv.ensure())
            return 0
        running = stack.start(args.dir)
    except StackError as err:
        print(f"panda_local: error: {err}", file=sys.stderr)
        return 1
    env_file = running.directory / "user.env"
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in running.user_env().items()))
    print(f"panda_local: server {running.api_url}; database socket {running.db.socket_dir} port "
          f"{running.db.port}; `source {env_file}` for panda-client; Ctrl-C stops")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    stack.stop(running)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
