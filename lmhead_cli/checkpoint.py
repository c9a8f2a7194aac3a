"""A checkpoint on disk: its tensors (from headers), config and tokenizer paths.

``open_checkpoint(path)`` accepts what people point at: a Hugging Face model
directory (single file or sharded), a bare ``.safetensors`` file, the path of a
``*.safetensors.index.json``, or a directory of safetensors files with no
config. Nothing but headers is read until a caller asks for rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CheckpointError
from .files import access_error, read_regular
from .formats.base import F32Array, F64Array, Format, Reader, TensorInfo, U8Array, columns_from_rows, into
from .hub import cached_repo_id, snapshot_blobs

if TYPE_CHECKING:
    from .formats.remote import HubFiles
    from .quant import QuantizedWeight, Scheme, Stored

__all__ = ["Checkpoint", "Format", "Reader", "TensorInfo", "open_checkpoint"]

INDEX_SUFFIX = ".safetensors.index.json"
TORCH_INDEX = "pytorch_model.bin.index.json"
TORCH_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_MAGIC_MAX_HEADER = 100_000_000
MAX_JSON_BYTES = 64 * 2**20  # config and index files are kilobytes; more is not a config


@dataclass
class Checkpoint:
    """Everything lmhead knows about a checkpoint before reading any tensor data.

    It spans one ``Reader`` per file (shards) and reads by tensor name through
    them; it never asks which format a reader is.
    """

    path: Path  # what the user named
    format: Format
    tensors: dict[str, TensorInfo]
    readers: dict[Path, Reader] = field(repr=False)
    config: dict[str, Any] | None = None
    config_path: Path | None = None
    tokenizer_path: Path | None = None
    index_path: Path | None = None
    index_metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    index_problems: list[str] = field(default_factory=list)  # index entries no shard backs
    unindexed: list[str] = field(default_factory=list)  # tensors in the shards the index does not name
    metadata: dict[str, Any] = field(default_factory=dict)  # GGUF key/values (its config), big arrays left out
    tokens: list[str] | None = None  # GGUF tokenizer.ggml.tokens, as stored
    quantization: Scheme | None = None  # the method's settings, as the config (or metadata) states them
    quantized: dict[str, QuantizedWeight] = field(default_factory=dict)  # logical name -> its stored parts
    quant_metadata: list[TensorInfo] = field(default_factory=list)  # scales, zero points, states: bytes, no parameters
    stored: dict[str, TensorInfo] = field(default_factory=dict)  # every tensor on disk by stored name, when ``tensors`` differs
    remote: HubFiles | None = field(default=None, repr=False)  # hf://: where rows come from, and the bytes fetched
    _stored: Stored | None = field(default=None, init=False, repr=False)  # quantized weights' parts, read through the readers

    @property
    def files(self) -> list[Path]:
        return list(self.readers)

    @property
    def on_disk(self) -> dict[str, TensorInfo]:
        """Every stored tensor (quantized parts included); ``tensors`` holds the logical ones."""
        return self.stored or self.tensors

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise CheckpointError(self.path, f"no tensor named {name!r}") from None

    def _reader(self, info: TensorInfo) -> Reader:
        return self.readers[info.file]

    def stored_parts(self) -> Stored:
        """Reads of the stored tensors quantized weights are made of (through each file's Reader)."""
        from .quant import Stored

        if self._stored is None:
            self._stored = Stored(self._reader)
        return self._stored

    def read_rows(self, name: str, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        """Rows ``start:stop`` of tensor ``name`` as float32 (dequantized when stored quantized), into
        ``out`` when given; only those bytes are read."""
        info = self.info(name)
        quantized = self.quantized.get(name)
        if quantized is not None:
            return into(out, self._read_quantized(quantized, start, stop))
        return self._reader(info).read_rows(info, start, stop, out)

    def read_rows_f64(self, name: str, start: int, stop: int) -> F64Array:
        """The same rows as float64: exact for every floating type, F64 included."""
        info = self.info(name)
        if name in self.quantized:  # the dequantized values are float32 (or narrower) exactly
            return self.read_rows(name, start, stop).astype(np.float64)
        return self._reader(info).read_rows_f64(info, start, stop)

    def read_cols(self, name: str, start: int, stop: int) -> F32Array:
        """Columns ``start:stop`` of a 2-D tensor as float32 (rows, C)."""
        info = self.info(name)
        if name in self.quantized:  # packed along rows: dequantize every row, chunk by chunk
            return columns_from_rows(lambda i, a, b: self.read_rows(i.name, a, b), info, start, stop)
        return self._reader(info).read_cols(info, start, stop)

    def stored_rows(self, name: str, start: int, stop: int) -> AbstractContextManager[U8Array]:
        """Rows as stored, uint8 (rows, row_bytes), for a byte comparison; valid inside the ``with`` block.

        A quantized weight's rows are spread over several stored tensors: its
        dequantized float32 rows stand in, so equal bytes still mean equal values.
        """
        info = self.info(name)
        if name in self.quantized:
            return nullcontext(self.read_rows(name, start, stop).reshape(stop - start, -1).view(np.uint8))
        return self._reader(info).stored_rows(info, start, stop)

    def _read_quantized(self, weight: QuantizedWeight, start: int, stop: int) -> F32Array:
        from .quant import read_rows

        try:
            return read_rows(weight, start, stop, self.stored_parts())
        except CheckpointError as exc:
            raise CheckpointError(self.path if "cannot dequantize" in exc.reason else exc.path, exc.reason, exc.hint) from None

    def read_tensor(self, name: str) -> F32Array:
        """A whole (small) tensor as float32: norm weights, biases."""
        info = self.info(name)
        return self.read_rows(name, 0, info.rows).reshape(info.shape)

    def row_chunks(self, name: str, chunk_rows: int) -> Iterator[tuple[int, F32Array]]:
        """Yield ``(start, rows)`` float32 chunks covering the tensor's first axis.

        Every chunk is written into one buffer: a chunk is valid until the next is asked for (a fresh
        16 MiB array per chunk costs its page faults, about a tenth of topk's time at T = 32)."""
        info = self.info(name)
        buffer = np.empty((min(chunk_rows, info.rows), *info.shape[1:]), dtype=np.float32)
        for start in range(0, info.rows, chunk_rows):
            stop = min(start + chunk_rows, info.rows)
            yield start, self.read_rows(name, start, stop, out=buffer[: stop - start])

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_checkpoint(path: str | Path, revision: str | None = None, strict: bool = True, remote: bool = False) -> Checkpoint:
    """Open ``path`` read-only and list its tensors from headers.

    ``path`` may also be a Hugging Face repo id (``org/name``) already in the
    local cache; ``revision`` picks a branch, tag or commit there. Only
    ``hf://org/name[@revision]`` (or a repo id with ``remote``) reads from the
    hub over the network. A shard index that names tensors its shards do not
    hold is an error, unless ``strict`` is off (``doctor`` reports it among the
    problems instead).
    """
    from .hub import parse_hf_url

    target = parse_hf_url(str(path), revision, remote)
    if target is not None:
        from .remote import open_remote

        ckpt = open_remote(target)
    else:
        ckpt = _open(Path(path), revision)
    if strict and ckpt.index_problems:
        ckpt.close()
        more = f" (and {len(ckpt.index_problems) - 1} more)" if len(ckpt.index_problems) > 1 else ""
        raise CheckpointError(ckpt.index_path, ckpt.index_problems[0] + more)
    return ckpt


def _open(path: Path, revision: str | None) -> Checkpoint:
    try:
        os.stat(path)
    except FileNotFoundError:
        from .hub import looks_like_repo_id, resolve_cached

        if looks_like_repo_id(str(path)):
            return _open(resolve_cached(str(path), revision), None)
        raise CheckpointError(path, "no such file or directory") from None
    except OSError as exc:  # a folder on the way without search permission, a link loop, a name too long
        raise access_error(path, exc, CheckpointError) from None
    if path.is_dir():
        return _open_directory(path)
    if not path.is_file():  # a pipe or device: opening it could block forever
        raise CheckpointError(path, "not a regular file or directory")
    if path.name.endswith(INDEX_SUFFIX) or path.name.endswith(".index.json"):
        return _open_index(path, path.parent)
    kind = _sniff(path)
    if kind in ("safetensors", "pytorch"):
        return _assemble(path, [path], path.parent)
    if kind == "gguf":
        return _open_gguf(path)
    raise CheckpointError(
        path,
        f"not a checkpoint lmhead can read ({kind})",
        hint="give a model directory, a .safetensors file, a .gguf file or a *.safetensors.index.json",
    )


def _sniff(path: Path) -> str:
    """What kind of file this is, from its first bytes (never its contents beyond that)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
    if not head:
        return "empty file"
    if head[:4] == b"GGUF":
        return "gguf"
    if path.suffix == ".safetensors":
        return "safetensors"
    if len(head) >= 9 and int.from_bytes(head[:8], "little") < SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{":
        return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch's zip format, or a legacy pickle
        return "pytorch"
    return f"unrecognised content in a {path.suffix or 'suffix-less'} file"


def _open_directory(directory: Path) -> Checkpoint:
    indexes = sorted(p for p in directory.glob("*" + INDEX_SUFFIX) if p.is_file())
    preferred = directory / ("model" + INDEX_SUFFIX)
    if preferred in indexes or len(indexes) == 1:
        return _open_index(preferred if preferred in indexes else indexes[0], directory, shown=directory)
    single = directory / "model.safetensors"
    if single.is_file():
        return _assemble(directory, [single], directory)
    files = sorted(p for p in directory.glob("*.safetensors") if p.is_file())  # never a pipe: it would block
    if files:
        return _assemble(directory, files, directory)
    if (directory / TORCH_INDEX).is_file():
        return _open_index(directory / TORCH_INDEX, directory, shown=directory)
    torch_files = [p for p in sorted(directory.iterdir()) if p.suffix in TORCH_SUFFIXES and p.is_file()]
    preferred_torch = directory / "pytorch_model.bin"
    if preferred_torch in torch_files or len(torch_files) == 1:
        return _assemble(directory, [preferred_torch if preferred_torch in torch_files else torch_files[0]], directory)
    ggufs = sorted(p for p in directory.glob("*.gguf") if p.is_file())
    if len(ggufs) == 1:
        return _open_gguf(ggufs[0])
    for what, found in (("index files", indexes), ("PyTorch files", torch_files), (".gguf files", ggufs)):
        if len(found) > 1:
            raise CheckpointError(
                directory, f"holds several {what} ({_listed(found)}); which one?", hint=f"give the file itself as CKPT, e.g. {found[0]}"
            )
    repo_id = cached_repo_id(directory)
    hint = "point lmhead at the folder that holds the model's weight files"
    if repo_id is not None:
        hint = f"this cached snapshot holds no weight files; fetch them with: huggingface-cli download {repo_id} --include '*.safetensors'"
    raise CheckpointError(directory, "no weights found (no model.safetensors, *.safetensors, index or .gguf file)", hint=hint)


def _listed(files: list[Path], shown: int = 5) -> str:
    names = ", ".join(p.name for p in files[:shown])
    return names + (f" and {len(files) - shown} more" if len(files) > shown else "")


def _open_index(
    index_path: Path,
    directory: Path,
    shown: Path | None = None,
    locate: Callable[[str], Path] | None = None,
    opener: Callable[[Path], Reader] | None = None,
) -> Checkpoint:
    """A sharded checkpoint from its index; ``locate`` turns a shard name into the path to open
    (default: the file in ``directory``, refused when missing or outside it)."""
    index = _read_json(index_path, "index")
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
        shards.append(locate(name) if locate else _local_shard(directory, name, index_path))
    ckpt = _assemble(shown or index_path, shards, directory, index_path=index_path, opener=opener)
    metadata = index.get("metadata")
    ckpt.index_metadata = metadata if isinstance(metadata, dict) else {}
    for tensor, shard in sorted(weight_map.items()):
        info = ckpt.on_disk.get(tensor)
        if info is None or info.file.name != Path(shard).name:
            ckpt.index_problems.append(f"lists tensor {tensor!r} in {shard}, but that shard does not hold it")
    ckpt.unindexed = sorted(set(ckpt.on_disk) - set(weight_map))
    return ckpt


def _local_shard(directory: Path, name: str, index_path: Path) -> Path:
    try:
        shard = _shard_inside(directory, name, index_path)
        present = shard.is_file()
    except (OSError, RuntimeError) as exc:  # a name over 255 bytes, a link loop (RuntimeError before Python 3.13)
        why = access_error(name, exc, CheckpointError) if isinstance(exc, OSError) else None
        reason = why.reason if why else "too many levels of symbolic links (a link that points to itself?)"
        raise CheckpointError(index_path, f"shard {name!r}: {reason}") from None
    if not present:
        raise CheckpointError(index_path, f"names shard {name!r}, which is missing", hint=_missing_hint(directory, [name]))
    return shard


def _shard_inside(directory: Path, name: str, index_path: Path) -> Path:
    """``directory / name``, refused unless it stays in the folder. In a Hugging Face cache
    snapshot, files are symlinks into the repo's own ``blobs/``: those are inside too."""
    shard = directory / name
    if Path(name).is_absolute() or os.path.normpath(name).split(os.sep)[0] == "..":
        raise CheckpointError(index_path, f"shard {name!r} lies outside the checkpoint folder")
    real = shard.resolve()
    roots = [directory.resolve()]
    blobs = snapshot_blobs(directory)
    if blobs is not None:
        roots.append(blobs.resolve())
    if not any(root in real.parents for root in roots):
        raise CheckpointError(index_path, f"shard {name!r} lies outside the checkpoint folder")
    return shard


def _missing_hint(directory: Path, names: list[str]) -> str | None:
    """How to fetch files a partial Hugging Face cache snapshot lacks."""
    repo_id = cached_repo_id(directory)
    if repo_id is None:
        return None
    return f"the cached snapshot is partial; fetch the file with: huggingface-cli download {repo_id} {' '.join(names)}"


def _reader(file: Path) -> Reader:
    if file.suffix == ".safetensors" or _sniff(file) == "safetensors":
        from .formats.safetensors import SafetensorsFile

        return SafetensorsFile(file)
    from .formats.torch import TorchFile

    return TorchFile(file)


def _open_gguf(path: Path) -> Checkpoint:
    """A ``Checkpoint`` over one GGUF file; its metadata plays the part of config.json."""
    from .formats.gguf import GGUFFile

    reader = GGUFFile(path)
    return Checkpoint(
        path=path,
        format=reader.format,
        tensors={t.name: t for t in reader.tensors},
        readers={path: reader},
        metadata=reader.metadata,
        tokens=reader.tokens,
    )


def _assemble(
    path: Path, files: list[Path], directory: Path, index_path: Path | None = None, opener: Callable[[Path], Reader] | None = None
) -> Checkpoint:
    readers: dict[Path, Reader] = {}
    try:
        return _assemble_readers(readers, path, files, directory, index_path, opener or _reader)
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
    config = _read_json(config_path, "config") if os.path.lexists(config_path) else None  # a pipe or folder there is an error
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
    from .quant.detect import may_be_quantized

    quantize_config_path = directory / "quantize_config.json"
    present = os.path.lexists(quantize_config_path)  # a pipe or folder there is an error, not an absent file
    quantize_config = _read_json(quantize_config_path, "quantize_config") if present else None
    metadata: dict[str, str] = {}
    for reader in ckpt.readers.values():
        metadata.update({k: v for k, v in reader.metadata.items() if isinstance(v, str)})
    if not may_be_quantized(ckpt.config, quantize_config, metadata, ckpt.tensors):
        return  # dense: the layouts and dequantizers are never loaded
    from .quant import group, recognise

    scheme = recognise(ckpt.config, quantize_config, metadata)
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


def _read_json(path: Path, what: str) -> Any:
    data = read_regular(path, CheckpointError, what, limit=MAX_JSON_BYTES)
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise CheckpointError(path, f"{what} is nested too deeply to be a {what} file") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(path, f"{what} is not UTF-8 text") from exc
    except OSError as exc:
        raise CheckpointError(path, f"cannot read {what}: {exc.strerror or exc}") from exc
