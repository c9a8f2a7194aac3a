"""Hidden states from disk: .npy, .npz, .safetensors (and .pt through torch, weights only).

Nothing is unpickled: numpy files load with ``allow_pickle=False``, so an
object array is refused before any of its bytes are interpreted.
"""

from __future__ import annotations

import math
import os
import tokenize
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.dtypes import STORAGE, to_float32
from ..core.errors import HiddenStateError
from ..core.files import open_regular, regular_size

__all__ = ["HiddenStates", "load_hidden"]

NPY_MAGIC = b"\x93NUMPY"
MAX_STATE_BYTES = 2 * 2**30  # the states as float32: 2 GiB is 130k vectors of width 4096
MAX_FILE_BYTES = 4 * MAX_STATE_BYTES  # float64, or a .pt / .npz with other arrays beside the chosen one
MAX_TARGETS_BYTES = 2**30


@dataclass(frozen=True)
class HiddenStates:
    """Hidden states as float32, with the meaning of each leading axis."""

    path: Path
    values: np.ndarray  # (..., d) float32
    axes: tuple[str, ...]  # names of the leading axes: (), ("position",), ("batch", "position"), ("layer", "position"), ...
    key: str | None = None

    @property
    def positions(self) -> int:
        return self.values.shape[-2] if self.values.ndim >= 2 else 1


def load_hidden(path: str | Path, hidden_size: int, key: str | None = None, layers: bool = False) -> HiddenStates:
    """Load, validate the shape against ``hidden_size``, check for NaN/Inf, widen to float32.

    The file must be a regular file; its declared shape is checked (against the model's width and
    ``MAX_STATE_BYTES``) before any data is read or inflated.
    """
    path = Path(path)
    regular_size(path, HiddenStateError, limit=MAX_FILE_BYTES)
    array, key = _read(path, key, _Expect(hidden_size, layers))
    values = _as_float32(path, array)
    axes = _axes(path, values.shape, hidden_size, layers)
    _check_finite(path, values, axes)
    return HiddenStates(path=path, values=values, axes=axes, key=key)


def load_target_ids(path: str | Path) -> list[int]:
    """Next-token ids from a 1-D integer ``.npy`` file (uint64 included: ``targets_from_ids`` checks the range)."""
    path = Path(path)
    fd = open_regular(path, HiddenStateError, "target ids file", limit=MAX_TARGETS_BYTES)
    with os.fdopen(fd, "rb") as f:
        try:
            shape, dtype = _check_npy_header(path, f, os.fstat(f.fileno()).st_size)
            if dtype.kind not in "iu" or len(shape) != 1:
                raise HiddenStateError(path, f"target ids must be a 1-D integer array, not {dtype} {list(shape)}")
            ids = np.load(f, allow_pickle=False)
        except HiddenStateError:
            raise
        except (ValueError, OSError, EOFError) as exc:
            raise _numpy_error(path, exc, ".npy") from exc
    return [int(i) for i in ids.tolist()]


@dataclass(frozen=True)
class _Expect:
    """What the model can use, checked against a file's declared shape before its data is read."""

    hidden_size: int
    layers: bool

    def check(self, path: Path, shape: tuple[int, ...]) -> None:
        _axes(path, shape, self.hidden_size, self.layers)
        need = math.prod(shape) * 4  # widened to float32
        if need > MAX_STATE_BYTES:
            raise HiddenStateError(
                path,
                f"shape {list(shape)} is {need:,} bytes as float32; lmhead reads hidden states up to {MAX_STATE_BYTES:,} bytes",
                hint="save only the positions (and layers) you want to inspect",
            )


def _read(path: Path, key: str | None, expect: _Expect) -> tuple[np.ndarray, str | None]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, expect), None
    if suffix == ".npz":
        return _read_npz(path, key, expect)
    if suffix == ".safetensors":
        return _read_safetensors(path, key, expect)
    if suffix in (".pt", ".pth", ".bin"):
        return _read_torch(path, key)
    raise HiddenStateError(path, f"unsupported hidden-state file type {suffix or '(none)'}", hint="use .npy, .npz or .safetensors")


