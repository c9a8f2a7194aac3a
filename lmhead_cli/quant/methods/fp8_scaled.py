"""FP8 or int8 with ``weight_scale`` (compressed-tensors ``float-quantized`` / ``int-quantized``, fbgemm_fp8)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...formats.base import TensorInfo
from ..dequant import FLOAT_NAMES, blocked
from ..layouts import FP8_DTYPES, bad, expect, group_count, need, parts
from ..raw import Stored
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read
from .compressed_tensors import ct_weights
from .fp8_block import fp8_bits_and_group

__all__ = ["FP8", "INT8", "METHOD"]

FP8 = Method("FP8", "fp8-scaled", "fp8_scaled")
INT8 = Method("compressed-tensors int8", "ct-int8", "fp8_scaled")  # W8A8 int: I8 weight + weight_scale


class FP8Scaled(QuantMethod):
    """compressed-tensors ``float-quantized`` via ``quantization/lifecycle/forward.py`` ``dequantize``
    (x * scale); fbgemm_fp8 per channel: one scale per tensor, per output row [out, 1], per group
    [out, in/g], or per block. compressed-tensors ``int-quantized`` (W8A8 int8, the common vLLM
    layout) stores the same with an I8 ``weight``; ``dequantize`` is the same product (the int8 value
    widened to the scale's dtype, exact). Its anchor ``.weight_scale`` is shared: it claims late."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        return fp8_bits_and_group(qc)

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len(".weight_scale")] if late and name.endswith(".weight_scale") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        data = need(tensors, module, ".weight", "FP8 or int8")
        scale = tensors[module + ".weight_scale"]
        expect(data, (*FP8_DTYPES, "I8"), 2)
        expect(scale, ("F32", "BF16", "F16"))
        out, inputs = data.shape
        sshape = tuple(scale.shape)
        if scale.numel == 1:
            block = (out, inputs)
        elif sshape in ((out,), (out, 1)):
            block = (1, inputs)
        elif len(sshape) == 2 and sshape[0] == out:
            block = (1, group_count(inputs, sshape[1]))
            if group_count(inputs, block[1]) != sshape[1]:
                raise bad(scale, f"shape {list(sshape)} does not divide {inputs} inputs into groups")
        elif len(sshape) == 2 and sshape[0] and sshape[1]:
            weights = ct_weights(scheme) if scheme else {}
            given = weights.get("block_structure") or (scheme.get("weight_block_size") if scheme else None) or [128, 128]
            block = (int(given[0]), int(given[1]))
            if (group_count(out, block[0]), group_count(inputs, block[1])) != sshape:
                raise bad(scale, f"shape {list(sshape)} does not match {list(data.shape)} in {block[0]} x {block[1]} blocks")
        else:
            raise bad(scale, f"shape {list(sshape)} is no FP8 scale layout for {list(data.shape)}")
        found = {"scale": scale, **parts(tensors, module, {"input_scale": ".input_scale", "zero_point": ".weight_zero_point"})}
        method = INT8 if data.dtype == "I8" else FP8
        unreadable = f"{method.value} with a zero point" if "zero_point" in found else None
        return QuantizedWeight(module + ".weight", method, data.shape, 8, data, found, block[1], {"block": block}, unreadable)

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """compressed-tensors ``dequantize``: x_q * scale in the scale's dtype."""
        return blocked(qw, start, stop, stored, FLOAT_NAMES.get(qw.parts["scale"].dtype))


METHOD = FP8Scaled()
