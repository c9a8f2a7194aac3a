"""Vision-language wrappers: nested configs, prefixed names, two tie flags, part counts.

Expected values come from transformers itself (tests/fixtures/make_wrapped.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import ROOT, run, run_json

WRAPPED = ROOT / "tests" / "fixtures" / "wrapped"
CASES = ["llava_tied", "llava_untied", "mistral3", "gemma3_mm", "paligemma2", "qwen2_vl", "qwen3_vl"]


def load(case: str):
    folder = WRAPPED / case
    meta = json.loads((folder / "reference.json").read_text())
    arrays = None
    if (folder / "reference.npz").exists():
        with np.load(folder / "reference.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
    return folder, meta, arrays


@pytest.mark.parametrize("case", CASES)
def test_counts_by_part_equal_transformers(case):
    folder, meta, _ = load(case)
    data = run_json("count", folder)
    assert data["total_params"] == meta["num_parameters"]
    assert data["vision_params"] == meta["vision_params"]
    assert data["projector_params"] == meta["projector_params"]
    assert data["language_model_params"] == meta["language_model_params"]
    assert data["head_share_of_language_model"] == pytest.approx(meta["vocab_size"] * meta["hidden_size"] / meta["language_model_params"])
    assert (data["tied"], data["embedding"], data["head"]) == (meta["tied"], meta["embedding"], meta["head"])
    assert data["architecture"] == meta["text_model_type"] and data["wrapper"] == meta["model_type"]


@pytest.mark.parametrize("case", CASES)
def test_norm_and_eps_come_from_the_text_config(case):
    folder, meta, _ = load(case)
    data = run_json("count", folder, "--explain")
    assert [data["final_norm"]["weight"]] == meta["final_norm_tensors"]
    assert data["final_norm"]["eps"] == pytest.approx(meta["final_norm_eps"])
    assert data["explain"]["eps"].startswith("config text_config rms_norm_eps=")


@pytest.mark.parametrize("case", CASES)
def test_topk_on_the_language_model_matches_the_wrapper_logits(case):
    folder, meta, arrays = load(case)
    data = run_json("topk", folder, folder / "reference.npz", "--key", "norm_input", "-k", "3")
    ref = arrays["logits"]
    for entry in data["positions"]:
        i = entry["position"]
        assert [t["token_id"] for t in entry["top"]] == np.argsort(-ref[i])[:3].tolist()
        assert [t["logit"] for t in entry["top"]] == pytest.approx(np.sort(ref[i])[::-1][:3].tolist(), rel=1e-4, abs=1e-5)


def test_gemma3_wrapper_does_not_apply_the_text_softcap_but_paligemma_does():
    gemma = run_json("count", WRAPPED / "gemma3_mm", "--explain")["explain"]
    assert "does not apply it" in gemma["transform:softcap"]
    pali = run_json("count", WRAPPED / "paligemma2", "--explain")["explain"]
    assert pali["transform:softcap"] == "config text_config final_logit_softcapping=2.0"


@pytest.mark.parametrize("case", CASES)
def test_transformers_made_wrapped_checkpoints_are_consistent(case):
    folder, meta, _ = load(case)
    data = run_json("check-tying", folder)
    assert data["tied"] is meta["tied"] and data["problems"] == []


def test_flags_disagreeing_with_no_head_stored_is_the_mistral3_random_head_trap():
    folder, meta, _ = load("flags_disagree")
    assert meta["transformers_load"]["tied"] is False  # transformers left the head random
    data = run_json("check-tying", folder, exit_code=1)
    assert data["tied"] is False
    assert any(p.startswith("tie flags disagree: top-level tie_word_embeddings is false, text_config") for p in data["problems"])
    assert any("initialise the head at random" in p for p in data["problems"])
    count = run_json("count", folder)
    assert count["total_params"] == meta["num_parameters_loaded"]  # the random head is a parameter too


def test_the_same_flags_in_llava_tie_by_the_text_flag():
    folder, meta, _ = load("flags_disagree_llava")
    assert meta["transformers_load"]["tied"] is True
    data = run_json("check-tying", folder)
    assert data["tied"] is True and data["problems"] == []
    assert "copies to the top level" in data["tie_source"]


def test_wrapped_checkpoint_without_a_stored_head_is_a_problem():
    folder, meta, _ = load("no_head_stored")
    data = run_json("doctor", folder, exit_code=1)
    assert data["tying"]["tied"] is False and data["tying"]["head_stored"] is False
    assert any("initialise the head at random" in p for p in data["problems"])
    assert data["counts"]["total_params"] == meta["num_parameters_loaded"]


def test_mistral3_default_ties_but_a_stored_head_is_kept_by_transformers_5():
    folder, meta, _ = load("mistral3_hub_flags")
    assert meta["transformers_load"]["tied"] is False
    data = run_json("check-tying", folder, exit_code=1)
    assert data["tied"] is False and data["values_identical"] is False
    assert any("5.x unties" in p for p in data["problems"])
    assert run_json("count", folder)["total_params"] == meta["num_parameters_loaded"]


def test_several_heads_are_listed_and_topk_can_pick_one(tmp_path):
    t = llama_tensors(vocab=64, hidden=16)
    rng = np.random.default_rng(3)
    t["model.layers.2.shared_head.head.weight"] = rng.normal(size=(64, 16)).astype(np.float32)  # DeepSeek-V3 MTP
    t["medusa_head.0.1.weight"] = rng.normal(size=(64, 16)).astype(np.float32)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=64, hidden=16))
    data = run_json("count", folder)
    assert {c["name"] for c in data["head_candidates"]} == {"model.layers.2.shared_head.head.weight", "medusa_head.0.1.weight"}
    assert "topk --head NAME" in run("count", folder).stdout
    h = rng.normal(size=(3, 16)).astype(np.float32)
    np.save(tmp_path / "h.npy", h)
    main = run_json("topk", folder, tmp_path / "h.npy", "-k", "1")
    medusa = run_json("topk", folder, tmp_path / "h.npy", "-k", "1", "--head", "medusa_head.0.1.weight")
    assert medusa["head"] == "medusa_head.0.1.weight" and main["head"] == "lm_head.weight"
    w = t["medusa_head.0.1.weight"].astype(np.float64)
    x = h / np.sqrt((h.astype(np.float64) ** 2).mean(1, keepdims=True) + 1e-5) * t["model.norm.weight"]
    assert [p["top"][0]["token_id"] for p in medusa["positions"]] == (x @ w.T).argmax(1).tolist()


def test_topk_warns_when_the_loaded_head_would_be_random(tmp_path):
    folder, meta, _ = load("flags_disagree")
    np.save(tmp_path / "h.npy", np.random.default_rng(0).normal(size=(2, meta["hidden_size"])).astype(np.float32))
    data = run_json("topk", folder, tmp_path / "h.npy", "-k", "1")
    assert data["warnings"] and "random head" in data["warnings"][0]
    assert "warning: no head is stored" in run("topk", folder, tmp_path / "h.npy", "-k", "1").stdout
