"""compressed-tensors (llmcompressor): ``pack-quantized`` int and FP4 weights (``float-quantized`` FP8: ``fp8_scaled``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..dequant import FLOAT_NAMES, groups_of, unpack
from ..layouts import bad, expect, group_count, need, parts
from ..raw import Stored, as_float32, e2m1_values, e8m0_scales, round_to
from ..scheme import Method, QuantizedWeight, Scheme, int_setting
from .base import QuantMethod, Read

__all__ = ["CT_FP4", "CT_INT", "METHOD", "ct_weights"]

CT_INT = Method("compressed-tensors int", "ct-int", "compressed_tensors")  # weight_packed + weight_scale (+ zero point)
CT_FP4 = Method("compressed-tensors FP4", "ct-fp4", "compressed_tensors")  # nvfp4 / mxfp4: U8 codes + FP8 / E8M0 scales


def config_weights(qc: dict[str, Any]) -> dict[str, Any]:
    """The first config group's weight arguments."""
    groups = qc.get("config_groups")
    if isinstance(groups, dict):
        for entry in groups.values():
            if isinstance(entry, dict) and isinstance(entry.get("weights"), dict):
                return entry["weights"]
    return {}


def ct_weights(scheme: Scheme) -> dict[str, Any]:
    return config_weights(scheme.settings)


class CompressedTensors(QuantMethod):
    """``pack-quantized`` (``compressors/quantized_compressors/pack_quantized.py``): ``weight_packed``
    int32 [out, ceil(in*bits/32)], values + 2^(bits-1) packed along the input dimension from the low
    bits up; ``weight_shape`` the dense [out, in]; ``weight_scale`` [out, groups];
    ``weight_zero_point`` (asymmetric) packed the same way along the output dimension;
    W = (q - zero_point) * scale (``quantization/lifecycle/forward.py``)."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        weights = config_weights(qc)
        if not weights:
            return None, None
        return int_setting(weights.get("num_bits")), int_setting(weights.get("group_size"))

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len(".weight_packed")] if not late and name.endswith(".weight_packed") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        packed = tensors[module + ".weight_packed"]
        scale = need(tensors, module, ".weight_scale", "compressed-tensors")
        expect(packed, ("I32", "U8"), 2)
        if packed.dtype == "U8":
            return _fp4(tensors, module, packed, scale, scheme)
        return _int(tensors, module, packed, scale, scheme, read)

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        if qw.method is CT_FP4:
            return _fp4_rows(qw, start, stop, stored)
        return _int_rows(qw, start, stop, stored)


def _int_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """compressed-tensors ``unpack_from_int32`` (fields low bits first, minus 2^(bits-1)) then
    ``dequantize``: (q - zero_point) * scale[:, g(k)], in the scale's dtype."""
    bits, (out, inputs) = qw.bits, qw.shape
    offset = 1 << (bits - 1)
    q = unpack(stored.rows(qw.data, start, stop), bits, axis=1)[:, :inputs] - offset  # (C, in)
    scale_info = qw.parts["scale"]
    scale = as_float32(stored.rows(scale_info, start, stop), scale_info.dtype)  # (C, G)
    groups = groups_of(stored, qw.parts.get("g_idx"), inputs, qw.group_size)
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
            unpacked = unpack(stored.rows(zp_info, first, last), bits, axis=0) - offset
            zeros = unpacked[start - first * per_word : stop - first * per_word]
    w = (q - zeros[:, groups]).astype(np.float32) * scale[:, groups]  # (C, in)
    return round_to(w, FLOAT_NAMES.get(scale_info.dtype))


def _shape(tensors: dict[str, TensorInfo], module: str, read: Read) -> tuple[int, int]:
    """The dense [out, in] that ``weight_shape`` states."""
    shape_info = need(tensors, module, ".weight_shape", "compressed-tensors")
    expect(shape_info, ("I64", "I32"), 1)
    values = read(shape_info) if shape_info.numel == 2 else None
    if values is None or any(int(v) <= 0 for v in values):
        raise bad(shape_info, "weight_shape must hold two positive sizes [out, in]")
    out, inputs = (int(v) for v in values)
    return out, inputs


