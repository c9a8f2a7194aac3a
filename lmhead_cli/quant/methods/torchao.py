"""torchao float8 as transformers saves it in safetensors (tensor subclasses flattened, JSON in the metadata)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ...core.errors import NotDequantizable
from ...formats.base import TensorInfo
from ..dequant import blocked
from ..layouts import FP8_DTYPES, bad, expect, need
from ..raw import Stored
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read
from .fp8_block import fp8_bits_and_group

__all__ = ["METHOD", "TORCHAO_FP8"]

TORCHAO_FP8 = Method("torchao float8", "torchao-fp8", "torchao")


class Torchao(QuantMethod):
    """torchao ``prototype/safetensors`` flattening: ``<module>._weight_qdata`` F8_E4M3 [out, in] and
    ``<module>._weight_scale`` float32 [out/b0, in/b1], the Float8Tensor's JSON (block size, dtype)
    in the file's ``__metadata__`` under ``<module>.weight``; W = qdata * scale
    (``quant_primitives.py`` ``_dequantize_affine_float8``), cast to that dtype."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        return fp8_bits_and_group(qc)

    def metadata_scheme(self, metadata: dict[str, str]) -> Scheme:
        return Scheme("torchao", "safetensors metadata (torchao tensor subclasses)", bits=8)

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len("._weight_qdata")] if not late and name.endswith("._weight_qdata") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        data = tensors[module + "._weight_qdata"]
        scale = need(tensors, module, "._weight_scale", "torchao float8")
        expect(data, FP8_DTYPES, 2)
        expect(scale, ("F32", "BF16", "F16"))
        out, inputs = data.shape
        sshape = scale.shape if len(scale.shape) == 2 else (1, 1) if scale.numel == 1 else ()
        if len(sshape) != 2 or not sshape[0] or not sshape[1] or out % sshape[0] or inputs % sshape[1]:
            raise bad(scale, f"shape {list(scale.shape)} does not tile {list(data.shape)} into blocks")
        block = (out // sshape[0], inputs // sshape[1])
        layout = {"block": block, "dtype": _dtype(metadata.get(module + ".weight"))}
        return QuantizedWeight(module + ".weight", TORCHAO_FP8, data.shape, 8, data, {"scale": scale}, block[1], layout)

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """torchao ``_dequantize_affine_float8``: qdata.float() * expanded scale, then ``.to(dtype)``. The
        dtype comes from the tensor's metadata; without it the rounding is unknown, so nothing is guessed."""
        dtype = qw.layout.get("dtype")
        if dtype is None:
            raise NotDequantizable(
                qw.data.file,
                f"{qw.module} is torchao float8 without its tensor metadata, which says the dtype its values are "
                "rounded to: lmhead cannot dequantize it exactly",
                hint="save it with transformers' safetensors serialization, which writes that metadata",
            )
        return blocked(qw, start, stop, stored, dtype)


def _dtype(entry: str | None) -> str | None:
    """The Float8Tensor's high-precision dtype from its metadata JSON (``{"_data": {"dtype": {"_data": "bfloat16"}}}``)."""
    try:
        described = json.loads(entry) if entry else None
        dtype = described["_data"]["dtype"]["_data"] if isinstance(described, dict) else None
    except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
        return None
    return dtype if isinstance(dtype, str) else None


METHOD = Torchao()
