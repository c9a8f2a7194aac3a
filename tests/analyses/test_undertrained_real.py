"""`lmhead tokens` on two real models against the paper's own code (tests/fixtures/make_undertrained_reference.py).

The GGUF files come from the package registry (see that script); these tests run only where they
are on disk: set LMHEAD_REAL_MODELS to the folder holding them. Skipped otherwise, like the torch tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_json

FIXTURES = ROOT / "tests" / "fixtures" / "undertrained"
MODELS = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3": "gemma-3-270m-q4_k_m.gguf"}
# transformers' GemmaTokenizer makes <mask> its mask token by default; the GGUF's metadata names no mask
# token, so lmhead's round trip calls it "ok" where the repository's calls it "OK_SPECIAL"
CLASS_DEFAULTS = {"gemma3": {4}}
CATEGORY = {"OK_SPECIAL": "special", "UNDECODEABLE": "partial UTF-8", "UNREACHABLE_SPECIAL": "unreachable special"}


def model_path(key: str) -> Path:
    folder = os.environ.get("LMHEAD_REAL_MODELS")
    path = Path(folder) / MODELS[key] if folder else None
    if path is None or not path.is_file() or not (FIXTURES / f"{key}.json").is_file():
        pytest.skip(f"set LMHEAD_REAL_MODELS to a folder holding {MODELS[key]} (see make_undertrained_reference.py)")
    return path


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    key = request.param
    path = model_path(key)
    reference = json.loads((FIXTURES / f"{key}.json").read_text())
    for i in CLASS_DEFAULTS.get(key, ()):
        reference["categories"].pop(str(i))
    data = run_json("tokens", path, "--all", "--indicator", "cosine-no-pc", "--top", "100000")
    return reference, data


def test_reference_set_is_the_one_the_rule_gives(case):
    reference, data = case
    assert data["reference"] == reference["reference"]


def test_categories_agree_with_the_repositorys_tokenizer_step(case):
    reference, data = case
    ours = {t["id"]: t["category"] for t in data["tokens"] if t["category"] != "ok"}
    theirs = {int(i): CATEGORY.get(c, "unreachable") for i, c in reference["categories"].items()}
    assert ours == theirs


@pytest.mark.parametrize("indicator", ["cosine", "cosine-no-pc"])
def test_indicators_threshold_and_candidates_agree_to_1e_4(case, indicator):
    reference, data = case
    expected = reference["indicators"][indicator]
    values = np.array([t["indicators"][indicator] for t in data["tokens"]])
    np.testing.assert_allclose(values[expected["sample_ids"]], expected["sample_values"], atol=1e-4)
    top = expected["candidates"][: len(expected["top_values"])]
    np.testing.assert_allclose(values[top], expected["top_values"], atol=1e-4)
    if indicator == data["indicator"]:
        assert data["cutoff"]["threshold"] == pytest.approx(expected["threshold"], abs=1e-4)
        assert {c["id"] for c in data["candidates"]} == set(expected["candidates"])
