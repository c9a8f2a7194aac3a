"""Correctness edge cases of every command: each was reproduced before its fix, and each test failed then."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lmhead_cli.render import strict_json

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import SAMPLES, run, run_json, strict_loads

V, D = 64, 16


# ------------------------------------------------------------------ float64 tensors in PyTorch check-tying


def _torch_pair(tmp_path, emb, head):
    torch = pytest.importorskip("torch")
    state = {
        "model.embed_tokens.weight": torch.from_numpy(emb),
        "lm_head.weight": torch.from_numpy(head),
        "model.norm.weight": torch.ones(D),
    }
    folder = tmp_path / "pt"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(llama_config(vocab=V, hidden=D, tied=False)))
    return folder


def test_f64_embedding_and_f32_head_with_equal_values_are_identical(tmp_path):
    values = np.random.default_rng(0).normal(size=(V, D)).astype(np.float32)
    folder = _torch_pair(tmp_path, values.astype(np.float64), values)
    data = run_json("check-tying", folder)
    assert data["values_identical"] is True
    full = run_json("check-tying", folder, "--full")  # crashed with a numpy broadcasting error
    assert full["values_identical"] is True and full["comparison"]["max_abs_diff"] == 0.0
    assert full["comparison"]["identical_rows_fraction"] == 1.0


def test_f64_against_f64_reports_the_true_difference(tmp_path):
    emb = np.random.default_rng(1).normal(size=(V, D))
    head = emb.copy()
    head[7, 3] += 1e-3
    data = run_json("check-tying", _torch_pair(tmp_path, emb, head), "--full")
    assert data["values_identical"] is False
    assert data["comparison"]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-6)  # was 249: bytes read as numbers
    assert data["comparison"]["identical_rows_fraction"] == pytest.approx((V - 1) / V)


def test_f64_values_differing_below_float32_resolution_still_differ(tmp_path):
    emb = np.random.default_rng(2).normal(size=(V, D))
    head = emb.copy()
    head[0, 0] = np.nextafter(head[0, 0], 10.0)  # lost if either side were read as float32
    assert run_json("check-tying", _torch_pair(tmp_path, emb, head))["values_identical"] is False


# ------------------------------------------------------------------ targets outside the head, or in its padding


@pytest.mark.parametrize("bad, message", [(V, "target id 64 at position 2 is outside the head's 64 rows"), (-1, "id -1 is negative")])
def test_targets_outside_the_head_are_bad_input(model, bad, message):
    folder, _, _, h = model
    targets = ["3", "4", str(bad), "5", "6", "7"]
    result = run("topk", folder, h, "--targets", ",".join(targets), ok=False)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_a_target_id_too_large_for_any_integer_is_bad_input(model):
    folder, _, _, h = model
    result = run("topk", folder, h, "--targets", "1,2,3,4,5,99999999999999999999999", ok=False)
    assert result.exit_code == 2 and "larger than any vocabulary" in result.stderr, result.output


def test_targets_in_masked_padding_are_bad_input_unless_padding_is_kept():
    folder = SAMPLES / "llama-bf16"  # 512 head rows, 450 tokens: rows 450.. are masked
    targets = ",".join(["5"] * 12 + ["470"])
    result = run("topk", folder, folder / "hidden.npy", "--targets", targets, ok=False)
    assert result.exit_code == 2 and "target id 470 at position 12 is a padded head row beyond the tokenizer's 450 tokens" in result.stderr
    assert "--include-padded" in result.stderr
    kept = run_json("topk", folder, folder / "hidden.npy", "--targets", targets, "--include-padded", "-k", "1")
    assert kept["summary"][0]["count"] == 13  # every target counted: none dropped silently


# ------------------------------------------------------------------ positions, hidden dtypes, norm_applied


@pytest.mark.parametrize("spec", ["5:2", "6:", "0:3,4:4"])
def test_an_empty_position_range_is_an_error(model, spec):
    folder, _, _, h = model
    result = run("topk", folder, h, "--positions", spec, ok=False)
    assert result.exit_code == 2 and "selects none of the 6 positions" in result.stderr, result.output


def test_integer_hidden_states_are_refused_from_pt_as_from_npy(model, tmp_path):
    torch = pytest.importorskip("torch")
    folder, *_ = model
    ids = np.arange(6 * D).reshape(6, D)
    np.save(tmp_path / "ids.npy", ids)
    torch.save(torch.from_numpy(ids), tmp_path / "ids.pt")
    for name in ("ids.npy", "ids.pt"):
        result = run("topk", folder, tmp_path / name, ok=False)
        assert result.exit_code == 2 and "dtype int64 is not a floating-point type" in result.stderr, (name, result.output)


def test_no_norm_with_last_normed_reports_no_norm_applied():
    folder = SAMPLES / "gpt2-tied"
    data = run_json("topk", folder, folder / "hidden_layers.npy", "--layers", "--last-normed", "--no-norm", "-k", "1")
    assert data["norm_applied"] is False
    normed = run_json("topk", folder, folder / "hidden_layers.npy", "--layers", "--last-normed", "-k", "1")
    assert normed["norm_applied"] is True


# ------------------------------------------------------------------ folders holding several candidates


def test_a_folder_with_two_gguf_files_names_them_and_asks(tmp_path):
    source = SAMPLES.parent / "tests" / "fixtures" / "gguf" / "mistral_q8_0.gguf"
    shutil.copy(source, tmp_path / "a.gguf")
    shutil.copy(source, tmp_path / "b.gguf")
    result = run("count", tmp_path, ok=False)
    assert result.exit_code == 2 and "several .gguf files (a.gguf, b.gguf); which one?" in result.stderr, result.output
    assert "no weights found" not in result.stderr
    assert f"hint: give the file itself as CKPT, e.g. {tmp_path / 'a.gguf'}" in result.stderr


def test_a_folder_with_two_pt_files_and_no_pytorch_model_bin_names_them(tmp_path):
    (tmp_path / "first.pt").write_bytes(b"PK\x03\x04")
    (tmp_path / "second.pt").write_bytes(b"PK\x03\x04")
    result = run("count", tmp_path, ok=False)
    assert result.exit_code == 2 and "several PyTorch files (first.pt, second.pt); which one?" in result.stderr, result.output


# ------------------------------------------------------------------ exit statuses


@pytest.mark.parametrize("exc", [ZeroDivisionError("a bug"), MemoryError()])
def test_internal_errors_exit_3(model, monkeypatch, exc):
    import lmhead_cli.cli as cli_module

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli_module, "census", boom)
    result = run("count", model[0], ok=False)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_bad_input_stays_2_and_problems_1(model, tmp_path):
    assert run("count", tmp_path / "missing", ok=False).exit_code == 2
    folder, t, *_ = model
    del t["lm_head.weight"]
    untied_without_head = write_checkpoint(tmp_path / "u", t, llama_config(vocab=V, hidden=D, tied=False))
    assert run("check-tying", untied_without_head, ok=False).exit_code == 1


# ------------------------------------------------------------------ strict JSON


def test_json_never_holds_nan_or_infinity(tmp_path):
    t = llama_tensors(vocab=V, hidden=D)
    t["model.embed_tokens.weight"][3, 2] = np.inf
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    t["lm_head.weight"][3, 2] = -np.inf
    folder = write_checkpoint(tmp_path / "inf", t, llama_config(vocab=V, hidden=D, tied=False))
    result = run("check-tying", folder, "--full", "--json")
    data = strict_loads(result.stdout)  # a bare Infinity (max |Δ| of +inf against -inf) failed here
    assert data["values_identical"] is False and data["comparison"]["max_abs_diff"] is None


def test_strict_json_turns_non_finite_numbers_into_null():
    value = {"a": float("nan"), "b": [np.float32(np.inf), -np.inf, 1.5], "c": np.array([1.0, np.nan]), "d": np.int64(3)}
    assert strict_json(value) == {"a": None, "b": [None, None, 1.5], "c": [1.0, None], "d": 3}


# ------------------------------------------------------------------ one meaning of tied


def _evidence(directs, head_stored=True, shares=False, source=None):
    from lmhead_cli.model.tie import TieEvidence, TieSource

    return TieEvidence(source or TieSource.CONFIG, directs, directs, "", head_stored=head_stored, shares_storage=shares)


@pytest.mark.parametrize(
    "directs, head_stored, shares, identical, tied",
    [
        (False, True, False, True, False),  # config untied: never tied, even for an equal copy
        (False, False, False, None, False),  # untied and no head: a random head, not the embedding
        (True, False, False, None, True),  # tied, head absent
        (True, True, True, None, True),  # tied by storage
        (True, True, False, True, True),  # transformers 5 ties a stored head equal to the embedding
        (True, True, False, False, False),  # ... and loads a different stored head as its own
        (None, True, False, True, True),  # no config: an equal copy is one matrix
        (None, True, False, False, False),
        (None, False, False, None, True),
    ],
)
def test_loads_tied_is_the_one_definition(directs, head_stored, shares, identical, tied):
    from lmhead_cli.model.tie import loads_tied, values_decide

    e = _evidence(directs, head_stored, shares)
    assert values_decide(e) is (directs is not False and head_stored and not shares)
    assert loads_tied(e, identical if values_decide(e) else None) is tied


def test_no_decision_is_keyed_on_display_text():
    """Tie sources and problem kinds are enums; nothing compares their wording."""
    from conftest import ROOT

    for module in sorted((ROOT / "lmhead_cli").rglob("*.py")):
        text = module.read_text()
        for pattern in ('startswith("GGUF', '== "no config"', '"not named by the index" in', 'startswith("config vocab_size'):
            assert pattern not in text, (module.name, pattern)


def test_minus_100_leaves_a_position_without_a_target(model):
    """transformers' labels mark positions without a target with -100: those positions are not scored."""
    folder, _, _, h = model
    scored = run_json("topk", folder, h, "--targets", "3,4,5,6,7,8")
    ignored = run_json("topk", folder, h, "--targets", "3,-100,5,6,-100,8")
    assert ignored["summary"][0]["count"] == scored["summary"][0]["count"] - 2 == 4
    assert [p.get("target", {}).get("token_id") for p in ignored["positions"]] == [3, None, 5, 6, None, 8]
    same = [p["target"] for i, p in enumerate(scored["positions"]) if i not in (1, 4)]
    assert [p["target"] for p in ignored["positions"] if "target" in p] == same  # the others are scored as before
    for other in ("-1", "-99", "-101"):
        result = run("topk", folder, h, "--targets", f"3,{other},5,6,7,8", ok=False)
        assert result.exit_code == 2 and "is negative" in result.stderr and "-100 leaves a position" in result.stderr


