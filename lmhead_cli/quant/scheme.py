"""Which quantization method wrote a checkpoint, and what one quantized weight is made of."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import NotDequantizable
from ..formats.base import TensorInfo

__all__ = ["Method", "QuantizedWeight", "Scheme", "generic_bits_and_group", "int_setting"]


@dataclass(frozen=True)
class Method:
    """A stored layout, defined by the ``QuantMethod`` that groups and reads it (``registry``)."""

    value: str  # the name people know it by (used in messages): "GPTQ", "bitsandbytes NF4", ...
    dtype_label: str  # what ``count`` shows in its dtype column for the logical weight: "gptq", "bnb-nf4", ...
    key: str  # the registry row of the method that reads it


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

    def not_dequantizable(self) -> NotDequantizable:
        """The refusal for a weight whose layout lmhead counts but cannot turn into rows."""
        return NotDequantizable(self.data.file, f"{self.module} is {self.method.value}-quantized; lmhead cannot dequantize it yet")


def int_setting(value: Any) -> int | None:
    """An integer setting of a config (a bool is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def generic_bits_and_group(qc: dict[str, Any]) -> tuple[int | None, int | None]:
    """``bits`` (or AutoAWQ's ``w_bit``) and ``group_size`` (or ``q_group_size``), as most configs name them."""
    bits = int_setting(qc.get("bits")) or int_setting(qc.get("w_bit"))
    return bits, int_setting(qc.get("group_size")) or int_setting(qc.get("q_group_size"))
