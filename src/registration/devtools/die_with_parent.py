"""Runs a program that dies with the process that started it:

    python -m registration.devtools.die_with_parent PARENT_PID PROGRAM [ARGS...]

On Linux the program gets SIGTERM when its parent dies, even by SIGKILL, so that no part of a
stack outlives its launcher (an interrupted test run, a killed `make run`) and holds its ports
or the machine's cores. The launcher starts every part through this small step rather than
arranging it between fork and exec itself: a process that uses gRPC must not run Python code
in a forked child (gRPC's fork handlers crash it now and then), and with nothing to run there
the child is spawned without them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent_pid, program, *args = argv
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        # Kept across exec: the program below inherits it.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != int(parent_pid):  # the parent died before the line above
            os._exit(1)
    os.execv(program, [program, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
