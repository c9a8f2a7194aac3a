"""What a quantization method is to lmhead: one ``QuantMethod`` subclass per method.

A method reads its settings from a config (``bits_and_group``; from its own
file beside the weights, ``side_scheme``; or from safetensors metadata,
``metadata_scheme``), claims the stored names that start one of its quantized
modules (``claim``), groups each module's tensors into one ``QuantizedWeight``
of its dense shape and bits (``group``), names the part of a module that is
missing where it can tell (``stray``), and dequantizes rows exactly as its own
tool does (``read_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...core.errors import CheckpointError
from ...formats.base import TensorInfo
from ..raw import Stored
from ..scheme import QuantizedWeight, Scheme, generic_bits_and_group

__all__ = ["Read", "QuantMethod"]

Read = Callable[[TensorInfo], np.ndarray]  # a small stored tensor's values (a quant_state, a weight_shape)


class QuantMethod:
    """The base: a method that claims nothing; each subclass overrides what its layout needs."""

    def bits_and_group(self, qc: dict[str, Any]) -> tuple[int | None, int | None]:
        """(bits, group size) from the method's ``quantization_config``; None where it does not say."""
        return generic_bits_and_group(qc)

    def side_settings(self, settings: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
        """The method's own JSON file beside the weights (``registry.Registration.side_file``) as a
        ``quantization_config`` would state it; ``config`` is config.json (None without one), for a method
        whose file leaves out what the model's config says."""
        return settings

    def metadata_scheme(self, metadata: dict[str, str]) -> Scheme:
        """The settings its safetensors ``__metadata__`` states (``registry.Registration.metadata``)."""
        raise NotImplementedError

    def claim(self, name: str, tensors: dict[str, TensorInfo], scheme: Scheme | None, *, late: bool) -> str | None:
        """The module that stored tensor ``name`` starts, if it is one of this method's; None otherwise.

        Names are offered in two rounds, each in sorted order: ``late`` is the second,
        for layouts whose anchor (``.weight_scale``) other layouts also store."""
        return None

    def group(
        self, tensors: dict[str, TensorInfo], module: str, anchor: str, scheme: Scheme | None, read: Read, metadata: dict[str, str]
    ) -> QuantizedWeight:
        """The module's stored tensors as one logical weight; an error when a part is missing or disagrees.

        ``anchor`` is the stored name ``claim`` took the module from."""
        raise NotImplementedError

    def stray(self, name: str, info: TensorInfo, tensors: dict[str, TensorInfo], scheme: Scheme | None) -> CheckpointError | None:
        """Why ``name``, left over once every module is grouped, cannot be a plain tensor; None if it can."""
        return None

    def read_rows(self, qw: QuantizedWeight, start: int, stop: int, stored: Stored) -> np.ndarray:
        """Rows ``start:stop`` of the dense weight as the method's own dequantizer returns them, (C, in) float32."""
        raise qw.not_dequantizable()
