"""safetensors files: headers through the ``safetensors`` library, rows through a released memory map.

The library's own parser validates each header (offsets in order and inside the
file, byte lengths matching shape × dtype, a 100 MB header cap); we then read
the validated JSON once more for the byte offsets, which its API does not
expose, so that row ranges are read through released windows of a memory map
and memory stays bounded by the chunk (see ``FileMap``).
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
from safetensors import SafetensorError, safe_open

from ..dtypes import STORAGE, to_float32
from ..errors import CheckpointError
from .base import F32Array, F64Array, FileMap, Format, TensorInfo, U8Array

# safetensors dtype name -> numpy dtype (None: packed sub-byte types we count but cannot read);
# bfloat16 and float8 are their raw bits (lmhead_cli.dtypes), widened by ``to_float32``
NUMPY_DTYPES: dict[str, np.dtype | None] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    **{name: STORAGE[name] for name in ("BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ")},
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

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own cap

FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"}


def _validate(path: Path) -> None:
    """Let the reference parser check the whole header; translate its errors once."""
    length, size = _framing(path)
    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except SafetensorError as exc:
        # Our own numbers first (a partial download is the usual cause, and the library gives none); its wording else.
        reason = _coverage(path, length, size) or _reason(str(exc))
        raise CheckpointError(path, f"not a valid safetensors file: {reason}") from exc
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc


def _framing(path: Path) -> tuple[int, int]:
    """(header length, file size), refusing files too short for what their first 8 bytes claim."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
    if size < 8:
        raise CheckpointError(path, "file is empty" if size == 0 else f"file is {size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(path, f"header length {length:,} exceeds the {MAX_HEADER_BYTES:,}-byte limit; not a safetensors file?")
    if 8 + length > size:
        raise CheckpointError(path, f"header length {length:,} runs past the end of the {size:,}-byte file (truncated?)")
    return length, size


def _coverage(path: Path, length: int, size: int) -> str | None:
    """Say where the tensor data should end and where the file does; None when that is not the trouble
    (or the header is too broken to tell)."""
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(length))
        ends = [int(e["data_offsets"][1]) for k, e in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OSError):
        return None
    expected = 8 + length + max(ends, default=0)
    if expected > size:
        return f"tensor data runs to byte {expected:,}, but the file has {size:,} bytes (truncated?)"
    if expected < size:
        return f"{size - expected:,} unexpected bytes after the last tensor's data"
    return None


def _reason(message: str) -> str:
    """safetensors' message without its boilerplate prefix, on one line."""
    message = message.replace("Error while deserializing header: ", "")
    return " ".join(message.split())


class SafetensorsFile:
    """One ``.safetensors`` file opened read-only; a ``Reader``."""

    format = Format.SAFETENSORS

    def __init__(self, path: Path):
        self.path = path
        _validate(path)
        self._fd = os.open(path, os.O_RDONLY)
        self.metadata, self.tensors = self._read_header()
        self._map = FileMap(self._fd)

    def _read_header(self) -> tuple[dict[str, Any], list[TensorInfo]]:
        (length,) = struct.unpack("<Q", os.pread(self._fd, 8, 0))
        header = json.loads(os.pread(self._fd, length, 8))
        metadata = header.pop("__metadata__", None) or {}
        data_start = 8 + length
        tensors = []
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            tensors.append(
                TensorInfo(
                    name=name,
                    shape=tuple(int(n) for n in entry["shape"]),
                    dtype=entry["dtype"],
                    nbytes=end - begin,
                    file=self.path,
                    offset=data_start + begin,
                )
            )
        tensors.sort(key=lambda t: t.offset or 0)
        return metadata, tensors

    def _numpy_dtype(self, info: TensorInfo) -> np.dtype:
        dtype = NUMPY_DTYPES.get(info.dtype)
        if dtype is None:
            raise CheckpointError(self.path, f"{info.name}: dtype {info.dtype} cannot be read as numbers (only counted)")
        return dtype

    def _float_dtype(self, info: TensorInfo) -> np.dtype:
        if info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(self.path, f"{info.name}: dtype {info.dtype} is not a floating-point type")
        return self._numpy_dtype(info)

    def _row_bytes(self, info: TensorInfo) -> int:
        inner = math.prod(info.shape[1:])
        dtype = NUMPY_DTYPES.get(info.dtype)
        if dtype is not None:
            return inner * dtype.itemsize
        if info.rows and info.nbytes % info.rows == 0:  # packed sub-byte types: whole bytes per row, or none
            return info.nbytes // info.rows
        raise CheckpointError(self.path, f"{info.name}: rows of {info.dtype} do not fill whole bytes")

    @contextmanager
    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Rows ``start:stop`` as stored, uint8 (rows, row_bytes), read in place; valid inside the ``with`` block."""
        row_bytes = self._row_bytes(info)
        with self._map.window(_offset(info) + start * row_bytes, (stop - start) * row_bytes) as raw:
            yield raw.reshape(stop - start, row_bytes)

    def read_rows(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Rows ``start:stop`` as float32 (bf16, fp16 and fp8 widen exactly), converted straight from the map."""
        dtype = self._float_dtype(info)
        with self.stored_rows(info, start, stop) as raw:
            return _widen(raw.view(dtype).reshape((stop - start, *info.shape[1:])), info.dtype)

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        dtype = self._float_dtype(info)
        with self.stored_rows(info, start, stop) as raw:
            rows = raw.view(dtype).reshape((stop - start, *info.shape[1:]))
            return rows.astype(np.float64) if info.dtype == "F64" else _widen(rows, info.dtype).astype(np.float64)

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Columns ``start:stop`` of a 2-D tensor as float32 (rows, C).

        A map of the tensor is opened for this call only and closed after, so
        the pages it touched leave the process's resident memory with it.
        """
        dtype = self._float_dtype(info)
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {len(info.shape)}-D tensor")
        mapped = np.memmap(self.path, dtype=dtype, mode="r", offset=_offset(info), shape=info.shape)
        cols = _widen(mapped[:, start:stop], info.dtype)
        del mapped  # the last reference: unmapped here
        return cols

    def close(self) -> None:
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1


def _offset(info: TensorInfo) -> int:
    assert info.offset is not None  # every safetensors tensor has one (set in _read_header)
    return info.offset


def _widen(raw: np.ndarray, dtype: str) -> F32Array:
    """Stored values -> a new float32 array (exact for every float type but F64)."""
    return to_float32(raw, dtype) if dtype in STORAGE else np.array(raw, dtype=np.float32)
