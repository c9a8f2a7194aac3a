"""What every format reader shares: ``TensorInfo`` and bounded positional reads."""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor, as its header describes it (no data read)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # the format's own name: "BF16", "F32", "Q4_K", ...
    nbytes: int  # bytes on disk
    file: Path
    offset: int  # absolute byte offset of the data in ``file``

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def bits_per_param(self) -> float:
        return 8 * self.nbytes / self.numel if self.numel else 0.0


def pread_exact(fd: int, nbytes: int, offset: int, path: Path) -> np.ndarray:
    """Read exactly ``nbytes`` at ``offset`` into a fresh uint8 buffer.

    Positional reads (not mmap) keep resident memory bounded by the buffer:
    pages of a memory map stay in the process's RSS once touched.
    """
    from ..errors import CheckpointError

    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise CheckpointError(path, f"file ends early: wanted {nbytes} bytes at offset {offset}")
        done += got
    return buf


class FileMap:
    """A read-only map of a whole file, handed out in windows that are released after use.

    Reading through the map avoids copying out of the page cache (the copy was
    two thirds of a byte comparison's time); releasing each window with
    ``MADV_DONTNEED`` when its caller is done keeps resident memory bounded by
    the window, as positional reads would. The file must not shrink while it
    is mapped (a truncated map faults); headers are validated against the
    file's size before any window is read.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._map: mmap.mmap | None = None  # made on first use: header-only commands never map

    @contextmanager
    def window(self, offset: int, nbytes: int) -> Iterator[np.ndarray]:
        """``nbytes`` at ``offset`` as a uint8 view, valid inside the ``with`` block."""
        if self._map is None:
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        try:
            yield np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=offset)
        finally:
            start = offset - offset % mmap.PAGESIZE
            if nbytes:
                self._map.madvise(mmap.MADV_DONTNEED, start, offset + nbytes - start)

    def close(self) -> None:
        try:
            if self._map is not None:
                self._map.close()
        except BufferError:  # a caller (or a traceback) still holds a view; the map goes with it
            pass
