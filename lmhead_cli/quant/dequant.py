"""Rows of a quantized weight, dequantized to float32 exactly as the method's own code does.

``read_rows`` hands each weight to the method that grouped it (``registry``);
the helpers below are shared by the methods' dequantizers. Each reads only what
rows ``start:stop`` (output features) need: a column range of GPTQ's and AWQ's
input-major words, a byte range of bitsandbytes' flat codes, a row range of
everything else; scales, maps and ``g_idx`` are small and read whole. Bytes come
through ``Stored`` (the files' Readers), never a memory map. Where the reference
returns a 16-bit float (the scales' dtype, quant_state's dtype), the float32
product is rounded to it the same way, so the values are the reference's own.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import CheckpointError
from ..formats.base import TensorInfo
from .raw import Stored, as_float32, round_to
from .registry import TABLE, method
from .scheme import QuantizedWeight

__all__ = ["FLOAT_NAMES", "blocked", "groups_of", "read_rows", "unpack"]

FLOAT_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}


def read_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """Rows ``start:stop`` of the dense weight as float32, (C, in), from the stored tensors ``stored`` reads."""
    if qw.unreadable is not None or len(qw.shape) != 2:
        raise qw.not_dequantizable()
    if not 0 <= start <= stop <= qw.shape[0]:
        raise CheckpointError(qw.data.file, f"rows {start}:{stop} are outside {qw.name}'s {qw.shape[0]} rows")
    reader = method(next(row for row in TABLE if row.key == qw.method.key))
    with np.errstate(over="ignore", invalid="ignore"):
        rows = reader.read_rows(qw, start, stop, stored)
    return np.ascontiguousarray(rows, dtype=np.float32).reshape(stop - start, qw.shape[1])


def unpack(words: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Split each int32 word into 32/bits unsigned fields, low bits first, along ``axis`` (which grows)."""
    per_word = 32 // bits
    shifts = (np.arange(per_word, dtype=np.uint32) * bits).astype(np.uint32)
    u = np.ascontiguousarray(words).view(np.uint32)  # the same 32 bits, unsigned
    mask = np.uint32((1 << bits) - 1)
    if axis == 0:  # (W, N) -> (W * per_word, N): field j of word w is row w * per_word + j
        fields = (u[:, None, :] >> shifts[None, :, None]) & mask
        return fields.reshape(-1, u.shape[1]).astype(np.int16)
    fields = (u[:, :, None] >> shifts[None, None, :]) & mask  # (N, W) -> (N, W * per_word)
    return fields.reshape(u.shape[0], -1).astype(np.int16)


def groups_of(stored: Stored, g_idx: TensorInfo | None, inputs: int, group: int | None) -> np.ndarray:
    """The group of each input: ``g_idx`` (act-order) or ``k // group``."""
    if g_idx is not None:
        return stored.whole(g_idx).reshape(-1).astype(np.int64)
    return np.arange(inputs) // (group or inputs)


def blocked(qw: QuantizedWeight, start: int, stop: int, stored: Stored, out_dtype: str | None) -> np.ndarray:
    """FP8 values times one scale per (b0 x b1) block, in float32, then cast to ``out_dtype``."""
    x = as_float32(stored.rows(qw.data, start, stop), qw.data.dtype)  # (C, in)
    scale_info = qw.parts["scale"]
    b0, b1 = qw.layout["block"]
    grid = (-(-qw.shape[0] // b0), -(-qw.shape[1] // b1))  # scales per column block, per row block
    first, last = start // b0, -(-stop // b0)
    blocks = stored.flat(scale_info, first * grid[1], last * grid[1]).reshape(last - first, grid[1])  # only the rows' blocks
    s = as_float32(blocks, scale_info.dtype)
    rows = np.arange(start, stop) // b0 - first
    cols = np.arange(qw.shape[1]) // b1
    return round_to(x * s[rows][:, cols], out_dtype)  # (C, in)
