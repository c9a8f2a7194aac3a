"""One step from weight files to a ``Checkpoint``, shared by local folders and hub repos.

``choose_weights`` is the one rule for which files of a folder (or repo) are
the weights; ``open_index`` reads a shard index; ``assemble`` opens each file's
reader, reads config.json beside them and groups quantized modules into
logical weights. Where a file lives (disk or hub) is the caller's ``opener``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError
from ..core.files import read_regular
from ..formats.base import Reader, TensorInfo
from .checkpoint import Checkpoint

__all__ = ["INDEX_SUFFIX", "WeightFiles", "assemble", "choose_weights", "listed", "open_index", "read_json"]

INDEX_SUFFIX = ".safetensors.index.json"
MAX_JSON_BYTES = 64 * 2**20  # config and index files are kilobytes; more is not a config


@dataclass(frozen=True)
class WeightFiles:
    """Which safetensors files of a folder hold the weights: an index, or the files themselves."""

    index: str | None
    files: tuple[str, ...] = ()


def choose_weights(names: Iterable[str]) -> WeightFiles | None:
    """The one rule, for a local folder and a hub repo alike: ``model.safetensors.index.json`` (or the
    only index), else ``model.safetensors``, else every ``*.safetensors`` of the top folder; ``None``
    when there are none. Several indexes, none of them ``model``'s, with no weights besides: an error
    the caller words (it knows what else the folder holds)."""
    top = sorted(n for n in names if "/" not in n)
    indexes = [n for n in top if n.endswith(INDEX_SUFFIX)]
    preferred = "model" + INDEX_SUFFIX
    if preferred in indexes or len(indexes) == 1:
        return WeightFiles(index=preferred if preferred in indexes else indexes[0])
    if "model.safetensors" in top:
        return WeightFiles(index=None, files=("model.safetensors",))
    files = tuple(n for n in top if n.endswith(".safetensors"))
    return WeightFiles(index=None, files=files) if files else None


def listed(files: list[Path], shown: int = 5) -> str:
    names = ", ".join(p.name for p in files[:shown])
    return names + (f" and {len(files) - shown} more" if len(files) > shown else "")


def open_index(
    index_path: Path,
    directory: Path,
    *,
    locate: Callable[[str], Path],
    opener: Callable[[Path], Reader],
    shown: Path | None = None,
) -> Checkpoint:
    """A sharded checkpoint from its index; ``locate`` turns a shard name into the path to open
    (a file in the folder, or the repo's file for hf://)."""
    index = read_json(index_path, "index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(index_path, "index has no 'weight_map' of tensor name -> shard file")
    if not weight_map:
        raise CheckpointError(index_path, "index's 'weight_map' is empty: it names no tensors")
    shard_names = sorted(set(weight_map.values()))
    shards = []
    for name in shard_names:
        if "\0" in name:
            raise CheckpointError(index_path, f"shard name {name!r} is not a valid file name")
        shards.append(locate(name))
    ckpt = assemble(shown or index_path, shards, directory, index_path=index_path, opener=opener)
    metadata = index.get("metadata")
    ckpt.index_metadata = metadata if isinstance(metadata, dict) else {}
    for tensor, shard in sorted(weight_map.items()):
        info = ckpt.on_disk.get(tensor)
        if info is None or info.file.name != Path(shard).name:
            ckpt.index_problems.append(f"lists tensor {tensor!r} in {shard}, but that shard does not hold it")
    ckpt.unindexed = sorted(set(ckpt.on_disk) - set(weight_map))
    return ckpt


def assemble(
    path: Path, files: list[Path], directory: Path, *, opener: Callable[[Path], Reader], index_path: Path | None = None
) -> Checkpoint:
    readers: dict[Path, Reader] = {}
    try:
        return _assemble_readers(readers, path, files, directory, index_path, opener)
    except BaseException:
        for reader in readers.values():  # a later file (or the config) is bad: release the files already open
            reader.close()
        raise


def _assemble_readers(
    readers: dict[Path, Reader], path: Path, files: list[Path], directory: Path, index_path: Path | None, opener: Callable[[Path], Reader]
) -> Checkpoint:
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        reader = opener(file)
        readers[file] = reader
        for info in reader.tensors:
            if info.name in tensors:
                other = tensors[info.name].file.name
                raise CheckpointError(file, f"tensor {info.name!r} is also stored in {other}")
            tensors[info.name] = info
    config_path = directory / "config.json"
    config = read_json(config_path, "config") if os.path.lexists(config_path) else None  # a pipe or folder there is an error
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(config_path, "config is not a JSON object")
    tokenizer = directory / "tokenizer.json"
    ckpt = Checkpoint(
        path=path,
        format=next(iter(readers.values())).format,
        tensors=tensors,
        readers=readers,
        config=config,
        config_path=config_path if config is not None else None,
        tokenizer_path=tokenizer if os.path.lexists(tokenizer) else None,  # checked when read
        index_path=index_path,
    )
    _group_quantized(ckpt, directory)
    return ckpt


def _group_quantized(ckpt: Checkpoint, directory: Path) -> None:
    """Replace each quantized module's stored tensors by one logical weight of its dense shape."""
    from ..quant.detect import SIDE_FILES, may_be_quantized

    sides: dict[str, Any] = {}
    for name in SIDE_FILES:  # a method's own file beside the weights (AutoGPTQ's quantize_config.json, ...)
        side_path = directory / name
        if os.path.lexists(side_path):  # a pipe or folder there is an error, not an absent file
            sides[name] = read_json(side_path, side_path.stem)
    quantize_config = sides.pop("quantize_config.json", None)
    metadata: dict[str, str] = {}
    for reader in ckpt.readers.values():
        metadata.update({k: v for k, v in reader.metadata.items() if isinstance(v, str)})
    if not may_be_quantized(ckpt.config, quantize_config, metadata, ckpt.tensors, sides):
        return  # dense: the layouts and dequantizers are never loaded
    from ..quant import group, recognise

    scheme = recognise(ckpt.config, quantize_config, metadata, sides)
    grouping = group(ckpt.tensors, scheme, ckpt.stored_parts().whole, metadata=metadata)
    ckpt.quantization = scheme
    if not grouping.consumed:
        return
    logical: dict[str, TensorInfo] = {}
    by_data = {w.data.name: w for w in grouping.weights.values()}
    for name, info in ckpt.tensors.items():
        weight = by_data.get(name)
        if weight is not None:
            logical[weight.name] = TensorInfo(
                weight.name, weight.shape, weight.method.dtype_label, weight.data.nbytes, weight.data.file, weight.data.offset
            )
        elif name not in grouping.consumed:
            if name in grouping.weights:
                raise CheckpointError(info.file, f"{name} is stored both dense and as a quantized module")
            logical[name] = info
    ckpt.stored = ckpt.tensors
    ckpt.tensors = logical
    ckpt.quantized = grouping.weights
    ckpt.quant_metadata = grouping.metadata


def read_json(path: Path, what: str) -> Any:
    data = read_regular(path, CheckpointError, what, limit=MAX_JSON_BYTES)
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise CheckpointError(path, f"{what} is nested too deeply to be a {what} file") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(path, f"{what} is not UTF-8 text") from exc
    except ValueError as exc:  # an integer of more than 4300 digits: Python refuses to convert it
        raise CheckpointError(path, f"{what} holds a number lmhead cannot read ({exc})") from exc
    except OSError as exc:
        raise CheckpointError(path, f"cannot read {what}: {exc.strerror or exc}") from exc
