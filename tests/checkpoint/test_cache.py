"""Repo ids resolved in the local Hugging Face cache, as huggingface_hub itself lays it out.

Every cache here is made by ``huggingface_hub.snapshot_download`` from the fake hub
(tests/hubserver.py): snapshot files are symlinks into ``blobs/``, ``refs/`` name
commits, and a download with ``allow_patterns`` leaves a partial snapshot. lmhead
itself never touches the network for a bare repo id: the commands run with
``HF_HUB_OFFLINE=1`` and the hub's request log is checked to stay empty.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import ROOT, approx_json, run, run_json, without_paths

SHARDED = ROOT / "sample_weights" / "qwen2-sharded"
SINGLE = ROOT / "sample_weights" / "llama-bf16"


def download(hub, repo_id: str, **kwargs) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, endpoint=hub.endpoint, cache_dir=os.environ["HF_HOME"] + "/hub", **kwargs))


@pytest.fixture
def offline(monkeypatch, fake_hub):
    """After the downloads: lmhead runs offline, and any request it made would show in the log."""

    def go() -> None:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        fake_hub.reset_counts()

    yield go
    assert fake_hub.requests() == [], "a bare repo id touched the network"


@pytest.fixture
def tiny(tmp_path, fake_hub, hf_home):
    """org/tiny: main is an untied Llama, tag v1 a tied one."""
    main = write_checkpoint(tmp_path / "src-main", llama_tensors(tied=False), llama_config(tied=False))
    tagged = write_checkpoint(tmp_path / "src-v1", llama_tensors(tied=True), llama_config(tied=True))
    return fake_hub.add_repo("org/tiny", main, revisions={"v1": tagged})


def test_repo_id_resolves_in_the_cache(tiny, fake_hub, hf_home, offline):
    download(fake_hub, "org/tiny")
    offline()
    data = run_json("count", "org/tiny")
    assert data["tied"] is False and data["architecture"] == "llama"
    assert data["checkpoint"] == "org/tiny"  # as named; the files lie in the snapshot
    assert data["files"][0].startswith(str(hf_home / "hub" / "models--org--tiny" / "snapshots" / tiny.commits["main"]))


def test_revision_picks_a_ref_or_a_commit(tiny, fake_hub, offline):
    download(fake_hub, "org/tiny")
    download(fake_hub, "org/tiny", revision="v1")
    offline()
    assert run_json("count", "org/tiny")["tied"] is False
    assert run_json("count", "org/tiny", "--revision", "v1")["tied"] is True
    assert run_json("check-tying", "org/tiny", "--revision", tiny.commits["v1"])["tied"] is True


def test_a_cached_repo_is_shown_by_its_repo_id_and_revision(tiny, fake_hub, offline):
    download(fake_hub, "org/tiny")
    download(fake_hub, "org/tiny", revision="v1")
    offline()
    assert run("count", "org/tiny").stdout.splitlines()[0].startswith("org/tiny  (")  # never the snapshot folder
    assert run("check-tying", "org/tiny", "--revision", "v1", ok=False).stdout.splitlines()[0] == "check-tying org/tiny@v1"
    assert "doctor org/tiny" in run("doctor", "org/tiny", ok=False).stdout
    data = run_json("count", "org/tiny", "--revision", "v1")
    assert data["checkpoint"] == "org/tiny@v1" and all("snapshots" in f for f in data["files"])  # the files: where they are


def test_hf_hub_cache_is_honoured(tiny, fake_hub, hf_home, tmp_path, monkeypatch, offline):
    from huggingface_hub import snapshot_download

    snapshot_download("org/tiny", endpoint=fake_hub.endpoint, cache_dir=tmp_path / "elsewhere")
    offline()
    assert run("count", "org/tiny", ok=False).exit_code == 2  # not under HF_HOME
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert run_json("count", "org/tiny")["tied"] is False


def test_a_repo_not_in_the_cache_says_so(hf_home, offline):
    offline()
    result = run("count", "org/absent", ok=False)
    assert result.exit_code == 2
    assert "error: org/absent: not a local path, and not in the local Hugging Face cache" in result.stderr
    assert "hf://org/absent" in result.stderr  # the hint names the opt-in
    assert "(hf download org/absent)" in result.stderr  # huggingface_hub 1.x's command; huggingface-cli is gone
    assert "Traceback" not in result.output


def test_unknown_revision_says_so(tiny, fake_hub, offline):
    download(fake_hub, "org/tiny")
    offline()
    result = run("count", "org/tiny", "--revision", "nope", ok=False)
    assert result.exit_code == 2 and "at revision nope" in result.stderr


# ---------------------------------------------------------------- sharded and partial snapshots


def _compare_every_command(repo_id: str, source: Path, snapshot: Path, tmp_path: Path) -> None:
    """count, check-tying, doctor and topk answer the same on the cache as on the source folder."""
    for ckpt in (repo_id, snapshot):
        for command in (["count"], ["check-tying"], ["doctor"], ["doctor", "--full"], ["check-tying", "--full"]):
            local = run_json(*command, source)
            cached = run_json(*command, ckpt)
            assert without_paths(cached) == approx_json(without_paths(local)), command
        hidden = tmp_path / "hidden.npy"
        hidden.write_bytes((source / "hidden.npy").read_bytes())
        text = (source / "text.txt").read_text()
        local = run_json("topk", source, hidden, "-k", "3", "--text", text)
        cached = run_json("topk", ckpt, hidden, "-k", "3", "--text", text)
        assert without_paths(cached) == approx_json(without_paths(local))
        assert cached["summary"] and cached["positions"][0]["top"][0]["token"]  # the cached tokenizer was used


@pytest.mark.parametrize("source", [SHARDED, SINGLE], ids=["sharded", "single"])
def test_full_snapshot_made_by_huggingface_hub(source, fake_hub, hf_home, tmp_path, offline):
    fake_hub.add_repo("samples/model", source)
    snapshot = download(fake_hub, "samples/model")
    assert all((snapshot / f).is_symlink() for f in os.listdir(snapshot))  # as huggingface_hub lays it out
    offline()
    _compare_every_command("samples/model", source, snapshot, tmp_path)


@pytest.mark.parametrize("source", [SHARDED, SINGLE], ids=["sharded", "single"])
def test_partial_snapshot_is_used_as_it_is(source, fake_hub, hf_home, tmp_path, offline):
    """Downloaded with include patterns: huggingface_hub 2.4 calls the snapshot incomplete
    (IncompleteSnapshotError), but every file the commands need is there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError

    fake_hub.add_repo("samples/model", source)
    snapshot = download(fake_hub, "samples/model", allow_patterns=["*.json", "*.safetensors"])
    assert not (snapshot / "hidden.npy").exists()
    with pytest.raises(IncompleteSnapshotError):  # what lmhead used to report as "not in the cache"
        snapshot_download("samples/model", cache_dir=hf_home / "hub", local_files_only=True)
    offline()
    _compare_every_command("samples/model", source, snapshot, tmp_path)


