"""Shared fixtures: paths to committed reference checkpoints and a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli

from builders import llama_config, llama_tensors, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
SAMPLES = ROOT / "sample_weights"
REFERENCE_CASES = sorted(p.name for p in REFERENCE.iterdir() if (p / "reference.json").is_file())


def reference(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = REFERENCE / case
    meta = json.loads((folder / "reference.json").read_text())
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return folder, meta, arrays


def run(*args: str, ok: bool = True):
    """Invoke the CLI; with ``ok`` assert it succeeded and show its output if not."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def strict_loads(text: str):
    """RFC 8259 JSON only: Python's parser otherwise accepts NaN, Infinity and -Infinity."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def run_json(*args: str, exit_code: int = 0) -> dict:
    """The command's --json output, parsed as strict JSON (every test that reads JSON checks that it is JSON)."""
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--json"])
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return strict_loads(result.stdout)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_hub():
    """A fake Hugging Face Hub on 127.0.0.1 (tests/hubserver.py), stopped after the test."""
    from hubserver import FakeHub

    with FakeHub() as hub:
        yield hub


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty HF_HOME; huggingface_hub online in this process (it reads HF_HUB_OFFLINE at import)."""
    import huggingface_hub.constants

    home = tmp_path / "hf-home"
    home.mkdir()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real hub: a test that forgets the fake one fails here
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.chdir(tmp_path)  # so "org/name" is never a local path
    return home


def without_paths(data):
    """A command's JSON without the fields that name where files are (they differ by location)."""
    if isinstance(data, dict):
        return {k: without_paths(v) for k, v in data.items() if k not in PATH_FIELDS}
    if isinstance(data, list):
        return [without_paths(v) for v in data]
    return data


PATH_FIELDS = {"checkpoint", "files", "hidden", "tokenizer_source"}

# float32 BLAS: the same product computed in another blocking (more states at once, other chunk rows, another
# machine's kernels) may differ in its last bits; a logit of 6.8283 agrees to about 1e-6 relative, its probability too.
BLAS_REL, BLAS_ABS = 1e-5, 1e-6


def approx_json(data):
    """A command's JSON with every float compared within float32 BLAS tolerance, all else exactly:
    ``assert got == approx_json(expected)``."""
    if isinstance(data, dict):
        return {k: approx_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [approx_json(v) for v in data]
    if isinstance(data, float):
        return pytest.approx(data, rel=BLAS_REL, abs=BLAS_ABS)
    return data


@pytest.fixture
def model(tmp_path):
    """A small random Llama (V = 64, d = 16) in a folder, its tensors, and 6 hidden states (array and .npy path)."""
    vocab, hidden = 64, 16
    t = llama_tensors(vocab=vocab, hidden=hidden)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=vocab, hidden=hidden))
    h = np.random.default_rng(5).normal(size=(6, hidden)).astype(np.float32)
    np.save(tmp_path / "h.npy", h)
    return folder, t, h, tmp_path / "h.npy"
