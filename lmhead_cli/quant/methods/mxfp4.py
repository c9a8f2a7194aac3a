"""MXFP4 (gpt-oss expert tensors): FP4 E2M1 blocks of 32 with E8M0 scales."""

from __future__ import annotations

from typing import Any

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..layouts import bad, expect
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read

__all__ = ["METHOD", "MXFP4"]

MXFP4 = Method("MXFP4", "mxfp4", "mxfp4")


class Mxfp4(QuantMethod):
    """transformers ``integrations/mxfp4.py`` ``convert_moe_packed_tensors``: ``<name>_blocks`` uint8
    [..., out, in/32, 16] (two FP4 E2M1 codes per byte) and ``<name>_scales`` uint8 [..., out, in/32]
    (E8M0 exponents, bias 127). The logical parameter is ``<name>`` with in = (in/32) * 32. The LM
    head is never stored so: nothing here is dequantized."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        return 4, 32

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        if late or not name.endswith("_blocks"):
            return None
        prefix = name[: -len("_blocks")]
        return prefix if prefix + "_scales" in tensors else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        blocks = tensors[module + "_blocks"]
        scales = tensors[module + "_scales"]
        expect(blocks, ("U8",))
        expect(scales, ("U8",))
        if len(blocks.shape) < 3 or blocks.shape[-1] != 16 or scales.shape != blocks.shape[:-1]:
            raise bad(scales, f"shape {list(scales.shape)} does not match blocks {list(blocks.shape)} (… , G, 16)")
        shape = (*blocks.shape[:-2], blocks.shape[-2] * 32)
        return QuantizedWeight(module, MXFP4, shape, 4, blocks, {"scales": scales}, 32, {}, "MXFP4 expert tensors")

    def stray(self, name: str, info: TensorInfo, tensors: dict[str, TensorInfo], scheme: Scheme | None) -> CheckpointError | None:
        if name.endswith("_blocks") and scheme is not None and scheme.quant_method == "mxfp4":
            return CheckpointError(info.file, f"{name} holds MXFP4 blocks, but {name[: -len('_blocks')]}_scales is missing")
        return None


METHOD = Mxfp4()
