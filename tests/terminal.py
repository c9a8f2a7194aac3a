"""Run ``lmhead`` as a person does: stdin, stdout and stderr on pseudo-terminals of a given size.

stdout and stderr get a pty each, so a test can tell the table from the warnings
and the progress bar. Output is read until both ptys report end of file (every
process holding them has exited) or the timeout passes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Any escape sequence: CSI (ESC [ ... final byte), OSC (ESC ] ... BEL/ST), or a two-byte ESC x.
ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
SGR = re.compile(r"\x1b\[([0-9;]*)m")


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    stdout: str  # as the terminal received it, escapes included ("\r\n" line ends)
    stderr: str

    @property
    def text(self) -> str:
        """stdout with escapes removed and line ends as "\\n"."""
        return strip(self.stdout)

    @property
    def error_text(self) -> str:
        return strip(self.stderr)


def strip(raw: str) -> str:
    return ESCAPE.sub("", raw).replace("\r\n", "\n")


def colour_codes(raw: str) -> list[str]:
    """The SGR parameters that set a colour (foreground or background), e.g. ["31", "38;5;10"]."""
    found = []
    for params in SGR.findall(raw):
        codes = params.split(";")
        if any(c in {"38", "48"} or (c.isdigit() and (30 <= int(c) <= 37 or 40 <= int(c) <= 47 or 90 <= int(c) <= 107)) for c in codes):
            found.append(params)
    return found


def _pty(columns: int, rows: int) -> tuple[int, int]:
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return parent, child


def run_in_terminal(
    *args: str | Path, env: dict[str, str] | None = None, columns: int = 80, rows: int = 40, timeout: float = 120
) -> TerminalRun:
    """``python -m lmhead_cli ARGS`` with stdin/stdout on one pty and stderr on another, both ``columns`` wide."""
    environment = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM", "CLICOLOR"}}
    environment.update({"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"})
    environment.update(env or {})
    out_parent, out_child = _pty(columns, rows)
    err_parent, err_child = _pty(columns, rows)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lmhead_cli", *(str(a) for a in args)],
            stdin=out_child,
            stdout=out_child,
            stderr=err_child,
            cwd=ROOT,
            env=environment,
            start_new_session=True,
        )
    finally:
        os.close(out_child)
        os.close(err_child)
    chunks: dict[int, list[bytes]] = {out_parent: [], err_parent: []}
    open_fds = set(chunks)
    deadline = time.monotonic() + timeout
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise TimeoutError(f"lmhead {' '.join(map(str, args))} did not finish in {timeout} s")
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError as exc:  # Linux: EIO once every holder of the child side has closed it
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.discard(fd)
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(out_parent)
        os.close(err_parent)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    decode = lambda fd: b"".join(chunks[fd]).decode("utf-8", errors="replace")  # noqa: E731
    return TerminalRun(returncode, decode(out_parent), decode(err_parent))
