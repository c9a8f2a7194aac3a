"""``hf://org/name[@revision]``: a checkpoint on the Hugging Face Hub, read without downloading its weights.

One request resolves the revision to a commit and lists the repo's files; every
later read is pinned to that commit. ``config.json``, the shard index and
``tokenizer.json`` come through ``huggingface_hub.hf_hub_download``, so they land
in the local cache as huggingface_hub caches them; safetensors headers and rows
are read with ranged requests (``formats/remote.py``). A repo without safetensors
weights is read as its GGUF file (``hf://org/name/file.gguf`` names one among several;
a split set ``-00001-of-0000N.gguf`` is read part by part): header and rows by ranged
requests too, and the file's own metadata stands in for config.json and tokenizer.json.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from ..core.errors import CheckpointError
from ..formats.remote import TIMEOUT_S, HubFiles, HubPath, RemoteSafetensors, hub_error, hub_errors, open_remote_gguf
from .assemble import INDEX_SUFFIX, assemble, choose_weights, open_index
from .cache import HubTarget, cache_dir
from .checkpoint import Checkpoint
from .gguf_files import gguf_models, gguf_parts, open_gguf

__all__ = ["open_remote"]

JSON_FILES = ("config.json", "tokenizer.json", "quantize_config.json")  # what a local folder would supply beside the weights


def open_remote(target: HubTarget) -> Checkpoint:
    commit, names = _resolve(target)
    root = HubPath(target.repo_id + (f"@{quote(target.revision, safe='')}" if target.revision else ""))
    from ..core.version import __version__

    files = HubFiles(target.repo_id, commit, target.endpoint, root, library_version=__version__)
    weights = choose_weights(names)
    if target.filename is not None or weights is None and gguf_models(names):
        ckpt = _open_gguf(target, root, names, files)
        ckpt.remote = files
        return ckpt
    snapshot = cache_dir() / f"models--{target.repo_id.replace('/', '--')}" / "snapshots" / commit
    for name in JSON_FILES:
        if name in names:
            _download(target, commit, name)

    def opener(path: Path) -> RemoteSafetensors:
        assert isinstance(path, HubPath)
        return RemoteSafetensors(path, files)

    def locate(name: str) -> Path:
        if name not in names:
            raise CheckpointError(root / index, f"names shard {name!r}, which the repo does not have")
        return root / name

    indexes = sorted(n for n in names if n.endswith(INDEX_SUFFIX) and "/" not in n)
    if weights is not None and weights.index is not None:
        index = weights.index
        local_index = _download(target, commit, index)
        ckpt = open_index(local_index, snapshot, shown=root, locate=locate, opener=opener)
    elif weights is not None:
        ckpt = assemble(root, [root / n for n in weights.files], snapshot, opener=opener)
    elif len(indexes) > 1:
        raise CheckpointError(target.shown, f"several index files ({', '.join(indexes)}); lmhead cannot tell which to read")
    else:
        others = sorted(n for n in names if n.endswith((".gguf", ".bin", ".pt", ".pth")))
        has = f"; it has {', '.join(others[:3])}" + (" ..." if len(others) > 3 else "") if others else ""
        raise CheckpointError(
            target.shown,
            f"no safetensors or GGUF weights in the repo{has}; hf:// reads safetensors and GGUF files only",
            hint=f"download the weights (hf download {target.repo_id}) and run lmhead on {target.repo_id}",
        )
    ckpt.remote = files
    return ckpt


def _open_gguf(target: HubTarget, root: HubPath, names: set[str], files: HubFiles) -> Checkpoint:
    """The named GGUF file, or the repo's one GGUF model (a single file or a split set)."""
    name = target.filename
    if name is None:
        models = gguf_models(names)
        if len(models) > 1:
            shown = ", ".join(models[:3]) + (" ..." if len(models) > 3 else "")
            raise CheckpointError(
                target.shown, f"holds {len(models)} GGUF models ({shown}); which one?", hint=f"name the file: {target.shown}/{models[0]}"
            )
        name = models[0]
    elif name not in names:
        models = gguf_models(names)
        has = f"; its GGUF files: {', '.join(models[:3])}" + (" ..." if len(models) > 3 else "") if models else "; it has no GGUF file"
        raise CheckpointError(target.shown, f"the repo has no file {name!r}{has}")
    parts = gguf_parts(name, names, target.shown)
    return open_gguf([root / part for part in parts], lambda path: open_remote_gguf(path, files))


def _resolve(target: HubTarget) -> tuple[str, set[str]]:
    """The commit the revision names, and the repo's file names (one request)."""
    from huggingface_hub import HfApi

    from ..core.version import __version__

    api = HfApi(endpoint=target.endpoint, library_name="lmhead", library_version=__version__)
    try:
        info = api.model_info(target.repo_id, revision=target.revision, timeout=TIMEOUT_S)
    except hub_errors() as exc:  # one line for each; the token is never shown
        raise hub_error(exc, target.shown, target.endpoint, target.repo_id) from None
    if not info.sha:
        raise CheckpointError(target.shown, f"{target.endpoint} did not say which commit the revision is")
    return info.sha, {s.rfilename for s in info.siblings or []}


def _download(target: HubTarget, commit: str, name: str) -> Path:
    """A small file through huggingface_hub, into the local cache (a cached copy is used without a request)."""
    from huggingface_hub import hf_hub_download

    from ..core.version import __version__

    try:
        return Path(
            hf_hub_download(
                target.repo_id,
                name,
                revision=commit,
                cache_dir=cache_dir(),
                endpoint=target.endpoint,
                library_name="lmhead",
                library_version=__version__,
            )
        )
    except hub_errors() as exc:
        raise hub_error(exc, f"{target.shown}/{name}", target.endpoint, target.repo_id) from None
