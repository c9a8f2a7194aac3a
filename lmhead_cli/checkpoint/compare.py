"""Are two stored tensors the same numbers? Compared in row chunks, bytes first, then values.

Two large matrices are compared at memory bandwidth with bounded memory; the
comparison stops at the first differing chunk unless ``full`` asks for
difference statistics.
"""

from __future__ import annotations

import functools
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formats.base import TensorInfo
from .checkpoint import Checkpoint

__all__ = ["COMPARE_CHUNK_BYTES", "ValueComparison", "chunk_bytes", "compare_transposed", "compare_values"]

COMPARE_CHUNK_BYTES = 2 * 2**20  # raw bytes per tensor per chunk, local files: compared while still in cache
REMOTE_CHUNK_BYTES = 16 * 2**20  # over hf:// each chunk is a ranged request: fewer, larger ones
Progress = Callable[[int, int], None]  # (rows done, rows in all), after each chunk


def chunk_bytes(ckpt: Checkpoint) -> int:
    return COMPARE_CHUNK_BYTES if ckpt.remote is None else REMOTE_CHUNK_BYTES


STATS_BLOCK_ROWS = 512  # rows per float64 statistics step (--full)


@dataclass(frozen=True)
class ValueComparison:
    identical: bool
    rows_compared: int
    rows_total: int
    complete: bool  # False when it stopped at the first differing chunk
    max_abs_diff: float | None = None  # statistics only with full=True
    mean_row_cosine: float | None = None
    identical_rows_fraction: float | None = None


