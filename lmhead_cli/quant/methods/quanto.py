"""optimum-quanto's own ``save_pretrained`` (``QuantizedModelForCausalLM``): ``quanto_qmap.json`` beside the weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...formats.base import TensorInfo
from ..layouts import bad, expect, need, parts
from ..raw import Stored, as_float32, round_to
from ..scheme import Method, QuantizedWeight, Scheme
from .base import QuantMethod, Read

__all__ = ["METHOD", "QUANTO_BYTES", "QUANTO_PACKED"]

QUANTO_BYTES = Method("quanto 8-bit", "quanto-8", "quanto")  # weight._data I8 or F8 [out, in], weight._scale [out, 1]
QUANTO_PACKED = Method("quanto 4/2-bit", "quanto-packed", "quanto")  # weight._data._data U8, in groups

FLOAT_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
BITS = {"qint2": 2, "qint4": 4, "qint8": 8, "qfloat8": 8, "qfloat8_e4m3fn": 8, "qfloat8_e5m2": 8, "qfloat8_e4m3fnuz": 8}


class Quanto(QuantMethod):
    """optimum-quanto 0.2 (``tensor/qbytes.py``, ``tensor/qbits.py``, ``tensor/packed.py``,
    ``tensor/grouped.py``). ``quanto_qmap.json`` names each quantized module's weight qtype; config.json
    has no ``quantization_config``. 8-bit: ``weight._data`` [out, in] and ``weight._scale`` [out, 1];
    W = scale * data in the scale's dtype. 4- and 2-bit: the weight grouped along the input
    (``reshape(-1, group)``: G = out * in / group rows), stored as ``weight._data._data`` U8 [ceil(G / k),
    group] with k = 8 / bits fields a byte (grouped row r in byte row r mod ceil(G / k), field r div
    ceil(G / k), low bits first), ``weight._scale`` and ``weight._shift`` [G, 1];
    W = scale * q - shift, each step in the scale's dtype, ungrouped to [out, in]. The packed layout
    does not store out and in: a module holding vocab_size × hidden_size values (the head, the
    embedding) takes that shape from config.json; the others are counted in quanto's grouped shape."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        kinds = [BITS.get(str(v.get("weights"))) for v in qc.get("modules", {}).values() if isinstance(v, dict)]
        found = [k for k in kinds if k]
        return (max(set(found), key=found.count) if found else None), None

    def side_settings(self, settings: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
        text = (config or {}).get("text_config") if isinstance((config or {}).get("text_config"), dict) else config
        dims = {k: (text or {}).get(k) for k in ("vocab_size", "hidden_size")}
        return {"quant_method": "quanto", "modules": settings, **{k: v for k, v in dims.items() if isinstance(v, int) and v > 0}}

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        return name[: -len(".weight._scale")] if not late and name.endswith(".weight._scale") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        scale = tensors[anchor]
        expect(scale, ("F32", "BF16", "F16"), 2)
        qtype = str(((scheme.get("modules") if scheme else None) or {}).get(module, {}).get("weights", ""))
        if module + ".weight._data._data" in tensors:
            return _packed(tensors, module, scale, scheme, qtype)
        data = need(tensors, module, ".weight._data", "quanto")
        expect(data, ("I8", "F8_E4M3", "F8_E5M2"), 2)
        if scale.shape != (data.shape[0], 1):
            raise bad(scale, f"shape {list(scale.shape)}, but quanto stores one scale per row of {list(data.shape)}")
        return QuantizedWeight(module + ".weight", QUANTO_BYTES, data.shape, 8, data, {"scale": scale}, None, {"qtype": qtype or "qint8"})

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        scale_info = qw.parts["scale"]
        dtype = FLOAT_NAMES.get(scale_info.dtype)
        if qw.method is QUANTO_BYTES:  # QBytesDequantizer: scale * data, in the scale's dtype
            data = as_float32(stored.rows(qw.data, start, stop), qw.data.dtype)  # (C, in)
            scale = as_float32(stored.rows(scale_info, start, stop), scale_info.dtype)  # (C, 1)
            return round_to(scale * data, dtype)
        return _packed_rows(qw, start, stop, stored, dtype)


def _packed(tensors: dict[str, TensorInfo], module: str, scale: TensorInfo, scheme: Scheme | None, qtype: str) -> QuantizedWeight:
    data = tensors[module + ".weight._data._data"]
    shift = need(tensors, module, ".weight._shift", "quanto")
    expect(data, ("U8",), 2)
    bits = BITS.get(qtype, 4)
    if bits not in (2, 4):
        raise bad(data, f"quanto_qmap.json says {qtype or 'nothing'} for {module}, but quanto packs only qint4 and qint2")
    per_byte = 8 // bits
    groups, group = scale.shape[0], data.shape[1]
    if data.shape[0] != -(-groups // per_byte) or shift.shape != scale.shape:
        raise bad(data, f"shape {list(data.shape)} does not pack {groups} groups of scale {list(scale.shape)} at {bits} bits")
    numel = groups * group
    vocab, hidden = (scheme.get("vocab_size"), scheme.get("hidden_size")) if scheme else (None, None)
    dense = isinstance(vocab, int) and isinstance(hidden, int) and numel == vocab * hidden and hidden % group == 0
    shape = (vocab, hidden) if dense else (groups, group)
    layout = {"qtype": qtype or f"qint{bits}", "group": group, "rows": data.shape[0]}
    unreadable = None if dense else f"quanto {qtype or f'qint{bits}'} (its dense shape is not stored: counted in groups of {group})"
    found = {"scale": scale, **parts(tensors, module, {"shift": ".weight._shift"})}
    assert isinstance(shape[0], int) and isinstance(shape[1], int)
    return QuantizedWeight(module + ".weight", QUANTO_PACKED, (shape[0], shape[1]), bits, data, found, group, layout, unreadable)


def _packed_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored, dtype: str | None) -> np.ndarray:
    """QBitsDequantizer on the grouped rows dense rows ``start:stop`` cover: unpack, scale * q, minus shift."""
    group, rows, per_byte = qw.layout["group"], qw.layout["rows"], 8 // qw.bits
    per_row = qw.shape[1] // group  # groups in one dense row
    first, last = start * per_row, stop * per_row  # grouped rows [first, last)
    q = np.empty((last - first, group), dtype=np.float32)  # (R, group)
    mask = (1 << qw.bits) - 1
    for field in range(per_byte):  # grouped rows field * rows ... (field + 1) * rows sit in bits field * bits
        lo, hi = max(first, field * rows), min(last, (field + 1) * rows)
        if lo < hi:
            raw = stored.rows(qw.data, lo - field * rows, hi - field * rows)  # (hi - lo, group) uint8
            q[lo - first : hi - first] = (raw >> (field * qw.bits)) & mask
    scale_info, shift_info = qw.parts["scale"], qw.parts["shift"]
    scale = as_float32(stored.rows(scale_info, first, last), scale_info.dtype)  # (R, 1)
    shift = as_float32(stored.rows(shift_info, first, last), shift_info.dtype)  # (R, 1)
    w = round_to(round_to(scale * q, dtype) - shift, dtype)  # (R, group)
    return w.reshape(stop - start, qw.shape[1])  # ungroup: consecutive groups make a row


METHOD = Quanto()
