"""compressed-tensors (llmcompressor): ``pack-quantized`` int and FP4 weights (``float-quantized`` FP8: ``fp8_scaled``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..dequant import FLOAT_NAMES, groups_of, unpack
from ..layouts import bad, expect, group_count, need, parts
from ..raw import Stored, as_float32, round_to
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
        what = "compressed-tensors"
        scale = need(tensors, module, ".weight_scale", what)
        shape_info = need(tensors, module, ".weight_shape", what)
        expect(packed, ("I32", "U8"), 2)
        expect(shape_info, ("I64", "I32"), 1)
        values = read(shape_info) if shape_info.numel == 2 else None
        if values is None or any(int(v) <= 0 for v in values):
            raise bad(shape_info, "weight_shape must hold two positive sizes [out, in]")
        out, inputs = (int(v) for v in values)
        if packed.dtype == "U8":  # nvfp4 / mxfp4 pack-quantized: two FP4 codes per byte, FP8 or E8M0 group scales
            if packed.shape != (out, group_count(inputs, 2)):
                raise bad(packed, f"shape {list(packed.shape)} does not pack weight_shape {[out, inputs]} at 4 bits")
            found = {"scale": scale, "shape": shape_info, **parts(tensors, module, {"global_scale": ".weight_global_scale"})}
            fmt = str((scheme.get("format") if scheme else None) or "fp4-pack-quantized")
            return QuantizedWeight(module + ".weight", CT_FP4, (out, inputs), 4, packed, found, None, {}, f"compressed-tensors {fmt}")
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
        found = {"scale": scale, "shape": shape_info}
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

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
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


METHOD = CompressedTensors()
