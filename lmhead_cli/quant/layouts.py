"""Group each quantized module's stored tensors into one logical weight with its dense shape.

Every layout is recognised by the tensor names its tool writes beside a module
(verified against each tool's source; see each method in ``methods/``). A
module that has the anchor tensor of a layout but lacks a part it needs, or
whose parts disagree on the shape, is an error: nothing quantized is counted
or read by guesswork. The helpers below are shared by the methods' groupers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import CheckpointError
from ..formats.base import TensorInfo
from .detect import DECLARED_PARTS, LOOSE_METADATA, QUANT_SUFFIXES
from .registry import methods
from .scheme import QuantizedWeight, Scheme

__all__ = ["FP8_DTYPES", "Grouping", "bad", "expect", "group", "group_count", "need", "parts"]

FP8_DTYPES = ("F8_E4M3", "F8_E5M2")


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

    Each stored name is offered to the registry's methods in their order; the first
    that claims it groups the module it starts. ``read`` fetches a small tensor's
    values (bitsandbytes' quant_state JSON, compressed-tensors' weight_shape): the only
    data read before a row is asked for.
    """
    out = Grouping()
    every = methods()
    for late in (False, True):  # late: layouts whose anchor others store too, once the rest took theirs
        for name in sorted(tensors):
            if name in out.consumed:
                continue
            for method in every:
                module = method.claim(name, tensors, scheme, late=late)
                if module is not None:
                    out.add(method.group(tensors, module, name, scheme, read, metadata or {}))
                    break
    for name, info in tensors.items():
        if name in out.consumed:
            continue
        if name.endswith(LOOSE_METADATA) and (scheme is not None or out.weights):  # a dense model may have such a parameter
            out.metadata.append(info)
            out.consumed.add(name)
            continue
        for method in every:
            error = method.stray(name, info, tensors, scheme)
            if error is not None:
                raise error
        if name.endswith(QUANT_SUFFIXES) or scheme is not None and name.endswith(DECLARED_PARTS):
            raise CheckpointError(info.file, f"{name} looks like part of a quantized module, but the module's other tensors are missing")
    return out


# ---------------------------------------------------------------- helpers for the methods' groupers


def need(tensors: dict[str, TensorInfo], module: str, suffix: str, what: str) -> TensorInfo:
    info = tensors.get(module + suffix)
    if info is None:
        anchor = next((t for n, t in tensors.items() if n.startswith(module + ".") or n.startswith(module + "_")), None)
        raise CheckpointError(anchor.file if anchor else None, f"{module} is {what}-quantized but {module}{suffix} is missing")
    return info


def bad(info: TensorInfo, reason: str) -> CheckpointError:
    return CheckpointError(info.file, f"{info.name}: {reason}")


def expect(info: TensorInfo, dtypes: tuple[str, ...], ndim: int | None = None) -> None:
    if info.dtype not in dtypes:
        raise bad(info, f"dtype {info.dtype}, but this layout stores {' or '.join(dtypes)}")
    if ndim is not None and len(info.shape) != ndim:
        raise bad(info, f"shape {list(info.shape)}, but this layout stores a {ndim}-D tensor")


def parts(tensors: dict[str, TensorInfo], module: str, roles: dict[str, str]) -> dict[str, TensorInfo]:
    return {role: tensors[module + suffix] for role, suffix in roles.items() if module + suffix in tensors}


def group_count(columns: int, group: int) -> int:
    return -(-columns // group)
