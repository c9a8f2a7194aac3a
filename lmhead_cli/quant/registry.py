"""The one table of quantization methods: what each stores, and where its code lives.

This module imports nothing: ``detect`` reads the table to tell a dense
checkpoint from a quantized one without loading any method's code. Each row
names the module in ``quant/methods/`` whose ``METHOD`` (one ``QuantMethod``
subclass) groups that method's stored tensors and dequantizes them; ``method``
and ``methods`` load them on first use. The rows' order is the order in which
methods are offered a stored name (the first that claims it groups it).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .methods.base import QuantMethod

__all__ = ["TABLE", "Registration", "by_config_name", "method", "methods"]


@dataclass(frozen=True)
class Registration:
    """What ``detect`` needs to know of a method before its code is loaded."""

    key: str  # the module ``quant/methods/<key>.py`` that defines ``METHOD``
    config_names: tuple[str, ...] = ()  # ``quant_method`` values of a quantization_config it reads
    parts: tuple[str, ...] = ()  # name suffixes only its modules store: one left over after grouping is an error
    anchors: tuple[str, ...] = ()  # other suffixes a module of it may start from (the method's claim decides)
    markers: tuple[str, ...] = ()  # substrings of a stored name that only it writes
    loose: tuple[str, ...] = ()  # suffixes of tensors that only describe quantization (activation scales, flags)
    declared_parts: tuple[str, ...] = ()  # suffixes that are its parts only in a checkpoint that declares a method
    metadata: tuple[str, ...] = ()  # substrings of a safetensors ``__metadata__`` value that say it wrote the file
    side_file: str | None = None  # a JSON file beside the weights that says it wrote them


TABLE: tuple[Registration, ...] = (
    Registration("gptq", ("gptq",), parts=(".qweight", ".qzeros", ".g_idx"), declared_parts=(".scales",), side_file="quantize_config.json"),
    Registration("awq", ("awq",), parts=(".qweight", ".qzeros"), declared_parts=(".scales",)),
    Registration(
        "bitsandbytes",
        ("bitsandbytes",),
        parts=(".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".SCB"),
        markers=(".weight.quant_state.bitsandbytes__",),
        loose=(".weight_format",),
    ),
    Registration("fp8_block", ("fp8",), parts=(".weight_scale_inv",), loose=(".input_scale",)),
    Registration(
        "compressed_tensors",
        ("compressed-tensors",),
        parts=(".weight_packed", ".weight_zero_point", ".weight_shape", ".weight_g_idx"),
        anchors=(".weight_scale",),
        loose=(".input_scale", ".output_scale", ".k_scale", ".v_scale", ".input_global_scale", ".weight_global_scale"),
    ),
    Registration("torchao", ("torchao",), parts=("._weight_qdata", "._weight_scale", ":qdata", ":_data"), metadata=('"Float8Tensor"',)),
    Registration("mxfp4", ("mxfp4",), anchors=("_blocks",)),
    Registration("fp8_scaled", ("fbgemm_fp8",), anchors=(".weight_scale",), loose=(".input_scale",)),
    Registration(
        "quanto",
        ("quanto",),
        parts=(".weight._scale", ".weight._shift", ".weight._data"),
        loose=(".input_scale", ".output_scale"),
        side_file="quanto_qmap.json",
    ),
    Registration("hqq", ("hqq",), parts=(".W_q",), declared_parts=(".zero",), metadata=('"writer": "hqq"',)),
    # ".scales": the float modes store no biases; without a config, only MLX's stray check names such a module
    Registration("mlx", ("mlx",), markers=(".biases", ".scales"), declared_parts=(".scales", ".biases")),
)


def by_config_name(name: str) -> Registration | None:
    """The row whose method a config's ``quant_method`` names, or None for one lmhead does not know."""
    return next((row for row in TABLE if name in row.config_names), None)


def method(row: Registration) -> QuantMethod:
    """The row's method object (its module imported on first use)."""
    found: QuantMethod = vars(import_module(f".methods.{row.key}", __package__))["METHOD"]
    return found


def methods() -> tuple[QuantMethod, ...]:
    """Every method, in the table's order."""
    return tuple(method(row) for row in TABLE)
