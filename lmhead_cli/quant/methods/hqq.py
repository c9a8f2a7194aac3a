"""HQQ's own ``save_quantized`` (``hqq.models.hf.base.AutoHQQHFModel``): one ``qmodel.pt``."""

from __future__ import annotations

import json
from typing import Any

from ...formats.base import TensorInfo
from ..layouts import bad, need, parts
from ..scheme import Method, QuantizedWeight, Scheme, int_setting
from .base import QuantMethod, Read

__all__ = ["HQQ", "METHOD"]

HQQ = Method("HQQ", "hqq", "hqq")


class Hqq(QuantMethod):
    """hqq 0.2 (``hqq/core/quantize.py`` ``HQQLinear.state_dict``): a quantized module stores ``W_q``
    (packed codes), ``scale`` and ``zero`` and, beside the tensors, its dense ``shape``, ``nbits``,
    ``group_size``, ``axis`` and ``packing`` (``formats/torch.py`` hands these over as the metadata
    entry ``hqq``). lmhead counts each module at that dense shape; it does not dequantize HQQ yet."""

    def metadata_scheme(self, metadata: dict[str, str]) -> Scheme:
        settings = _modules(metadata)
        bits = [int_setting(s.get("nbits")) for s in settings.values()]
        groups = [int_setting(s.get("group_size")) for s in settings.values()]
        return Scheme("hqq", "qmodel.pt (HQQ's settings beside each module)", _common(bits), _common(groups), {"modules": settings})

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len(".W_q")] if not late and name.endswith(".W_q") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        data = tensors[anchor]
        settings = _modules(metadata).get(module, {})
        shape = settings.get("shape")
        if not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise bad(data, "HQQ states no dense shape [out, in] for this module")
        need(tensors, module, ".scale", "HQQ")
        found = parts(tensors, module, {"scale": ".scale", "zero": ".zero", "bias": ".bias"})
        found.pop("bias", None)  # a bias is a parameter of its own, counted as stored
        bits = int_setting(settings.get("nbits")) or 0
        group = int_setting(settings.get("group_size"))
        packing = settings.get("packing")
        unreadable = f"HQQ {bits}-bit ({packing or 'unpacked'})"
        return QuantizedWeight(module + ".weight", HQQ, (shape[0], shape[1]), bits, data, found, group, {"packing": packing}, unreadable)


def _common(values: list[int | None]) -> int | None:
    """The setting most modules have; None where none states one."""
    found = [v for v in values if v]
    return max(set(found), key=found.count) if found else None


def _modules(metadata: dict[str, str]) -> dict[str, dict[str, Any]]:
    try:
        found = json.loads(metadata.get("hqq", "{}")).get("modules", {})
    except (ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


METHOD = Hqq()
