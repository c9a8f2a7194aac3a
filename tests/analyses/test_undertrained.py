"""`lmhead tokens` on small checkpoints with planted under-trained rows, and doctor's line.

Expected values are the planted facts (which rows were collapsed, zeroed or left at their init
norm) and plain numpy written here: cosine distance to the mean of R, the first principal
component from an SVD of the centred matrix (lmhead uses a streamed covariance), row norms.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, models

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import ROOT, run, run_json

V, D = 1000, 16
R_IDS = list(range(10, 15))  # <unused0..4>: one collapsed row
SUSPECTS = list(range(30, 35))  # the collapsed row plus a little noise
ZERO = [20, 21]


def names(size: int, reserved: dict[int, str] | None = None) -> list[str]:
    tokens = [f"t{i}" for i in range(size)]
    for i, text in (reserved or {}).items():
        tokens[i] = text
    return tokens


def add_tokenizer(folder, tokens: list[str], config: dict | None = None) -> None:
    Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0])).save(str(folder / "tokenizer.json"))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))


def planted_head(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(V, D)).astype(np.float32)
    collapsed = rng.normal(size=D).astype(np.float32)
    w[R_IDS] = collapsed
    w[SUSPECTS] = collapsed + np.float32(0.01) * rng.normal(size=(len(SUSPECTS), D)).astype(np.float32)
    w[ZERO] = 0
    return w


@pytest.fixture
def tied(tmp_path):
    t = llama_tensors(vocab=V, hidden=D, tied=True)
    t["model.embed_tokens.weight"] = planted_head()
    folder = write_checkpoint(tmp_path / "tied", t, llama_config(vocab=V, hidden=D, tied=True))
    add_tokenizer(folder, names(V, {i: f"<unused{k}>" for k, i in enumerate(R_IDS)}))
    return folder


def cosine_reference(w: np.ndarray, ids: list[int]) -> np.ndarray:
    w = w.astype(np.float64)
    v = w[ids].mean(axis=0)
    return 1 - w @ v / np.clip(np.linalg.norm(w, axis=1) * np.linalg.norm(v), 1e-6, None)


def test_collapsed_and_zero_rows_are_exact_evidence_and_r_is_the_reserved_tokens(tied):
    data = run_json("tokens", tied, "--all")
    (head,) = data["evidence"]
    assert head["identical_groups"] == [R_IDS]
    assert head["zero_rows"] == ZERO and head["nonfinite_rows"] == [] and head["mean_rows"] == []
    assert data["reference"] == {"source": "reserved", "ids": R_IDS}
    assert data["indicator"] == "cosine" and data["tied"] is True


def test_cosine_distance_agrees_with_numpy_and_ranks_the_planted_suspects_first(tied):
    data = run_json("tokens", tied, "--all")
    values = np.array([t["indicators"]["cosine"] for t in data["tokens"]])
    expected = cosine_reference(planted_head(), R_IDS)
    np.testing.assert_allclose(values, expected, atol=1e-9)
    assert {c["id"] for c in data["candidates"][:10]} == set(R_IDS + SUSPECTS)
    assert data["cutoff"]["threshold"] == pytest.approx(np.percentile(expected, 2.0), abs=1e-12)  # every token round-trips
    assert [c["id"] for c in data["candidates"]] == sorted(
        np.flatnonzero(expected <= data["cutoff"]["threshold"]), key=lambda i: expected[i]
    )


def test_first_component_removed_agrees_with_an_svd_reference_at_any_chunk_size(tied):
    w = planted_head().astype(np.float64)
    centred = w - w.mean(axis=0)
    pc = np.linalg.svd(centred, full_matrices=False)[2][0]  # (d,)
    without = w - np.outer(w @ pc, pc)
    expected = cosine_reference(without, R_IDS)
    for chunk in ("7", "64", "1000"):
        data = run_json("tokens", tied, "--all", "--indicator", "cosine-no-pc", "--chunk-rows", chunk)
        values = np.array([t["indicators"]["cosine-no-pc"] for t in data["tokens"]])
        np.testing.assert_allclose(values, expected, atol=1e-5)  # float32 products per chunk: 1e-6 here, 1e-9 on the real models
        assert data["indicator"] == "cosine-no-pc"


def test_untied_model_ranks_by_embedding_norm_and_finds_rows_left_at_init(tmp_path):
    rng = np.random.default_rng(3)
    t = llama_tensors(vocab=V, hidden=D)
    emb = rng.normal(size=(V, D)).astype(np.float32)
    untouched = list(range(40, 50))
    emb[untouched] = np.float32(0.02) * rng.normal(size=(len(untouched), D)).astype(np.float32)  # still at init scale
    t["model.embed_tokens.weight"] = emb
    folder = write_checkpoint(tmp_path / "untied", t, llama_config(vocab=V, hidden=D))
    add_tokenizer(folder, names(V))
    data = run_json("tokens", folder, "--all")
    assert data["indicator"] == "embedding-norm" and data["tied"] is False
    values = np.array([x["indicators"]["embedding-norm"] for x in data["tokens"]])
    np.testing.assert_allclose(values, np.linalg.norm(emb.astype(np.float64), axis=1), rtol=1e-12)
    assert sorted(c["id"] for c in data["candidates"][:10]) == untouched
    assert data["reference"]["source"] == "none" and "cosine" not in data["indicators_computed"]
    assert len(data["evidence"]) == 2  # the head's and the embedding's rows


def test_no_reference_set_on_a_tied_head_says_so_and_ranks_nothing(tmp_path):
    t = llama_tensors(vocab=V, hidden=D, tied=True)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=V, hidden=D, tied=True))
    add_tokenizer(folder, names(V))
    data = run_json("tokens", folder)
    assert data["indicator"] is None and data["candidates"] == [] and data["reference"]["source"] == "none"
    assert any("no reference set" in n for n in data["notes"])
    assert "indicator: none" in run("tokens", folder).stdout


def test_reference_tokens_override_the_automatic_choice(tied):
    data = run_json("tokens", tied, "--reference-tokens", "30-32,34", "--all")
    assert data["reference"] == {"source": "given", "ids": [30, 31, 32, 34]}
    values = np.array([t["indicators"]["cosine"] for t in data["tokens"]])
    np.testing.assert_allclose(values, cosine_reference(planted_head(), [30, 31, 32, 34]), atol=1e-9)


@pytest.mark.parametrize("spec", ["abc", "5-2", "0-1000", ","])
def test_bad_reference_tokens_are_one_line_and_exit_2(tied, spec):
    result = run("tokens", tied, "--reference-tokens", spec, ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --reference-tokens: ") and "Traceback" not in result.output


def test_text_output_leads_with_exact_evidence_and_states_the_cut_off_and_its_limits(tied):
    out = run("tokens", tied, "--top", "3").stdout
    assert out.index("exact evidence") < out.index("cut-off") < out.index("rank")
    assert "5 rows bit-identical in 1 group" in out and "2 zero rows: 20 t20, 21 t21" in out
    assert "2nd percentile" in out and "showing 3" in out
    assert "confirmed under-trained only by prompting the model" in out


def test_unreachable_tokens_are_categorised(tmp_path):
    vocab = {"a": 0, "b": 1, "ab": 2, "ba": 3, **{f"x{i}": 4 + i for i in range(V - 4)}}
    tokenizer = Tokenizer(models.BPE(vocab, [("a", "b")]))
    t = llama_tensors(vocab=V, hidden=D, tied=True)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=V, hidden=D, tied=True))
    tokenizer.save(str(folder / "tokenizer.json"))
    data = run_json("tokens", folder, "--all", "--reference-tokens", "0")
    category = {x["id"]: x["category"] for x in data["tokens"]}
    assert category[2] == "ok" and category[3] == "unreachable"  # "ba" has no merge: it encodes to b, a


def test_padding_rows_beyond_the_tokenizer_are_their_own_category(tied):
    add_tokenizer(tied, names(V - 8, {i: f"<unused{k}>" for k, i in enumerate(R_IDS)}))
    data = run_json("tokens", tied, "--all")
    assert data["padded_rows"] == 8 and data["categories"]["padding"] == 8
    assert all(c["category"] != "padding" for c in data["candidates"])


@pytest.mark.parametrize("name", ["mistral_q8_0.gguf", "synthetic_q6_k.gguf", "synthetic_q4_k.gguf", "llama_tied_f32.gguf"])
def test_gguf_rows_agree_with_the_gguf_librarys_dequantizer(name):
    path = ROOT / "tests" / "fixtures" / "gguf" / name
    data = run_json("tokens", path, "--all", "--reference-tokens", "0-3")
    tensor = next(t for t in GGUFReader(str(path)).tensors if t.name == data["matrix"])
    w = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    values = np.array([t["indicators"]["cosine"] for t in data["tokens"]])
    np.testing.assert_allclose(values, cosine_reference(w, [0, 1, 2, 3]), atol=1e-9)


def test_sharded_checkpoint_reads_the_same_rows(tmp_path, tied):
    t = llama_tensors(vocab=V, hidden=D, tied=True)
    t["model.embed_tokens.weight"] = planted_head()
    keys = sorted(t)
    folder = write_checkpoint(tmp_path / "sharded", t, llama_config(vocab=V, hidden=D, tied=True), shards=[keys[:2], keys[2:]])
    add_tokenizer(folder, names(V, {i: f"<unused{k}>" for k, i in enumerate(R_IDS)}))
    a, b = run_json("tokens", folder, "--all"), run_json("tokens", tied, "--all")
    assert a["tokens"] == b["tokens"] and a["evidence"][0]["identical_groups"] == b["evidence"][0]["identical_groups"]


def test_doctor_shows_one_line_and_no_problem_for_unused_tokens(tied):
    data = run_json("doctor", tied)
    assert data["healthy"] is True
    assert data["tokens"]["summary"].startswith("5 rows identical in 1 groups; 2 zero rows;")
    assert "tokens" in run("doctor", tied).stdout


def test_doctor_makes_a_problem_of_exact_evidence_in_the_eos_token(tied):
    add_tokenizer(tied, names(V, {i: f"<unused{k}>" for k, i in enumerate(R_IDS)}), config={"eos_token": "t20"})
    data = run_json("doctor", tied, exit_code=1)
    assert "untrained_used_tokens" in data["problem_kinds"]
    assert data["tokens"]["exact_evidence_in_used_tokens"] == [20]


def test_doctor_makes_a_problem_of_exact_evidence_in_a_chat_template_token(tied):
    tokens = names(V, {i: f"<unused{k}>" for k, i in enumerate(R_IDS)})
    tokens[21] = "<|im_start|>"
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="t0"))
    tokenizer.add_special_tokens(["<|im_start|>"])
    tokenizer.save(str(tied / "tokenizer.json"))
    (tied / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% for m in messages %}<|im_start|>{{ m }}{% endfor %}"}))
    data = run_json("doctor", tied, exit_code=1)
    assert data["tokens"]["exact_evidence_in_used_tokens"] == [21]
