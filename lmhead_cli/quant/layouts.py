"""Group each quantized module's stored tensors into one logical weight with its dense shape.

Every layout is recognised by the tensor names its tool writes beside a module
(verified against each tool's source; see the comment on each grouper). A
module that has the anchor tensor of a layout but lacks a part it needs, or
whose parts disagree on the shape, is an error: nothing quantized is counted
or read by guesswork.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import CheckpointError
from ..formats.base import TensorInfo
from .detect import LOOSE_METADATA, QUANT_SUFFIXES
from .scheme import Method, QuantizedWeight, Scheme, ct_weights

__all__ = ["Grouping", "group"]


@dataclass
class Grouping:
    weights: dict[str, QuantizedWeight] = field(default_factory=dict)  # logical name -> weight
    metadata: list[TensorInfo] = field(default_factory=list)  # stored tensors that describe, not hold, weights
    consumed: set[str] = field(default_factory=set)  # stored names taken into a weight or the metadata

    def add(self, weight: QuantizedWeight) -> None:
        self.weights[weight.name] = weight
        self.consumed.add(weight.data.name)
        for part in weight.parts.values():
            self.consumed.add(part.name)
            self.metadata.append(part)


def group(
    tensors: dict[str, TensorInfo],
    scheme: Scheme | None,
    read: Callable[[TensorInfo], np.ndarray],
    metadata: dict[str, str] | None = None,
) -> Grouping:
    """Find every quantized module in ``tensors`` (stored name -> info) and group its parts.

    ``read`` fetches a small tensor's values (bitsandbytes' quant_state JSON,
    compressed-tensors' weight_shape): the only data read before a row is asked for.
    """
    out = Grouping()
    for name in sorted(tensors):
        if name in out.consumed:
            continue
        if name.endswith(".qweight"):
            out.add(_gptq_or_awq(tensors, name[: -len(".qweight")], scheme))
        elif ".weight.quant_state.bitsandbytes__" in name:
            out.add(_bnb_4bit(tensors, name.split(".weight.quant_state.")[0], read))
        elif name.endswith(".SCB"):
            out.add(_bnb_int8(tensors, name[: -len(".SCB")]))
        elif name.endswith(".weight_scale_inv"):
            out.add(_fp8_block(tensors, name[: -len(".weight_scale_inv")], scheme))
        elif name.endswith(".weight_packed"):
            out.add(_ct_packed(tensors, name[: -len(".weight_packed")], scheme, read))
        elif name.endswith("._weight_qdata"):
            out.add(_torchao(tensors, name[: -len("._weight_qdata")], metadata or {}))
        elif name.endswith("_blocks") and name[: -len("_blocks")] + "_scales" in tensors:
            out.add(_mxfp4(tensors, name[: -len("_blocks")]))
    for name in sorted(tensors):  # FP8 with weight_scale: only once the packed layouts above took theirs
        if name.endswith(".weight_scale") and name not in out.consumed:
            out.add(_fp8_scaled(tensors, name[: -len(".weight_scale")], scheme))
    for name, info in tensors.items():
        if name in out.consumed:
            continue
        if name.endswith(LOOSE_METADATA) and (scheme is not None or out.weights):  # a dense model may have such a parameter
            out.metadata.append(info)
            out.consumed.add(name)
        elif scheme is not None and info.dtype in FP8_DTYPES and len(info.shape) == 2:
            raise CheckpointError(info.file, f"{name} is stored as {info.dtype} without its scale ({scheme.quant_method} checkpoint)")
        elif _bnb_int8_without_scale(name, info, scheme):
            raise CheckpointError(
                info.file, f"{name} is stored as I8 without its scale {name[: -len('.weight')]}.SCB (bitsandbytes int8 checkpoint)"
            )
        elif name.endswith("_blocks") and scheme is not None and scheme.quant_method == "mxfp4":
            raise CheckpointError(info.file, f"{name} holds MXFP4 blocks, but {name[: -len('_blocks')]}_scales is missing")
        elif name.endswith(QUANT_SUFFIXES) or name.endswith(".scales") and name[: -len(".scales")] + ".qweight" not in tensors:
            if name.endswith(".scales") and scheme is None:
                continue  # a model's own parameter that happens to be called "scales"
            raise CheckpointError(info.file, f"{name} looks like part of a quantized module, but the module's other tensors are missing")
    return out


# ---------------------------------------------------------------- helpers


def _bnb_int8_without_scale(name: str, info: TensorInfo, scheme: Scheme | None) -> bool:
    """An int8 matrix in a bitsandbytes 8-bit checkpoint whose row scales (.SCB) are missing: its
    values are not the weights, and counting it as a plain I8 head would hide that."""
    if scheme is None or scheme.quant_method != "bitsandbytes" or scheme.bits != 8:
        return False
    return name.endswith(".weight") and info.dtype == "I8" and len(info.shape) == 2


def _need(tensors: dict[str, TensorInfo], module: str, suffix: str, what: str) -> TensorInfo:
    info = tensors.get(module + suffix)
    if info is None:
        anchor = next((t for n, t in tensors.items() if n.startswith(module + ".") or n.startswith(module + "_")), None)
        raise CheckpointError(anchor.file if anchor else None, f"{module} is {what}-quantized but {module}{suffix} is missing")
    return info


def _bad(info: TensorInfo, reason: str) -> CheckpointError:
    return CheckpointError(info.file, f"{info.name}: {reason}")


def _expect(info: TensorInfo, dtypes: tuple[str, ...], ndim: int | None = None) -> None:
    if info.dtype not in dtypes:
        raise _bad(info, f"dtype {info.dtype}, but this layout stores {' or '.join(dtypes)}")
    if ndim is not None and len(info.shape) != ndim:
        raise _bad(info, f"shape {list(info.shape)}, but this layout stores a {ndim}-D tensor")


def _parts(tensors: dict[str, TensorInfo], module: str, roles: dict[str, str]) -> dict[str, TensorInfo]:
    return {role: tensors[module + suffix] for role, suffix in roles.items() if module + suffix in tensors}


def _group_count(columns: int, group: int) -> int:
    return -(-columns // group)


# ---------------------------------------------------------------- GPTQ and AWQ


def _gptq_or_awq(tensors: dict[str, TensorInfo], module: str, scheme: Scheme | None) -> QuantizedWeight:
    """GPTQ and AWQ share tensor names (qweight, qzeros, scales) but not their layout.

    GPTQ (AutoGPTQ ``qlinear_cuda_old`` / GPTQModel ``nn_modules/qlinear/__init__.py``
    ``dequantize_weight``): qweight int32 [in*bits/32, out], packed along the
    input dimension, element j of a word in bits [j*bits, (j+1)*bits);
    qzeros int32 [groups, out*bits/32] packed along the output dimension;
    scales [groups, out]; g_idx int32 [in] (act-order) maps input row -> group.
    AWQ GEMM (AutoAWQ ``awq/utils/packing_utils.py``, ``awq/modules/linear/gemm.py``):
    qweight int32 [in, out*bits/32] packed along the output dimension in the
    order 0,2,4,6,1,3,5,7; qzeros [groups, out*bits/32] packed the same way;
    scales [groups, out].
    """
    qweight = tensors[module + ".qweight"]
    method_name = scheme.quant_method if scheme else None
    what = "AWQ" if method_name == "awq" else "GPTQ"
    scales = _need(tensors, module, ".scales", what)
    qzeros = _need(tensors, module, ".qzeros", what)
    _expect(qweight, ("I32", "U32"), 2)
    _expect(qzeros, ("I32", "U32"), 2)
    _expect(scales, ("F16", "BF16", "F32"), 2)
    if method_name not in ("gptq", "awq"):  # no config names it: the shapes tell the two apart
        method_name = "gptq" if qweight.shape[1] == scales.shape[1] else "awq"
    parts = {"scales": scales, "qzeros": qzeros, **_parts(tensors, module, {"g_idx": ".g_idx"})}
    if method_name == "gptq":
        return _gptq(module, qweight, parts, scheme)
    return _awq(module, qweight, parts, scheme)


def _gptq(module: str, qweight: TensorInfo, parts: dict[str, TensorInfo], scheme: Scheme | None) -> QuantizedWeight:
    scales, qzeros, g_idx = parts["scales"], parts["qzeros"], parts.get("g_idx")
    out = qweight.shape[1]
    bits = None
    if g_idx is not None:  # g_idx has one entry per input row: the packing ratio gives the bits exactly
        _expect(g_idx, ("I32", "I64"), 1)
        bits = 32 * qweight.shape[0] // g_idx.shape[0] if g_idx.shape[0] else None
        if bits is None or bits * g_idx.shape[0] != 32 * qweight.shape[0]:
            raise _bad(g_idx, f"{g_idx.shape[0]} entries do not match {qweight.name} {list(qweight.shape)} at any bit width")
    config_bits = scheme.bits if scheme else None
    if bits is None:
        bits = config_bits
    if bits is None:
        raise _bad(qweight, "GPTQ weight without g_idx and without a config giving its bits: its input size is unknown")
    if config_bits is not None and config_bits != bits:
        raise _bad(qweight, f"stores {bits}-bit values, but the quantization config says {config_bits} bits")
    if bits not in (2, 3, 4, 8):
        raise _bad(qweight, f"GPTQ with {bits} bits is not a layout GPTQ writes")
    inputs = qweight.shape[0] * 32 // bits
    if scales.shape[1] != out:
        raise _bad(scales, f"shape {list(scales.shape)} does not match {qweight.name}'s {out} outputs")
    if qzeros.shape[0] != scales.shape[0] or qzeros.shape[1] * 32 < out * bits or (qzeros.shape[1] - 1) * 32 >= out * bits:
        raise _bad(qzeros, f"shape {list(qzeros.shape)} does not match {scales.shape[0]} groups of {out} {bits}-bit zero points")
    group = scheme.group_size if scheme and scheme.group_size and scheme.group_size > 0 else None
    if g_idx is None:
        group = group or inputs  # group_size -1: one group spans every input row
        if _group_count(inputs, group) != scales.shape[0]:
            raise _bad(scales, f"{scales.shape[0]} groups, but {inputs} inputs in groups of {group} make {_group_count(inputs, group)}")
    fmt = str((scheme.get("checkpoint_format") or scheme.get("format") if scheme else None) or "gptq")
    unreadable = None
    if bits == 3:
        unreadable = "3-bit GPTQ packing"
    elif fmt not in ("gptq", "gptq_v2"):
        unreadable = f"GPTQ checkpoint_format {fmt!r}"
    return QuantizedWeight(
        name=module + ".weight",
        method=Method.GPTQ,
        shape=(out, inputs),
        bits=bits,
        data=qweight,
        parts=parts,
        group_size=group,
        # AutoGPTQ's v1 format stores zero - 1 (GPTQModel converts v1 -> v2 by adding 1 on load)
        layout={"zero_offset": 0 if fmt == "gptq_v2" else 1},
        unreadable=unreadable,
    )


def _awq(module: str, qweight: TensorInfo, parts: dict[str, TensorInfo], scheme: Scheme | None) -> QuantizedWeight:
    scales, qzeros = parts["scales"], parts["qzeros"]
    version = str(scheme.get("version", "gemm") if scheme else "gemm").lower()
    out = scales.shape[1]
    if version not in ("gemm",):
        # GEMV / exllama / marlin repack the words differently; the dense shape still follows from the scales
        bits = scheme.bits if scheme and scheme.bits else 4
        inputs = qweight.shape[1] * 32 // bits if version.startswith("gemv") else qweight.shape[0]
        return QuantizedWeight(module + ".weight", Method.AWQ, (out, inputs), bits, qweight, parts, None, {}, f"AWQ version {version!r}")
    inputs = qweight.shape[0]
    bits = 32 * qweight.shape[1] // out if out else 0
    if bits not in (2, 4, 8) or bits * out != 32 * qweight.shape[1]:
        raise _bad(qweight, f"shape {list(qweight.shape)} does not pack {out} outputs (from {scales.name}) at 2, 4 or 8 bits")
    unreadable = None if bits == 4 else f"{bits}-bit AWQ"
    if scheme and scheme.bits and scheme.bits != bits:
        raise _bad(qweight, f"stores {bits}-bit values, but the quantization config says {scheme.bits} bits")
    if qzeros.shape != (scales.shape[0], qweight.shape[1]):
        raise _bad(qzeros, f"shape {list(qzeros.shape)}, expected {[scales.shape[0], qweight.shape[1]]}")
    group = scheme.group_size if scheme and scheme.group_size and scheme.group_size > 0 else None
    group = group or (inputs // scales.shape[0] if scales.shape[0] else inputs)
    if _group_count(inputs, group) != scales.shape[0]:
        raise _bad(scales, f"{scales.shape[0]} groups, but {inputs} inputs in groups of {group} make {_group_count(inputs, group)}")
    return QuantizedWeight(module + ".weight", Method.AWQ, (out, inputs), bits, qweight, parts, group, {}, unreadable)


# ---------------------------------------------------------------- bitsandbytes


def _bnb_4bit(tensors: dict[str, TensorInfo], module: str, read: Callable[[TensorInfo], np.ndarray]) -> QuantizedWeight:
    """bitsandbytes 4-bit (``bitsandbytes/functional.py`` ``QuantState.as_dict(packed=True)``):
    ``weight`` holds two 4-bit codes per byte, first element in the high nibble
    (``backends/default/ops.py`` ``_dequantize_4bit_compute``), over the
    row-major flattened weight; ``weight.absmax`` one scale per ``blocksize``
    elements (uint8 codes of a second blockwise quantization when nested, with
    ``nested_absmax``, ``nested_quant_map`` and ``nested_offset``);
    ``weight.quant_map`` the 16-entry code; ``weight.quant_state.bitsandbytes__<type>``
    a JSON object (as uint8 bytes) with the dense shape, dtype and block sizes.
    """
    data = _need(tensors, module, ".weight", "bitsandbytes 4-bit")
    prefix = module + ".weight."
    state_name = next(n for n in tensors if n.startswith(prefix + "quant_state.bitsandbytes__"))
    state_info = tensors[state_name]
    quant_type = state_name.rsplit("__", 1)[1]
    what = f"bitsandbytes {quant_type}"
    absmax = _need(tensors, module, ".weight.absmax", what)
    quant_map = _need(tensors, module, ".weight.quant_map", what)
    parts = {"quant_state": state_info, "absmax": absmax, "quant_map": quant_map}
    parts.update(_parts(tensors, module, {"nested_absmax": ".weight.nested_absmax", "nested_quant_map": ".weight.nested_quant_map"}))
    if state_info.dtype != "U8" or len(state_info.shape) != 1 or state_info.nbytes > 65536:
        raise _bad(state_info, "a bitsandbytes quant_state is a short uint8 vector of JSON text")
    try:
        state = json.loads(bytes(read(state_info).astype(np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _bad(state_info, f"quant_state is not JSON text ({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise _bad(state_info, "quant_state is not a JSON object")
    shape = state.get("shape")
    blocksize = state.get("blocksize")
    if not (isinstance(shape, list) and shape and all(isinstance(n, int) and n > 0 for n in shape)):
        raise _bad(state_info, f"quant_state shape {shape!r} is not a list of positive sizes")
    if not isinstance(blocksize, int) or blocksize <= 0:
        raise _bad(state_info, f"quant_state blocksize {blocksize!r} is not a positive integer")
    if state.get("quant_type", quant_type) != quant_type or quant_type not in ("nf4", "fp4"):
        raise _bad(state_info, f"quant_type {state.get('quant_type')!r} is neither nf4 nor fp4")
    n = math.prod(shape)
    if data.nbytes * 2 < n:
        raise _bad(data, f"{data.nbytes} bytes hold {2 * data.nbytes} 4-bit values, but quant_state's shape {shape} has {n}")
    if absmax.numel != _group_count(n, blocksize):
        raise _bad(absmax, f"{absmax.numel} block scales, but {n} values in blocks of {blocksize} need {_group_count(n, blocksize)}")
    if quant_map.numel != 16:
        raise _bad(quant_map, f"a 4-bit code has 16 entries, not {quant_map.numel}")
    nested = "nested_absmax" in parts
    if nested:
        nb = state.get("nested_blocksize")
        offset_ok = isinstance(state.get("nested_offset"), (int, float))
        if "nested_quant_map" not in parts or not isinstance(nb, int) or nb <= 0 or not offset_ok:
            raise _bad(state_info, "nested absmax without nested_quant_map, nested_blocksize or nested_offset")
        if parts["nested_absmax"].numel != _group_count(absmax.numel, nb) or parts["nested_quant_map"].numel != 256:
            raise _bad(parts["nested_absmax"], "nested statistics do not match the absmax they scale")
        if absmax.dtype != "U8":
            raise _bad(absmax, f"nested absmax codes are uint8, not {absmax.dtype}")
    elif absmax.dtype not in ("F32", "F16", "BF16"):
        raise _bad(absmax, f"absmax dtype {absmax.dtype} is not a float")
    method = Method.BNB_NF4 if quant_type == "nf4" else Method.BNB_FP4
    layout = {
        "blocksize": blocksize,
        "dtype": state.get("dtype"),
        "nested_blocksize": state.get("nested_blocksize"),
        "nested_offset": state.get("nested_offset"),
    }
    return QuantizedWeight(module + ".weight", method, tuple(shape), 4, data, parts, blocksize, layout)


def _bnb_int8(tensors: dict[str, TensorInfo], module: str) -> QuantizedWeight:
    """bitsandbytes LLM.int8 (``nn/modules.py`` ``Int8Params``, ``_ops.py`` ``int8_vectorwise_dequant``):
    ``weight`` int8 [out, in], ``SCB`` float32 [out] row absmax; W = weight * SCB / 127."""
    data = _need(tensors, module, ".weight", "bitsandbytes int8")
    scb = tensors[module + ".SCB"]
    _expect(data, ("I8",), 2)
    _expect(scb, ("F32", "F16", "BF16"), 1)
    if scb.shape[0] != data.shape[0]:
        raise _bad(scb, f"{scb.shape[0]} row scales for {data.shape[0]} rows of {data.name}")
    parts = {"SCB": scb, **_parts(tensors, module, {"weight_format": ".weight_format"})}
    return QuantizedWeight(module + ".weight", Method.BNB_INT8, data.shape, 8, data, parts, None, {})


# ---------------------------------------------------------------- FP8


FP8_DTYPES = ("F8_E4M3", "F8_E5M2")


def _fp8_block(tensors: dict[str, TensorInfo], module: str, scheme: Scheme | None) -> QuantizedWeight:
    """FP8 with one inverse scale per block (DeepSeek-V3 ``inference/fp8_cast_bf16.py`` and
    ``kernel.py`` ``weight_dequant``; transformers ``finegrained_fp8``): ``weight`` F8_E4M3
    [out, in], ``weight_scale_inv`` float32 [ceil(out/b0), ceil(in/b1)]; W = weight * s
    for the block's s, b0 x b1 from ``weight_block_size`` (128 x 128)."""
    data = _need(tensors, module, ".weight", "FP8")
    scale = tensors[module + ".weight_scale_inv"]
    _expect(data, FP8_DTYPES, 2)
    _expect(scale, ("F32", "BF16", "F16"))
    block = scheme.get("weight_block_size") if scheme else None
    if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
        block = [128, 128]
    out, inputs = data.shape
    want: tuple[int, ...] = (_group_count(out, block[0]), _group_count(inputs, block[1]))
    if scale.numel == 1:
        want, block = scale.shape, [out, inputs]  # one scale for the whole tensor
    if scale.shape != want:
        raise _bad(scale, f"shape {list(scale.shape)}, but {list(data.shape)} in {block[0]} x {block[1]} blocks needs {list(want)}")
    parts = {"scale": scale, **_parts(tensors, module, {"input_scale": ".input_scale"})}
    return QuantizedWeight(module + ".weight", Method.FP8_BLOCK, data.shape, 8, data, parts, block[1], {"block": tuple(block)})


