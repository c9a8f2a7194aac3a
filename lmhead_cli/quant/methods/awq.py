"""AWQ (AutoAWQ GEMM): int32 words packed along the output dimension in the order 0,2,4,6,1,3,5,7."""

from __future__ import annotations

import numpy as np

from ...formats.base import TensorInfo
from ..dequant import FLOAT_NAMES, unpack
from ..layouts import bad, group_count
from ..raw import Stored, as_float32, round_to
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read
from .gptq import qweight_kind, qweight_parts

__all__ = ["AWQ_LAYOUT", "METHOD"]

AWQ_LAYOUT = Method("AWQ", "awq", "awq")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # output column 8c + AWQ_ORDER[i] sits in bits [4i, 4i+4) of word c


class AWQ(QuantMethod):
    """AutoAWQ GEMM (``awq/utils/packing_utils.py``, ``awq/modules/linear/gemm.py``): qweight int32
    [in, out*bits/32] packed along the output dimension in the order 0,2,4,6,1,3,5,7; qzeros
    [groups, out*bits/32] packed the same way; scales [groups, out]. It shares GPTQ's tensor
    names: ``gptq.qweight_kind`` tells the two apart."""

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        if late or not name.endswith(".qweight"):
            return None
        module = name[: -len(".qweight")]
        return module if qweight_kind(tensors, module, scheme) == "awq" else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        qweight = tensors[module + ".qweight"]
        found = qweight_parts(tensors, module)
        scales, qzeros = found["scales"], found["qzeros"]
        version = str(scheme.get("version", "gemm") if scheme else "gemm").lower()
        out = scales.shape[1]
        if version not in ("gemm",):
            # GEMV / exllama / marlin repack the words differently; the dense shape still follows from the scales
            bits = scheme.bits if scheme and scheme.bits else 4
            inputs = qweight.shape[1] * 32 // bits if version.startswith("gemv") else qweight.shape[0]
            return QuantizedWeight(
                module + ".weight", AWQ_LAYOUT, (out, inputs), bits, qweight, found, None, {}, f"AWQ version {version!r}"
            )
        inputs = qweight.shape[0]
        bits = 32 * qweight.shape[1] // out if out else 0
        if bits not in (2, 4, 8) or bits * out != 32 * qweight.shape[1]:
            raise bad(qweight, f"shape {list(qweight.shape)} does not pack {out} outputs (from {scales.name}) at 2, 4 or 8 bits")
        unreadable = None if bits == 4 else f"{bits}-bit AWQ"
        if scheme and scheme.bits and scheme.bits != bits:
            raise bad(qweight, f"stores {bits}-bit values, but the quantization config says {scheme.bits} bits")
        if qzeros.shape != (scales.shape[0], qweight.shape[1]):
            raise bad(qzeros, f"shape {list(qzeros.shape)}, expected {[scales.shape[0], qweight.shape[1]]}")
        group = scheme.group_size if scheme and scheme.group_size and scheme.group_size > 0 else None
        group = group or (inputs // scales.shape[0] if scales.shape[0] else inputs)
        if group_count(inputs, group) != scales.shape[0]:
            raise bad(scales, f"{scales.shape[0]} groups, but {inputs} inputs in groups of {group} make {group_count(inputs, group)}")
        return QuantizedWeight(module + ".weight", AWQ_LAYOUT, (out, inputs), bits, qweight, found, group, {}, unreadable)

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """AutoAWQ ``dequantize_gemm``: unpack words along the output dimension, undo the
        0,2,4,6,1,3,5,7 order; W[k, o] = (q[k, o] - zeros[k // g, o]) * scales[k // g, o] in fp16."""
        per_word = 8  # 4-bit only: the order below is AutoAWQ's AWQ_REVERSE_ORDER (0,4,1,5,2,6,3,7)
        reverse = np.argsort(AWQ_ORDER)  # column j of a word's 8 is field reverse[j]
        first, last = start // per_word, -(-stop // per_word)
        lo, hi = start - first * per_word, stop - first * per_word

        def columns(info: TensorInfo) -> np.ndarray:  # (N, words) -> (N, C) in column order
            fields = unpack(stored.cols(info, first, last), 4, axis=1)  # (N, words * 8) in field order
            fields = fields.reshape(fields.shape[0], -1, per_word)[:, :, reverse]
            return fields.reshape(fields.shape[0], -1)[:, lo:hi]

        q = columns(qw.data)  # (in, C)
        zeros = columns(qw.parts["qzeros"])  # (G, C)
        scales_info = qw.parts["scales"]
        scales = as_float32(stored.cols(scales_info, start, stop), scales_info.dtype)  # (G, C)
        groups = np.arange(qw.shape[1]) // (qw.group_size or qw.shape[1])
        w = (q - zeros[groups]).astype(np.float32) * scales[groups]  # (in, C)
        return round_to(w, FLOAT_NAMES.get(scales_info.dtype)).T


METHOD = AWQ()
