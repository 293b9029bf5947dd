"""JEDI's master process in the foreground, for the local stack.

Run by the PanDA venv's interpreter: `python jedi_main.py`. JediMaster.py's own `__main__` wraps
the same `JediMaster().start()` in a python-daemon context that forks and detaches, so whoever
started it no longer holds its PID; here it stays the child of the stack, in its own process group
(the stack starts it as a session leader), and a SIGTERM ends that group as JediMaster's own
handler does.
"""
import signal
import sys
import time

from pandajedi.jediorder.JediMaster import JediMaster, kill_whole


def main() -> None:
    master = JediMaster()

    def stop(signum, frame):
        master.stop()
        time.sleep(1)
        kill_whole(signum, frame)

    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, stop)
    print("jedi: master started", flush=True)
    master.start()


if __name__ == "__main__":
    sys.exit(main())
