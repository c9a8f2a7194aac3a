"""lmhead against transformers itself, on checkpoints transformers saved.

Expected values come from ``tests/fixtures/make_reference.py`` (transformers +
torch): ``num_parameters()``, the tying truth, and the model's own logits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lmhead_cli import locate_head, open_checkpoint, project

from conftest import REFERENCE_CASES, reference, run_json

# Relative tolerance on logits (scaled by the largest |logit|), by the model's dtype:
# float32 is exact to rounding; half-precision models round the norm output and the
# matmul result to their own precision, which lmhead (computing in float32) does not.
TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "bfloat16": 1.5e-2}


def all_logits(folder, states, norm=True):
    """Every logit through the library's streamed path (k = V), in id order."""
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        top = project(ckpt, anatomy, states, k=anatomy.vocab_size, norm=norm, chunk_rows=7)  # odd chunks on purpose
    logits = np.empty((len(states), anatomy.vocab_size), dtype=np.float32)
    np.put_along_axis(logits, top.ids, top.logits, axis=1)
    return logits, top


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_count_equals_num_parameters(case):
    folder, meta, _ = reference(case)
    data = run_json("count", folder)
    assert data["total_params"] == meta["num_parameters"]
    assert data["tied"] is meta["tied"]
    assert data["vocab_size"] == meta["vocab_size"]
    assert data["hidden_size"] == meta["hidden_size"]
    assert data["embedding"] == meta["embedding"]
    assert data["head"] == meta["head"]
    assert data["head_bias"] == meta["head_bias"]
    assert data["num_layers"] == meta["num_layers"]
    stored_head = 0 if meta["tied"] else meta["vocab_size"] * meta["hidden_size"]
    assert data["head_stored_params"] == stored_head + (meta["vocab_size"] if meta["head_bias"] else 0)
    assert sum(g["params"] for g in data["groups"]) == meta["num_parameters"]


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_final_norm_is_found_with_its_eps(case):
    folder, meta, _ = reference(case)
    norm = run_json("count", folder)["final_norm"]
    assert sorted(t for t in (norm["weight"], norm["bias"]) if t) == sorted(meta["final_norm_tensors"])
    assert norm["eps"] == pytest.approx(meta["final_norm_eps"])


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_logits_from_pre_norm_states_match_the_model(case):
    folder, meta, arrays = reference(case)
    logits, _ = all_logits(folder, arrays["norm_input"])
    scale = np.abs(arrays["logits"]).max()
    assert np.abs(logits - arrays["logits"]).max() <= TOLERANCE[meta["dtype"]] * scale


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_logits_from_normed_states_match_the_model(case):
    folder, meta, arrays = reference(case)
    logits, _ = all_logits(folder, arrays["norm_output"], norm=False)
    scale = np.abs(arrays["logits"]).max()
    assert np.abs(logits - arrays["logits"]).max() <= TOLERANCE[meta["dtype"]] * scale


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_probabilities_are_the_softmax_over_the_whole_vocabulary(case):
    folder, meta, arrays = reference(case)
    _, top = all_logits(folder, arrays["norm_input"])
    ref = arrays["logits"].astype(np.float64)
    ref_lse = np.log(np.exp(ref - ref.max(1, keepdims=True)).sum(1)) + ref.max(1)
    assert np.allclose(top.logsumexp, ref_lse, rtol=0, atol=TOLERANCE[meta["dtype"]] * np.abs(ref).max())
    assert np.allclose(top.probs.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_cli_topk_top5_matches_the_model(case, tmp_path):
    folder, meta, arrays = reference(case)
    data = run_json("topk", folder, folder / "reference.npz", "--key", "norm_input", "-k", "5")
    ref = arrays["logits"]
    for entry in data["positions"]:
        i = entry["position"]
        want = np.argsort(-ref[i], kind="stable")[:5]
        got = [t["token_id"] for t in entry["top"]]
        if meta["dtype"] == "float32":
            assert got == want.tolist()
        else:  # half precision: near-ties may swap; the set of clear winners must agree
            assert got[0] == want[0] or abs(ref[i, got[0]] - ref[i, want[0]]) < TOLERANCE[meta["dtype"]] * np.abs(ref).max()
        assert [t["logit"] for t in entry["top"]] == pytest.approx(
            ref[i, got].tolist(), abs=float(TOLERANCE[meta["dtype"]] * np.abs(ref).max())
        )


def test_the_eps_matters_in_these_fixtures():
    """Guard against fixtures too weak to catch a wrong eps: the default eps must move the logits."""
    folder, meta, arrays = reference("llama_tied")
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        wrong = dataclasses.replace(
            anatomy, recipe=dataclasses.replace(anatomy.recipe, norm=dataclasses.replace(anatomy.final_norm, eps=1e-6))
        )
        top = project(ckpt, wrong, arrays["norm_input"], k=anatomy.vocab_size)
    logits = np.empty_like(arrays["logits"])
    np.put_along_axis(logits, top.ids, top.logits, axis=1)
    assert np.abs(logits - arrays["logits"]).max() > 1e-3 * np.abs(arrays["logits"]).max()
