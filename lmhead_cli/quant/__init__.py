"""Quantized checkpoints: which method wrote them, one logical weight per quantized module, dequantized rows.

This package knows nothing of architectures or roles. ``recognise`` reads the
method from a config (``quantization_config``, also inside ``text_config``), a
method's own file beside the weights (``quantize_config.json``) or safetensors
metadata; ``group`` turns each quantized module's stored tensors (packed
weight, scales, zero points, ...) into one ``QuantizedWeight`` with its true
dense shape; ``read_rows`` turns row ranges of it back into float32, exactly as
the method's own dequantizer does, from bytes ``Stored`` reads through the
checkpoint's Readers.

Every method is one class, registered in one table:

* ``registry.TABLE``: one ``Registration`` row per method, the facts ``detect``
  needs before any method's code is loaded (the config ``quant_method`` names
  it reads, the name suffixes only it stores, its describe-only tensors, its
  file beside the weights). ``detect`` imports only this: a dense checkpoint
  stops there.
* ``methods/<key>.py``: ``METHOD``, an instance of a ``methods.base.QuantMethod``
  subclass, and the ``scheme.Method`` layouts it produces.

How to add a quantization method:

1. Write ``methods/<key>.py`` with a ``QuantMethod`` subclass and
   ``METHOD = YourMethod()``. Override what the layout needs: ``bits_and_group``
   (its ``quantization_config``), ``claim`` (which stored name starts one of its
   modules, and so the module's name), ``group`` (the module's tensors as one
   ``QuantizedWeight``: dense shape, bits, parts; an error naming the missing or
   mismatched part; ``unreadable`` set where lmhead counts it but cannot
   dequantize it), ``stray`` (a leftover tensor it can name the problem of) and
   ``read_rows`` (rows exactly as the tool's own dequantizer returns them,
   rounding included; cite the tool's function in the docstring). Shared
   helpers: ``layouts`` (``need``, ``expect``, ``bad``) and ``dequant``
   (``unpack``, ``blocked``) and ``raw`` (``Stored``, ``round_to``).
2. Add its ``Registration`` to ``registry.TABLE``. Its place in the table is
   the order in which it is offered stored names: put it before a method whose
   anchor it shares and must win over.
3. Add a fixture made by the tool itself (``tests/fixtures/make_*.py``) and its
   tests in ``tests/quant/``: the dense-equivalent count against the source
   model's ``num_parameters()``, the head against the tool's dequantization.
4. Add its row to README's quantized table.

Nothing else changes: ``count``'s dtype label, census's layout names and the
"cannot dequantize" refusal (``core.errors.NotDequantizable``) come from the
method's ``scheme.Method`` values.

Layer rule: imports only core, formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_getattr

if TYPE_CHECKING:
    from .dequant import read_rows
    from .layouts import Grouping, group
    from .methods.base import QuantMethod
    from .raw import Stored
    from .recognition import recognise
    from .registry import TABLE, Registration
    from .scheme import Method, QuantizedWeight, Scheme

# Loaded on first use: a dense checkpoint stops at ``detect`` and never pays for the rest.
_LAZY = {
    "read_rows": "dequant",
    "Grouping": "layouts",
    "group": "layouts",
    "Stored": "raw",
    "Method": "scheme",
    "QuantMethod": "methods.base",
    "Registration": "registry",
    "TABLE": "registry",
    "QuantizedWeight": "scheme",
    "Scheme": "scheme",
    "recognise": "recognition",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "TABLE",
    "Grouping",
    "Method",
    "QuantMethod",
    "QuantizedWeight",
    "Registration",
    "Scheme",
    "Stored",
    "group",
    "read_rows",
    "recognise",
]
