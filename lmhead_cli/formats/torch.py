"""PyTorch checkpoints: ``pytorch_model.bin`` (single or sharded), ``.pt`` / ``.pth`` state dicts.

Loaded only through ``torch.load(weights_only=True)`` — torch's restricted
unpickler, which refuses code — and memory-mapped (``mmap=True``) when the file
is in the zip format, so listing tensors does not read their data. torch is an
optional extra: without it, a clear message says how to enable it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError
from .base import F32Array, F64Array, Format, Storage, TensorInfo, U8Array, into

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
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "float8_e8m0fnu": "F8_E8M0",
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
    return load_with_metadata(path)[0]


def load_with_metadata(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors of a PyTorch file and what it states beside them (HQQ's per-module settings, as JSON)."""
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


def _find_state_dict(torch: Any, path: Path, obj: Any) -> tuple[dict[str, Any], dict[str, str]]:
    hqq = _hqq_modules(torch, obj)
    if hqq is not None:
        return hqq
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
                obj = obj[key]
                break
        tensors = {str(k).removeprefix(COMPILE_PREFIX): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, {}
    raise CheckpointError(path, "holds no state dict (a mapping of names to tensors)")


def _hqq_modules(torch: Any, obj: Any) -> tuple[dict[str, Any], dict[str, str]] | None:
    """HQQ's ``qmodel.pt`` (``AutoHQQHFModel.save_quantized``): module name -> that module's state, where a
    quantized module's holds ``W_q``, ``scale``, ``zero`` and its settings (``shape``, ``nbits``,
    ``group_size``, ``axis``, ``packing``, ...). The tensors come back as ``<module>.<key>``, the settings
    as the metadata entry ``hqq`` (JSON), for ``quant/methods/hqq.py``."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, dict) for v in obj.values()):
        return None
    if not any("W_q" in v for v in obj.values()):
        return None
    tensors: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    for module, state in obj.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{module}.{key}"] = value
        if "W_q" in state:
            settings[str(module)] = {k: _plain(v) for k, v in state.items() if not isinstance(v, torch.Tensor) or k == "shape"}
    return tensors, {"hqq": json.dumps({"writer": "hqq", "modules": settings})}


def _plain(value: Any) -> Any:
    """A setting as JSON holds it: sizes as lists, dtypes and other objects as their names."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)) or type(value).__name__ == "Size":
        return [_plain(v) for v in value]
    return str(value)


class TorchFile:
    """One PyTorch file, a ``Reader``; tensors stay memory-mapped, rows are copied out on demand."""

    format = Format.PYTORCH

    def __init__(self, path: Path):
        self.path = path
        self._torch = import_torch(path)
        self._tensors, found = load_with_metadata(path)
        self.metadata: dict[str, Any] = dict(found)
        places = _file_offsets(self._torch, path, self._tensors.values())
        numbering: dict[int, int] = {}  # storage address -> index: the address itself is never kept
        self.tensors = [self._info(name, t, places, numbering) for name, t in self._tensors.items()]

    def _info(self, name: str, t: Any, places: dict[int, int], numbering: dict[int, int]) -> TensorInfo:
        dtype = str(t.dtype).removeprefix("torch.")
        address = t.untyped_storage().data_ptr()
        within = t.storage_offset() * t.element_size()
        place = places.get(address)
        return TensorInfo(
            name=name,
            shape=tuple(t.shape),
            dtype=DTYPE_NAMES.get(dtype, dtype.upper()),
            nbytes=math.prod(t.shape) * t.element_size(),
            file=self.path,
            offset=None if place is None else place + within,
            # Two names over the same storage and offset are one matrix (tied by storage).
            storage=Storage(index=numbering.setdefault(address, len(numbering)), offset=within),
        )

    def _float(self, info: TensorInfo) -> Any:
        t = self._tensors[info.name]
        if t.dtype.is_complex or not t.dtype.is_floating_point:
            raise CheckpointError(self.path, f"{info.name}: dtype {info.dtype} is not a floating-point type")
        return t

    def read_rows(self, info: TensorInfo, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        return into(out, self._float(info)[start:stop].float().numpy())

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        return self._float(info)[start:stop].double().numpy()

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        t = self._float(info)
        if t.dim() != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {t.dim()}-D tensor")
        return t[:, start:stop].float().numpy()

    @contextmanager
    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        t = self._tensors[info.name]
        inner = math.prod(info.shape[1:])
        row_bytes = inner * t.element_size()
        rows = t.reshape(info.rows, inner)[start:stop].contiguous().reshape(-1)  # a 0-d tensor is one row
        yield rows.view(self._torch.uint8).numpy().reshape(stop - start, row_bytes)

    @contextmanager
    def stored_cols(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        t = self._tensors[info.name]
        if t.dim() != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {t.dim()}-D tensor")
        cols = t[:, start:stop].contiguous().reshape(-1)
        yield cols.view(self._torch.uint8).numpy().reshape(t.shape[0], (stop - start) * t.element_size())

    def close(self) -> None:
        self._tensors = {}


def _file_offsets(torch: Any, path: Path, tensors: Iterable[Any]) -> dict[int, int]:
    """Storage address -> byte offset of that storage's record in the file.

    ``torch.load(mmap=True)`` maps the whole zip file once and cuts each
    storage from it at its record's offset, so address = base + offset for one
    unknown base, found by matching the addresses against the records'
    offsets. Empty for a file that is not a memory-mapped zip (legacy pickles).
    """
    try:
        records = torch._C.PyTorchFileReader(str(path))
        offsets = {records.get_record_offset(name) for name in records.get_all_records() if _is_storage_record(name)}
    except Exception:  # not a zip archive: nothing is mapped
        return {}
    addresses = sorted({t.untyped_storage().data_ptr() for t in tensors if t.untyped_storage().nbytes()})
    if not addresses or not offsets:
        return {}
    for base in sorted(addresses[0] - offset for offset in offsets):
        if all(address - base in offsets for address in addresses):
            return {address: address - base for address in addresses}
    return {}


def _is_storage_record(name: str) -> bool:
    return name.startswith("data/") or "/data/" in name


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
