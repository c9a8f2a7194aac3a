"""Hugging Face repos: ids (``org/name``) resolved in the local cache, never over the network,
and ``hf://org/name[@revision]`` (or ``--remote``), the one way to ask lmhead to use it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CheckpointError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


HF_SCHEME = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of boolean variables


@dataclass(frozen=True)
class HubTarget:
    """A repo to read over the network, with the settings read from the environment at call time."""

    repo_id: str
    revision: str | None  # as the user wrote it; None: the default branch
    shown: str  # how the user named it, for messages
    endpoint: str
    filename: str | None = None  # hf://org/name/file.gguf: the one GGUF file (or split set) to read

    @property
    def page(self) -> str:
        return f"{self.endpoint}/{self.repo_id}"


def parse_hf_url(text: str, revision: str | None = None, remote: bool = False) -> HubTarget | None:
    """``hf://org/name[@revision][/path/file.gguf]`` -> a target; a repo id with ``remote`` too; anything else None.

    A path after the repo is a GGUF file in it (``.gguf``: a revision then cannot hold a '/'; give one
    such as ``refs/pr/1`` with ``--revision``).

    Refuses, before any request, what cannot be meant: a malformed id, two revisions,
    and ``HF_HUB_OFFLINE`` (the user asked for no network at all).
    """
    if text.startswith(HF_SCHEME):
        spec = text[len(HF_SCHEME) :]
    elif remote:
        spec = text
    else:
        return None
    filename = None
    if spec.endswith(".gguf") and spec.count("/") >= 2:
        org, name_rev, filename = spec.split("/", 2)
        spec = f"{org}/{name_rev}"
        if not filename or any(part in ("", ".", "..") for part in filename.split("/")):
            raise CheckpointError(text, f"{filename!r} is not a file path in the repo", hint="write hf://org/name/file.gguf")
    repo_id, at, rev = spec.partition("@")
    repo_id = repo_id.rstrip("/")
    if not looks_like_repo_id(repo_id):
        raise CheckpointError(text, "not a Hugging Face repo id", hint="write hf://org/name or hf://org/name@revision")
    if at and not rev:
        raise CheckpointError(text, "empty revision after '@'")
    if at and revision is not None and rev != revision:
        raise CheckpointError(text, f"names revision {rev!r} and --revision names {revision!r}; give one")
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES:
        raise CheckpointError(
            text,
            "HF_HUB_OFFLINE is set, and reading a repo from the hub needs the network",
            hint=f"unset HF_HUB_OFFLINE, or use a downloaded copy: lmhead ... {repo_id}",
        )
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    shown = text if text.startswith(HF_SCHEME) else HF_SCHEME + text
    return HubTarget(repo_id=repo_id, revision=rev or revision, shown=shown, endpoint=endpoint, filename=filename)


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
            hint=f"download it first (hf download {repo_id}), read it remotely (lmhead ... hf://{repo_id}), or set HF_HUB_CACHE / HF_HOME",
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
