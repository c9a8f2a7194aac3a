"""Repo ids (``org/name``) resolved in the local Hugging Face cache — never over the network."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import CheckpointError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text)) and not text.startswith((".", "/")) and ".." not in text


def cache_dir() -> Path:
    """The hub cache as huggingface_hub finds it, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_cached(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo_id`` at ``revision`` (default: main) in the local cache.

    huggingface_hub follows ``refs/<revision>`` to ``snapshots/<commit>``. A snapshot
    downloaded with include patterns is *partial*: huggingface_hub 2.4 then raises
    ``IncompleteSnapshotError`` although the folder holds every file lmhead may need,
    so the folder it names is used as it is; a file a command needs and the snapshot
    lacks is reported by name when the command asks for it.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    cache = cache_dir()
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
    except IncompleteSnapshotError as exc:
        if exc.snapshot_path is None:
            raise CheckpointError(repo_id, f"cannot resolve in the Hugging Face cache: {exc}") from exc
        folder = exc.snapshot_path
    except LocalEntryNotFoundError:
        at = f" at revision {revision}" if revision else ""
        raise CheckpointError(
            repo_id,
            f"not a local path, and not in the local Hugging Face cache{at} ({cache})",
            hint=f"download it first (huggingface-cli download {repo_id}), read it remotely (lmhead ... hf://{repo_id}), "
            "or set HF_HUB_CACHE / HF_HOME",
        ) from None
    except (ValueError, OSError) as exc:
        raise CheckpointError(repo_id, f"cannot resolve in the Hugging Face cache: {exc}") from exc
    return Path(folder)


def snapshot_blobs(directory: Path) -> Path | None:
    """The ``blobs/`` folder of the cached repo whose snapshot holds ``directory``, if it is one.

    huggingface_hub lays a repo out as ``models--org--name/{blobs,refs,snapshots/<commit>/...}``;
    snapshot files are symlinks into ``blobs/``.
    """
    for folder in (directory, *directory.parents):
        if folder.parent.name == "snapshots":
            blobs = folder.parent.parent / "blobs"
            return blobs if blobs.is_dir() else None
    return None


def cached_repo_id(directory: Path) -> str | None:
    """``org/name`` for a folder inside a cached repo's snapshot (for hints), else None."""
    for folder in (directory, *directory.parents):
        if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
            return folder.parent.parent.name[len("models--") :].replace("--", "/")
    return None
