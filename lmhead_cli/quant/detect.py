"""Whether a checkpoint can hold quantized weights at all, from its config and tensor names.

This module imports only ``registry`` (which imports nothing): a dense checkpoint (the common
case) answers here and never loads the layouts, the methods or the dequantizers. ``recognise``
and ``group`` read the same facts from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .registry import TABLE

__all__ = [
    "ANCHOR_SUFFIXES",
    "KNOWN_METHODS",
    "DECLARED_PARTS",
    "LOOSE_METADATA",
    "MARKERS",
    "QUANT_SUFFIXES",
    "SIDE_FILES",
    "declared_config",
    "may_be_quantized",
    "torchao_metadata",
]


def _union(field: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for row in TABLE for s in getattr(row, field)))


# Tensors that only describe quantization (activation scales, format flags): bytes, never parameters.
LOOSE_METADATA = _union("loose")
# Suffixes that mean "part of a quantized module"; one left over after grouping is an error.
QUANT_SUFFIXES = _union("parts")
# Suffixes that mean so only where a config declares a method (a dense model may call a parameter "scales").
DECLARED_PARTS = _union("declared_parts")
# Names ``group`` starts a quantized module from, besides QUANT_SUFFIXES
ANCHOR_SUFFIXES = _union("anchors")
# Substrings of stored names that only one method writes
MARKERS = _union("markers")
# JSON files beside the weights that say which method wrote them (``quantize_config.json``, ...)
SIDE_FILES = tuple(row.side_file for row in TABLE if row.side_file)
# quant_method values whose layouts ``layouts.group`` knows (others: tensors counted as stored, with a note)
KNOWN_METHODS = frozenset(name for row in TABLE for name in row.config_names)


MLX_KEYS = ("quantization", "quantization_config")  # mlx-lm writes both, the same dict, with no quant_method


def declared_config(config: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(where it was read, settings) of ``quantization_config`` in config.json, or inside its ``text_config``.

    mlx-lm's ``"quantization": {"group_size", "bits", "mode", <module>: {...}}`` (copied to
    ``quantization_config`` without a ``quant_method``) is read as ``quant_method: "mlx"``."""
    for where, section in (("config.json", config), ("config.json text_config", (config or {}).get("text_config"))):
        if not isinstance(section, dict):
            continue
        qc = section.get("quantization_config")
        if isinstance(qc, dict) and "quant_method" in qc:
            return f"{where} quantization_config", qc
        for key in MLX_KEYS:
            mlx = section.get(key)
            if isinstance(mlx, dict) and "quant_method" not in mlx and "bits" in mlx and "group_size" in mlx:
                return f"{where} {key} (mlx-lm)", {**mlx, "quant_method": "mlx"}
        if isinstance(qc, dict):
            return f"{where} quantization_config", qc
    return None


def metadata_method(metadata: dict[str, str]) -> str | None:
    """The registry key of the method whose JSON the safetensors ``__metadata__`` holds, if any."""
    for row in TABLE:
        if any(marker in v for marker in row.metadata for v in metadata.values() if isinstance(v, str)):
            return row.key
    return None


def torchao_metadata(metadata: dict[str, str]) -> bool:
    """torchao's tensor-subclass JSON in the safetensors ``__metadata__``."""
    return metadata_method(metadata) == "torchao"


def may_be_quantized(
    config: dict[str, Any] | None,
    quantize_config: Any,
    metadata: dict[str, str],
    names: Iterable[str],
    sides: Mapping[str, Any] | None = None,
) -> bool:
    """False only when ``recognise`` finds no method and ``group`` no quantized module (nor a stray part).

    ``quantize_config`` is AutoGPTQ's ``quantize_config.json``; ``sides`` every other ``SIDE_FILES``
    entry found beside the weights (file name -> its JSON)."""
    if declared_config(config) is not None or isinstance(quantize_config, dict) or metadata_method(metadata) is not None:
        return True
    if any(value is not None for value in (sides or {}).values()):
        return True
    return any(name.endswith(QUANT_SUFFIXES) or name.endswith(ANCHOR_SUFFIXES) or any(m in name for m in MARKERS) for name in names)
