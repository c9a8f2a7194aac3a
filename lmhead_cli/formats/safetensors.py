"""safetensors files: headers validated here, rows by positional reads into reused buffers.

The header is read with ``pread`` and checked in full before anything else is
believed: a length cap, JSON, known dtype names, shapes of non-negative
integers, byte lengths equal to shape × dtype size, ranges in order, without
gaps or overlaps, ending exactly at the end of the file. The file is never
mapped: a header-only command reads the header's bytes and nothing more, so it
works under any address-space limit on any checkpoint size, and a file that
shrinks while rows are read gives a short read, reported as "file changed
while being read", never a SIGBUS.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..core.dtypes import STORAGE, to_float32
from ..core.errors import CheckpointError
from .base import BufferPool, F32Array, F64Array, Format, TensorInfo, U8Array, column_bytes, columns_from_rows, fill_exact

# safetensors dtype name -> numpy dtype (None: packed sub-byte types we count but cannot read)
NUMPY_DTYPES: dict[str, np.dtype | None] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    **{
        name: STORAGE[name] for name in ("BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ")
    },  # raw bits (lmhead_cli.core.dtypes)
    "C64": np.dtype(np.complex64),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U64": np.dtype(np.uint64),
    "U32": np.dtype(np.uint32),
    "U16": np.dtype(np.uint16),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
    "F4": None,
    "F6_E2M3": None,
    "F6_E3M2": None,
}

CONVERT_BLOCK_BYTES = 4 * 2**20  # stored bytes read (into one reused buffer) per block before widening
COLUMN_GAP_BYTES = 4096  # a column range: whole rows are read when the bytes between rows' spans are at most this (a page)
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own cap (the format's specification)
MAX_TENSORS = 200_000  # per file; real checkpoints hold hundreds to a few thousand per shard

FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"}


# bits per element of each dtype (sub-byte types are packed)
BITS = {name: (dtype.itemsize * 8 if dtype is not None else 0) for name, dtype in NUMPY_DTYPES.items()}
BITS.update({"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6})


def _bad(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(path, f"not a valid safetensors file: {reason}")


def read_header(fd: int, path: Path) -> tuple[dict[str, str], list[TensorInfo]]:
    """Metadata and tensors of the local file open at ``fd``, every claim checked against the file's size."""
    size = os.fstat(fd).st_size
    if size < 8:
        raise CheckpointError(path, "file is empty" if size == 0 else f"file is {size} bytes, shorter than the 8-byte header length")
    length = header_length(_pread(fd, 8, 0, path), size, path)
    return parse_header(_pread(fd, length, 8, path), size, path)


def header_length(prefix: bytes, size: int, path: Path) -> int:
    """The JSON header's length from a file's first 8 bytes, checked against the cap and the file's ``size``."""
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(path, f"header length {length:,} exceeds the {MAX_HEADER_BYTES:,}-byte limit; not a safetensors file?")
    if 8 + length > size:
        raise CheckpointError(path, f"header length {length:,} runs past the end of the {size:,}-byte file (truncated?)")
    return length


def parse_header(raw: bytes, size: int, path: Path) -> tuple[dict[str, str], list[TensorInfo]]:
    """The one validator of a safetensors header, for a local file and a file on the hub alike: ``raw`` is
    the JSON after the 8-byte length, ``size`` the whole file's. Known dtypes, shapes of non-negative
    integers, byte lengths equal to shape × dtype, data packed in order and ending with the file."""
    claimed = raw.count(b'"data_offsets"')  # counted before parsing: a 100 MB header of a million entries is refused in ms
    if claimed > MAX_TENSORS:
        raise _bad(path, f"header lists about {claimed:,} tensors; lmhead reads files of up to {MAX_TENSORS:,} tensors")
    try:
        header = json.loads(raw)
    except RecursionError:
        raise _bad(path, "header is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else " (not UTF-8)"
        raise _bad(path, f"header is not valid JSON{where}") from None
    if not isinstance(header, dict):
        raise _bad(path, f"header is a JSON {type(header).__name__}, not an object of tensor name -> entry")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "__metadata__ must map names to strings")
    data_start = 8 + len(raw)
    tensors = [_entry(path, name, entry, data_start) for name, entry in header.items()]
    tensors.sort(key=lambda t: (t.offset or 0, t.nbytes))
    _check_layout(path, tensors, data_start, size)
    return metadata, tensors


