"""A private /tmp for one command: a mount namespace of its own with a fresh tmpfs over /tmp.

WLCG token discovery reads /tmp/bt_u<uid>, where a real user's token may sit: a test that puts a
token there does it in a /tmp that only its command sees and that is gone when the command ends;
the host's /tmp is never written. The host directories under /tmp the command needs (pytest's
temporary directory: the job directory, the inputs, the CA bundle) are bound back at their own
paths. Needs root (`unshare --mount`, `mount`), as the fault suite does.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Mapping, Sequence

TMP = Path("/tmp")


def private_tmp(files: Mapping[str, Path], keep: Sequence[Path] = ()) -> list[str]:
    """A command prefix: what follows it runs (exec'd, the same PID) in its own /tmp, which holds
    `files` ({name: source file}, copied with mode 600) and the host's directories `keep` (those
    under /tmp; the command's working directory must be under one of them or outside /tmp)."""
    steps = ["set -e", 'here="$(pwd -P)"',
             # From here the host's /tmp stays reachable by relative paths once the tmpfs covers it
             # (mount must not canonicalize them: that would resolve them in the tmpfs).
             "cd /tmp", "mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp"]
    for path in keep:
        path = Path(path).resolve()
        if TMP in path.parents:
            relative = shlex.quote(str(path.relative_to(TMP)))
            steps += [f"mkdir -p /tmp/{relative}", f"mount --no-canonicalize --bind {relative} /tmp/{relative}"]
    for name, source in files.items():
        target = shlex.quote(str(TMP / name))
        steps += [f"cat {shlex.quote(str(source))} > {target}", f"chmod 600 {target}"]
    steps += ['cd "$here"', 'exec "$@"']
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "; ".join(steps), "private-tmp"]
