"""llama.cpp's per-architecture rules for GGUF files (lmhead_cli/model/gguf_conventions.py).

Each test writes a small GGUF with ``gguf.GGUFWriter`` and checks what lmhead does against what
llama.cpp's graph for that architecture does, as cited in the table (``src/models/<arch>.cpp``).
Expected logits are computed here with numpy from the tensors written, never by lmhead.
The conversions of transformers-made models in tests/fixtures/gguf (test_gguf.py) check the same
rules end to end against transformers' own logits.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from lmhead_cli import locate_head, open_checkpoint
from lmhead_cli.model.gguf_conventions import GGUF_ARCHS, HeadRule

from conftest import run, run_json

V, D = 12, 8
RNG = np.random.default_rng(3)
EMB = RNG.normal(0, 1, (V, D)).astype(np.float32)
OUT = RNG.normal(0, 1, (V, D)).astype(np.float32)
NORM_W = RNG.uniform(0.5, 1.5, D).astype(np.float32)
NORM_B = RNG.normal(0, 0.1, D).astype(np.float32)
STATES = RNG.normal(0, 2, (3, D)).astype(np.float32)


def write(path: Path, arch: str, *, head: bool, eps: str = "rms", bias: bool = False, **floats: float) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    if eps == "rms":
        writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    elif eps == "layer":
        writer.add_float32(f"{arch}.attention.layer_norm_epsilon", 1e-5)
    for key, value in floats.items():
        writer.add_float32(f"{arch}.{key}", value)
    writer.add_tensor("token_embd.weight", EMB)
    writer.add_tensor("output_norm.weight", NORM_W)
    if bias:
        writer.add_tensor("output_norm.bias", NORM_B)
    if head:
        writer.add_tensor("output.weight", OUT)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    return path


def expected(matrix: np.ndarray, norm: str, softcap: float | None = None, scale: float = 1.0) -> np.ndarray:
    h = STATES.astype(np.float64)
    if norm == "rms":
        normed = h / np.sqrt((h**2).mean(-1, keepdims=True) + 1e-5) * NORM_W
    else:
        c = h - h.mean(-1, keepdims=True)
        normed = c / np.sqrt((c**2).mean(-1, keepdims=True) + 1e-5) * NORM_W + NORM_B
    logits = normed @ matrix.astype(np.float64).T * scale  # (T, d) @ (d, V) -> (T, V)
    return softcap * np.tanh(logits / softcap) if softcap else logits


def lmhead_logits(path: Path, tmp_path: Path) -> np.ndarray:
    np.save(tmp_path / "h.npy", STATES)
    data = run_json("topk", path, tmp_path / "h.npy", "-k", str(V))
    out = np.zeros((len(STATES), V))
    for i, p in enumerate(data["positions"]):
        for t in p["top"]:
            out[i, t["token_id"]] = t["logit"]
    return out


# ---------------------------------------------------------------- which matrix is the head


@pytest.mark.parametrize("arch", sorted(a for a, r in GGUF_ARCHS.items() if r.head is HeadRule.ALWAYS_TIED))
def test_always_tied_architectures_ignore_a_stored_output_weight(arch, tmp_path):
    rules = GGUF_ARCHS[arch]
    path = write(tmp_path / "m.gguf", arch, head=True, eps="rms" if rules.norm == "rmsnorm" else "layer", bias=rules.norm == "layernorm")
    with open_checkpoint(path) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.tied and anatomy.head_matrix == "token_embd.weight"
    assert f"src/models/{rules.file}:{rules.head_line}" in anatomy.tie_reason
    softcap = 30.0 if arch == "gemma2" else None  # gemma2's graph caps at 30 without the key
    norm = "rms" if rules.norm == "rmsnorm" else "layer"
    np.testing.assert_allclose(lmhead_logits(path, tmp_path), expected(EMB, norm, softcap), rtol=1e-5, atol=1e-5)
    data = run_json("check-tying", path, exit_code=1)
    assert data["tied"] is True
    (problem,) = data["problems"]
    assert "output.weight is stored, but llama.cpp's" in problem and "never reads it" in problem and "wrong number of tensors" in problem


def test_always_tied_without_a_stored_head_is_healthy(tmp_path):
    path = write(tmp_path / "m.gguf", "command-r", head=False, eps="layer", bias=True)
    data = run_json("check-tying", path)
    assert data["tied"] is True and data["problems"] == []
    assert "command-r graph always uses token_embd.weight" in data["tie_source"]


@pytest.mark.parametrize("arch", ["olmo2", "stablelm", "gptneox", "phi2", "qwen2moe"])
def test_required_heads_missing_are_a_problem_llama_cpp_would_refuse(arch, tmp_path):
    rules = GGUF_ARCHS[arch]
    assert rules.head is HeadRule.REQUIRED
    path = write(tmp_path / "m.gguf", arch, head=False, eps="rms" if rules.norm == "rmsnorm" else "layer", bias=rules.norm == "layernorm")
    data = run_json("check-tying", path, exit_code=1)
    (problem,) = data["problems"]
    assert f"llama.cpp's {arch} graph requires output.weight (llama.cpp src/models/{rules.file}:{rules.head_line})" in problem
    assert "will not load in llama.cpp" in problem
    run_json("doctor", path, exit_code=1)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "granite", "gpt2"])
def test_optional_heads_are_used_when_stored_and_tied_when_not(arch, tmp_path):
    rules = GGUF_ARCHS[arch]
    norm = "rms" if rules.norm == "rmsnorm" else "layer"
    stored = write(tmp_path / "a.gguf", arch, head=True, eps=norm, bias=norm == "layer")
    absent = write(tmp_path / "b.gguf", arch, head=False, eps=norm, bias=norm == "layer")
    assert run_json("check-tying", stored)["tied"] is False
    assert run_json("check-tying", absent)["tied"] is True
    np.testing.assert_allclose(lmhead_logits(stored, tmp_path), expected(OUT, norm), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lmhead_logits(absent, tmp_path), expected(EMB, norm), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- norms


@pytest.mark.parametrize("arch", sorted(GGUF_ARCHS))
def test_the_norm_kind_is_llama_cpps_for_the_architecture(arch, tmp_path):
    rules = GGUF_ARCHS[arch]
    path = write(tmp_path / "m.gguf", arch, head=True, eps="rms" if rules.norm == "rmsnorm" else "layer", bias=rules.norm == "layernorm")
    with open_checkpoint(path) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.final_norm.kind == rules.norm
    assert f"src/models/{rules.norm_file or rules.file}:{rules.norm_line}" in anatomy.explain["norm_kind"]


def test_a_missing_eps_key_is_a_problem_not_a_different_norm(tmp_path):
    """gemma2 is RMSNorm in llama.cpp whatever keys the file has; the LayerNorm key alone does not make it one."""
    path = write(tmp_path / "m.gguf", "gemma2", head=False, eps="layer")
    with open_checkpoint(path) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.final_norm.kind == "rmsnorm"
    data = run_json("doctor", path, exit_code=1)
    assert any("lacks gemma2.attention.layer_norm_rms_epsilon" in p and "the other norm's key" in p for p in data["problems"])


def test_olmo_normalises_without_parameters(tmp_path):
    """llama.cpp's olmo graph: build_norm(cur, NULL, NULL, LLM_NORM): a LayerNorm even with no output_norm stored."""
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "olmo")
    writer.add_float32("olmo.attention.layer_norm_epsilon", 1e-5)
    writer.add_tensor("token_embd.weight", EMB)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    h = STATES.astype(np.float64)
    c = h - h.mean(-1, keepdims=True)
    want = (c / np.sqrt((c**2).mean(-1, keepdims=True) + 1e-5)) @ EMB.astype(np.float64).T  # (T, d) @ (d, V) -> (T, V)
    np.testing.assert_allclose(lmhead_logits(tmp_path / "m.gguf", tmp_path), want, rtol=1e-5, atol=1e-5)


