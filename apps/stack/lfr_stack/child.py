"""What the supervisor runs for every process of the local stack, before the program itself:

    python -m lfr_stack.child <starts file> -- <program> [<arguments>]

1. The process dies with the supervisor (SIGTERM when it ends, however it ends: Linux's parent-death
   signal, which survives the exec below), so no process of a stack outlives its supervisor.
2. A process started again soon after its earlier starts waits first: the first restart is at once
   (a killed service is back within seconds), then 1, 2, 4 ... up to 30 s while it keeps dying within
   a minute (a crash loop does not spin), as Kubernetes backs off.
3. It becomes the program (exec): the supervisor watches the program itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
BACKOFF_WINDOW_S = 60.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent ends; end now if it already has."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent ended before the request was made
        raise SystemExit(1)


def backoff(starts_file: Path, now: float) -> float:
    """Seconds to wait before this start, from the earlier starts within the window (recorded)."""
    try:
        starts = [t for t in json.loads(starts_file.read_text()) if now - t < BACKOFF_WINDOW_S]
    except (OSError, ValueError):
        starts = []
    starts_file.write_text(json.dumps([*starts, now]))
    if len(starts) < 2:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (len(starts) - 2))


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m lfr_stack.child <starts file> -- <program> [<arguments>]")
    starts_file, program = Path(argv[0]), argv[2:]
    die_with_parent()
    delay = backoff(starts_file, time.time())
    if delay:
        note = f"restarted often within a minute: waiting {delay:.0f} s before starting again (backoff)"
        print(note, file=sys.stderr, flush=True)  # noqa: T201 - before the program, into its log
        time.sleep(delay)
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
