"""A checkpoint on this machine: a model folder, a weight file, an index, a GGUF, or a cached repo id.

What a path is comes from the file system and the files' first bytes; a
folder's weight files are chosen by ``assemble.choose_weights`` (the rule
hf:// uses too), then PyTorch files, then one GGUF.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..core.errors import CheckpointError
from ..core.files import access_error
from ..formats.base import Reader
from .assemble import INDEX_SUFFIX, assemble, choose_weights, listed, open_index, read_json
from .cache import cached_repo_id, snapshot_blobs
from .checkpoint import Checkpoint
from .gguf_files import SPLIT_NAME, gguf_models, gguf_parts, open_gguf

__all__ = ["open_local"]

TORCH_INDEX = "pytorch_model.bin.index.json"
TORCH_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_MAGIC_MAX_HEADER = 100_000_000


def open_local(path: Path, revision: str | None) -> Checkpoint:
    """``path`` on disk, or a repo id already in the local Hugging Face cache."""
    try:
        os.stat(path)
    except FileNotFoundError:
        from .cache import looks_like_repo_id, resolve_cached

        if looks_like_repo_id(str(path)):
            ckpt = open_local(resolve_cached(str(path), revision), None)
            ckpt.name = str(path) + (f"@{revision}" if revision else "")  # the repo id, not the snapshot folder it resolved to
            return ckpt
        raise CheckpointError(path, "no such file or directory") from None
    except OSError as exc:  # a folder on the way without search permission, a link loop, a name too long
        raise access_error(path, exc, CheckpointError) from None
    if path.is_dir():
        return _open_directory(path)
    if not path.is_file():  # a pipe or device: opening it could block forever
        raise CheckpointError(path, "not a regular file or directory")
    if path.name.endswith(INDEX_SUFFIX) or path.name.endswith(".index.json"):
        return open_index(path, path.parent, locate=_shards_of(path.parent, path), opener=_reader)
    kind = _sniff(path)
    if kind in ("safetensors", "pytorch"):
        index = _index_listing(path)
        if index is not None:  # one shard of several: the whole checkpoint, said so
            ckpt = open_index(index, path.parent, shown=path, locate=_shards_of(path.parent, index), opener=_reader)
            shards = len(ckpt.readers)
            ckpt.notes.append(f"{path.name} is one of the {shards} shards {index.name} lists: read as the whole checkpoint")
            return ckpt
        return assemble(path, [path], path.parent, opener=_reader)
    if kind == "gguf":
        return _open_gguf(path.parent, path.name)
    raise CheckpointError(
        path,
        f"not a checkpoint lmhead can read ({kind})",
        hint="give a model directory, a .safetensors file, a .gguf file or a *.safetensors.index.json",
    )


def _index_listing(file: Path) -> Path | None:
    """The shard index beside ``file`` that lists it as one of several shards, if any.

    A shard alone is not the model (its counts, its "missing" head): the index says what the
    rest is. An index that cannot be read, or lists ``file`` alone, is not followed."""
    suffix = INDEX_SUFFIX if file.suffix == ".safetensors" else ".bin.index.json"
    try:
        candidates = sorted(p for p in file.parent.iterdir() if p.name.endswith(suffix) and p.is_file())
    except OSError:
        return None
    for index in candidates:
        try:
            weight_map = read_json(index, "index").get("weight_map")
        except (CheckpointError, AttributeError):
            continue
        shards = set(weight_map.values()) if isinstance(weight_map, dict) else set()
        if file.name in shards and len(shards) > 1 and all(isinstance(s, str) for s in shards):
            return index
    return None


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
    names = [p.name for p in directory.iterdir() if p.is_file()]  # never a pipe: it would block
    weights = choose_weights(names)
    if weights is not None and weights.index is not None:
        index = directory / weights.index
        return open_index(index, directory, shown=directory, locate=_shards_of(directory, index), opener=_reader)
    if weights is not None:
        return assemble(directory, [directory / n for n in weights.files], directory, opener=_reader)
    if (directory / TORCH_INDEX).is_file():
        index = directory / TORCH_INDEX
        return open_index(index, directory, shown=directory, locate=_shards_of(directory, index), opener=_reader)
    torch_files = [directory / n for n in sorted(names) if Path(n).suffix in TORCH_SUFFIXES]
    preferred_torch = directory / "pytorch_model.bin"
    if preferred_torch in torch_files or len(torch_files) == 1:
        return assemble(directory, [preferred_torch if preferred_torch in torch_files else torch_files[0]], directory, opener=_reader)
    models = gguf_models(names)
    if len(models) == 1:
        return _open_gguf(directory, models[0])
    ggufs = [directory / n for n in models]
    indexes = [directory / n for n in sorted(names) if n.endswith(INDEX_SUFFIX)]
    for what, found in (("index files", indexes), ("PyTorch files", torch_files), (".gguf files", ggufs)):
        if len(found) > 1:
            raise CheckpointError(
                directory, f"holds several {what} ({listed(found)}); which one?", hint=f"give the file itself as CKPT, e.g. {found[0]}"
            )
    repo_id = cached_repo_id(directory)
    hint = "point lmhead at the folder that holds the model's weight files"
    if repo_id is not None:
        hint = f"this cached snapshot holds no weight files; fetch them with: hf download {repo_id} --include '*.safetensors'"
    raise CheckpointError(directory, "no weights found (no model.safetensors, *.safetensors, index or .gguf file)", hint=hint)


def _shards_of(directory: Path, index_path: Path) -> Callable[[str], Path]:
    """Where an index's shard names lie: files in ``directory``, refused when missing or outside it."""
    return lambda name: _local_shard(directory, name, index_path)


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
    return f"the cached snapshot is partial; fetch the file with: hf download {repo_id} {' '.join(names)}"


def _reader(file: Path) -> Reader:
    if file.suffix == ".safetensors" or _sniff(file) == "safetensors":
        from ..formats.safetensors import SafetensorsFile

        return SafetensorsFile(file)
    from ..formats.torch import TorchFile

    return TorchFile(file)


def _open_gguf(directory: Path, name: str) -> Checkpoint:
    """A ``Checkpoint`` over one GGUF file, or every part of the split set it belongs to."""
    from ..formats.gguf import GGUFFile

    names = {p.name for p in directory.iterdir() if p.is_file()} if SPLIT_NAME.match(name) else {name}
    parts = gguf_parts(name, names, directory / name)
    return open_gguf([directory / part for part in parts], GGUFFile)
