"""Rows of a quantized weight, dequantized to float32 exactly as the method's own code does.

Each function reads only what rows ``start:stop`` (output features) need: a
column range of GPTQ's and AWQ's input-major words, a byte range of
bitsandbytes' flat codes, a row range of everything else; scales, maps and
``g_idx`` are small and read whole. Bytes come through ``Stored`` (the files'
Readers), never a memory map. Where the reference
returns a 16-bit float (the scales' dtype, quant_state's dtype), the float32
product is rounded to it the same way, so the values are the reference's own.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import CheckpointError
from ..formats.base import TensorInfo
from .raw import Stored, as_float32, round_to
from .scheme import Method, QuantizedWeight

__all__ = ["read_rows"]

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # output column 8c + AWQ_ORDER[i] sits in bits [4i, 4i+4) of word c
FLOAT_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}


def read_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """Rows ``start:stop`` of the dense weight as float32, (C, in), from the stored tensors ``stored`` reads."""
    if qw.unreadable is not None or len(qw.shape) != 2 or qw.method not in READERS:
        raise CheckpointError(qw.data.file, f"{qw.module} is {qw.method.value}-quantized; lmhead cannot dequantize it yet")
    if not 0 <= start <= stop <= qw.shape[0]:
        raise CheckpointError(qw.data.file, f"rows {start}:{stop} are outside {qw.name}'s {qw.shape[0]} rows")
    reader = READERS[qw.method]
    with np.errstate(over="ignore", invalid="ignore"):
        rows = reader(qw, start, stop, stored)
    return np.ascontiguousarray(rows, dtype=np.float32).reshape(stop - start, qw.shape[1])


def _unpack(words: np.ndarray, bits: int, axis: int) -> np.ndarray:
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


def _groups(stored: Stored, g_idx: TensorInfo | None, inputs: int, group: int | None) -> np.ndarray:
    """The group of each input: ``g_idx`` (act-order) or ``k // group``."""
    if g_idx is not None:
        return stored.whole(g_idx).reshape(-1).astype(np.int64)
    return np.arange(inputs) // (group or inputs)


