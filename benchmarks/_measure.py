"""Run one command and report its own wall time and peak RSS as one JSON line.

Usage: python -I -S _measure.py STDOUT_PATH STDERR_PATH -- CMD [ARGS...]

Why a separate, tiny wrapper process: on Linux a child's ``ru_maxrss``
includes the high-water RSS of the address space it replaced at exec(), and
with vfork/posix_spawn that is the *parent's* address space. Spawned from the
benchmark process (numpy loaded, data generated) every child would inherit
the benchmark's peak. This wrapper imports nothing but the standard library,
so the floor it leaves is ~10 MB, and since it has exactly one child,
``getrusage(RUSAGE_CHILDREN)`` is that child's own peak RSS and CPU time:
every run is measured on its own.
"""

import json
import os
import resource
import sys
import time


def main() -> None:
    out_path, err_path, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, __doc__
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    actions = [
        (os.POSIX_SPAWN_DUP2, out, 1),
        (os.POSIX_SPAWN_DUP2, err, 2),
    ]
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # exactly one child: its own numbers
    report = {
        "wall": wall,
        "maxrss_kb": usage.ru_maxrss,
        "cpu": usage.ru_utime + usage.ru_stime,
        "returncode": os.waitstatus_to_exitcode(status),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
