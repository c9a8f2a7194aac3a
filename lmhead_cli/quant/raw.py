"""Stored tensors as numpy arrays in their own dtype, and the exact conversions dequantizers need.

Arrays are views of a read-only memory map of the tensor's own bytes, made per
call and dropped after, so slicing a column range of a packed matrix reads only
the pages it touches. bfloat16 and float8 are decoded with integer arithmetic
(exact) by ``..dtypes``, not ml_dtypes.
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import NARROW_FLOATS, to_float32
from ..errors import CheckpointError
from ..formats.base import TensorInfo

__all__ = ["STORAGE", "as_float32", "mapped", "round_to", "small"]

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


def mapped(info: TensorInfo) -> np.ndarray:
    """The whole tensor as a read-only memory-mapped array (shape ``info.shape``, stored dtype)."""
    dtype = STORAGE.get(info.dtype)
    if dtype is None:
        raise CheckpointError(info.file, f"{info.name}: dtype {info.dtype} is not one a quantized layout stores")
    shape = info.shape or (1,)
    if math.prod(shape) * dtype.itemsize != info.nbytes:
        raise CheckpointError(info.file, f"{info.name}: {info.nbytes} bytes do not hold {list(info.shape)} {info.dtype}")
    if info.nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    if info.offset is None:
        raise CheckpointError(info.file, f"{info.name}: its bytes have no place in the file to read quantized rows from")
    try:
        return np.memmap(info.file, dtype=dtype, mode="r", offset=info.offset, shape=shape)
    except (OSError, ValueError) as exc:
        raise CheckpointError(info.file, f"cannot read {info.name}: {exc}") from exc


def small(info: TensorInfo) -> np.ndarray:
    """A small tensor (scales, maps, states) copied out of the file (or fetched, for a file on the hub)."""
    from ..formats.remote import HubPath, tensor_bytes

    if isinstance(info.file, HubPath):
        dtype = STORAGE.get(info.dtype)
        if dtype is None or math.prod(info.shape or (1,)) * dtype.itemsize != info.nbytes:
            return np.array(mapped(info))  # the same errors as a local file
        return tensor_bytes(info).view(dtype).reshape(info.shape or (1,))
    return np.array(mapped(info))


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
