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
    """The snapshot folder of ``repo_id`` at ``revision`` (default: main) in the local cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = cache_dir()
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError:
        at = f" at revision {revision}" if revision else ""
        raise CheckpointError(
            repo_id,
            f"not a local path, and not in the local Hugging Face cache{at} ({cache})",
            hint=f"download it first (huggingface-cli download {repo_id}), or set HF_HUB_CACHE / HF_HOME",
        ) from None
    except (ValueError, OSError) as exc:
        raise CheckpointError(repo_id, f"cannot resolve in the Hugging Face cache: {exc}") from exc
    return Path(folder)
