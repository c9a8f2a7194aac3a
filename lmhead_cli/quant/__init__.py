"""Quantized checkpoints: which method wrote them, one logical weight per quantized module, dequantized rows.

This package knows nothing of architectures or roles. ``recognise`` reads the
method from a config (``quantization_config``, also inside ``text_config``),
``quantize_config.json`` or safetensors metadata; ``group`` turns each
quantized module's stored tensors (packed weight, scales, zero points, ...)
into one ``QuantizedWeight`` with its true dense shape; ``read_rows`` turns row
ranges of it back into float32, exactly as the method's own dequantizer does,
from bytes ``Stored`` reads through the checkpoint's Readers.

Layer rule: imports only core, formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_getattr

if TYPE_CHECKING:
    from .dequant import read_rows
    from .layouts import Grouping, group
    from .raw import Stored
    from .scheme import Method, QuantizedWeight, Scheme, recognise

# Loaded on first use: a dense checkpoint stops at ``detect`` and never pays for the rest.
_LAZY = {
    "read_rows": "dequant",
    "Grouping": "layouts",
    "group": "layouts",
    "Stored": "raw",
    "Method": "scheme",
    "QuantizedWeight": "scheme",
    "Scheme": "scheme",
    "recognise": "scheme",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = ["Grouping", "Method", "QuantizedWeight", "Scheme", "Stored", "group", "read_rows", "recognise"]
