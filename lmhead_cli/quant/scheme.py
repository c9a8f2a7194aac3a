"""Which quantization method wrote a checkpoint, and what one quantized weight is made of."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from ..formats.base import TensorInfo
from .detect import declared_config, torchao_metadata

__all__ = ["KNOWN_METHODS", "Method", "QuantizedWeight", "Scheme", "recognise"]

# quant_method values whose layouts ``layouts.group`` knows (others: tensors counted as stored, with a note)
KNOWN_METHODS = frozenset({"gptq", "awq", "bitsandbytes", "fp8", "fbgemm_fp8", "compressed-tensors", "mxfp4", "torchao"})


class Method(enum.Enum):
    """A stored layout; the value is the name people know it by (used in messages)."""

    GPTQ = "GPTQ"
    AWQ = "AWQ"
    BNB_NF4 = "bitsandbytes NF4"
    BNB_FP4 = "bitsandbytes FP4"
    BNB_INT8 = "bitsandbytes int8"
    FP8_BLOCK = "FP8 block"  # DeepSeek-V3 / transformers finegrained FP8: weight_scale_inv per 128 x 128 block
    FP8 = "FP8"  # per-tensor or per-channel weight_scale (compressed-tensors float-quantized, fbgemm_fp8)
    CT_INT = "compressed-tensors int"  # pack-quantized: weight_packed + weight_scale (+ zero point)
    CT_FP4 = "compressed-tensors FP4"  # nvfp4 / mxfp4 pack-quantized: weight_packed U8 + FP8 / E8M0 group scales
    MXFP4 = "MXFP4"
    TORCHAO_FP8 = "torchao float8"

    @property
    def dtype_label(self) -> str:
        """What ``count`` shows in its dtype column for the logical weight."""
        return {
            Method.GPTQ: "gptq",
            Method.AWQ: "awq",
            Method.BNB_NF4: "bnb-nf4",
            Method.BNB_FP4: "bnb-fp4",
            Method.BNB_INT8: "bnb-int8",
            Method.FP8_BLOCK: "fp8-block",
            Method.FP8: "fp8-scaled",
            Method.CT_INT: "ct-int",
            Method.CT_FP4: "ct-fp4",
            Method.MXFP4: "mxfp4",
            Method.TORCHAO_FP8: "torchao-fp8",
        }[self]


@dataclass(frozen=True)
class Scheme:
    """The checkpoint-wide quantization settings, as its config states them."""

    quant_method: str  # the config's own quant_method ("gptq", "awq", "bitsandbytes", "fp8", ...)
    source: str  # where it was read: "config.json quantization_config", "quantize_config.json", ...
    bits: int | None = None
    group_size: int | None = None  # None: per channel / not grouped; -1 in configs means one group per row
    settings: dict[str, Any] = field(default_factory=dict)  # the raw config, for method-specific keys

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass(frozen=True)
class QuantizedWeight:
    """One quantized module's weight: the stored tensors that make it, and its dense shape."""

    name: str  # logical name, e.g. "lm_head.weight"
    method: Method
    shape: tuple[int, ...]  # the dense weight's shape, (out, in) for a linear layer
    bits: int  # bits per stored weight element (4 or 8)
    data: TensorInfo  # the packed / low-precision values
    parts: dict[str, TensorInfo]  # role -> stored tensor: "scales", "qzeros", "g_idx", "absmax", ...
    group_size: int | None = None
    layout: dict[str, Any] = field(default_factory=dict)  # facts the dequantizer needs (offsets, block sizes, dtypes)
    unreadable: str | None = None  # why lmhead cannot dequantize it (a layout it does not implement); None: readable

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def metadata(self) -> list[TensorInfo]:
        """Every stored tensor but the values themselves: scales, zero points, indices, maps, states."""
        return list(self.parts.values())

    @property
    def nbytes(self) -> int:
        """Bytes of everything the module stores for its weight, metadata included."""
        return self.data.nbytes + sum(p.nbytes for p in self.parts.values())

    @property
    def bits_per_param(self) -> float:
        return 8 * self.nbytes / self.numel if self.numel else 0.0

    @property
    def module(self) -> str:
        return self.name[: -len(".weight")] if self.name.endswith(".weight") else self.name


def recognise(config: dict[str, Any] | None, quantize_config: dict[str, Any] | None, metadata: dict[str, str]) -> Scheme | None:
    """The checkpoint's quantization settings, or None when nothing says it is quantized.

    Looked for, in order: ``quantization_config`` in config.json (transformers
    writes it there for every method it loads), the same inside ``text_config``
    (vision-language wrappers), AutoGPTQ's ``quantize_config.json`` beside the
    weights, and torchao's JSON in the safetensors ``__metadata__``.
    """
    found = declared_config(config)
    if found is not None:
        return _scheme(found[1], f"{found[0]} quantization_config")
    if isinstance(quantize_config, dict):
        qc = dict(quantize_config)
        qc.setdefault("quant_method", "gptq")  # AutoGPTQ's own file: always GPTQ
        return _scheme(qc, "quantize_config.json")
    if torchao_metadata(metadata):
        return Scheme("torchao", "safetensors metadata (torchao tensor subclasses)", bits=8)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scheme(qc: dict[str, Any], source: str) -> Scheme:
    method = str(qc.get("quant_method") or "unknown").lower()
    bits = _int(qc.get("bits")) or _int(qc.get("w_bit"))
    group = _int(qc.get("group_size")) or _int(qc.get("q_group_size"))
    if method == "bitsandbytes":
        bits = 4 if qc.get("load_in_4bit") or qc.get("_load_in_4bit") else 8
        group = _int(qc.get("bnb_4bit_blocksize")) or (64 if bits == 4 else None)
    elif method == "compressed-tensors":
        weights = _ct_weights(qc)
        bits = _int(weights.get("num_bits")) if weights else None
        group = _int(weights.get("group_size")) if weights else None
    elif method in ("fp8", "fbgemm_fp8", "torchao"):
        bits = 8
        block = qc.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and all(_int(b) for b in block):
            group = block[1]
    elif method == "mxfp4":
        bits, group = 4, 32
    return Scheme(method, source, bits=bits, group_size=group, settings=qc)


def _ct_weights(qc: dict[str, Any]) -> dict[str, Any]:
    """compressed-tensors: the first config group's weight arguments."""
    groups = qc.get("config_groups")
    if isinstance(groups, dict):
        for entry in groups.values():
            if isinstance(entry, dict) and isinstance(entry.get("weights"), dict):
                return entry["weights"]
    return {}


def ct_weights(scheme: Scheme) -> dict[str, Any]:
    return _ct_weights(scheme.settings)