def compare_values(
    ckpt: Checkpoint, a: TensorInfo, b: TensorInfo, full: bool = False, rows: int | None = None, progress: Progress | None = None
) -> ValueComparison:
    """Compare the first ``rows`` rows (default: all) of two tensors of one width, chunk by chunk:
    bytes first, then values across dtypes. ``progress(done, total)`` is told the rows done after each chunk."""
    rows = a.rows if rows is None else rows
    row_bytes = max(a.nbytes // max(a.rows, 1), b.nbytes // max(b.rows, 1))
    chunk = max(1, chunk_bytes(ckpt) // max(row_bytes, 1))
    wide = np.float64 if "F64" in (a.dtype, b.dtype) else np.float32
    stats = _Stats() if full else None
    identical = True
    done = 0
    bounds = [(start, min(start + chunk, rows)) for start in range(0, rows, chunk)]
    for (start, stop), (same, finite) in zip(bounds, _byte_verdicts(ckpt, a, b, bounds, full), strict=False):
        if same and (stats is None or finite):
            if stats is not None:
                stats.add_identical(stop - start)
            done = stop
            if progress is not None:
                progress(done, rows)
            continue
        x, y = _values(ckpt, a, start, stop, wide), _values(ckpt, b, start, stop, wide)  # (C, d) each
        equal_rows = same or bool(np.array_equal(x, y))
        done = stop
        if progress is not None:
            progress(done, rows)
        if stats is not None:
            stats.add(x, y)
        if not equal_rows:
            identical = False
            if stats is None:
                break
    if stats is None:
        return ValueComparison(identical=identical, rows_compared=done, rows_total=rows, complete=identical or done == rows)
    return ValueComparison(identical, done, rows, True, *stats.result())


def compare_transposed(
    ckpt: Checkpoint, emb: TensorInfo, head: TensorInfo, full: bool = False, progress: Progress | None = None
) -> ValueComparison:
    """``emb`` (V, d) against ``head`` stored (d, V): embedding rows against head columns."""
    rows = emb.rows
    chunk = max(1, chunk_bytes(ckpt) // max(4 * head.rows, 1))
    stats = _Stats() if full else None
    identical, done = True, 0
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        cols = ckpt.read_cols(head.name, start, stop)  # (d, C)
        x = ckpt.read_rows(emb.name, start, stop)  # (C, d)
        y = cols.T
        done = stop
        if progress is not None:
            progress(done, rows)
        if stats is not None:
            stats.add(x, y)
        if not np.array_equal(x, y):
            identical = False
            if stats is None:
                break
    if stats is None:
        return ValueComparison(identical, done, rows, identical or done == rows)
    return ValueComparison(identical, done, rows, True, *stats.result())


# IEEE formats: a value is finite unless all its exponent bits are set. (bytes, exponent mask, sign bit)
EXPONENT_BITS = {"BF16": (2, 0x7F80, 0x8000), "F16": (2, 0x7C00, 0x8000), "F32": (4, 0x7F800000, 2**31), "F64": (8, 0x7FF << 52, 2**63)}


def _all_finite(ckpt: Checkpoint, info: TensorInfo, start: int, stop: int) -> bool:
    """No NaN or infinity in these rows (widened: for formats whose stored bits are not plain IEEE)."""
    return bool(np.isfinite(ckpt.read_rows(info.name, start, stop)).all())


def _finite_bits(info: TensorInfo, raw: np.ndarray) -> bool:
    """No NaN or infinity in stored IEEE rows, from the bits, with two reductions and no temporary:
    read as signed integers, only a positive NaN/infinity reaches the exponent mask (positive finite
    values stay below it, negative ones are negative); read as unsigned, only a negative NaN/infinity
    reaches sign + mask."""
    size, mask, sign = EXPONENT_BITS[info.dtype]
    flat = raw.reshape(-1)
    if not flat.size:
        return True
    signed, unsigned = flat.view(f"<i{size}"), flat.view(f"<u{size}")
    return int(signed.max()) < mask and int(unsigned.max()) < sign | mask


def bytes_equal(x: np.ndarray, y: np.ndarray) -> bool:
    """Two contiguous uint8 arrays hold the same bytes: libc's ``memcmp`` where there is one (about 3x
    numpy's elementwise compare, which also writes a temporary), numpy otherwise."""
    if x.size != y.size:
        return False
    memcmp = _memcmp()
    if memcmp is None or not (x.flags.c_contiguous and y.flags.c_contiguous):
        return bool(np.array_equal(x, y))
    return x.size == 0 or memcmp(x.ctypes.data, y.ctypes.data, x.size) == 0


@functools.cache
def _memcmp() -> Any:
    """The C library's memcmp through ctypes (which releases the GIL during the call), or None."""
    import ctypes

    try:
        libc = ctypes.CDLL(None) if sys.platform != "win32" else ctypes.cdll.msvcrt
        memcmp = libc.memcmp
    except (OSError, AttributeError):
        return None
    memcmp.restype = ctypes.c_int
    memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return memcmp


def _same_bytes(ckpt: Checkpoint, a: TensorInfo, b: TensorInfo, start: int, stop: int, check_finite: bool = False) -> tuple[bool, bool]:
    """(the rows' stored bytes are equal, and with ``check_finite`` they hold no NaN or infinity).

    Both answers come from one read of each chunk: reading ``a``'s rows a second time for the
    finiteness check cost a third of ``--full``'s time on identical matrices."""
    if a.dtype != b.dtype:
        return False, False
    with ckpt.stored_rows(a.name, start, stop) as x, ckpt.stored_rows(b.name, start, stop) as y:  # (C, row_bytes) uint8 each
        flat_x, flat_y = x.reshape(-1), y.reshape(-1)
        same = bytes_equal(flat_x, flat_y)
        if not (same and check_finite):
            return same, False
        if a.dtype in EXPONENT_BITS and a.name not in ckpt.quantized:
            return True, _finite_bits(a, flat_x)
    return True, _all_finite(ckpt, a, start, stop)


def _byte_verdicts(
    ckpt: Checkpoint, a: TensorInfo, b: TensorInfo, bounds: list[tuple[int, int]], full: bool
) -> Iterator[tuple[bool, bool]]:
    """``_same_bytes`` of each chunk, in order. Local files are read two chunks at a time, in two threads:
    positioned reads and memcmp release the GIL, so reading and comparing use both cores. The caller may
    stop early; at most one chunk past that is read."""
    if ckpt.remote is not None or a.name in ckpt.quantized or b.name in ckpt.quantized or len(bounds) < 2:
        for start, stop in bounds:  # the hub's and the dequantizers' reads are not shared between threads
            yield _same_bytes(ckpt, a, b, start, stop, full)
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lmhead-compare")
    try:
        pending: deque[Future[tuple[bool, bool]]] = deque()
        for start, stop in bounds:
            pending.append(pool.submit(_same_bytes, ckpt, a, b, start, stop, full))
            if len(pending) == 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _values(ckpt: Checkpoint, info: TensorInfo, start: int, stop: int, wide: type) -> np.ndarray:
    """Rows as (C, d) numbers: float32 holds every narrower float exactly; float64 only for F64."""
    if wide is np.float32:
        return ckpt.read_rows(info.name, start, stop).reshape(stop - start, -1)
    return ckpt.read_rows_f64(info.name, start, stop).reshape(stop - start, -1)


class _Stats:
    """Max |a-b|, mean cosine of corresponding rows, fraction of identical rows."""

    def __init__(self) -> None:
        self.max_abs = 0.0
        self.cos_sum = 0.0
        self.same_rows = 0
        self.rows = 0

    def add_identical(self, rows: int) -> None:
        """Rows whose two sides hold the same finite values: |a-b| = 0, identical, cosine 1 (exactly, without computing it)."""
        self.same_rows += rows
        self.cos_sum += float(rows)
        self.rows += rows

    def add(self, x: np.ndarray, y: np.ndarray) -> None:  # (C, d) each
        for i in range(0, len(x), STATS_BLOCK_ROWS):  # float64 temporaries bounded by the block
            self._add(x[i : i + STATS_BLOCK_ROWS], y[i : i + STATS_BLOCK_ROWS])

    @np.errstate(over="ignore", invalid="ignore")  # huge or non-finite values give inf / nan statistics, honestly
    def _add(self, x: np.ndarray, y: np.ndarray) -> None:  # (B, d) each
        diff = np.abs(x.astype(np.float64) - y)
        self.max_abs = max(self.max_abs, float(np.nanmax(diff)) if diff.size else 0.0)
        self.same_rows += int((x == y).all(axis=1).sum())
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)  # (C,)
        dots = np.einsum("cd,cd->c", x.astype(np.float64), y.astype(np.float64))
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), (norms == 0).astype(float))
        self.cos_sum += float(cos.sum())
        self.rows += len(x)

    def result(self) -> tuple[float, float, float]:
        n = max(self.rows, 1)
        return self.max_abs, self.cos_sum / n, self.same_rows / n
