"""Every decoder family in the generated table, against transformers' own numbers.

The fixtures (tests/fixtures/families/<model_type>/) and the table
(lmhead_cli/model/families.py) come from tests/fixtures/make_families.py, which ran
transformers: num_parameters(), the tying it loads, and the model's own logits
from the final norm's input and output. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmhead_cli import locate_head, open_checkpoint, project
from lmhead_cli.model.conventions import NormKind, TransformKind, convention
from lmhead_cli.model.families import FAMILIES, MAPPING_TYPES, UNCOVERED

from conftest import ROOT, run_json

FAMILY_DIR = ROOT / "tests" / "fixtures" / "families"
CASES = sorted(p.name for p in FAMILY_DIR.iterdir() if (p / "reference.json").is_file())
TOLERANCE = 1e-4  # relative to the largest |logit|: float32 models, lmhead in float32 / float64


def family(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = FAMILY_DIR / case
    meta = json.loads((folder / "reference.json").read_text())
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return folder, meta, arrays


def all_logits(folder: Path, states: np.ndarray, norm: bool = True) -> np.ndarray:
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        top = project(ckpt, anatomy, states, k=anatomy.vocab_size, norm=norm, chunk_rows=37)
    logits = np.empty((len(states), anatomy.vocab_size), dtype=np.float32)
    np.put_along_axis(logits, top.ids, top.logits, axis=1)
    return logits


def test_every_type_of_the_mapping_is_covered_or_explained():
    assert set(FAMILIES) | set(UNCOVERED) == set(MAPPING_TYPES)
    assert not set(FAMILIES) & set(UNCOVERED)
    assert all(reason.strip() for reason in UNCOVERED.values())


def test_every_family_in_the_table_has_its_fixture():
    assert sorted(FAMILIES) == CASES


def test_the_table_kinds_are_known():
    for entry in FAMILIES.values():
        NormKind(entry["norm"])
        for kind, _key, _default in (*entry["pre_head"], *entry["transforms"]):
            TransformKind(kind)


def test_an_unknown_kind_fails_loudly():
    with pytest.raises(ValueError):
        NormKind("rmsnorm-2p")
    with pytest.raises(ValueError):
        TransformKind("tanh")


@pytest.mark.parametrize("case", CASES)
def test_table_is_current_with_the_fixture(case):
    """The committed table says what the generator saw when it made this fixture."""
    _, meta, _ = family(case)
    entry = json.loads(json.dumps(FAMILIES[case]))  # tuples as lists, as in reference.json
    assert entry == meta["convention"]
    built = convention(case)
    assert built is not None and built.source == "generated"


def test_hand_written_conventions_are_not_generated_types():
    """``convention`` prefers a hand-written entry: none may silently hide a generated one."""
    code = "import json; from lmhead_cli.model.conventions import CONVENTIONS; print(json.dumps(sorted(CONVENTIONS)))"  # as imported
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    hand = json.loads(out)
    assert hand and not set(hand) & set(FAMILIES)


@pytest.mark.parametrize("case", CASES)
def test_count_equals_num_parameters_and_tying_as_loaded(case):
    folder, meta, _ = family(case)
    data = run_json("count", folder)
    assert data["total_params"] == meta["num_parameters"]
    assert data["tied"] is meta["tied"]
    assert data["vocab_size"] == meta["vocab_size"]
    assert data["hidden_size"] == meta["hidden_size"]


@pytest.mark.parametrize("case", CASES)
def test_logits_from_the_norm_input_are_the_models(case):
    folder, _, arrays = family(case)
    logits = all_logits(folder, arrays["norm_input"])
    assert np.abs(logits - arrays["logits"]).max() <= TOLERANCE * np.abs(arrays["logits"]).max()


@pytest.mark.parametrize("case", CASES)
def test_logits_from_the_norm_output_are_the_models(case):
    folder, _, arrays = family(case)
    logits = all_logits(folder, arrays["norm_output"], norm=False)
    assert np.abs(logits - arrays["logits"]).max() <= TOLERANCE * np.abs(arrays["logits"]).max()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", ["norm_input", "norm_output"])
def test_cli_topk_matches_the_model_without_warnings(case, key):
    folder, _, arrays = family(case)
    extra = ["--no-norm"] if key == "norm_output" else []
    data = run_json("topk", folder, folder / "reference.npz", "--key", key, "-k", "3", *extra)
    ref = arrays["logits"]
    scale = float(np.abs(ref).max())
    for entry in data["positions"]:
        i = entry["position"]
        got = [t["token_id"] for t in entry["top"]]
        assert [t["logit"] for t in entry["top"]] == pytest.approx(ref[i, got].tolist(), abs=TOLERANCE * scale)
        assert entry["top"][0]["logit"] == pytest.approx(float(ref[i].max()), abs=TOLERANCE * scale)
    assert data["warnings"] == []  # a verified family: nothing guessed


def test_the_readme_architecture_list_is_generated_from_the_table():
    from readme_architectures import README, current, section

    assert current(README.read_text()) == section(), "regenerate: python tests/readme_architectures.py --write"


# The cases found wrong under the old hand-written table, as transformers' modeling code has them.
ISSUE_CASES = {
    "qwen3_next": ("model.norm", "rmsnorm-1p", []),
    "qwen3_5_text": ("model.norm", "rmsnorm-1p", []),
    "vaultgemma": ("model.norm", "rmsnorm-1p", ["final_logit_softcapping"]),
    "recurrent_gemma": ("model.final_norm", "rmsnorm-1p", ["logits_soft_cap"]),
    "nemotron": ("model.norm", "layernorm-1p", []),
    "lfm2": ("model.embedding_norm", "rmsnorm", []),
    "xglm": ("model.layer_norm", "layernorm", []),
    "biogpt": ("biogpt.layer_norm", "layernorm", []),
    "openai-gpt": (None, "none", []),
    "falcon_h1": ("model.final_layernorm", "rmsnorm", ["lm_head_multiplier"]),
    "granitemoehybrid": ("model.norm", "rmsnorm", ["logits_scaling"]),
    "gemma3n_text": ("model.norm", "rmsnorm", ["final_logit_softcapping"]),
    "nanochat": ("model.norm", "rmsnorm-unweighted", ["final_logit_softcapping"]),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_the_families_the_old_table_got_wrong(case):
    final_norm, kind, keys = ISSUE_CASES[case]
    entry = FAMILIES[case]
    assert (entry["final_norm"], entry["norm"], [key for _, key, _ in entry["transforms"]]) == (final_norm, kind, keys)


def test_rwkv_head_and_stored_buffers():
    assert FAMILIES["rwkv"]["head"] == "head.weight"
    assert FAMILIES["openai-gpt"]["embedding"] == "transformer.tokens_embed.weight"
    minimax = {b.split("\\.")[-1].rstrip("$") for b in FAMILIES["minimax"]["buffers"]}
    assert {"diagonal_decay", "key_decay", "query_decay", "slope_rate"} <= minimax
    apertus = {b.split("\\.")[-1].rstrip("$") for b in FAMILIES["apertus"]["buffers"]}
    assert {"beta", "eps"} <= apertus
