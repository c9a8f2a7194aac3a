"""Heads behind a projection (OPT-350m: no final norm, project_out, tied V x proj head).

Expected values from transformers (tests/fixtures/make_projected.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, run_json

PROJECTED = ROOT / "tests" / "fixtures" / "projected"
CASES = ["opt_350m_like", "opt_norm_and_projection"]


@pytest.mark.parametrize("case", CASES)
def test_counts_and_tying_equal_transformers(case):
    meta = json.loads((PROJECTED / case / "reference.json").read_text())
    data = run_json("count", PROJECTED / case)
    assert data["total_params"] == meta["num_parameters"] and data["tied"] is meta["tied"]
    assert data["hidden_size"] == meta["hidden_size"]  # what topk takes; the head itself is V x word_embed_proj_dim
    assert (data["final_norm"] is not None) is meta["final_norm"]


@pytest.mark.parametrize("case", CASES)
def test_topk_projects_before_the_head_and_matches_the_model(case):
    folder = PROJECTED / case
    with np.load(folder / "reference.npz") as npz:
        logits = npz["logits"]
    data = run_json("topk", folder, folder / "reference.npz", "--key", "head_input", "-k", "96")
    for entry in data["positions"]:
        got = np.empty(96, dtype=np.float32)
        for t in entry["top"]:
            got[t["token_id"]] = t["logit"]
        ref = logits[entry["position"]]
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(logits).max()
