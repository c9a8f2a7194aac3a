"""The one interface every checkpoint format implements: ``Reader``, over ``TensorInfo``.

Adding a format
===============
Write one module in ``lmhead_cli/formats/`` holding one class that satisfies
``Reader`` (below), and import nothing from above ``formats`` (only
``..errors`` and this module). Then add a ``Format`` member here, and in
``checkpoint.py`` recognise the file (``_sniff``) and construct your class
(``_reader``); mypy checks there that the class satisfies the protocol. Everything else (anatomy,
counts, tying, top-k, doctor) works through the protocol and never asks which
format it holds. ``tests/test_formats.py`` checks each reader against the
protocol; add yours to its list.

A reader must:

- list its tensors from the header alone in ``tensors`` (no data read), each a
  ``TensorInfo`` whose fields mean exactly what the field comments below say;
- give rows of any floating-point tensor as float32 (``read_rows``, after any
  dequantization) and as float64 (``read_rows_f64``: exact even for F64),
  shape ``(stop - start, *shape[1:])``, reading only those rows' bytes;
- give columns of a 2-D tensor as float32 ``(rows, stop - start)``
  (``read_cols``; a transposed head is compared through it);
- lend the stored bytes of whole rows for byte comparison (``stored_rows``), a
  context manager yielding uint8 ``(stop - start, row_bytes)``, valid only
  inside the ``with`` block (it may be a reused buffer);
- lend the stored bytes of a column range of a 2-D tensor (``stored_cols``),
  uint8 ``(rows, (stop - start) * itemsize)``, reading each row's span (or
  whole rows where the gaps between spans are small), never the whole tensor
  at once: quantized layouts packed input-major (GPTQ, AWQ) are read so;
- raise ``CheckpointError`` (never return None) for anything it cannot do
  with a tensor: an integer dtype read as numbers, a packed type it can only
  count, rows that cut through quantization blocks;
- release everything in ``close()``, which may be called more than once.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "F32Array",
    "F64Array",
    "BufferPool",
    "Format",
    "Reader",
    "Storage",
    "TensorInfo",
    "U8Array",
    "column_bytes",
    "columns_from_rows",
    "fill_exact",
    "into",
    "pread_exact",
]

# numpy.typing.NDArray spelled out: importing numpy.typing costs start-up time and adds nothing here
F32Array = np.ndarray[Any, np.dtype[np.float32]]
F64Array = np.ndarray[Any, np.dtype[np.float64]]
U8Array = np.ndarray[Any, np.dtype[np.uint8]]


class Format(str, Enum):
    """The on-disk formats lmhead reads. The value is the name users see (and JSON carries)."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    PYTORCH = "pytorch"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Storage:
    """A buffer several tensors may view (PyTorch state dicts): the identity that tells a shared matrix."""

    index: int  # the file's storages numbered in order of first use: equal index = one buffer
    offset: int  # byte offset of the tensor's first element inside that buffer


@dataclass(frozen=True)
class TensorInfo:
    """One stored tensor, as its header describes it (no data read). Means the same in every format."""

    name: str
    shape: tuple[int, ...]  # outermost first (numpy / PyTorch order), also for GGUF
    dtype: str  # the format's own type name: "BF16", "F32", "Q4_K", ...
    nbytes: int  # bytes the tensor's data takes in the file
    file: Path
    offset: int | None  # byte offset of the data's first byte in ``file``; None only where no such place exists (legacy PyTorch pickles)
    storage: Storage | None = None  # set where tensors can share one buffer (PyTorch); None: the tensor owns its bytes

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def bits_per_param(self) -> float:
        return 8 * self.nbytes / self.numel if self.numel else 0.0

    def same_bytes_as(self, other: TensorInfo) -> bool:
        """Two names over one stored matrix: same file, same place, same layout (tied by storage)."""
        if (self.file, self.shape, self.dtype, self.nbytes) != (other.file, other.shape, other.dtype, other.nbytes):
            return False
        if self.storage is not None or other.storage is not None:
            return self.storage == other.storage
        return self.offset is not None and self.offset == other.offset


@runtime_checkable
class TokenizerMetadata(Protocol):
    """A weight file that carries its tokenizer as metadata (a GGUF's ``tokenizer.ggml.*`` keys): the
    short values in ``metadata``, the token strings, and long arrays (merges, scores) read on demand."""

    path: Path
    metadata: dict[str, Any]
    tokens: list[str] | None

    def array_keys(self) -> set[str]: ...

    def metadata_array(self, key: str) -> list[Any]: ...


