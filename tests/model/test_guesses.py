"""No silent guesses: an architecture outside the table is warned about, and the user can fix its math.

The checkpoint is a family fixture whose model_type was renamed to one lmhead
does not know, so lmhead has to guess; its expected logits are still the ones
transformers computed (tests/fixtures/families, made by make_families.py).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli

from conftest import ROOT, run_json

FAMILIES = ROOT / "tests" / "fixtures" / "families"
# A zero-centred x·(1+w) final norm whose weights sit near 0 (Qwen3-Next; Gemma if it is absent).
ONE_PLUS = next(name for name in ("qwen3_next", "gemma") if (FAMILIES / name / "reference.json").is_file())


def renamed(tmp_path, family: str = ONE_PLUS, model_type: str = "mystery_next"):
    folder = tmp_path / model_type
    shutil.copytree(FAMILIES / family, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["architectures"] = ["MysteryNextForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with np.load(folder / "reference.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return folder, arrays


def topk(folder, *extra):
    result = CliRunner().invoke(
        cli, ["topk", str(folder), str(folder / "reference.npz"), "--key", "norm_input", "-k", "3", "--json", *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def top_logits_match(data, logits) -> bool:
    scale = np.abs(logits).max()
    return all(
        np.allclose([t["logit"] for t in e["top"]], logits[e["position"], [t["token_id"] for t in e["top"]]], atol=1e-4 * scale, rtol=0)
        and abs(e["top"][0]["logit"] - logits[e["position"]].max()) <= 1e-4 * scale
        for e in data["positions"]
    )


def test_an_unknown_type_gets_a_one_line_warning_naming_the_guess(tmp_path):
    folder, arrays = renamed(tmp_path)
    data, stderr = topk(folder)
    guess = [w for w in data["warnings"] if w.startswith("architecture mystery_next is not in lmhead's table")]
    assert len(guess) == 1
    assert "guessed final norm rmsnorm" in guess[0] and "no logit transforms" in guess[0] and "--norm" in guess[0]
    assert f"warning: {guess[0]}" in stderr.replace("\n", " ") or f"warning: {guess[0]}"[:60] in stderr
    assert not top_logits_match(data, arrays["logits"])  # the guess is wrong for this checkpoint: that is the point


def test_a_near_zero_norm_weight_under_x_times_w_gets_its_own_warning(tmp_path):
    folder, _ = renamed(tmp_path)
    data, stderr = topk(folder)
    near = [w for w in data["warnings"] if "near 0" in w]
    assert len(near) == 1 and "--norm rmsnorm-1p" in near[0]
    assert "near 0" in stderr


def test_overriding_the_norm_fixes_the_logits_of_the_renamed_checkpoint(tmp_path):
    folder, arrays = renamed(tmp_path)
    data, _ = topk(folder, "--norm", "rmsnorm-1p")
    assert top_logits_match(data, arrays["logits"])
    assert data["overrides"] == {"norm": "rmsnorm-1p"}
    assert not any("near 0" in w for w in data["warnings"])
    assert all("final norm" not in w for w in data["warnings"])  # the norm is no longer a guess


def test_overrides_show_in_explain(tmp_path):
    folder, _ = renamed(tmp_path)
    data, _ = topk(folder, "--norm", "rmsnorm-1p", "--eps", "0.5", "--softcap", "7", "--logit-scale", "2", "--explain")
    explain = data["explain"]
    assert explain["norm_kind"] == "rmsnorm-1p: --norm"
    assert explain["eps"] == "--eps 0.5"
    assert explain["transform:softcap"] == "--softcap 7"
    assert explain["transform:multiply"] == "--logit-scale 2"
    assert data["warnings"] == []  # nothing left to guess
    text = CliRunner().invoke(cli, ["doctor", str(folder), "--norm", "rmsnorm-1p", "--explain"]).output
    assert "--norm rmsnorm-1p" in text


def test_softcap_and_logit_scale_change_the_logits_as_stated():
    folder = FAMILIES / "llama"
    with np.load(folder / "reference.npz") as npz:
        ref = npz["logits"]
    data, _ = topk(folder, "--logit-scale", "0.5", "--softcap", "3")
    for e in data["positions"]:
        ids = [t["token_id"] for t in e["top"]]
        want = 3 * np.tanh(ref[e["position"], ids] / 3) * 0.5
        assert [t["logit"] for t in e["top"]] == pytest.approx(want.tolist(), abs=1e-4)


def test_softcap_zero_turns_the_tables_softcap_off():
    folder = FAMILIES / "gemma2"
    data, _ = topk(folder, "--softcap", "0", "--explain")
    assert data["explain"]["transform:softcap"] == "--softcap 0 (off)"
    plain, _ = topk(folder)
    assert max(t["logit"] for e in data["positions"] for t in e["top"]) >= max(t["logit"] for e in plain["positions"] for t in e["top"])


def test_norm_none_drops_the_final_norm():
    folder = FAMILIES / "llama"
    with np.load(folder / "reference.npz") as npz:
        ref = npz["logits"]
    data, _ = topk(folder, "--norm", "none")
    # without the norm the pre-norm states go straight to the head: different numbers
    assert not top_logits_match(data, ref)


def test_doctor_calls_an_unknown_architecture_unverified(tmp_path):
    folder, _ = renamed(tmp_path)
    data = run_json("doctor", folder)
    assert data["verified"] is False
    assert any(w.startswith("unverified architecture: architecture mystery_next") for w in data["warnings"])
    assert any("near 0" in w for w in data["warnings"])
    result = CliRunner().invoke(cli, ["doctor", str(folder)])
    assert "warning: unverified architecture" in result.output
    assert "healthy: no problems found" not in result.output


def test_doctor_on_a_verified_family_has_no_warnings():
    data = run_json("doctor", FAMILIES / "llama")
    assert data["verified"] is True and data["warnings"] == []


@pytest.mark.parametrize(
    "option, value", [("--eps", "nan"), ("--eps", "-1"), ("--logit-scale", "0"), ("--softcap", "inf"), ("--softcap", "-2")]
)
def test_override_values_the_math_cannot_use_are_refused(option, value):
    result = CliRunner().invoke(cli, ["topk", str(FAMILIES / "llama"), str(FAMILIES / "llama" / "reference.npz"), option, value])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# Families whose routers keep a load-balancing bias as a buffer, under the names transformers gives them.
ROUTER_BUFFERS = [
    name
    for name in ("lfm2_moe", "kolibri1", "minimax_m2", "ergo", "kolibri1_1", "minicpm5_moe", "param2moe")
    if (FAMILIES / name / "reference.json").is_file()
]


@pytest.mark.parametrize("family", ROUTER_BUFFERS)
def test_an_unknown_type_counts_router_buffers_as_transformers_does_and_warns(tmp_path, family):
    folder, _ = renamed(tmp_path, family)
    meta = json.loads((folder / "reference.json").read_text())
    result = CliRunner().invoke(cli, ["count", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total_params"] == meta["num_parameters"]  # transformers' num_parameters(): buffers are not parameters
    assert any(n.endswith(("expert_bias", "router_bias", "e_score_correction_bias")) for n in data["buffers_skipped"])
    (warning,) = data["warnings"]
    assert warning.startswith("architecture mystery_next is not in lmhead's table: roles found by name patterns")
    assert f"warning: {warning}" in result.stderr


def test_count_names_the_tensors_whose_role_is_a_guess(tmp_path):
    folder, _ = renamed(tmp_path, "mamba" if (FAMILIES / "mamba").is_dir() else "falcon_h1")
    data = run_json("count", folder)
    (warning,) = data["warnings"]
    assert "counted as parameters, though they may be buffers: " in warning and ".A_log" in warning


def test_doctor_on_an_unknown_type_is_not_verified(tmp_path):
    folder, _ = renamed(tmp_path, ROUTER_BUFFERS[0])
    result = CliRunner().invoke(cli, ["doctor", str(folder)])
    assert result.exit_code == 0, result.output
    assert "not verified" in result.stdout and "healthy" not in result.stdout
    data = run_json("doctor", folder)
    assert any(w.startswith("unverified counts: architecture mystery_next is not in lmhead's table") for w in data["warnings"])


def test_a_family_in_the_table_counts_without_warnings():
    assert "warnings" not in run_json("count", FAMILIES / ROUTER_BUFFERS[0])
