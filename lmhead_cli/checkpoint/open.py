"""``open_checkpoint``: what people point at, opened read-only, headers only.

A Hugging Face model directory (single file or sharded), a bare
``.safetensors``, ``.bin`` or ``.gguf`` file, the path of a
``*.safetensors.index.json``, a directory of safetensors files with no config,
a repo id in the local cache, or ``hf://org/name[@revision]`` on the hub.
Nothing but headers is read until a caller asks for rows.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CheckpointError
from .checkpoint import Checkpoint

__all__ = ["open_checkpoint"]


def open_checkpoint(path: str | Path, revision: str | None = None, strict: bool = True, remote: bool = False) -> Checkpoint:
    """Open ``path`` read-only and list its tensors from headers.

    ``path`` may also be a Hugging Face repo id (``org/name``) already in the
    local cache; ``revision`` picks a branch, tag or commit there. Only
    ``hf://org/name[@revision]`` (or a repo id with ``remote``) reads from the
    hub over the network. A shard index that names tensors its shards do not
    hold is an error, unless ``strict`` is off (``doctor`` reports it among the
    problems instead).
    """
    from .cache import parse_hf_url

    target = parse_hf_url(str(path), revision, remote)
    if target is not None:
        from .hub import open_remote

        ckpt = open_remote(target)
    else:
        from .local import open_local

        ckpt = open_local(Path(path), revision)
    if strict and ckpt.index_problems:
        ckpt.close()
        more = f" (and {len(ckpt.index_problems) - 1} more)" if len(ckpt.index_problems) > 1 else ""
        raise CheckpointError(ckpt.index_path, ckpt.index_problems[0] + more)
    return ckpt
