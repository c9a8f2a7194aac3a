"""Stored tensors as numpy arrays in their own dtype, and the exact conversions dequantizers need.

Arrays are views of a read-only memory map of the tensor's own bytes, made per
call and dropped after, so slicing a column range of a packed matrix reads only
the pages it touches. bfloat16 and float8 are decoded with integer arithmetic
(exact), not ml_dtypes.
"""

from __future__ import annotations

import math

import numpy as np

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


def _fp8_table(exponent_bits: int, bias: int, finite_only: bool) -> np.ndarray:
    """float32 value of every byte of an 8-bit float: 1 sign bit, ``exponent_bits``, the rest mantissa."""
    mantissa_bits = 7 - exponent_bits
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    man = codes & ((1 << mantissa_bits) - 1)
    normal = (1 + man / (1 << mantissa_bits)) * np.exp2(exp - bias)
    subnormal = (man / (1 << mantissa_bits)) * np.exp2(1 - bias)
    values = sign * np.where(exp == 0, subnormal, normal)
    top = (1 << exponent_bits) - 1
    if finite_only:  # e4m3fn: only S.1111.111 is NaN; no infinities
        values[(codes & 0x7F) == 0x7F] = np.nan
    else:  # e5m2: IEEE-like
        values[(exp == top) & (man == 0)] = sign[(exp == top) & (man == 0)] * np.inf
        values[(exp == top) & (man != 0)] = np.nan
    return values.astype(np.float32)


FP8_E4M3 = _fp8_table(4, 7, finite_only=True)
FP8_E5M2 = _fp8_table(5, 15, finite_only=False)
E8M0 = np.where(np.arange(256) == 255, np.nan, np.exp2(np.arange(256, dtype=np.float64) - 127)).astype(np.float32)


def as_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values (viewed as ``STORAGE[dtype]``) widened exactly to float32."""
    if dtype == "BF16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F8_E4M3":
        return FP8_E4M3[values]
    if dtype == "F8_E5M2":
        return FP8_E5M2[values]
    if dtype == "F8_E8M0":
        return E8M0[values]
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