def _fp8_scaled(tensors: dict[str, TensorInfo], module: str, scheme: Scheme | None) -> QuantizedWeight:
    """FP8 with ``weight_scale`` (compressed-tensors ``float-quantized`` via
    ``quantization/lifecycle/forward.py`` ``dequantize``: x * scale; fbgemm_fp8 per channel):
    one scale per tensor, per output row [out, 1], per group [out, in/g], or per block."""
    data = _need(tensors, module, ".weight", "FP8")
    scale = tensors[module + ".weight_scale"]
    _expect(data, FP8_DTYPES, 2)
    _expect(scale, ("F32", "BF16", "F16"))
    out, inputs = data.shape
    sshape = tuple(scale.shape)
    if scale.numel == 1:
        block = (out, inputs)
    elif sshape in ((out,), (out, 1)):
        block = (1, inputs)
    elif len(sshape) == 2 and sshape[0] == out:
        block = (1, _group_count(inputs, sshape[1]))
        if _group_count(inputs, block[1]) != sshape[1]:
            raise _bad(scale, f"shape {list(sshape)} does not divide {inputs} inputs into groups")
    elif len(sshape) == 2 and sshape[0] and sshape[1]:
        weights = ct_weights(scheme) if scheme else {}
        given = weights.get("block_structure") or (scheme.get("weight_block_size") if scheme else None) or [128, 128]
        block = (int(given[0]), int(given[1]))
        if (_group_count(out, block[0]), _group_count(inputs, block[1])) != sshape:
            raise _bad(scale, f"shape {list(sshape)} does not match {list(data.shape)} in {block[0]} x {block[1]} blocks")
    else:
        raise _bad(scale, f"shape {list(sshape)} is no FP8 scale layout for {list(data.shape)}")
    parts = {"scale": scale, **_parts(tensors, module, {"input_scale": ".input_scale", "zero_point": ".weight_zero_point"})}
    unreadable = "FP8 with a zero point" if "zero_point" in parts else None
    return QuantizedWeight(module + ".weight", Method.FP8, data.shape, 8, data, parts, block[1], {"block": block}, unreadable)


