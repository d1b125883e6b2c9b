"""Run a command and write its peak resident memory (KiB) to a file: `python -m experiments.peak_memory FILE CMD...`.

The kernel's figure for a reaped process (ru_maxrss) counts what the process held before it
exec'd the command, and a child that a large process forks (or vforks) starts out holding that
process's pages: a benchmark launched from a test run of a gigabyte would report a gigabyte.
This small launcher forks the command itself, so the figure is the command's own (and its
waited-for children's) above a few megabytes of this launcher. It exits as the command did.
"""

import os
import resource
import signal
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m experiments.peak_memory FILE COMMAND [ARG ...]")
    report, command = argv[0], argv[1:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    # The launcher shares the command's session: a signal to the session reaches the command,
    # and the launcher waits for it whatever comes.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    with open(report, "w", encoding="ascii") as stream:
        stream.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: end the same way, so the caller sees that signal
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
