"""panda-server's daemon master in the foreground, for the local stack.

Run by the PanDA venv's interpreter: `python daemons_main.py`. pandaserver/daemons/master.py runs
the same `DaemonMaster` inside a python-daemon context that forks and detaches; here it stays the
stack's child, in its own process group, and SIGTERM ends that group as master.py's handler does.
Which daemons run, and how often, is `[daemon] config` in panda_server.cfg (config.py): the Adder
(`add_main`), which turns a job the pilot reported finished or failed from `holding` into its final
state, registers its output files and reads the worker-node records from its metaData.
"""
import logging
import os
import signal
import sys

from pandaserver.config import daemon_config
from pandaserver.daemons.utils import END_SIGNALS, DaemonMaster


def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s daemons: %(levelname)s %(message)s")
    master = DaemonMaster(logger=logging.getLogger("daemons"), n_workers=int(daemon_config.n_proc),
                          n_dbconn=int(daemon_config.n_dbconn),
                          worker_lifetime=int(daemon_config.proc_lifetime))

    def stop(signum, frame):
        master.stop()
        os.killpg(os.getpgrp(), signal.SIGKILL)

    for signum in END_SIGNALS:
        signal.signal(signum, stop)
    master.run()


if __name__ == "__main__":
    sys.exit(main())
