"""HQQ's own ``save_quantized`` (``hqq.models.hf.base.AutoHQQHFModel``): one ``qmodel.pt``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ...formats.base import TensorInfo
from ..layouts import bad, expect, need, parts
from ..raw import Stored, as_float32, round_to
from ..scheme import Method, QuantizedWeight, Scheme, int_setting
from .base import QuantMethod, Read

__all__ = ["HQQ", "METHOD"]

HQQ = Method("HQQ", "hqq", "hqq")


class Hqq(QuantMethod):
    """hqq 0.2 (``hqq/core/quantize.py`` ``HQQLinear.state_dict``): a quantized module stores ``W_q``
    (packed codes), ``scale`` and ``zero`` and, beside the tensors, its dense ``shape``, ``nbits``,
    ``group_size``, ``axis`` and ``packing`` (``formats/torch.py`` hands these over as the metadata
    entry ``hqq``). lmhead counts each module at that dense shape. It reads the layout hqq's HF
    models write (``axis`` 1: the weight grouped as ``reshape(-1, group_size)``, one scale and zero a
    group; ``packing`` ``8bit_u8`` / ``4bit_u8`` / ``2bit_u8``: grouped row r in packed row
    r mod (rows / k), field r div (rows / k), the first field in the high bits; scale and zero
    unquantized) exactly as ``Quantizer.dequantize``: ((q - zero) * scale), each step in the
    compute dtype, reshaped to ``shape``. Other HQQ settings are counted and refused by name."""

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
        unreadable = _unreadable(data, found, settings, shape, bits, group)
        return QuantizedWeight(module + ".weight", HQQ, (shape[0], shape[1]), bits, data, found, group, {"packing": packing}, unreadable)

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        group, per_byte = qw.group_size or qw.shape[1], 8 // qw.bits
        per_row = qw.shape[1] // group  # groups in one dense row
        first, last = start * per_row, stop * per_row  # grouped rows [first, last)
        step = qw.data.shape[0]  # packed rows: grouped rows / per_byte
        q = np.empty((last - first, group), dtype=np.float32)  # (R, group)
        mask = (1 << qw.bits) - 1
        for field in range(per_byte):  # BitPack.unpack_*: field f holds grouped rows f * step ... (f + 1) * step
            lo, hi = max(first, field * step), min(last, (field + 1) * step)
            if lo < hi:
                raw = stored.rows(qw.data, lo - field * step, hi - field * step)  # (hi - lo, group) uint8
                q[lo - first : hi - first] = (raw >> (qw.bits * (per_byte - 1 - field))) & mask
        scale_info, zero_info = qw.parts["scale"], qw.parts["zero"]
        dtype = DTYPES[scale_info.dtype]
        scale = as_float32(stored.rows(scale_info, first, last), scale_info.dtype)  # (R, 1)
        zero = as_float32(stored.rows(zero_info, first, last), zero_info.dtype)  # (R, 1)
        w = round_to(round_to(q - zero, dtype) * scale, dtype)  # (R, group), each step in the compute dtype
        return w.reshape(stop - start, qw.shape[1])


DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
PACKINGS = {"8bit_u8": 8, "4bit_u8": 4, "2bit_u8": 2}


def _unreadable(
    data: TensorInfo, found: dict[str, TensorInfo], settings: dict[str, Any], shape: list[int], bits: int, group: int | None
) -> str | None:
    """Why lmhead cannot dequantize this module (a layout of HQQ it does not implement); None if it can."""
    packing = settings.get("packing")
    what = f"HQQ {bits}-bit ({packing or 'unpacked'}"
    if PACKINGS.get(str(packing)) != bits or settings.get("axis") != 1 or settings.get("view_as_float"):
        return what + f", axis {settings.get('axis')})"
    if settings.get("quant_scale") or settings.get("quant_zero") or "zero" not in found:
        return what + ", quantized scales or zeros)"
    expect(data, ("U8",), 2)
    out, inputs = shape
    if not group or inputs % group:
        return what + f", groups of {group} across rows of {inputs})"
    groups = out * inputs // group
    if found["scale"].shape != (groups, 1) or found["zero"].shape != (groups, 1) or data.shape != (groups * bits // 8, group):
        raise bad(data, f"shape {list(data.shape)} does not hold {list(shape)} in {groups} groups of {group} at {bits} bits")
    if found["scale"].dtype not in DTYPES or found["zero"].dtype != found["scale"].dtype:
        return what + f", scales in {found['scale'].dtype})"
    return None


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