def _int(
    tensors: dict[str, TensorInfo], module: str, packed: TensorInfo, scale: TensorInfo, scheme: Scheme | None, read: Read
) -> QuantizedWeight:
    out, inputs = _shape(tensors, module, read)
    expect(scale, ("F32", "BF16", "F16"), 2)
    weights = ct_weights(scheme) if scheme else {}
    bits = weights.get("num_bits") if isinstance(weights.get("num_bits"), int) else 4
    if bits not in (2, 4, 8):
        raise bad(packed, f"{bits}-bit packing is not one compressed-tensors writes into int32")
    per_word = 32 // bits
    if packed.shape != (out, group_count(inputs, per_word)):
        raise bad(packed, f"shape {list(packed.shape)} does not pack weight_shape {[out, inputs]} at {bits} bits")
    if scale.shape[0] != out or not scale.shape[1]:
        raise bad(scale, f"shape {list(scale.shape)} does not give scales for {out} rows")
    groups = scale.shape[1]
    group = weights.get("group_size") if isinstance(weights.get("group_size"), int) and weights.get("group_size", 0) > 0 else None
    group = group or group_count(inputs, groups)
    found = {"scale": scale, "shape": tensors[module + ".weight_shape"]}
    found.update(parts(tensors, module, {"zero_point": ".weight_zero_point", "g_idx": ".weight_g_idx"}))
    if "g_idx" not in found and group_count(inputs, group) != groups:
        raise bad(scale, f"{groups} groups, but {inputs} inputs in groups of {group} make {group_count(inputs, group)}")
    zp = found.get("zero_point")
    if zp is not None and zp.shape != (group_count(out, per_word), groups) and zp.shape != (out, groups):
        raise bad(zp, f"shape {list(zp.shape)} matches neither packed nor plain zero points for {[out, groups]}")
    kind = weights.get("type", "int")
    fmt = str((scheme.get("format") if scheme else None) or "pack-quantized")
    unreadable = None if kind == "int" and fmt == "pack-quantized" else f"compressed-tensors {fmt} {kind}{bits}"
    return QuantizedWeight(module + ".weight", CT_INT, (out, inputs), bits, packed, found, group, {}, unreadable)


def _fp4(tensors: dict[str, TensorInfo], module: str, packed: TensorInfo, scale: TensorInfo, scheme: Scheme | None) -> QuantizedWeight:
    """``nvfp4-pack-quantized`` / ``mxfp4-pack-quantized`` (``compressors/nvfp4``, ``compressors/mxfp4``):
    ``weight_packed`` U8 [out, in/2], two E2M1 codes a byte, the low nibble first; ``weight_scale``
    [out, in/group]: FP8 E4M3 (NVFP4, groups of 16, with ``weight_global_scale``) or E8M0 exponents
    stored U8 (MXFP4, groups of 32). No ``weight_shape`` is written: the codes give in = 2 * columns."""
    out, inputs = packed.shape[0], 2 * packed.shape[1]
    found = {"scale": scale, **parts(tensors, module, {"global_scale": ".weight_global_scale", "shape": ".weight_shape"})}
    mx = "global_scale" not in found
    expect(scale, ("U8", "F8_E8M0") if mx else ("F8_E4M3",), 2)
    if scale.shape[0] != out or not scale.shape[1] or inputs % scale.shape[1]:
        raise bad(scale, f"shape {list(scale.shape)} does not give group scales for {[out, inputs]}")
    group = inputs // scale.shape[1]
    if "global_scale" in found and found["global_scale"].numel != 1:
        raise bad(found["global_scale"], f"shape {list(found['global_scale'].shape)}, but NVFP4 stores one global scale")
    fmt = "MXFP4" if mx else "NVFP4"
    return QuantizedWeight(module + ".weight", CT_FP4, (out, inputs), 4, packed, found, group, {"format": fmt})


def _fp4_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """compressed-tensors ``unpack_fp4_from_uint8`` then ``dequantize`` as ``decompress`` calls it: the
    scale widened to bfloat16 (E8M0: 2^(e - 127)); NVFP4 divides it by the float32 global scale
    (float32 from there on); codes times scale, rounded to bfloat16."""
    codes = stored.rows(qw.data, start, stop)  # (C, in/2) uint8
    nibbles = np.stack((codes & 0x0F, codes >> 4), axis=-1).reshape(stop - start, -1)  # (C, in), low nibble first
    q = e2m1_values(nibbles)  # (C, in)
    scale_info = qw.parts["scale"]
    raw = stored.rows(scale_info, start, stop)  # (C, G)
    if qw.layout["format"] == "MXFP4":
        scale = e8m0_scales(raw)
    else:
        scale = as_float32(raw, scale_info.dtype)
        scale = scale / stored.whole(qw.parts["global_scale"]).reshape(-1)[0].astype(np.float32)  # (C, G) float32
    groups = np.arange(qw.shape[1]) // (qw.group_size or qw.shape[1])  # (in,)
    return round_to(q * scale[:, groups], "bfloat16")  # (C, in)


METHOD = CompressedTensors()