def test_gemma_norm_weights_are_not_given_one_twice(tmp_path):
    """The converter stored 1 + w: llama.cpp's graph multiplies by the stored weight as is."""
    for arch in ("gemma", "gemma2", "gemma3"):
        path = write(tmp_path / f"{arch}.gguf", arch, head=False)
        with open_checkpoint(path) as ckpt:
            anatomy = locate_head(ckpt)
        assert anatomy.final_norm.kind == "rmsnorm" and "stored 1 + w" in anatomy.explain["norm_kind"]
        softcap = 30.0 if arch == "gemma2" else None
        np.testing.assert_allclose(lmhead_logits(path, tmp_path), expected(EMB, "rms", softcap), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- softcaps and scales


@pytest.mark.parametrize(
    ("arch", "floats", "softcap", "scale"),
    [
        ("gemma2", {"final_logit_softcapping": 5.0}, 5.0, 1.0),
        ("gemma3", {"final_logit_softcapping": 4.0}, 4.0, 1.0),
        ("gemma3", {}, None, 1.0),  # gemma3's graph reads the key, default off
        ("command-r", {"logit_scale": 0.25}, None, 0.25),
        ("cohere2", {"logit_scale": 0.5}, None, 0.5),
        ("granite", {"logit_scale": 8.0}, None, 1 / 8.0),
        ("granitemoe", {"logit_scale": 4.0}, None, 1 / 4.0),
        ("granitehybrid", {"logit_scale": 2.0}, None, 1 / 2.0),
        ("llama", {"final_logit_softcapping": 3.0, "logit_scale": 9.0}, None, 1.0),  # llama's graph reads neither
    ],
)
def test_transforms_follow_each_graph(arch, floats, softcap, scale, tmp_path):
    norm = GGUF_ARCHS[arch].norm
    short = "rms" if norm == "rmsnorm" else "layer"
    path = write(tmp_path / "m.gguf", arch, head=False, eps=short, bias=short == "layer", **floats)
    np.testing.assert_allclose(lmhead_logits(path, tmp_path), expected(EMB, short, softcap, scale), rtol=1e-5, atol=1e-5)
    with open_checkpoint(path) as ckpt:
        anatomy = locate_head(ckpt)
    if arch == "llama":
        assert anatomy.transforms == ()
        for key in ("final_logit_softcapping", "logit_scale"):
            assert "not applied: llama.cpp's llama graph does not apply it" in anatomy.explain[f"transform:{key}"]


def test_an_unknown_architecture_keeps_the_metadata_cues(tmp_path):
    path = write(tmp_path / "m.gguf", "someday", head=True, eps="layer", bias=True, final_logit_softcapping=6.0)
    with open_checkpoint(path) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.final_norm.kind == "layernorm" and anatomy.explain["norm_kind"].startswith(
        "layernorm: someday.attention.layer_norm_epsilon present"
    )
    assert [(t.kind, t.value) for t in anatomy.transforms] == [("softcap", 6.0)]
    np.testing.assert_allclose(lmhead_logits(path, tmp_path), expected(OUT, "layer", 6.0), rtol=1e-5, atol=1e-5)


def test_the_table_cites_a_source_line_for_every_rule():
    for arch, rules in GGUF_ARCHS.items():
        assert rules.file.endswith(".cpp") and rules.head_line > 0 and rules.norm_line > 0, arch
        assert all(t.kind in ("softcap", "multiply", "divide") for t in rules.transforms), arch
        assert bool(rules.transforms) == bool(rules.transform_lines), arch


def test_explain_shows_the_rules(tmp_path):
    path = write(tmp_path / "m.gguf", "gemma2", head=True)
    out = run("check-tying", path, "--explain", ok=False).stdout
    assert "src/models/gemma2.cpp:37" in out