def test_a_missing_shard_is_named(fake_hub, hf_home, offline):
    fake_hub.add_repo("samples/model", SHARDED)
    download(fake_hub, "samples/model", allow_patterns=["*.json", "model-00001-of-00002.safetensors"])
    offline()
    for command in ("count", "check-tying", "doctor"):
        result = run(command, "samples/model", ok=False)
        assert result.exit_code == 2
        assert "names shard 'model-00002-of-00002.safetensors', which is missing" in result.stderr
        assert "hf download samples/model model-00002-of-00002.safetensors" in result.stderr


def test_a_snapshot_without_weights_says_how_to_fetch_them(fake_hub, hf_home, offline):
    fake_hub.add_repo("samples/model", SINGLE)
    download(fake_hub, "samples/model", allow_patterns=["config.json"])
    offline()
    result = run("count", "samples/model", ok=False)
    assert result.exit_code == 2 and "no weights found" in result.stderr
    assert "hf download samples/model --include '*.safetensors'" in result.stderr


def test_only_what_the_command_needs(fake_hub, hf_home, tmp_path, offline):
    """No tokenizer.json in the snapshot: count and check-tying do not need it; doctor says so; --text names it."""
    fake_hub.add_repo("samples/model", SHARDED)
    download(fake_hub, "samples/model", allow_patterns=["config.json", "*.safetensors*"])
    offline()
    assert run_json("count", "samples/model")["vocab_size"] == 450
    assert run_json("check-tying", "samples/model")["tied"] is False
    assert "no tokenizer found: the vocabulary cannot be checked against it" in run_json("doctor", "samples/model")["notes"]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.load(SHARDED / "hidden.npy"))
    result = run("topk", "samples/model", hidden, "--text", "The keeper", ok=False)
    assert result.exit_code == 2 and "error: --text: needs a tokenizer.json" in result.stderr


def test_symlinks_out_of_the_repo_are_still_refused(fake_hub, hf_home, tmp_path, offline):
    """Links into the repo's own blobs/ are the layout; a link anywhere else is an escape."""
    fake_hub.add_repo("samples/model", SHARDED)
    snapshot = download(fake_hub, "samples/model")
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((snapshot / "model-00002-of-00002.safetensors").read_bytes())
    link = snapshot / "model-00002-of-00002.safetensors"
    link.unlink()
    link.symlink_to(outside)
    offline()
    result = run("count", "samples/model", ok=False)
    assert result.exit_code == 2
    assert "shard 'model-00002-of-00002.safetensors' lies outside the checkpoint folder" in result.stderr
