"""Which GGUF file(s) hold one model, and the ``Checkpoint`` over them: one file, or a split set.

llama.cpp's ``gguf-split`` (and gguf-py's writer with ``split_max_tensors`` / ``split_max_size``)
writes a model as ``<stem>-00001-of-0000N.gguf`` … ``-0000N-of-0000N.gguf``: every part a whole GGUF
file with its own header and data, the first holding all the metadata, each stating
``split.no`` (0-based), ``split.count`` and, in the first, ``split.tensors.count``. The same rules
serve a folder on disk and a repo on the hub; only the opener differs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.errors import CheckpointError
from ..formats.base import Format, Reader, TokenizerMetadata
from .checkpoint import Checkpoint

__all__ = ["SPLIT_NAME", "gguf_models", "gguf_parts", "open_gguf"]

SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
SIDE_FILES = ("mmproj",)  # vision projectors published beside a model's GGUF: not a language model's weights


def gguf_parts(name: str, names: Collection[str], shown: Path | str) -> list[str]:
    """The files the GGUF ``name`` is made of: itself, or every part of its split set, first to last."""
    match = SPLIT_NAME.match(name)
    if match is None:
        return [name]
    number, count = int(match["no"]), int(match["count"])
    if not 1 <= number <= count:
        raise CheckpointError(shown, f"{name!r} names part {number} of {count}, which no split set has")
    parts = [f"{match['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    missing = [part for part in parts if part not in names]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(shown, f"split GGUF: part {missing[0]!r} of {count} is missing{more}")
    return parts


def gguf_models(names: Collection[str]) -> list[str]:
    """One name per model among ``names``' GGUF files: a single file, or the first part of a split set."""
    models = set()
    for name in names:
        base = PurePosixPath(name).name
        if not base.endswith(".gguf") or base.startswith(SIDE_FILES):
            continue
        match = SPLIT_NAME.match(name)
        models.add(f"{match['stem']}-00001-of-{match['count']}.gguf" if match else name)
    return sorted(models)


def open_gguf(files: list[Path], opener: Callable[[Path], Reader]) -> Checkpoint:
    """A ``Checkpoint`` over one GGUF file or the parts of a split set (in order); the first part's
    metadata plays the part of config.json."""
    readers: list[Any] = []
    try:
        for file in files:
            readers.append(opener(file))
        _check_split(readers)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    first = readers[0]
    tensors = {t.name: t for reader in readers for t in reader.tensors}
    return Checkpoint(
        path=first.path,
        format=Format.GGUF,
        tensors=tensors,
        readers={reader.path: reader for reader in readers},
        metadata=first.metadata,
        tokens=first.tokens,
        embedded_tokenizer=first if isinstance(first, TokenizerMetadata) else None,  # a split set's first part holds it
    )


def _check_split(readers: list[Any]) -> None:
    """Each part says it is the part it is named as, of as many parts, and together they hold every tensor."""
    count = len(readers)
    for number, reader in enumerate(readers):
        meta = reader.metadata
        said_count = meta.get("split.count", 1 if count == 1 else None)
        said_no = meta.get("split.no", 0 if count == 1 else None)
        if said_count != count or said_no != number:
            if count == 1:
                reason = f"holds part {_ordinal(said_no)} of a {said_count}-part split GGUF, and its name does not say which set"
                raise CheckpointError(reader.path, reason, hint="give the first part, named <stem>-00001-of-<count>.gguf")
            said = f"split.no={said_no!r}, split.count={said_count!r}"
            raise CheckpointError(reader.path, f"is named part {number + 1} of {count} of a split GGUF, but its header says {said}")
    seen: dict[str, Path] = {}
    for reader in readers:
        for info in reader.tensors:
            if info.name in seen:
                raise CheckpointError(reader.path, f"tensor {info.name!r} is also in {seen[info.name]}")
            seen[info.name] = reader.path
    total = readers[0].metadata.get("split.tensors.count")
    if count > 1 and total != len(seen):
        raise CheckpointError(readers[0].path, f"split.tensors.count says {total!r} tensors, but the {count} parts hold {len(seen):,}")


def _ordinal(number: object) -> str:
    return f"{number + 1}" if isinstance(number, int) and not isinstance(number, bool) else repr(number)
