"""Which quantization method wrote a checkpoint: its settings from config.json, a file beside the weights, or metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .detect import declared_config, metadata_method
from .registry import TABLE, by_config_name, method
from .scheme import Scheme, generic_bits_and_group

__all__ = ["recognise", "scheme_from"]


def recognise(
    config: dict[str, Any] | None,
    quantize_config: dict[str, Any] | None,
    metadata: dict[str, str],
    sides: Mapping[str, Any] | None = None,
) -> Scheme | None:
    """The checkpoint's quantization settings, or None when nothing says it is quantized.

    Looked for, in order: ``quantization_config`` in config.json (transformers
    writes it there for every method it loads), the same inside ``text_config``
    (vision-language wrappers), a method's own file beside the weights
    (AutoGPTQ's ``quantize_config.json``, given as ``quantize_config``; the
    others in ``sides``, file name -> JSON), and a method's JSON in the
    safetensors ``__metadata__`` (torchao's tensor subclasses).
    """
    found = declared_config(config)
    if found is not None:
        return scheme_from(found[1], found[0])
    files = {**(sides or {}), "quantize_config.json": quantize_config}
    for row in TABLE:
        side = files.get(row.side_file) if row.side_file else None
        if isinstance(side, dict):
            return scheme_from(method(row).side_settings(side, config), row.side_file or "")
    key = metadata_method(metadata)
    if key is not None:
        return method(next(r for r in TABLE if r.key == key)).metadata_scheme(metadata)
    return None


def scheme_from(qc: dict[str, Any], source: str) -> Scheme:
    name = str(qc.get("quant_method") or "unknown").lower()
    row = by_config_name(name)
    bits, group = method(row).bits_and_group(qc) if row else generic_bits_and_group(qc)
    return Scheme(name, source, bits=bits, group_size=group, settings=qc)
