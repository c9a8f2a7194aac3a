"""`lmhead check-tying`: verdicts on transformers-made and crafted checkpoints."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from lmhead_cli import locate_head, open_checkpoint
from lmhead_cli.analyses import tying as tying_module
from lmhead_cli.checkpoint import compare as compare_module

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import REFERENCE_CASES, reference, run, run_json


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_transformers_checkpoints_are_consistent_and_the_verdict_matches_the_loaded_model(case):
    folder, meta, _ = reference(case)
    data = run_json("check-tying", folder)
    assert data["tied"] is meta["tied"]
    assert data["head_stored"] is (meta["head"] is not None)
    assert data["problems"] == []


def test_json_has_the_documented_fields(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config())
    data = run_json("check-tying", folder)
    for key in ("tied", "head_stored", "values_identical", "config_flag", "problems", "embedding", "head", "shape_relation"):
        assert key in data
    assert (data["tied"], data["config_flag"], data["values_identical"]) == (False, False, False)


def test_config_tied_but_a_different_head_is_stored_is_a_problem(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(tied=False), llama_config(tied=True))
    data = run_json("check-tying", folder, exit_code=1)
    # transformers 5 keeps the stored head (it ties only an absent or equal one); 4.x replaced it
    assert data["tied"] is False and data["values_identical"] is False and data["config_flag"] is True
    assert len(data["problems"]) == 1 and "different values" in data["problems"][0] and "4.x" in data["problems"][0]
    assert "transformers 5 loads it" in data["tie_source"]


def test_config_untied_but_no_head_stored_is_a_problem(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(tied=True), llama_config(tied=False))
    data = run_json("check-tying", folder, exit_code=1)
    assert data["tied"] is False and data["head_stored"] is False
    assert "random" in data["problems"][0]


def test_config_tied_but_shapes_differ_is_a_problem(tmp_path):
    t = llama_tensors()
    t["lm_head.weight"] = np.ones((80, 16), np.float32)
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(tied=True)), exit_code=1)
    assert "shapes differ" in data["problems"][0] and data["shape_relation"] == "slice"
    t["lm_head.weight"] = np.ones((64, 12), np.float32)
    other = run_json("check-tying", write_checkpoint(tmp_path / "n", t, llama_config(tied=True)), exit_code=1)
    assert "shapes differ" in other["problems"][0] and other["shape_relation"] == "different"


def test_untied_but_identical_values_is_a_note_with_the_saving(tmp_path):
    t = llama_tensors()
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(tied=False)))
    assert data["problems"] == [] and data["values_identical"] is True and data["tied"] is False
    assert any("tying would save 1,024 parameters (4,096 bytes)" in n for n in data["notes"])


@pytest.mark.parametrize(
    "head,tied",
    [("absent", True), ("identical", True), ("different", False)],
)
def test_without_config_storage_and_values_decide(tmp_path, head, tied):
    t = llama_tensors(tied=head == "absent")
    if head == "identical":
        t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, None))
    assert data["tied"] is tied and data["config_flag"] is None and data["problems"] == []
    if head == "identical":  # tied by its values: the note speaks of the second copy on disk, not of tying
        assert [n for n in data["notes"] if "exactly the values" in n] == [
            "lm_head.weight holds exactly the values of model.embed_tokens.weight and is stored twice: "
            "storing it once would save 4,096 bytes"
        ]


def test_sharded_embedding_and_head_in_different_shards_are_compared(tmp_path):
    t = llama_tensors()
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    names = sorted(t)
    shards = [["model.embed_tokens.weight"], [n for n in names if n != "model.embed_tokens.weight"]]
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(tied=True), shards=shards))
    assert data["embedding"]["file"] != data["head"]["file"]
    assert data["values_identical"] is True and data["tied"] is True and data["problems"] == []


def test_same_values_in_different_dtypes_are_identical(tmp_path):
    t = llama_tensors()
    bf16 = t["model.embed_tokens.weight"].astype(ml_dtypes.bfloat16)
    t["model.embed_tokens.weight"] = bf16
    t["lm_head.weight"] = bf16.astype(np.float32)  # exact widening
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, None))
    assert data["values_identical"] is True
    assert any("BF16" in n and "F32" in n for n in data["notes"])


def test_comparison_stops_at_the_first_differing_chunk_unless_full(tmp_path, monkeypatch):
    t = llama_tensors(vocab=256)
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    t["lm_head.weight"][10, 3] += 1.0  # one value differs, in the first chunk
    folder = write_checkpoint(tmp_path / "m", t, None)
    monkeypatch.setattr(compare_module, "COMPARE_CHUNK_BYTES", 32 * 16 * 4)  # 32 rows per chunk
    quick = run_json("check-tying", folder)
    assert quick["values_identical"] is False
    assert quick["comparison"]["rows_compared"] == 32 and quick["comparison"]["complete"] is False
    full = run_json("check-tying", folder, "--full")["comparison"]
    assert full["rows_compared"] == 256 and full["complete"] is True
    assert full["max_abs_diff"] == pytest.approx(1.0)
    assert full["identical_rows_fraction"] == pytest.approx(255 / 256)
    assert 0.99 < full["mean_row_cosine"] < 1.0


def test_full_statistics_against_numpy(tmp_path):
    t = llama_tensors()
    folder = write_checkpoint(tmp_path / "m", t, llama_config())
    with open_checkpoint(folder) as ckpt:
        report = tying_module.diagnose_tying(ckpt, locate_head(ckpt), full=True)
    a, b = t["model.embed_tokens.weight"].astype(np.float64), t["lm_head.weight"].astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert report.comparison.max_abs_diff == pytest.approx(np.abs(a - b).max())
    assert report.comparison.mean_row_cosine == pytest.approx(cos.mean())


@pytest.mark.parametrize("expect,code", [("tied", 0), ("untied", 1)])
def test_expect_fails_the_pipeline_when_the_verdict_differs(tmp_path, expect, code):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(tied=True), llama_config(tied=True))
    result = run("check-tying", folder, "--expect", expect, ok=False)
    assert result.exit_code == code
    if code:
        assert "expected untied, found tied" in result.stdout


def test_panel_shows_verdict_first_then_evidence(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(tied=False), llama_config(tied=True))
    out = run("check-tying", folder, ok=False).stdout
    lines = [line.strip("|+ ") for line in out.splitlines() if line.strip("|+- ")]
    assert lines[1].startswith("untied, but the checkpoint is inconsistent (1 problem)")
    assert "problem: config ties" in out and "values" in out and "differ" in out


@pytest.mark.parametrize("longer", ["embedding", "head"])
def test_slice_tie_is_recognised_both_ways(tmp_path, longer):
    t = llama_tensors(vocab=80)
    if longer == "embedding":
        t["lm_head.weight"] = t["model.embed_tokens.weight"][:64].copy()
    else:
        t["lm_head.weight"] = np.concatenate([t["model.embed_tokens.weight"], np.ones((8, 16), np.float32)])
    untied = run_json("check-tying", write_checkpoint(tmp_path / "u", t, llama_config(vocab=80, tied=False)))
    assert untied["shape_relation"] == "slice" and untied["values_identical"] is True
    assert any("a slice tie" in n for n in untied["notes"]) and untied["problems"] == []
    tied = run_json("check-tying", write_checkpoint(tmp_path / "t", t, llama_config(vocab=80, tied=True)), exit_code=1)
    assert "shapes differ" in tied["problems"][0] and "a slice tie" in tied["problems"][0]


@pytest.mark.parametrize("same", [True, False])
def test_transposed_head_is_compared_column_by_column(tmp_path, monkeypatch, same):
    t = llama_tensors(vocab=256)
    head = t["model.embed_tokens.weight"].T.copy()
    if not same:
        head[3, 200] += 1
    t["lm_head.weight"] = head
    monkeypatch.setattr(compare_module, "COMPARE_CHUNK_BYTES", 64 * 16 * 4)
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, None), "--full")
    assert data["shape_relation"] == "transposed"
    assert data["values_identical"] is same
    assert data["comparison"]["rows_compared"] == 256
    assert data["comparison"]["identical_rows_fraction"] == pytest.approx(1.0 if same else 255 / 256)
