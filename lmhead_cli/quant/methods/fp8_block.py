"""FP8 with one inverse scale per block (DeepSeek-V3, transformers ``finegrained_fp8``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..dequant import blocked
from ..layouts import FP8_DTYPES, bad, expect, group_count, need, parts
from ..raw import Stored
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read

__all__ = ["FP8_BLOCK", "METHOD", "fp8_bits_and_group"]

FP8_BLOCK = Method("FP8 block", "fp8-block", "fp8_block")


def fp8_bits_and_group(qc: dict[str, Any]) -> tuple[int | None, int | None]:
    """8 bits; the group is the block's width where ``weight_block_size`` gives one."""
    block = qc.get("weight_block_size")
    if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and not isinstance(b, bool) and b for b in block):
        return 8, block[1]
    return 8, None


class FP8Block(QuantMethod):
    """DeepSeek-V3 ``inference/fp8_cast_bf16.py`` and ``kernel.py`` ``weight_dequant``; transformers
    ``finegrained_fp8``: ``weight`` F8_E4M3 [out, in], ``weight_scale_inv`` float32
    [ceil(out/b0), ceil(in/b1)]; W = weight * s for the block's s, b0 x b1 from
    ``weight_block_size`` (128 x 128)."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        return fp8_bits_and_group(qc)

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len(".weight_scale_inv")] if not late and name.endswith(".weight_scale_inv") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        data = need(tensors, module, ".weight", "FP8")
        scale = tensors[module + ".weight_scale_inv"]
        expect(data, FP8_DTYPES, 2)
        expect(scale, ("F32", "BF16", "F16"))
        block = scheme.get("weight_block_size") if scheme else None
        if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
            block = [128, 128]
        out, inputs = data.shape
        want: tuple[int, ...] = (group_count(out, block[0]), group_count(inputs, block[1]))
        if scale.numel == 1:
            want, block = scale.shape, [out, inputs]  # one scale for the whole tensor
        if scale.shape != want:
            raise bad(scale, f"shape {list(scale.shape)}, but {list(data.shape)} in {block[0]} x {block[1]} blocks needs {list(want)}")
        found = {"scale": scale, **parts(tensors, module, {"input_scale": ".input_scale"})}
        return QuantizedWeight(module + ".weight", FP8_BLOCK, data.shape, 8, data, found, block[1], {"block": tuple(block)})

    def stray(self, name: str, info: TensorInfo, tensors: dict[str, TensorInfo], scheme: Scheme | None) -> CheckpointError | None:
        """An FP8 matrix in a quantized checkpoint without any scale: its values are not the weights."""
        if scheme is not None and info.dtype in FP8_DTYPES and len(info.shape) == 2:
            return CheckpointError(info.file, f"{name} is stored as {info.dtype} without its scale ({scheme.quant_method} checkpoint)")
        return None

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """DeepSeek-V3 ``weight_dequant``: fp8 -> float32 times the block's scale_inv, stored as bfloat16."""
        return blocked(qw, start, stop, stored, "bfloat16")


METHOD = FP8Block()