def _read_npy(path: Path, expect: _Expect) -> np.ndarray:
    fd = open_regular(path, HiddenStateError, limit=MAX_FILE_BYTES)
    with os.fdopen(fd, "rb") as f:
        try:
            shape, _ = _check_npy_header(path, f, os.fstat(f.fileno()).st_size)
            expect.check(path, shape)
            return np.load(f, allow_pickle=False)
        except HiddenStateError:
            raise
        except (ValueError, OSError, EOFError) as exc:
            raise _numpy_error(path, exc, ".npy") from exc


def _read_npz(path: Path, key: str | None, expect: _Expect) -> tuple[np.ndarray, str]:
    """One member of an ``.npz``: its declared size and shape are checked before a byte is inflated.

    ``zipfile`` stops inflating at the member's declared size, and the ``.npy`` header inside must
    claim no more than that size holds, so memory is bounded by the shape that passed the checks.
    """
    import zipfile  # here: only an .npz needs it (7 ms of start-up with bz2, lzma and shutil)

    fd = open_regular(path, HiddenStateError, limit=MAX_FILE_BYTES)
    with os.fdopen(fd, "rb") as f:
        try:
            with np.load(f, allow_pickle=False) as archive:
                name = _choose_key(path, list(archive.files), key)
                member = name + ".npy" if name + ".npy" in archive.zip.namelist() else name
                with archive.zip.open(member) as m:
                    shape, _ = _check_npy_header(path, m, archive.zip.getinfo(member).file_size)
                expect.check(path, shape)
                return archive[name], name
        except HiddenStateError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError) as exc:
            raise _numpy_error(path, exc, ".npz") from exc


def _numpy_error(path: Path, exc: BaseException, kind: str) -> HiddenStateError:
    """numpy's refusal to unpickle, or any other failure to read, as one line."""
    if isinstance(exc, ValueError) and ("allow_pickle" in str(exc) or "Object arrays" in str(exc)):
        return HiddenStateError(path, "holds Python objects (a pickle); refused, never unpickled")
    return HiddenStateError(path, f"not a valid {kind} file: {_one_line(exc)}")


def _check_npy_header(path: Path, f: BinaryIO, size: int) -> tuple[tuple[int, ...], np.dtype]:
    """Refuse, before numpy allocates anything, a file that is not .npy or whose header claims more data than it holds."""
    if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
        f.seek(0)
        if f.read(1) == b"\x80":  # pickle protocol 2+: numpy would hand it to pickle
            raise HiddenStateError(path, "holds Python objects (a pickle); refused, never unpickled")
        raise HiddenStateError(path, "not a .npy file (no \\x93NUMPY magic at the start)")
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        with warnings.catch_warnings():  # a corrupt header's escapes would warn from numpy's parser
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            shape, _, dtype = read_header(f)
    except (ValueError, SyntaxError, EOFError, tokenize.TokenError) as exc:
        raise HiddenStateError(path, f"not a valid .npy file: corrupt header ({_one_line(exc)})") from exc
    if dtype.hasobject:
        raise HiddenStateError(path, "holds Python objects (a pickle); refused, never unpickled")
    need = math.prod(shape) * dtype.itemsize
    have = size - f.tell()
    if need > have:
        raise HiddenStateError(path, f"header claims shape {list(shape)} of {dtype} ({need:,} bytes), but only {have:,} bytes follow")
    f.seek(0)
    return tuple(shape), dtype


def _read_safetensors(path: Path, key: str | None, expect: _Expect) -> tuple[np.ndarray, str]:
    """Through lmhead's own safetensors reader: header validated, shape checked, then the bytes read
    and widened to float32 (every float dtype it reads, F8 included; F4/F6 and integers refused)."""
    from ..core.errors import CheckpointError
    from ..formats.safetensors import SafetensorsFile

    try:
        reader = SafetensorsFile(path)
    except CheckpointError as exc:
        raise HiddenStateError(path, exc.reason) from None
    try:
        tensors = {t.name: t for t in reader.tensors}
        name = _choose_key(path, list(tensors), key)
        info = tensors[name]
        expect.check(path, info.shape)
        try:
            values = reader.read_rows(info, 0, info.rows)
        except CheckpointError as exc:
            reason = exc.reason.removeprefix(f"{name}: ")
            raise HiddenStateError(path, f"{reason}; hidden states are floats") from None
        return values.reshape(info.shape), name
    finally:
        reader.close()