# ---------------------------------------------------------------- compressed-tensors pack-quantized


def _ct_packed(
    tensors: dict[str, TensorInfo], module: str, scheme: Scheme | None, read: Callable[[TensorInfo], np.ndarray]
) -> QuantizedWeight:
    """compressed-tensors ``pack-quantized`` (``compressors/quantized_compressors/pack_quantized.py``):
    ``weight_packed`` int32 [out, ceil(in*bits/32)], values + 2^(bits-1) packed along the input
    dimension from the low bits up; ``weight_shape`` the dense [out, in]; ``weight_scale``
    [out, groups]; ``weight_zero_point`` (asymmetric) packed the same way along the output
    dimension; W = (q - zero_point) * scale (``quantization/lifecycle/forward.py``)."""
    packed = tensors[module + ".weight_packed"]
    what = "compressed-tensors"
    scale = _need(tensors, module, ".weight_scale", what)
    shape_info = _need(tensors, module, ".weight_shape", what)
    _expect(packed, ("I32", "U8"), 2)
    _expect(shape_info, ("I64", "I32"), 1)
    values = read(shape_info) if shape_info.numel == 2 else None
    if values is None or any(int(v) <= 0 for v in values):
        raise _bad(shape_info, "weight_shape must hold two positive sizes [out, in]")
    out, inputs = (int(v) for v in values)
    if packed.dtype == "U8":  # nvfp4 / mxfp4 pack-quantized: two FP4 codes per byte, FP8 or E8M0 group scales
        if packed.shape != (out, _group_count(inputs, 2)):
            raise _bad(packed, f"shape {list(packed.shape)} does not pack weight_shape {[out, inputs]} at 4 bits")
        parts = {"scale": scale, "shape": shape_info, **_parts(tensors, module, {"global_scale": ".weight_global_scale"})}
        fmt = str((scheme.get("format") if scheme else None) or "fp4-pack-quantized")
        return QuantizedWeight(module + ".weight", Method.CT_FP4, (out, inputs), 4, packed, parts, None, {}, f"compressed-tensors {fmt}")
    _expect(scale, ("F32", "BF16", "F16"), 2)
    weights = ct_weights(scheme) if scheme else {}
    bits = weights.get("num_bits") if isinstance(weights.get("num_bits"), int) else 4
    if bits not in (2, 4, 8):
        raise _bad(packed, f"{bits}-bit packing is not one compressed-tensors writes into int32")
    per_word = 32 // bits
    if packed.shape != (out, _group_count(inputs, per_word)):
        raise _bad(packed, f"shape {list(packed.shape)} does not pack weight_shape {[out, inputs]} at {bits} bits")
    if scale.shape[0] != out or not scale.shape[1]:
        raise _bad(scale, f"shape {list(scale.shape)} does not give scales for {out} rows")
    groups = scale.shape[1]
    group = weights.get("group_size") if isinstance(weights.get("group_size"), int) and weights.get("group_size", 0) > 0 else None
    group = group or _group_count(inputs, groups)
    parts = {"scale": scale, "shape": shape_info}
    parts.update(_parts(tensors, module, {"zero_point": ".weight_zero_point", "g_idx": ".weight_g_idx"}))
    if "g_idx" not in parts and _group_count(inputs, group) != groups:
        raise _bad(scale, f"{groups} groups, but {inputs} inputs in groups of {group} make {_group_count(inputs, group)}")
    zp = parts.get("zero_point")
    if zp is not None and zp.shape != (_group_count(out, per_word), groups) and zp.shape != (out, groups):
        raise _bad(zp, f"shape {list(zp.shape)} matches neither packed nor plain zero points for {[out, groups]}")
    kind = weights.get("type", "int")
    fmt = str((scheme.get("format") if scheme else None) or "pack-quantized")
    unreadable = None if kind == "int" and fmt == "pack-quantized" else f"compressed-tensors {fmt} {kind}{bits}"
    return QuantizedWeight(module + ".weight", Method.CT_INT, (out, inputs), bits, packed, parts, group, {}, unreadable)


