"""PyTorch checkpoints: ``pytorch_model.bin`` (single or sharded), ``.pt`` / ``.pth`` state dicts.

Loaded only through ``torch.load(weights_only=True)`` — torch's restricted
unpickler, which refuses code — and memory-mapped (``mmap=True``) when the file
is in the zip format, so listing tensors does not read their data. torch is an
optional extra: without it, a clear message says how to enable it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .base import TensorInfo

# torch dtype -> the safetensors name lmhead reports everywhere
DTYPE_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "complex64": "C64",
}
STATE_DICT_KEYS = ("model", "state_dict", "module", "model_state_dict")  # nanoGPT, Lightning, DeepSpeed
COMPILE_PREFIX = "_orig_mod."  # torch.compile wraps modules; nanoGPT checkpoints keep the prefix


def import_torch(path: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            path, "is a PyTorch checkpoint, and reading it needs PyTorch", hint="pip install 'lmhead[torch]' (or convert it to safetensors)"
        ) from None
    return torch


def load_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a PyTorch file, without executing any code from it."""
    torch = import_torch(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise CheckpointError(path, f"cannot load with weights_only=True: {_one_line(exc)}") from exc
        obj = _load_legacy(torch, path)  # the pre-1.6 format cannot be memory-mapped
    except Exception as exc:  # the restricted unpickler raises several types
        raise CheckpointError(path, f"cannot load with weights_only=True: {_one_line(exc)}") from exc
    return _find_state_dict(torch, path, obj)


def _load_legacy(torch: Any, path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(path, f"cannot load with weights_only=True: {_one_line(exc)}") from exc


def _find_state_dict(torch: Any, path: Path, obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
                obj = obj[key]
                break
        tensors = {str(k).removeprefix(COMPILE_PREFIX): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(path, "holds no state dict (a mapping of names to tensors)")


class TorchFile:
    """One PyTorch file; tensors stay memory-mapped, rows are copied out on demand."""

    format = "pytorch"

    def __init__(self, path: Path):
        self.path = path
        self._torch = import_torch(path)
        self._tensors = load_state_dict(path)
        self.tensors = [self._info(name, t) for name, t in self._tensors.items()]

    def _info(self, name: str, t: Any) -> TensorInfo:
        dtype = str(t.dtype).removeprefix("torch.")
        storage = t.untyped_storage()
        return TensorInfo(
            name=name,
            shape=tuple(t.shape),
            dtype=DTYPE_NAMES.get(dtype, dtype.upper()),
            nbytes=math.prod(t.shape) * t.element_size(),
            file=self.path,
            # Where the bytes are: two names over the same storage and offset are one matrix (tied by storage).
            offset=storage.data_ptr() + t.storage_offset() * t.element_size(),
        )

    def read_rows(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        t = self._tensors[info.name]
        if t.dtype.is_complex or not t.dtype.is_floating_point:
            raise CheckpointError(self.path, f"{info.name}: dtype {info.dtype} is not a floating-point type")
        return t[start:stop].float().numpy()

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        return self._tensors[info.name][:, start:stop].float().numpy()

    def read_raw_rows(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        rows = self._tensors[info.name][start:stop].contiguous()
        return rows.view(-1).view(self._torch.uint8).numpy().reshape(stop - start, -1)

    def close(self) -> None:
        self._tensors = {}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
