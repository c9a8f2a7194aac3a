"""bitsandbytes: 4-bit NF4 / FP4 (flat codes, block absmax, a JSON quant_state) and LLM.int8 (row scales)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..layouts import bad, expect, group_count, need, parts
from ..raw import Stored, as_float32, round_to
from ..scheme import Method, QuantizedWeight, Scheme, int_setting
from .base import QuantMethod, Read

__all__ = ["METHOD", "NF4", "FP4", "INT8"]

NF4 = Method("bitsandbytes NF4", "bnb-nf4", "bitsandbytes")
FP4 = Method("bitsandbytes FP4", "bnb-fp4", "bitsandbytes")
INT8 = Method("bitsandbytes int8", "bnb-int8", "bitsandbytes")
STATE = ".weight.quant_state.bitsandbytes__"


class Bitsandbytes(QuantMethod):
    """4-bit (``bitsandbytes/functional.py`` ``QuantState.as_dict(packed=True)``): ``weight`` holds two
    4-bit codes per byte, first element in the high nibble (``backends/default/ops.py``
    ``_dequantize_4bit_compute``), over the row-major flattened weight; ``weight.absmax`` one scale per
    ``blocksize`` elements (uint8 codes of a second blockwise quantization when nested, with
    ``nested_absmax``, ``nested_quant_map`` and ``nested_offset``); ``weight.quant_map`` the 16-entry
    code; ``weight.quant_state.bitsandbytes__<type>`` a JSON object (as uint8 bytes) with the dense
    shape, dtype and block sizes. LLM.int8 (``nn/modules.py`` ``Int8Params``, ``_ops.py``
    ``int8_vectorwise_dequant``): ``weight`` int8 [out, in], ``SCB`` float32 [out] row absmax;
    W = weight * SCB / 127."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        bits = 4 if qc.get("load_in_4bit") or qc.get("_load_in_4bit") else 8
        return bits, int_setting(qc.get("bnb_4bit_blocksize")) or (64 if bits == 4 else None)

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        if late:
            return None
        if STATE in name:
            return name.split(".weight.quant_state.")[0]
        return name[: -len(".SCB")] if name.endswith(".SCB") else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        if anchor.endswith(".SCB"):
            return self._int8(tensors, module)
        return self._4bit(tensors, module, read)

    def _4bit(self, tensors: dict[str, TensorInfo], module: str, read: Read) -> QuantizedWeight:
        data = need(tensors, module, ".weight", "bitsandbytes 4-bit")
        prefix = module + ".weight."
        state_name = next(n for n in tensors if n.startswith(prefix + "quant_state.bitsandbytes__"))
        state_info = tensors[state_name]
        quant_type = state_name.rsplit("__", 1)[1]
        what = f"bitsandbytes {quant_type}"
        absmax = need(tensors, module, ".weight.absmax", what)
        quant_map = need(tensors, module, ".weight.quant_map", what)
        found = {"quant_state": state_info, "absmax": absmax, "quant_map": quant_map}
        found.update(parts(tensors, module, {"nested_absmax": ".weight.nested_absmax", "nested_quant_map": ".weight.nested_quant_map"}))
        if state_info.dtype != "U8" or len(state_info.shape) != 1 or state_info.nbytes > 65536:
            raise bad(state_info, "a bitsandbytes quant_state is a short uint8 vector of JSON text")
        try:
            state = json.loads(bytes(read(state_info).astype(np.uint8)).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise bad(state_info, f"quant_state is not JSON text ({exc.__class__.__name__})") from None
        if not isinstance(state, dict):
            raise bad(state_info, "quant_state is not a JSON object")
        shape = state.get("shape")
        blocksize = state.get("blocksize")
        if not (isinstance(shape, list) and shape and all(isinstance(n, int) and n > 0 for n in shape)):
            raise bad(state_info, f"quant_state shape {shape!r} is not a list of positive sizes")
        if not isinstance(blocksize, int) or blocksize <= 0:
            raise bad(state_info, f"quant_state blocksize {blocksize!r} is not a positive integer")
        if state.get("quant_type", quant_type) != quant_type or quant_type not in ("nf4", "fp4"):
            raise bad(state_info, f"quant_type {state.get('quant_type')!r} is neither nf4 nor fp4")
        n = math.prod(shape)
        if data.nbytes * 2 < n:
            raise bad(data, f"{data.nbytes} bytes hold {2 * data.nbytes} 4-bit values, but quant_state's shape {shape} has {n}")
        if absmax.numel != group_count(n, blocksize):
            raise bad(absmax, f"{absmax.numel} block scales, but {n} values in blocks of {blocksize} need {group_count(n, blocksize)}")
        if quant_map.numel != 16:
            raise bad(quant_map, f"a 4-bit code has 16 entries, not {quant_map.numel}")
        if "nested_absmax" in found:
            nb = state.get("nested_blocksize")
            offset_ok = isinstance(state.get("nested_offset"), (int, float))
            if "nested_quant_map" not in found or not isinstance(nb, int) or nb <= 0 or not offset_ok:
                raise bad(state_info, "nested absmax without nested_quant_map, nested_blocksize or nested_offset")
            if found["nested_absmax"].numel != group_count(absmax.numel, nb) or found["nested_quant_map"].numel != 256:
                raise bad(found["nested_absmax"], "nested statistics do not match the absmax they scale")
            if absmax.dtype != "U8":
                raise bad(absmax, f"nested absmax codes are uint8, not {absmax.dtype}")
        elif absmax.dtype not in ("F32", "F16", "BF16"):
            raise bad(absmax, f"absmax dtype {absmax.dtype} is not a float")
        layout = {
            "blocksize": blocksize,
            "dtype": state.get("dtype"),
            "nested_blocksize": state.get("nested_blocksize"),
            "nested_offset": state.get("nested_offset"),
        }
        return QuantizedWeight(module + ".weight", NF4 if quant_type == "nf4" else FP4, tuple(shape), 4, data, found, blocksize, layout)

    def _int8(self, tensors: dict[str, TensorInfo], module: str) -> QuantizedWeight:
        data = need(tensors, module, ".weight", "bitsandbytes int8")
        scb = tensors[module + ".SCB"]
        expect(data, ("I8",), 2)
        expect(scb, ("F32", "F16", "BF16"), 1)
        if scb.shape[0] != data.shape[0]:
            raise bad(scb, f"{scb.shape[0]} row scales for {data.shape[0]} rows of {data.name}")
        found = {"SCB": scb, **parts(tensors, module, {"weight_format": ".weight_format"})}
        return QuantizedWeight(module + ".weight", INT8, data.shape, 8, data, found, None, {})

    def stray(self, name: str, info: TensorInfo, tensors: dict[str, TensorInfo], scheme: Scheme | None) -> CheckpointError | None:
        """An int8 matrix in a bitsandbytes 8-bit checkpoint whose row scales (.SCB) are missing: its
        values are not the weights, and counting it as a plain I8 head would hide that."""
        if scheme is None or scheme.quant_method != "bitsandbytes" or scheme.bits != 8:
            return None
        if name.endswith(".weight") and info.dtype == "I8" and len(info.shape) == 2:
            return CheckpointError(
                info.file, f"{name} is stored as I8 without its scale {name[: -len('.weight')]}.SCB (bitsandbytes int8 checkpoint)"
            )
        return None

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        if qw.method == INT8:
            return _int8_rows(qw, start, stop, stored)
        return _4bit_rows(qw, start, stop, stored)


def _4bit_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """bitsandbytes ``dequantize_4bit``: code[nibble] * absmax[i // blocksize] over the flattened
    weight, high nibble first; nested absmax = nested_code[a] * nested_absmax[j // nb] + offset;
    the result cast to quant_state's dtype."""
    inputs = qw.shape[1]
    begin, end = start * inputs, stop * inputs  # flat element range
    codes = stored.flat(qw.data, begin // 2, -(-end // 2)).view(np.uint8)
    nibbles = np.empty(codes.size * 2, dtype=np.uint8)
    nibbles[0::2], nibbles[1::2] = codes >> 4, codes & 0x0F
    nibbles = nibbles[begin - 2 * (begin // 2) :][: end - begin]
    code = np.asarray(stored.whole(qw.parts["quant_map"]), dtype=np.float32).reshape(-1)
    block = qw.layout["blocksize"]
    b0, b1 = begin // block, -(-end // block)
    absmax = _absmax(qw, b0, b1, stored)  # (blocks,)
    if begin % block == 0 and (end - begin) % block == 0:  # whole blocks: one scale per row of a (blocks, block) view
        values = (code[nibbles].reshape(-1, block) * absmax[:, None]).reshape(-1)
    else:
        values = code[nibbles] * absmax[np.arange(begin, end) // block - b0]
    return round_to(values, qw.layout.get("dtype")).reshape(stop - start, inputs)


def _absmax(qw: QuantizedWeight, b0: int, b1: int, stored: Stored) -> np.ndarray:
    info = qw.parts["absmax"]
    if "nested_absmax" not in qw.parts:
        return as_float32(stored.flat(info, b0, b1), info.dtype)
    nb = qw.layout["nested_blocksize"]
    quantized = stored.flat(info, b0, b1)
    nested_code = np.asarray(stored.whole(qw.parts["nested_quant_map"]), dtype=np.float32).reshape(-1)
    nested_info = qw.parts["nested_absmax"]
    nested_scale = as_float32(stored.flat(nested_info, b0 // nb, -(-b1 // nb)), nested_info.dtype)  # the blocks' own scales
    scale = nested_scale[np.arange(b0, b1) // nb - b0 // nb]
    return nested_code[quantized] * scale + np.float32(qw.layout["nested_offset"])


def _int8_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """bitsandbytes ``int8_vectorwise_dequant``: (A * SCB[:, None]) * 7.874015718698502e-3 (1/127), float32."""
    a = stored.rows(qw.data, start, stop).astype(np.float32)  # (C, in)
    scb_info = qw.parts["SCB"]
    scb = as_float32(stored.rows(scb_info, start, stop), scb_info.dtype)
    return (a * scb[:, None]) * np.float32(7.874015718698502e-3)


METHOD = Bitsandbytes()
