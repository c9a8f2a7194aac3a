"""GPTQ (AutoGPTQ, GPTQModel): int32 words packed along the input dimension, group scales and zeros."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..dequant import FLOAT_NAMES, groups_of, unpack
from ..layouts import bad, expect, group_count, need, parts
from ..raw import Stored, as_float32, round_to
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read

__all__ = ["GPTQ_LAYOUT", "METHOD", "qweight_kind"]

GPTQ_LAYOUT = Method("GPTQ", "gptq", "gptq")


def qweight_kind(tensors: dict[str, TensorInfo], module: str, scheme: Scheme | None) -> str:
    """GPTQ and AWQ share tensor names (qweight, qzeros, scales) but not their layout: "gptq" or "awq",
    from the config, else from the shapes (GPTQ's qweight has one column per output, AWQ's packs them)."""
    qweight = tensors[module + ".qweight"]
    method_name = scheme.quant_method if scheme else None
    what = "AWQ" if method_name == "awq" else "GPTQ"
    scales = need(tensors, module, ".scales", what)
    qzeros = need(tensors, module, ".qzeros", what)
    expect(qweight, ("I32", "U32"), 2)
    expect(qzeros, ("I32", "U32"), 2)
    expect(scales, ("F16", "BF16", "F32"), 2)
    if method_name in ("gptq", "awq"):
        return method_name
    return "gptq" if qweight.shape[1] == scales.shape[1] else "awq"  # no config names it: the shapes tell


def qweight_parts(tensors: dict[str, TensorInfo], module: str) -> dict[str, TensorInfo]:
    return {"scales": tensors[module + ".scales"], "qzeros": tensors[module + ".qzeros"], **parts(tensors, module, {"g_idx": ".g_idx"})}


class GPTQ(QuantMethod):
    """AutoGPTQ ``qlinear_cuda_old`` / GPTQModel ``nn_modules/qlinear/__init__.py`` ``dequantize_weight``:
    qweight int32 [in*bits/32, out], packed along the input dimension, element j of a word in bits
    [j*bits, (j+1)*bits); qzeros int32 [groups, out*bits/32] packed along the output dimension;
    scales [groups, out]; g_idx int32 [in] (act-order) maps input row -> group."""

    def side_settings(self, settings: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
        qc = dict(settings)
        qc.setdefault("quant_method", "gptq")  # AutoGPTQ's own file: always GPTQ
        return qc

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        if late or not name.endswith(".qweight"):
            return None
        module = name[: -len(".qweight")]
        return module if qweight_kind(tensors, module, scheme) == "gptq" else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        qweight = tensors[module + ".qweight"]
        found = qweight_parts(tensors, module)
        scales, qzeros, g_idx = found["scales"], found["qzeros"], found.get("g_idx")
        out = qweight.shape[1]
        bits = None
        if g_idx is not None:  # g_idx has one entry per input row: the packing ratio gives the bits exactly
            expect(g_idx, ("I32", "I64"), 1)
            bits = 32 * qweight.shape[0] // g_idx.shape[0] if g_idx.shape[0] else None
            if bits is None or bits * g_idx.shape[0] != 32 * qweight.shape[0]:
                raise bad(g_idx, f"{g_idx.shape[0]} entries do not match {qweight.name} {list(qweight.shape)} at any bit width")
        config_bits = scheme.bits if scheme else None
        if bits is None:
            bits = config_bits
        if bits is None:
            raise bad(qweight, "GPTQ weight without g_idx and without a config giving its bits: its input size is unknown")
        if config_bits is not None and config_bits != bits:
            raise bad(qweight, f"stores {bits}-bit values, but the quantization config says {config_bits} bits")
        if bits not in (2, 3, 4, 8):
            raise bad(qweight, f"GPTQ with {bits} bits is not a layout GPTQ writes")
        inputs = qweight.shape[0] * 32 // bits
        if scales.shape[1] != out:
            raise bad(scales, f"shape {list(scales.shape)} does not match {qweight.name}'s {out} outputs")
        if qzeros.shape[0] != scales.shape[0] or qzeros.shape[1] * 32 < out * bits or (qzeros.shape[1] - 1) * 32 >= out * bits:
            raise bad(qzeros, f"shape {list(qzeros.shape)} does not match {scales.shape[0]} groups of {out} {bits}-bit zero points")
        group = scheme.group_size if scheme and scheme.group_size and scheme.group_size > 0 else None
        if g_idx is None:
            group = group or inputs  # group_size -1: one group spans every input row
            if group_count(inputs, group) != scales.shape[0]:
                raise bad(scales, f"{scales.shape[0]} groups, but {inputs} inputs in groups of {group} make {group_count(inputs, group)}")
        fmt = str((scheme.get("checkpoint_format") or scheme.get("format") if scheme else None) or "gptq")
        unreadable = None
        if bits == 3:
            unreadable = "3-bit GPTQ packing"
        elif fmt not in ("gptq", "gptq_v2"):
            unreadable = f"GPTQ checkpoint_format {fmt!r}"
        return QuantizedWeight(
            name=module + ".weight",
            method=GPTQ_LAYOUT,
            shape=(out, inputs),
            bits=bits,
            data=qweight,
            parts=found,
            group_size=group,
            # AutoGPTQ's v1 format stores zero - 1 (GPTQModel converts v1 -> v2 by adding 1 on load)
            layout={"zero_offset": 0 if fmt == "gptq_v2" else 1},
            unreadable=unreadable,
        )

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """GPTQModel ``dequantize_weight``: W[k, o] = scales[g(k), o] * (q[k, o] - (zeros[g(k), o] + offset)),
        computed in the scales' dtype; g = g_idx (act-order) or k // group_size."""
        bits, inputs = qw.bits, qw.shape[1]
        per_word = 32 // bits
        q = unpack(stored.cols(qw.data, start, stop), bits, axis=0)[:inputs]  # (in, C)
        scales_info, zeros_info = qw.parts["scales"], qw.parts["qzeros"]
        first, last = start // per_word, -(-stop // per_word)
        zeros = unpack(stored.cols(zeros_info, first, last), bits, axis=1)  # (G, span)
        zeros = zeros[:, start - first * per_word : stop - first * per_word] + qw.layout["zero_offset"]  # (G, C)
        scales = as_float32(stored.cols(scales_info, start, stop), scales_info.dtype)  # (G, C)
        groups = groups_of(stored, qw.parts.get("g_idx"), inputs, qw.group_size)
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


METHOD = GPTQ()
