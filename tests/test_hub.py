"""Repo ids resolved in a local Hugging Face cache laid out as huggingface_hub lays it out."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import run, run_json


def add_snapshot(cache: Path, repo_id: str, source: Path, commit: str, refs: tuple[str, ...] = ("main",)) -> None:
    """models--org--name/{blobs/<sha256>, refs/<ref>, snapshots/<commit>/<file> -> ../../blobs/<sha256>}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        data = file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        os.symlink(Path("..", "..", "blobs", digest), snapshot / file.name)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # so "org/tiny" is not a local path
    main = write_checkpoint(tmp_path / "src-main", llama_tensors(tied=False), llama_config(tied=False))
    tagged = write_checkpoint(tmp_path / "src-v1", llama_tensors(tied=True), llama_config(tied=True))
    add_snapshot(cache, "org/tiny", main, "a" * 40)
    add_snapshot(cache, "org/tiny", tagged, "b" * 40, refs=("v1",))
    return cache


def test_repo_id_resolves_in_the_cache(cache):
    data = run_json("count", "org/tiny")
    assert data["tied"] is False and data["architecture"] == "llama"
    assert str(cache) in data["checkpoint"]


def test_revision_picks_a_ref_or_a_commit(cache):
    assert run_json("count", "org/tiny", "--revision", "v1")["tied"] is True
    assert run_json("check-tying", "org/tiny", "--revision", "b" * 40)["tied"] is True


def test_hf_home_is_honoured(cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    assert run_json("count", "org/tiny")["tied"] is False


def test_a_repo_not_in_the_cache_says_so(cache):
    result = run("count", "org/absent", ok=False)
    assert result.exit_code == 2
    assert "error: org/absent: not a local path, and not in the local Hugging Face cache" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_revision_says_so(cache):
    result = run("count", "org/tiny", "--revision", "nope", ok=False)
    assert result.exit_code == 2 and "at revision nope" in result.stderr


def test_topk_and_doctor_on_a_cached_repo_id(cache, tmp_path):
    import numpy as np

    np.save(tmp_path / "h.npy", np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32))
    data = run_json("topk", "org/tiny", tmp_path / "h.npy", "-k", "2")
    assert len(data["positions"]) == 3 and data["head"] == "lm_head.weight"
    assert run_json("doctor", "org/tiny", "--revision", "v1")["healthy"] is True