# ---------------------------------------------------------------- MXFP4 and torchao


def _mxfp4(tensors: dict[str, TensorInfo], prefix: str) -> QuantizedWeight:
    """MXFP4 (gpt-oss; transformers ``integrations/mxfp4.py`` ``convert_moe_packed_tensors``):
    ``<name>_blocks`` uint8 [..., out, in/32, 16] (two FP4 E2M1 codes per byte) and
    ``<name>_scales`` uint8 [..., out, in/32] (E8M0 exponents, bias 127). The logical
    parameter is ``<name>`` with in = (in/32) * 32. The LM head is never stored so."""
    blocks = tensors[prefix + "_blocks"]
    scales = tensors[prefix + "_scales"]
    _expect(blocks, ("U8",))
    _expect(scales, ("U8",))
    if len(blocks.shape) < 3 or blocks.shape[-1] != 16 or scales.shape != blocks.shape[:-1]:
        raise _bad(scales, f"shape {list(scales.shape)} does not match blocks {list(blocks.shape)} (… , G, 16)")
    shape = (*blocks.shape[:-2], blocks.shape[-2] * 32)
    return QuantizedWeight(prefix, Method.MXFP4, shape, 4, blocks, {"scales": scales}, 32, {}, "MXFP4 expert tensors")


def _torchao(tensors: dict[str, TensorInfo], module: str, metadata: dict[str, str]) -> QuantizedWeight:
    """torchao float8 as transformers saves it in safetensors (torchao
    ``prototype/safetensors`` flattening): ``<module>._weight_qdata`` F8_E4M3 [out, in] and
    ``<module>._weight_scale`` float32 [out/b0, in/b1], the Float8Tensor's JSON (block size,
    dtype) in the file's ``__metadata__`` under ``<module>.weight``; W = qdata * scale
    (``quant_primitives.py`` ``_dequantize_affine_float8``), cast to that dtype."""
    data = tensors[module + "._weight_qdata"]
    scale = _need(tensors, module, "._weight_scale", "torchao float8")
    _expect(data, FP8_DTYPES, 2)
    _expect(scale, ("F32", "BF16", "F16"))
    out, inputs = data.shape
    sshape = scale.shape if len(scale.shape) == 2 else (1, 1) if scale.numel == 1 else ()
    if len(sshape) != 2 or not sshape[0] or not sshape[1] or out % sshape[0] or inputs % sshape[1]:
        raise _bad(scale, f"shape {list(scale.shape)} does not tile {list(data.shape)} into blocks")
    block = (out // sshape[0], inputs // sshape[1])
    layout = {"block": block, "dtype": _torchao_dtype(metadata.get(module + ".weight"))}
    return QuantizedWeight(module + ".weight", Method.TORCHAO_FP8, data.shape, 8, data, {"scale": scale}, block[1], layout)


def _torchao_dtype(entry: str | None) -> str | None:
    """The Float8Tensor's high-precision dtype from its metadata JSON (``{"_data": {"dtype": {"_data": "bfloat16"}}}``)."""
    try:
        described = json.loads(entry) if entry else None
        dtype = described["_data"]["dtype"]["_data"] if isinstance(described, dict) else None
    except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
        return None
    return dtype if isinstance(dtype, str) else None
