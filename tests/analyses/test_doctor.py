"""`lmhead doctor`, the vocabulary audit, counts that cannot be misread, and --explain."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
from tokenizers import Tokenizer, models

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import REFERENCE_CASES, SAMPLES, reference, run, run_json


def add_tokenizer(folder, size: int) -> None:
    vocab = {f"t{i}": i for i in range(size)}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_transformers_checkpoints_are_healthy(case):
    folder, meta, _ = reference(case)
    data = run_json("doctor", folder)
    assert data["healthy"] is True and data["problems"] == []
    assert data["counts"]["total_params"] == meta["num_parameters"]
    assert data["tying"]["tied"] is meta["tied"]


@pytest.mark.parametrize("name", ["gpt2-tied", "llama-bf16", "qwen2-sharded"])
def test_samples_are_healthy(name):
    assert run("doctor", SAMPLES / name).exit_code == 0


def test_padded_vocabulary_is_a_note_not_a_problem(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(vocab=64), llama_config(vocab=64))
    add_tokenizer(folder, 50)  # Pythia-like: 50,304 rows for 50,277 tokens
    data = run_json("doctor", folder)
    assert data["healthy"] is True
    assert data["vocabulary"]["padded_rows"] == 14 and data["vocabulary"]["tokenizer_size"] == 50
    assert any("14 head rows are padding" in n for n in data["notes"])


def test_tokenizer_larger_than_the_head_is_a_problem(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(vocab=64), llama_config(vocab=64))
    add_tokenizer(folder, 70)
    data = run_json("doctor", folder, exit_code=1)
    assert any("ids 64–69 can never be predicted" in p for p in data["problems"])


def test_config_vocab_size_disagreeing_with_the_tensors_is_reported_once(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(vocab=64), llama_config(vocab=60))
    data = run_json("doctor", folder, exit_code=1)
    assert [p for p in data["problems"] if "vocab_size" in p] == ["config vocab_size 60 differs from the 64 rows of lm_head.weight"]


def test_index_total_disagreeing_with_the_shards_is_a_problem(tmp_path):
    t = llama_tensors()
    names = sorted(t)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(), shards=[names[:3], names[3:]])
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["metadata"]["total_size"] += 100
    index["metadata"]["total_parameters"] = 12
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    data = run_json("doctor", folder, exit_code=1)
    assert any("total_size" in p and "(-100)" in p for p in data["problems"])
    assert any("total_parameters is 12" in p for p in data["problems"])
    counts = run_json("count", folder)
    assert len(counts["index_findings"]) == 2


def test_shard_holding_tensors_the_index_does_not_name(tmp_path):
    t = llama_tensors()
    names = sorted(t)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(), shards=[names[:3], names[3:]])
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    del index["weight_map"][names[0]]
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    data = run_json("doctor", folder, exit_code=1)
    assert any("not named by the index" in p for p in data["problems"])


def test_head_stored_but_embedding_missing(tmp_path):
    t = llama_tensors()
    del t["model.embed_tokens.weight"]
    data = run_json("doctor", write_checkpoint(tmp_path / "m", t, llama_config()), exit_code=1)
    assert any("no token embedding is stored" in p for p in data["problems"])


def test_config_tied_with_a_different_head_makes_doctor_fail(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config(tied=True))
    result = run("doctor", folder, ok=False)
    assert result.exit_code == 1 and "1 problem found" in result.stdout


def test_counts_stored_effective_non_embedding_and_by_dtype(tmp_path):
    t = llama_tensors(dtype=np.float32)
    t["lm_head.weight"] = t["lm_head.weight"].astype(ml_dtypes.bfloat16)
    total = sum(v.size for v in t.values())
    data = run_json("count", write_checkpoint(tmp_path / "m", t, llama_config()))
    assert data["stored_params"] == data["effective_params"] == total
    assert data["non_embedding_params"] == total - 2 * 64 * 16
    by = {d["dtype"]: d for d in data["by_dtype"]}
    assert by["BF16"]["effective_params"] == 64 * 16 and by["BF16"]["bytes"] == 2 * 64 * 16
    assert by["F32"]["effective_params"] == total - 64 * 16


@pytest.mark.parametrize("config", [llama_config(tied=True), None], ids=["config-tied", "no-config"])
def test_a_stored_copy_of_the_embedding_is_tied_in_every_command(tmp_path, config):
    """One meaning of tied (tie.loads_tied): transformers 5 ties a stored head equal to the embedding, and
    without a config an equal copy is one matrix too. count, check-tying and doctor agree."""
    t = llama_tensors()
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    folder = write_checkpoint(tmp_path / "m", t, config)
    data = run_json("count", folder)
    assert data["tied"] is True and data["head_stored_params"] == 0  # counted once, as num_parameters() does
    assert data["total_params"] == sum(v.size for v in t.values()) - 64 * 16
    assert "holds exactly the values" in data["tie_source"]
    tying = run_json("check-tying", folder)
    assert tying["tied"] is True and tying["values_identical"] is True and tying["problems"] == []
    doctor = run_json("doctor", folder)
    assert doctor["counts"]["tied"] is True and doctor["tying"]["tied"] is True


def test_a_stored_head_that_differs_under_a_tying_config_is_untied_everywhere(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config(tied=True))
    data = run_json("count", folder)
    assert data["tied"] is False and data["head_stored_params"] == 64 * 16
    assert "transformers 5 loads it" in data["tie_source"]
    doctor = run_json("doctor", folder, exit_code=1)
    assert doctor["tying"]["tied"] is False and doctor["problem_kinds"] == ["tied_values_differ"]


def test_an_untied_model_without_a_stored_head_counts_the_head_it_will_get(tmp_path):
    data = run_json("count", write_checkpoint(tmp_path / "m", llama_tensors(tied=True), llama_config(tied=False)))
    head = next(g for g in data["groups"] if g["name"] == "head")
    assert head["params"] == 64 * 16 and head["bytes"] == 0 and "random" in head["note"]


def test_explain_names_the_rule_for_each_role(tmp_path):
    folder, _, _ = reference("gemma2")
    data = run_json("count", folder, "--explain")["explain"]
    assert data["embedding"] == "model.embed_tokens.weight: architecture table"
    assert data["eps"].startswith("config rms_norm_eps=")
    assert data["transform:softcap"].startswith("config final_logit_softcapping=")
    rng = np.random.default_rng(0)
    t = {"x.tok_embeddings.weight": rng.normal(size=(8, 4)).astype(np.float32), "x.norm.weight": np.ones(4, np.float32)}
    fallback = run_json("check-tying", write_checkpoint(tmp_path / "u", t, None), "--explain")["explain"]
    assert fallback["embedding"].startswith("x.tok_embeddings.weight: name pattern")
    assert "rmsnorm guessed" in fallback["final_norm"]
    override = run_json("count", write_checkpoint(tmp_path / "o", t, None), "--embedding", "x.tok_embeddings.weight", "--explain")
    assert override["explain"]["embedding"].endswith("named with --embedding")
    out = run("topk", SAMPLES / "gpt2-tied", SAMPLES / "gpt2-tied" / "hidden.npy", "-k", "1", "--explain").stdout
    assert "identified by" in out and "architecture table" in out


def test_an_index_naming_a_tensor_no_shard_holds_is_an_error_for_count_and_a_problem_for_doctor(tmp_path):
    t = llama_tensors()
    names = sorted(t)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(), shards=[names[:3], names[3:]])
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost.weight"] = index["weight_map"][names[0]]
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    count = run("count", folder, ok=False)
    assert count.exit_code == 2 and "lists tensor 'ghost.weight'" in count.stderr
    data = run_json("doctor", folder, exit_code=1)
    assert any("ghost.weight" in p and "does not hold it" in p for p in data["problems"])


def test_nested_flag_disagreement_fails_doctor():
    from conftest import ROOT

    data = run_json("doctor", ROOT / "tests" / "fixtures" / "wrapped" / "flags_disagree", exit_code=1)
    assert any(p.startswith("tie flags disagree") for p in data["problems"])
    assert data["healthy"] is False