def _read_torch(path: Path, key: str | None) -> tuple[np.ndarray, str | None]:
    try:
        import torch
    except ImportError:
        raise HiddenStateError(
            path, "reading .pt files needs PyTorch", hint="pip install torch, or save the states with numpy.save"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise HiddenStateError(path, f"cannot load with weights_only=True: {_one_line(exc)}") from exc
    if isinstance(obj, dict):
        name = _choose_key(path, [k for k in obj if isinstance(obj[k], torch.Tensor)], key)
        obj = obj[name]
    elif isinstance(obj, (list, tuple)) and obj and all(isinstance(t, torch.Tensor) for t in obj):
        obj = torch.stack(list(obj))  # a tuple of per-layer states, as output_hidden_states gives
        name = None
    else:
        name = None
    if not isinstance(obj, torch.Tensor):
        raise HiddenStateError(path, f"holds a {type(obj).__name__}, not a tensor")
    if not obj.dtype.is_floating_point:  # checked before any conversion, as for .npy: ids are not states
        raise HiddenStateError(
            path, f"dtype {str(obj.dtype).removeprefix('torch.')} is not a floating-point type; hidden states are floats"
        )
    if obj.dtype in (torch.float64, torch.float32, torch.float16):
        return obj.detach().numpy(), name  # numpy has these: _as_float32 narrows float64 and reports overflow
    return obj.detach().float().numpy(), name  # bf16 and fp8 widen exactly


def _choose_key(path: Path, keys: list[str], key: str | None) -> str:
    if key is not None:
        if key not in keys:
            raise HiddenStateError(path, f"no array named {key!r} (has: {', '.join(keys) or 'none'})")
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise HiddenStateError(path, "holds no arrays")
    raise HiddenStateError(path, f"holds several arrays ({', '.join(keys)}); pick one with --key")


def _as_float32(path: Path, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "V" and array.dtype.itemsize == 2 and array.dtype.fields is None:
        # np.save writes an ml_dtypes bfloat16 array as raw 2-byte records ('|V2').
        array = to_float32(array.view(STORAGE["BF16"]), "BF16")
    if array.dtype.kind != "f":
        raise HiddenStateError(path, f"dtype {array.dtype} is not a floating-point type; hidden states are floats")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, reported by _check_finite
        return np.asarray(array, dtype=np.float32, order="C")  # keeps a 0-d array 0-d, for the shape message


def _axes(path: Path, shape: tuple[int, ...], hidden_size: int, layers: bool) -> tuple[str, ...]:
    ndim = len(shape)
    if ndim == 0 or shape[-1] != hidden_size:
        last = shape[-1] if ndim else "a scalar"
        raise HiddenStateError(path, f"last dimension is {last}, but the model's hidden size is {hidden_size} (shape {list(shape)})")
    if layers:
        shapes = {3: ("layer", "position"), 4: ("layer", "batch", "position")}
        expected = "(L, T, d) or (L, B, T, d)"
    else:
        shapes = {1: (), 2: ("position",), 3: ("batch", "position")}
        expected = "(d,), (T, d) or (B, T, d); with --layers (L, T, d)"
    if ndim not in shapes:
        raise HiddenStateError(path, f"shape {list(shape)} has {ndim} dimensions; expected {expected}")
    axes = shapes[ndim]
    for axis, n in zip(axes, shape, strict=False):
        if n == 0:
            raise HiddenStateError(path, f"shape {list(shape)} holds no states: its {axis} axis is empty")
    return axes


def _check_finite(path: Path, values: np.ndarray, axes: tuple[str, ...]) -> None:
    bad = ~np.isfinite(values).all(axis=-1)  # (...,) one flag per state vector
    if not bad.any():
        return
    where = np.argwhere(bad) if bad.ndim else np.zeros((1, 0), dtype=int)
    shown = [", ".join(f"{a} {i}" for a, i in zip(axes, idx, strict=True)) or "the vector" for idx in where[:5]]
    more = f" and {len(where) - 5} more" if len(where) > 5 else ""
    raise HiddenStateError(path, f"NaN or Inf in {len(where)} state(s): {'; '.join(shown)}{more}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:200]
