"""Whether a checkpoint can hold quantized weights at all, from its config and tensor names.

This module imports nothing: a dense checkpoint (the common case) answers here and never loads
the layouts and dequantizers. ``recognise`` and ``group`` read the same facts from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["LOOSE_METADATA", "QUANT_SUFFIXES", "declared_config", "may_be_quantized", "torchao_metadata"]

# Tensors that only describe quantization (activation scales, format flags): bytes, never parameters.
LOOSE_METADATA = (".input_scale", ".output_scale", ".k_scale", ".v_scale", ".weight_format", ".input_global_scale", ".weight_global_scale")
# Suffixes that mean "part of a quantized module"; one left over after grouping is an error.
QUANT_SUFFIXES = (
    ".qweight",
    ".qzeros",
    ".g_idx",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".SCB",
    ".weight_scale_inv",
    ".weight_packed",
    ".weight_zero_point",
    ".weight_shape",
    ".weight_g_idx",
    "._weight_qdata",
    "._weight_scale",
    ":qdata",
    ":_data",
)
# Names ``group`` starts a quantized module from, besides QUANT_SUFFIXES
ANCHOR_SUFFIXES = (".weight_scale", "_blocks")
BNB_STATE = ".weight.quant_state.bitsandbytes__"


def declared_config(config: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(where, settings) of ``quantization_config`` in config.json, or inside its ``text_config``."""
    for where, section in (("config.json", config), ("config.json text_config", (config or {}).get("text_config"))):
        qc = section.get("quantization_config") if isinstance(section, dict) else None
        if isinstance(qc, dict):
            return where, qc
    return None


def torchao_metadata(metadata: dict[str, str]) -> bool:
    """torchao's tensor-subclass JSON in the safetensors ``__metadata__``."""
    return any('"Float8Tensor"' in v or '"_type": "Float8Tensor"' in v for v in metadata.values() if isinstance(v, str))


def may_be_quantized(config: dict[str, Any] | None, quantize_config: Any, metadata: dict[str, str], names: Iterable[str]) -> bool:
    """False only when ``recognise`` finds no method and ``group`` no quantized module (nor a stray part)."""
    if declared_config(config) is not None or isinstance(quantize_config, dict) or torchao_metadata(metadata):
        return True
    return any(name.endswith(QUANT_SUFFIXES) or name.endswith(ANCHOR_SUFFIXES) or BNB_STATE in name for name in names)
