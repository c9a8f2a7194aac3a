"""MLX (mlx-lm): affine groups packed into uint32 words, with a scale and a bias per group; or the
microscaled float modes (``mxfp4``, ``nvfp4``, ``mxfp8``): codes packed the same way, one uint8 scale
per group, no bias.

mlx-lm's ``convert -q`` (``mlx_lm.utils.quantize_model``) replaces each quantized linear or embedding's
``<module>.weight`` by packed uint32 words ``[out, in * bits / 32]`` and stores ``<module>.scales`` and
``<module>.biases`` ``[out, in / group]`` in the model's dtype. config.json says so under
``"quantization"`` (and a copy under ``"quantization_config"``, without a ``quant_method``):
``{"group_size", "bits", "mode"}``, plus one entry per module that differs (mixed recipes write
``"group_size": null``: the mode's default). mlx-lm's loader (``mlx_lm.utils.load_model``) quantizes a
module named there with those settings, and any other module that stores ``.scales`` with the settings
its shapes imply; so does lmhead, and a module whose shapes fit no setting (or several) is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..layouts import bad, expect, need
from ..raw import Stored, as_float32, e2m1_values, e8m0_scales, round_to
from ..scheme import Method, QuantizedWeight, Scheme, int_setting
from .base import QuantMethod, Read

__all__ = ["METHOD", "MLX_AFFINE", "MLX_FLOAT", "is_mlx_settings"]

MLX_AFFINE = Method("MLX affine", "mlx", "mlx")
MLX_FLOAT = Method("MLX microscaled float", "mlx-fp", "mlx")  # mxfp4 / nvfp4 / mxfp8
QUANT_METHOD = "mlx"  # the name lmhead gives a config that mlx-lm wrote (it writes no quant_method)
BITS = (2, 3, 4, 5, 6, 8)  # affine widths mlx packs
GROUPS = (32, 64, 128)
MODE_DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}  # mlx_lm quantize_model's defaults
SETTING_KEYS = {"group_size", "bits", "mode"}
FLOAT_MODES = ("mxfp4", "nvfp4", "mxfp8")  # each with the one group size and width of MODE_DEFAULTS


def is_mlx_settings(qc: dict[str, Any]) -> bool:
    """A quantization dict as mlx-lm writes it: no ``quant_method``, ``bits`` and ``group_size`` at the top."""
    return "quant_method" not in qc and "bits" in qc and "group_size" in qc


class MLX(QuantMethod):
    """``mx.dequantize(w, scales, biases, group_size, bits)`` in affine mode: element j of a row is bits
    [j*bits, (j+1)*bits) of the row's words read as one little-endian bit stream; w = scale * q + bias
    per group, each operation rounded to the scales' dtype (bf16 or f16)."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        return int_setting(qc.get("bits")), int_setting(qc.get("group_size"))

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        if late or scheme is None or scheme.quant_method != QUANT_METHOD or not name.endswith(".scales"):
            return None
        module = name[: -len(".scales")]
        return module if module + ".weight" in tensors else None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        assert scheme is not None  # claim takes modules only under an MLX config
        weight = tensors[module + ".weight"]
        scales = tensors[module + ".scales"]
        declared = _declared(scheme, module, scales)
        mode = declared.get("mode") or scheme.settings.get("mode") or "affine"
        if mode in FLOAT_MODES:
            return _float_weight(tensors, module, weight, scales, mode, declared)
        if mode != "affine":
            raise bad(scales, f"mlx-lm quantization mode {mode!r} is not supported (lmhead reads {', '.join(('affine', *FLOAT_MODES))})")
        biases = need(tensors, module, ".biases", "MLX affine")
        expect(weight, ("U32",), 2)
        expect(scales, ("BF16", "F16", "F32"), 2)
        if biases.shape != scales.shape or biases.dtype != scales.dtype:
            raise bad(biases, f"{biases.dtype} {list(biases.shape)} does not match {scales.name} {scales.dtype} {list(scales.shape)}")
        out, words = weight.shape
        if scales.shape[0] != out:
            raise bad(scales, f"shape {list(scales.shape)} does not match {weight.name}'s {out} rows")
        bits, group = _settings(weight, scales, declared, scheme)
        return QuantizedWeight(
            name=module + ".weight",
            method=MLX_AFFINE,
            shape=(out, words * 32 // bits),
            bits=bits,
            data=weight,
            parts={"scales": scales, "biases": biases},
            group_size=group,
        )

    def stray(self, name: str, info: TensorInfo, tensors: dict[str, TensorInfo], scheme: Scheme | None) -> CheckpointError | None:
        if scheme is not None or not name.endswith(".scales"):
            return None
        module = name[: -len(".scales")]
        weight = tensors.get(module + ".weight")
        if weight is None or weight.dtype != "U32":
            return None
        if module + ".biases" in tensors:
            parts = "uint32 weight, scales, biases"
        elif info.dtype == "U8":
            parts = "uint32 weight, uint8 scales: a float mode"
        else:
            return None
        return CheckpointError(
            info.file,
            f'{module} is stored as MLX quantizes it ({parts}), but config.json has no "quantization" '
            "saying how: lmhead cannot tell its bits and group size",
            hint="use the config.json mlx-lm wrote beside the weights",
        )

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        if qw.method is MLX_FLOAT:
            return _float_rows(qw, start, stop, stored)
        bits, inputs, group = qw.bits, qw.shape[1], qw.group_size
        assert group is not None  # set by group()
        words = stored.rows(qw.data, start, stop)  # (C, in * bits / 32) uint32
        q = unpack_stream(words, bits, inputs)  # (C, in)
        scales_info = qw.parts["scales"]
        dtype = scales_info.dtype
        scales = as_float32(stored.rows(scales_info, start, stop), dtype)  # (C, in / g)
        biases = as_float32(stored.rows(qw.parts["biases"], start, stop), dtype)  # (C, in / g)
        q3 = q.reshape(q.shape[0], inputs // group, group).astype(np.float32)  # (C, G, g)
        scaled = round_to(scales[:, :, None] * q3, dtype)  # exact in float32 (a 16-bit scale times a small integer), then rounded
        return round_to(scaled + biases[:, :, None], dtype).reshape(q.shape[0], inputs)


def _float_weight(
    tensors: dict[str, TensorInfo], module: str, weight: TensorInfo, scales: TensorInfo, mode: str, declared: dict[str, Any]
) -> QuantizedWeight:
    """``mx.quantize(w, mode=...)`` for mxfp4 / nvfp4 / mxfp8: uint32 words of codes, uint8 scales, no biases."""
    if module + ".biases" in tensors:
        raise bad(tensors[module + ".biases"], f"MLX {mode} stores no biases, but this module has them")
    if module + ".global_scale" in tensors:
        raise bad(tensors[module + ".global_scale"], f"MLX {mode} with a global scale (mlx-lm's per-expert nvfp4) is not supported")
    expect(weight, ("U32",), 2)
    expect(scales, ("U8",), 2)
    group, bits = MODE_DEFAULTS[mode]
    said = {k: int_setting(declared.get(k)) for k in ("group_size", "bits") if declared.get(k) is not None}
    if said.get("group_size", group) != group or said.get("bits", bits) != bits:
        raise bad(scales, f"config.json's quantization entry {declared!r}: mlx's {mode} has {bits} bits in groups of {group}")
    out, words = weight.shape
    if scales.shape[0] != out or words * 32 // bits != scales.shape[1] * group:
        raise bad(weight, f"{words} words and {list(scales.shape)} scales do not fit {mode} ({bits} bits, groups of {group})")
    return QuantizedWeight(
        name=module + ".weight",
        method=MLX_FLOAT,
        shape=(out, words * 32 // bits),
        bits=bits,
        data=weight,
        parts={"scales": scales},
        group_size=group,
        layout={"mode": mode},
    )


def _float_rows(qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
    """``mx.dequantize(w, scales, mode=...)``: each code's value (E2M1, or E4M3 for mxfp8) times its
    group's scale (E8M0: 2^(e - 127), 255 an infinity there; nvfp4: E4M3), rounded to bfloat16, the
    dtype mx.dequantize returns for uint8 scales. Checked bit for bit against mlx 0.32 (extremes included)."""
    mode, inputs, group = qw.layout["mode"], qw.shape[1], qw.group_size
    assert group is not None  # set by _float_weight
    codes = unpack_stream(stored.rows(qw.data, start, stop), qw.bits, inputs)  # (C, in) uint8
    if qw.bits == 4:
        values = e2m1_values(codes)  # (C, in)
    else:
        values = as_float32(codes, "F8_E4M3")  # (C, in)
    raw = stored.rows(qw.parts["scales"], start, stop)  # (C, in / g) uint8
    if mode == "nvfp4":
        scale = as_float32(raw, "F8_E4M3")
    else:
        scale = e8m0_scales(raw)
    with np.errstate(over="ignore", invalid="ignore"):  # 0 x inf is NaN in mlx too
        product = values.reshape(len(values), inputs // group, group) * scale[:, :, None]  # (C, G, g)
    return round_to(product.reshape(len(values), inputs), "bfloat16")


def unpack_stream(words: np.ndarray, bits: int, inputs: int) -> np.ndarray:
    """(C, W) uint32 -> (C, inputs) values: each row's words as one little-endian stream of ``bits``-bit fields."""
    rows = words.shape[0]
    u = np.ascontiguousarray(words).view(np.uint32)
    if 32 % bits == 0:  # 2, 4, 8: whole fields per word
        shifts = np.arange(32 // bits, dtype=np.uint32) * np.uint32(bits)
        fields = (u[:, :, None] >> shifts[None, None, :]) & np.uint32((1 << bits) - 1)  # (C, W, 32 / bits)
        return fields.reshape(rows, -1)[:, :inputs].astype(np.uint8)
    stream = np.unpackbits(u.astype("<u4").view(np.uint8), axis=1, bitorder="little")  # (C, W * 32) bits, low first
    fields = stream[:, : inputs * bits].reshape(rows, inputs, bits)  # (C, in, bits)
    weights = (1 << np.arange(bits)).astype(np.uint8)
    return (fields * weights).sum(axis=2, dtype=np.uint16).astype(np.uint8)


def _declared(scheme: Scheme, module: str, scales: TensorInfo) -> dict[str, Any]:
    """The config's own entry for ``module`` (mlx-lm's per-module settings), or {} when it has none."""
    entry = scheme.settings.get(module)
    if entry is None or entry is True:  # True: quantized with the defaults (mlx-lm's predicate said so)
        return {}
    if entry is False:
        raise bad(scales, f"config.json says {module} is not quantized, but it stores scales")
    if not isinstance(entry, dict) or not set(entry) <= SETTING_KEYS | {"global_scale"}:
        raise bad(scales, f"config.json's quantization entry for {module} is {entry!r}, not {{group_size, bits, mode}}")
    return entry


def _settings(weight: TensorInfo, scales: TensorInfo, declared: dict[str, Any], scheme: Scheme) -> tuple[int, int]:
    """(bits, group size) as mlx-lm loads the module: its own config entry (null: the mode's default), else
    the width the shapes imply; the config's defaults settle it only where the shapes allow several."""
    words, n_groups = weight.shape[1], scales.shape[1]
    default_group, default_bits = MODE_DEFAULTS["affine"]
    if declared:
        bits = int_setting(declared.get("bits")) if declared.get("bits") is not None else default_bits
        group = int_setting(declared.get("group_size")) if declared.get("group_size") is not None else default_group
        if bits not in BITS or group not in GROUPS:
            raise bad(scales, f"config.json's quantization entry {declared!r} is not one of mlx's affine settings")
        fits = [(bits, group)] if words * 32 % bits == 0 and words * 32 // bits == n_groups * group else []
        if not fits:
            raise bad(weight, f"{words} words and {n_groups} groups per row do not fit the config's {bits} bits in groups of {group}")
        return fits[0]
    fits = [(b, g) for b in BITS for g in GROUPS if words * 32 % b == 0 and words * 32 // b == n_groups * g]
    top = (int_setting(scheme.settings.get("bits")), int_setting(scheme.settings.get("group_size")))
    if top in fits:
        return top  # type: ignore[return-value]  # both ints: they are in fits
    if len(fits) == 1:
        return fits[0]
    shape = f"{words} words and {n_groups} groups per row"
    if not fits:
        raise bad(weight, f"{shape} fit no MLX affine setting ({'/'.join(map(str, BITS))} bits, groups of {'/'.join(map(str, GROUPS))})")
    said = f"; the config's {top[0]} bits in groups of {top[1]} do not fit" if top[0] and top[1] else ""
    raise bad(weight, f"{shape} fit {len(fits)} MLX settings{said}: lmhead cannot tell which")


METHOD = MLX()
