"""Stored tensors as numpy arrays in their own dtype, and the exact conversions dequantizers need.

Bytes come through each file's ``Reader`` (positioned reads into reused
buffers, ranged requests on the hub, torch's own tensors for ``.bin``), never a
memory map: a file that shrinks while it is read gives "file changed while
being read", never a SIGBUS. Every array is a copy, made per call: row ranges
(``rows``, ``flat``), column ranges of 2-D tensors (``cols``: only each row's
span is read), whole tensors (``whole``: small ones, kept once read).
bfloat16 and float8 are decoded with integer arithmetic (exact) by
``..dtypes``, not ml_dtypes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..core.dtypes import NARROW_FLOATS, to_float32
from ..core.errors import CheckpointError
from ..formats.base import Reader, TensorInfo

__all__ = ["E2M1", "STORAGE", "Stored", "as_float32", "e2m1_values", "e8m0_scales", "round_to"]

SMALL_BYTES = 1 << 20  # whole tensors up to this size (maps, g_idx, nested scales) are kept once read

# safetensors dtype -> the numpy dtype its bytes are viewed as here (bf16 and fp8 as unsigned integers)
STORAGE: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F8_E4M3": np.dtype("u1"),
    "F8_E5M2": np.dtype("u1"),
    "F8_E8M0": np.dtype("u1"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


class Stored:
    """The stored values of the tensors quantized weights are made of, read through their files' Readers."""

    def __init__(self, reader: Callable[[TensorInfo], Reader]):
        self._reader = reader
        self._kept: dict[tuple[str, int | None, str], np.ndarray] = {}  # small whole tensors, by (file, offset, name)

    def rows(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the first axis, (stop - start, *shape[1:]), in ``STORAGE[info.dtype]``."""
        dtype = _dtype(info)
        if not 0 <= start <= stop <= info.rows:
            raise CheckpointError(info.file, f"{info.name}: rows {start}:{stop} are outside its {info.rows}")
        shape = (stop - start, *info.shape[1:])
        if stop <= start or info.nbytes == 0:
            return np.zeros(shape, dtype=dtype)
        with self._reader(info).stored_rows(info, start, stop) as raw:
            return np.array(raw).view(dtype).reshape(shape)  # copied out of the lent buffer

    def flat(self, info: TensorInfo, begin: int, end: int) -> np.ndarray:
        """Elements ``begin:end`` of the row-major flattened tensor: the rows that hold them are read."""
        inner = math.prod(info.shape[1:])
        if end <= begin or inner == 0:
            return np.zeros(max(end - begin, 0), dtype=_dtype(info))
        first, last = begin // inner, -(-end // inner)
        return self.rows(info, first, last).reshape(-1)[begin - first * inner : end - first * inner]

    def cols(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        """Columns ``start:stop`` of a 2-D tensor, (rows, stop - start): only each row's span is read."""
        dtype = _dtype(info)
        if len(info.shape) != 2:
            raise CheckpointError(info.file, f"{info.name}: shape {list(info.shape)}, but a 2-D tensor was expected")
        if not 0 <= start <= stop <= info.shape[1]:
            raise CheckpointError(info.file, f"{info.name}: columns {start}:{stop} are outside its {info.shape[1]}")
        if stop <= start or info.nbytes == 0:
            return np.zeros((info.shape[0], max(stop - start, 0)), dtype=dtype)
        with self._reader(info).stored_cols(info, start, stop) as raw:
            return np.array(raw).view(dtype).reshape(info.shape[0], stop - start)

    def whole(self, info: TensorInfo) -> np.ndarray:
        """The whole tensor (shape ``info.shape``, a scalar as one element); small ones are read once."""
        key = (str(info.file), info.offset, info.name)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        values = self.rows(info, 0, info.rows).reshape(info.shape or (1,))
        if info.nbytes <= SMALL_BYTES:
            values.flags.writeable = False  # shared between calls
            self._kept[key] = values
        return values


def _dtype(info: TensorInfo) -> np.dtype:
    """The numpy dtype the tensor's bytes are viewed as, once its byte count is checked against its shape."""
    dtype = STORAGE.get(info.dtype)
    if dtype is None:
        raise CheckpointError(info.file, f"{info.name}: dtype {info.dtype} is not one a quantized layout stores")
    if math.prod(info.shape or (1,)) * dtype.itemsize != info.nbytes:
        raise CheckpointError(info.file, f"{info.name}: {info.nbytes} bytes do not hold {list(info.shape)} {info.dtype}")
    return dtype


def as_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values (viewed as ``STORAGE[dtype]``) widened exactly to float32."""
    if dtype in NARROW_FLOATS:  # bf16 and the float8 kinds: the same exact widening every reader uses
        return to_float32(values, dtype)
    return values.astype(np.float32)


def round_to(values: np.ndarray, dtype: str | None) -> np.ndarray:
    """float32 values rounded (to nearest, ties to even) to a narrower float, returned as float32.

    A reference dequantizer that returns bfloat16 or float16 rounds its float32
    product so; matching it exactly means rounding the same way.
    """
    if dtype in ("float16", "F16", "half"):
        with np.errstate(over="ignore"):
            return values.astype(np.float16).astype(np.float32)
    if dtype in ("bfloat16", "BF16"):
        bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
        rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        rounded = np.where(np.isnan(values), bits | 0x00400000, rounded).astype(np.uint32)
        return rounded.view(np.float32)
    return values.astype(np.float32, copy=False)


# E2M1 magnitudes by a 4-bit code's low three bits (the OCP MX format: compressed-tensors' kE2M1ToFloat,
# mlx's fp4 table); bit 3 is the sign
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=np.float32)


def e2m1_values(codes: np.ndarray) -> np.ndarray:
    """4-bit E2M1 codes (any shape, uint8) -> their float32 values, exactly."""
    return E2M1[codes & 0x07] * np.where(codes & 0x08, np.float32(-1), np.float32(1))


def e8m0_scales(raw: np.ndarray) -> np.ndarray:
    """E8M0 exponents (uint8) -> 2^(e - 127) in float32, exactly; 255 gives inf, as the tools' own code does."""
    with np.errstate(over="ignore"):
        return np.ldexp(np.float32(1), raw.astype(np.int32) - 127).astype(np.float32)
