"""Opening the files a user names: regular files only, never blocking, never without a size cap.

A path from the command line (or found beside a checkpoint) may be a pipe, a
device (``/dev/zero``), a folder or a link to one. Opening a pipe blocks until
a writer comes; reading a device never ends. So every path is checked with
``stat`` first, opened with ``O_NONBLOCK`` (a pipe swapped in after the check
cannot block either) and checked again on the open descriptor, and its size is
compared with a cap before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import LmheadError

__all__ = ["access_error", "open_regular", "read_regular", "regular_size"]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def access_error(path: str | Path, exc: OSError, error: type[LmheadError] = LmheadError, what: str = "") -> LmheadError:
    """An ``OSError`` from stat/open/read as one line about ``path``."""
    prefix = f"{what}: " if what else ""
    if exc.errno == errno.ENOENT:
        return error(path, f"{prefix}no such file or directory")
    if exc.errno == errno.ELOOP:
        return error(path, f"{prefix}too many levels of symbolic links (a link that points to itself?)")
    if exc.errno == errno.ENAMETOOLONG:
        return error(path, f"{prefix}file name too long")
    return error(path, f"{prefix}cannot read: {exc.strerror or exc}")


def _not_regular(path: str | Path, mode: int, error: type[LmheadError], what: str) -> LmheadError:
    kind = _kind(mode)
    is_not = kind if kind.startswith("not ") else f"is {kind}, not a regular file"
    return error(path, f"{what} {is_not}" if what else is_not)


def regular_size(path: str | Path, error: type[LmheadError], what: str = "", limit: int | None = None) -> int:
    """The size of ``path`` if it is a regular file (links followed) within ``limit`` bytes; else ``error``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise access_error(path, exc, error, what) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, error, what)
    _check_size(path, st.st_size, error, what, limit)
    return st.st_size


def _check_size(path: str | Path, size: int, error: type[LmheadError], what: str, limit: int | None) -> None:
    if limit is not None and size > limit:
        subject = what or "file"
        raise error(path, f"{subject} is {size:,} bytes; lmhead reads {what or 'such'} files up to {limit:,} bytes")


def open_regular(path: str | Path, error: type[LmheadError], what: str = "", limit: int | None = None) -> int:
    """A read-only descriptor of ``path``, refused unless it is a regular file within ``limit`` bytes."""
    regular_size(path, error, what, limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise access_error(path, exc, error, what) from None
    try:
        st = os.fstat(fd)  # what was opened, not what was checked: it may have been swapped
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode, error, what)
        _check_size(path, st.st_size, error, what, limit)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | Path, error: type[LmheadError], what: str = "", limit: int | None = None) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes."""
    fd = open_regular(path, error, what, limit)
    try:
        size = os.fstat(fd).st_size
        chunks = []
        got = 0
        while True:  # read at most limit + 1 bytes: a file that grows after the check is still capped
            want = (limit + 1 - got) if limit is not None else max(size - got, 1 << 16)
            if want <= 0:
                break
            chunk = os.read(fd, min(want, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise access_error(path, exc, error, what) from None
    finally:
        os.close(fd)
    _check_size(path, len(data), error, what, limit)
    return data