def numpy_dtype(info: TensorInfo, path: Path) -> np.dtype:
    """The numpy type a tensor's stored elements read as; packed sub-byte types are only counted."""
    dtype = NUMPY_DTYPES.get(info.dtype)
    if dtype is None:
        raise CheckpointError(path, f"{info.name}: dtype {info.dtype} cannot be read as numbers (only counted)")
    return dtype


def float_dtype(info: TensorInfo, path: Path) -> np.dtype:
    if info.dtype not in FLOAT_DTYPES:
        raise CheckpointError(path, f"{info.name}: dtype {info.dtype} is not a floating-point type")
    return numpy_dtype(info, path)


def bytes_per_row(info: TensorInfo, path: Path) -> int:
    """Stored bytes per row (first axis) of a tensor."""
    dtype = NUMPY_DTYPES.get(info.dtype)
    if dtype is not None:
        return math.prod(info.shape[1:]) * dtype.itemsize
    if info.rows and info.nbytes % info.rows == 0:  # packed sub-byte types: whole bytes per row, or none
        return info.nbytes // info.rows
    raise CheckpointError(path, f"{info.name}: rows of {info.dtype} do not fill whole bytes")


def _entry(path: Path, name: str, entry: Any, data_start: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _bad(path, f"entry of tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    for key, value in (("dtype", dtype), ("shape", shape), ("data_offsets", offsets)):
        if value is None:
            raise _bad(path, f"tensor {name!r} has no {key!r}")
    if not isinstance(dtype, str) or dtype not in BITS:
        raise _bad(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_count(n) for n in shape):
        raise _bad(path, f"tensor {name!r} has shape {shape!r}; dimensions must be non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(n) for n in offsets) or offsets[0] > offsets[1]:
        raise _bad(path, f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end] with 0 ≤ begin ≤ end")
    bits = math.prod(shape) * BITS[dtype]
    begin, end = offsets
    if bits % 8 or bits // 8 != end - begin:
        need = f"{bits / 8:,g}" if bits % 8 else f"{bits // 8:,}"
        raise _bad(path, f"tensor {name!r}: shape {shape} of {dtype} is {need} bytes, but its data_offsets span {end - begin:,}")
    return TensorInfo(name=name, shape=tuple(shape), dtype=dtype, nbytes=end - begin, file=path, offset=data_start + begin)


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _check_layout(path: Path, tensors: list[TensorInfo], data_start: int, size: int) -> None:
    """Data ranges in order from the start of the data, no gap, no overlap, ending where the file does."""
    at = data_start
    for info in tensors:
        begin = _offset(info)
        if begin != at:
            how = "overlaps the tensor before it" if begin < at else f"leaves a gap of {begin - at:,} bytes before it"
            raise _bad(path, f"tensor {info.name!r} (data bytes {begin - data_start:,}–{begin - data_start + info.nbytes:,}) {how}")
        at = begin + info.nbytes
    if at > size:
        raise _bad(path, f"tensor data runs to byte {at:,}, but the file has {size:,} bytes (truncated?)")
    if at < size:
        raise _bad(path, f"{size - at:,} unexpected bytes after the last tensor's data")


def _pread(fd: int, n: int, offset: int, path: Path) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.pread(fd, n - len(data), offset + len(data))
        if not chunk:
            raise CheckpointError(path, "file changed while being read")
        data += chunk
    return data


class SafetensorsFile:
    """One ``.safetensors`` file opened read-only; a ``Reader``."""

    format = Format.SAFETENSORS

    def __init__(self, path: Path):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
        try:
            self.metadata, self.tensors = read_header(self._fd, path)
        except BaseException:
            os.close(self._fd)
            raise
        self._buffers = BufferPool(self._fd, path)

    @contextmanager
    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Rows ``start:stop`` as stored, uint8 (rows, row_bytes), in a reused buffer; valid inside the ``with`` block."""
        row_bytes = bytes_per_row(info, self.path)
        with self._buffers.read(_offset(info) + start * row_bytes, (stop - start) * row_bytes) as raw:
            yield raw.reshape(stop - start, row_bytes)

    @contextmanager
    def stored_cols(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Columns ``start:stop`` of a 2-D tensor as stored, uint8 (rows, (stop - start) * itemsize), by positioned reads."""
        itemsize = numpy_dtype(info, self.path).itemsize
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {len(info.shape)}-D tensor")
        if not 0 <= start <= stop <= info.shape[1]:
            raise CheckpointError(self.path, f"{info.name}: columns {start}:{stop} are outside its {info.shape[1]}")
        base = _offset(info)

        def fill(buf: U8Array, offset: int) -> None:
            fill_exact(self._fd, buf, base + offset, self.path)

        row_bytes = info.shape[1] * itemsize
        yield column_bytes(fill, info.shape[0], row_bytes, start * itemsize, stop * itemsize, COLUMN_GAP_BYTES, CONVERT_BLOCK_BYTES)

    def read_rows(self, info: TensorInfo, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        """Rows ``start:stop`` as float32 (bf16, fp16 and fp8 widen exactly), into ``out`` when given."""
        return self._converted(info, start, stop, np.dtype(np.float32), out)

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        return self._converted(info, start, stop, np.dtype(np.float64))

    def _converted(self, info: TensorInfo, start: int, stop: int, wide: np.dtype, out: Any = None) -> Any:
        """Rows read a cache-sized block at a time and widened straight into the result (``out``, or a new
        array), so the bytes are converted while they are still in the CPU's cache after the read."""
        dtype = float_dtype(info, self.path)
        row_bytes = bytes_per_row(info, self.path)
        rows = stop - start
        inner = math.prod(info.shape[1:])
        if out is None:
            out = np.empty((rows, *info.shape[1:]), dtype=wide)
        elif not out.flags.c_contiguous or out.shape != (rows, *info.shape[1:]) or out.dtype != wide:
            raise ValueError(f"out must be a C-contiguous {wide} array of shape {(rows, *info.shape[1:])}")
        flat = out.reshape(rows, inner)  # (rows, inner), a view: out is C-contiguous
        step = max(1, CONVERT_BLOCK_BYTES // max(row_bytes, 1))
        for first in range(0, rows, step):
            last = min(first + step, rows)
            with self._buffers.read(_offset(info) + (start + first) * row_bytes, (last - first) * row_bytes) as raw:
                block = raw.view(dtype).reshape(last - first, inner)
                if info.dtype == "BF16" and wide == np.float32:  # bf16 bits shifted into the high half, in place
                    bits = flat[first:last].view(np.uint32)
                    np.copyto(bits, block, casting="unsafe")
                    bits <<= 16
                else:
                    flat[first:last] = to_float32(block, info.dtype) if info.dtype in STORAGE else block  # fp8: 256-entry table
        return out

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Columns ``start:stop`` of a 2-D tensor as float32 (rows, C), from whole rows read chunk by chunk."""
        float_dtype(info, self.path)
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {len(info.shape)}-D tensor")
        return columns_from_rows(self.read_rows, info, start, stop)

    def close(self) -> None:
        if self._fd >= 0:
            self._buffers.close()
            os.close(self._fd)
            self._fd = -1


def _offset(info: TensorInfo) -> int:
    assert info.offset is not None  # every safetensors tensor has one (set in _read_header)
    return info.offset