# ------------------------------------------------------------------ options where they act, --debug anywhere


def test_targets_may_be_given_one_per_selected_position(model):
    """With --positions, --targets may list one id per selected position instead of one per position of the file."""
    folder, _, _, h = model
    full = run_json("topk", folder, h, "--positions", "4,1", "--targets", "-100,7,-100,-100,9,-100")
    short = run_json("topk", folder, h, "--positions", "4,1", "--targets", "9,7")
    assert short["positions"] == full["positions"] and short["summary"] == full["summary"]
    assert [p["target"]["token_id"] for p in short["positions"]] == [9, 7]
    wrong = run("topk", folder, h, "--positions", "4,1", "--targets", "9,7,3", ok=False)
    assert wrong.exit_code == 2 and "(expected 6 or 5, or 2: one per selected position)" in wrong.stderr


def test_a_positions_list_is_checked_before_the_checkpoint_is_read(tmp_path):
    """--positions is parsed where it enters: a typo is named even when CKPT does not exist."""
    result = run("topk", tmp_path / "absent", tmp_path / "h.npy", "--positions", "1,x", ok=False)
    assert result.exit_code == 2 and result.stderr.startswith("error: --positions: 'x' is not an integer or a start:stop range")


@pytest.mark.parametrize("command", ["count", "check-tying", "topk", "doctor"])
def test_debug_works_after_the_subcommand_too(command, tmp_path):
    args = [command, tmp_path / "absent", *([tmp_path / "h.npy"] if command == "topk" else [])]
    before = run("--debug", *args, ok=False)
    after = run(*args, "--debug", ok=False)
    for result in (before, after):
        assert isinstance(result.exception, Exception) and "no such file or directory" in str(result.exception)
    assert run(*args, ok=False).exit_code == 2  # without it: one line, exit 2


@pytest.mark.parametrize("option", [["--norm", "rmsnorm"], ["--eps", "1e-5"], ["--logit-scale", "2"], ["--softcap", "30"]])
def test_math_options_are_offered_only_where_they_change_the_answer(option, model):
    folder, _, _, h = model
    for command in ("count", "check-tying"):
        result = run(command, folder, *option, ok=False)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {option[0]}: no such option"), result.stderr
    assert run_json("topk", folder, h, *option)["overrides"]
    assert run("doctor", folder, *option, "--explain").exit_code == 0