@runtime_checkable
class Reader(Protocol):
    """One open file of one format. See the module docstring for what each member must do."""

    @property
    def path(self) -> Path: ...

    @property
    def format(self) -> Format: ...

    @property
    def tensors(self) -> list[TensorInfo]: ...

    @property
    def metadata(self) -> dict[str, Any]:
        """The file's own key/values (safetensors ``__metadata__``, GGUF metadata); empty when it has none."""
        ...

    def read_rows(self, info: TensorInfo, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        """Rows ``start:stop`` of the first axis as float32, (stop - start, *shape[1:]): written into ``out``
        (C-contiguous, that shape) and returned when given, so a caller reading chunk after chunk reuses one buffer."""
        ...

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        """The same rows as float64: exact for every floating type, F64 included."""
        ...

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Columns ``start:stop`` of a 2-D tensor as float32, (rows, stop - start)."""
        ...

    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> AbstractContextManager[U8Array]:
        """Rows ``start:stop`` as stored, uint8 (stop - start, row_bytes); valid inside the ``with`` block."""
        ...

    def stored_cols(self, info: TensorInfo, start: int, stop: int) -> AbstractContextManager[U8Array]:
        """Columns ``start:stop`` of a 2-D tensor as stored, uint8 (rows, (stop - start) * itemsize); valid inside the ``with`` block."""
        ...

    def close(self) -> None: ...


def into(out: F32Array | None, rows: F32Array) -> F32Array:
    """``rows`` copied into the caller's ``out`` when it lent one, else ``rows`` itself (for readers that
    cannot write their result in place)."""
    if out is None:
        return rows
    np.copyto(out, rows)
    return out


def columns_from_rows(
    read_rows: Callable[[TensorInfo, int, int], F32Array], info: TensorInfo, start: int, stop: int, chunk_rows: int = 4096
) -> F32Array:
    """Columns of a 2-D tensor for formats that can only read whole rows: every row is read, chunk by chunk."""
    rows = info.rows
    out = np.empty((rows, stop - start), dtype=np.float32)  # (R, C)
    for first in range(0, rows, chunk_rows):
        last = min(first + chunk_rows, rows)
        out[first:last] = read_rows(info, first, last)[:, start:stop]
    return out


def column_bytes(
    fill: Callable[[U8Array, int], None], rows: int, row_bytes: int, lo: int, hi: int, max_gap: int, block_bytes: int
) -> U8Array:
    """Bytes ``lo:hi`` of every row of a row-major tensor, uint8 (rows, hi - lo).

    ``fill(buf, offset)`` fills ``buf`` with the tensor's bytes from ``offset`` (counted from its first
    byte). Where the bytes between two rows' spans are at most ``max_gap``, whole rows are read,
    ``block_bytes`` at a time, and sliced (fewer, larger reads); otherwise each row's span is read
    straight into the result. Memory: the result plus one block.
    """
    width = hi - lo
    out = np.empty((rows, width), dtype=np.uint8)  # (R, hi - lo)
    if not rows or not width:
        return out
    if row_bytes - width > max_gap:  # wide gaps: one read per row, nothing read that is not needed
        for row in range(rows):
            fill(out[row], row * row_bytes + lo)
        return out
    step = max(1, block_bytes // row_bytes)
    block = np.empty(min(step, rows) * row_bytes, dtype=np.uint8)
    for first in range(0, rows, step):
        last = min(first + step, rows)
        view = block[: (last - first) * row_bytes]
        fill(view, first * row_bytes)
        out[first:last] = view.reshape(last - first, row_bytes)[:, lo:hi]
    return out


def pread_exact(fd: int, nbytes: int, offset: int, path: Path) -> U8Array:
    """Read exactly ``nbytes`` at ``offset`` into a fresh uint8 buffer.

    Positional reads (not mmap) keep resident memory bounded by the buffer:
    pages of a memory map stay in the process's RSS once touched.
    """
    from ..core.errors import CheckpointError

    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)  # type: ignore[arg-type]  # ndarray implements the buffer protocol
    done = 0
    while done < nbytes:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise CheckpointError(path, "file changed while being read")  # extents were checked against its size at open
        done += got
    return buf


class BufferPool:
    """Positioned reads of one file into buffers that are reused from call to call.

    ``read`` lends a buffer for a ``with`` block (several may be lent at once: a byte comparison holds the
    embedding's rows and the head's, in two threads at a time). Reused buffers cost no page faults after the
    first use, so the copy out of the page cache runs at memory speed; unlike a memory map, a file that
    shrinks under us gives a short read (``file changed while being read``), never a SIGBUS.
    """

    KEEP = 4  # idle buffers kept: two threads, each holding two tensors' rows

    def __init__(self, fd: int, path: Path):
        self._fd = fd
        self._path = path
        self._free: list[U8Array] = []
        self._lock = threading.Lock()  # lending and returning; the reads themselves run in parallel

    @contextmanager
    def read(self, offset: int, nbytes: int) -> Iterator[U8Array]:
        """``nbytes`` at ``offset`` as uint8, valid inside the ``with`` block."""
        buf = self._take(nbytes)
        try:
            view = buf[:nbytes]
            fill_exact(self._fd, view, offset, self._path)
            yield view
        finally:
            with self._lock:
                self._free.append(buf)

    def _take(self, nbytes: int) -> U8Array:
        """The smallest idle buffer that fits (by position: arrays compare elementwise), or a new one."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.size >= nbytes]
            if fits:
                return self._free.pop(min(fits, key=lambda i: self._free[i].size))
            if len(self._free) >= self.KEEP:  # drop the smallest idle buffer, which is too small anyway
                self._free.pop(min(range(len(self._free)), key=lambda i: self._free[i].size))
        return np.empty(nbytes, dtype=np.uint8)

    def close(self) -> None:
        self._free = []


def fill_exact(fd: int, buf: U8Array, offset: int, path: Path) -> None:
    """Fill ``buf`` from ``offset``; a short read means the file shrank after its header was checked."""
    from ..core.errors import CheckpointError

    view = memoryview(buf)  # type: ignore[arg-type]  # ndarray implements the buffer protocol
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise CheckpointError(path, "file changed while being read")
        done += got