def _gptq(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """GPTQModel ``dequantize_weight``: W[k, o] = scales[g(k), o] * (q[k, o] - (zeros[g(k), o] + offset)),
    computed in the scales' dtype; g = g_idx (act-order) or k // group_size."""
    bits, inputs = qw.bits, qw.shape[1]
    per_word = 32 // bits
    q = _unpack(stored.cols(qw.data, start, stop), bits, axis=0)[:inputs]  # (in, C)
    scales_info, zeros_info = qw.parts["scales"], qw.parts["qzeros"]
    first, last = start // per_word, -(-stop // per_word)
    zeros = _unpack(stored.cols(zeros_info, first, last), bits, axis=1)  # (G, span)
    zeros = zeros[:, start - first * per_word : stop - first * per_word] + qw.layout["zero_offset"]  # (G, C)
    scales = as_float32(stored.cols(scales_info, start, stop), scales_info.dtype)  # (G, C)
    groups = _groups(stored, qw.parts.get("g_idx"), inputs, qw.group_size)
    if groups.min(initial=0) < 0 or groups.max(initial=0) >= scales.shape[0]:
        raise CheckpointError(qw.data.file, f"{qw.module}: g_idx names groups outside the {scales.shape[0]} stored")
    group = qw.group_size
    q_rows = np.ascontiguousarray(q.T)  # (C, in): transposed while still 2-byte integers
    if group and inputs % group == 0 and np.array_equal(groups, np.arange(inputs) // group):  # no act-order: broadcast
        q3 = q_rows.reshape(q_rows.shape[0], inputs // group, group)  # (C, G, g)
        w = ((q3 - zeros.T[:, :, None]).astype(np.float32) * scales.T[:, :, None]).reshape(q_rows.shape[0], inputs)
    else:
        w = (q_rows - zeros.T[:, groups]).astype(np.float32) * scales.T[:, groups]  # (C, in)
    return round_to(w, FLOAT_NAMES.get(scales_info.dtype))


def _awq(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """AutoAWQ ``dequantize_gemm``: unpack words along the output dimension, undo the
    0,2,4,6,1,3,5,7 order; W[k, o] = (q[k, o] - zeros[k // g, o]) * scales[k // g, o] in fp16."""
    per_word = 8  # 4-bit only: the order below is AutoAWQ's AWQ_REVERSE_ORDER (0,4,1,5,2,6,3,7)
    reverse = np.argsort(AWQ_ORDER)  # column j of a word's 8 is field reverse[j]
    first, last = start // per_word, -(-stop // per_word)
    lo, hi = start - first * per_word, stop - first * per_word

    def columns(info: TensorInfo) -> np.ndarray:  # (N, words) -> (N, C) in column order
        fields = _unpack(stored.cols(info, first, last), 4, axis=1)  # (N, words * 8) in field order
        fields = fields.reshape(fields.shape[0], -1, per_word)[:, :, reverse]
        return fields.reshape(fields.shape[0], -1)[:, lo:hi]

    q = columns(qw.data)  # (in, C)
    zeros = columns(qw.parts["qzeros"])  # (G, C)
    scales_info = qw.parts["scales"]
    scales = as_float32(stored.cols(scales_info, start, stop), scales_info.dtype)  # (G, C)
    groups = np.arange(qw.shape[1]) // (qw.group_size or qw.shape[1])
    w = (q - zeros[groups]).astype(np.float32) * scales[groups]  # (in, C)
    return round_to(w, FLOAT_NAMES.get(scales_info.dtype)).T


def _bnb_4bit(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """bitsandbytes ``dequantize_4bit``: code[nibble] * absmax[i // blocksize] over the flattened
    weight, high nibble first; nested absmax = nested_code[a] * nested_absmax[j // nb] + offset;
    the result cast to quant_state's dtype."""
    inputs = qw.shape[1]
    begin, end = start * inputs, stop * inputs  # flat element range
    codes = stored.flat(qw.data, begin // 2, -(-end // 2)).view(np.uint8)
    nibbles = np.empty(codes.size * 2, dtype=np.uint8)
    nibbles[0::2], nibbles[1::2] = codes >> 4, codes & 0x0F
    nibbles = nibbles[begin - 2 * (begin // 2) :][: end - begin]
    code = np.asarray(stored.whole(qw.parts["quant_map"]), dtype=np.float32).reshape(-1)
    block = qw.layout["blocksize"]
    b0, b1 = begin // block, -(-end // block)
    absmax = _absmax(qw, b0, b1, stored)  # (blocks,)
    if begin % block == 0 and (end - begin) % block == 0:  # whole blocks: one scale per row of a (blocks, block) view
        values = (code[nibbles].reshape(-1, block) * absmax[:, None]).reshape(-1)
    else:
        values = code[nibbles] * absmax[np.arange(begin, end) // block - b0]
    return round_to(values, qw.layout.get("dtype")).reshape(stop - start, inputs)


def _absmax(qw: QuantizedWeight, b0: int, b1: int, stored: Stored) -> np.ndarray:
    info = qw.parts["absmax"]
    if "nested_absmax" not in qw.parts:
        return as_float32(stored.flat(info, b0, b1), info.dtype)
    nb = qw.layout["nested_blocksize"]
    quantized = stored.flat(info, b0, b1)
    nested_code = np.asarray(stored.whole(qw.parts["nested_quant_map"]), dtype=np.float32).reshape(-1)
    nested_info = qw.parts["nested_absmax"]
    nested_scale = as_float32(stored.flat(nested_info, b0 // nb, -(-b1 // nb)), nested_info.dtype)  # the blocks' own scales
    scale = nested_scale[np.arange(b0, b1) // nb - b0 // nb]
    return nested_code[quantized] * scale + np.float32(qw.layout["nested_offset"])


def _bnb_int8(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """bitsandbytes ``int8_vectorwise_dequant``: (A * SCB[:, None]) * 7.874015718698502e-3 (1/127), float32."""
    a = stored.rows(qw.data, start, stop).astype(np.float32)  # (C, in)
    scb_info = qw.parts["SCB"]
    scb = as_float32(stored.rows(scb_info, start, stop), scb_info.dtype)
    return (a * scb[:, None]) * np.float32(7.874015718698502e-3)


def _blocked(qw: QuantizedWeight, start: int, stop: int, stored: Stored, out_dtype: str | None) -> np.ndarray:
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


def _fp8_block(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """DeepSeek-V3 ``weight_dequant``: fp8 -> float32 times the block's scale_inv, stored as bfloat16."""
    return _blocked(qw, start, stop, stored, "bfloat16")


def _fp8_scaled(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """compressed-tensors ``dequantize``: x_q * scale in the scale's dtype."""
    return _blocked(qw, start, stop, stored, FLOAT_NAMES.get(qw.parts["scale"].dtype))


def _torchao(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """torchao ``_dequantize_affine_float8``: qdata.float() * expanded scale, then ``.to(dtype)``. The
    dtype comes from the tensor's metadata; without it the rounding is unknown, so nothing is guessed."""
    dtype = qw.layout.get("dtype")
    if dtype is None:
        raise CheckpointError(
            qw.data.file,
            f"{qw.module} is torchao float8 without its tensor metadata, which says the dtype its values are "
            "rounded to: lmhead cannot dequantize it exactly",
            hint="save it with transformers' safetensors serialization, which writes that metadata",
        )
    return _blocked(qw, start, stop, stored, dtype)


def _ct_int(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """compressed-tensors ``unpack_from_int32`` (fields low bits first, minus 2^(bits-1)) then
    ``dequantize``: (q - zero_point) * scale[:, g(k)], in the scale's dtype."""
    bits, (out, inputs) = qw.bits, qw.shape
    offset = 1 << (bits - 1)
    q = _unpack(stored.rows(qw.data, start, stop), bits, axis=1)[:, :inputs] - offset  # (C, in)
    scale_info = qw.parts["scale"]
    scale = as_float32(stored.rows(scale_info, start, stop), scale_info.dtype)  # (C, G)
    groups = _groups(stored, qw.parts.get("g_idx"), inputs, qw.group_size)
    if groups.min(initial=0) < 0 or groups.max(initial=0) >= scale.shape[1]:
        raise CheckpointError(qw.data.file, f"{qw.module}: weight_g_idx names groups outside the {scale.shape[1]} stored")
    zp_info = qw.parts.get("zero_point")
    zeros = np.zeros((stop - start, scale.shape[1]), dtype=np.int32)
    if zp_info is not None:
        per_word = 32 // bits
        if zp_info.shape[0] == out:  # stored unpacked
            zeros = stored.rows(zp_info, start, stop).astype(np.int32)
        else:  # packed along the output dimension
            first, last = start // per_word, -(-stop // per_word)
            unpacked = _unpack(stored.rows(zp_info, first, last), bits, axis=0) - offset
            zeros = unpacked[start - first * per_word : stop - first * per_word]
    w = (q - zeros[:, groups]).astype(np.float32) * scale[:, groups]  # (C, in)
    return round_to(w, FLOAT_NAMES.get(scale_info.dtype))


READERS = {
    Method.GPTQ: _gptq,
    Method.AWQ: _awq,
    Method.BNB_NF4: _bnb_4bit,
    Method.BNB_FP4: _bnb_4bit,
    Method.BNB_INT8: _bnb_int8,
    Method.FP8_BLOCK: _fp8_block,
    Method.FP8: _fp8_scaled,
    Method.TORCHAO_FP8: _torchao,
    Method.CT_INT: _ct_int,
}
