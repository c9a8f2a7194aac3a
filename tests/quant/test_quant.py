"""Quantized checkpoints against their references (``tests/fixtures/make_quant.py``).

Counts are the dense model's own ``num_parameters()`` (the dense-equivalent
count); heads are what the method's own dequantizer returns (bitsandbytes and
torchao on CPU, or a transcription of the tool's unpacking for replicas).
Nothing here imports torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lmhead_cli.checkpoint.open import open_checkpoint
from lmhead_cli.model.anatomy import locate_head

from conftest import ROOT, run, run_json

QUANT = ROOT / "tests" / "fixtures" / "quant"
CASES = sorted(p.name for p in QUANT.iterdir() if (p / "reference.json").is_file())
REAL_TOOL = {"bnb_nf4", "bnb_fp4", "bnb_int8", "torchao_fp8"}
LAYOUT = {
    "awq": "AWQ",
    "bnb_fp4": "bitsandbytes FP4",
    "bnb_int8": "bitsandbytes int8",
    "bnb_nf4": "bitsandbytes NF4",
    "ct_fp8": "FP8",
    "ct_int4": "compressed-tensors int",
    "fp8_block": "FP8 block",
    "gptq": "GPTQ",
    "gptq_act_order": "GPTQ",
    "mxfp4": "MXFP4",
    "torchao_fp8": "torchao float8",
}


def reference(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = QUANT / case
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        return folder, json.loads((folder / "reference.json").read_text()), {k: npz[k] for k in npz.files}


def test_every_layout_has_a_fixture():
    assert set(CASES) == set(LAYOUT)
    for case in REAL_TOOL:
        assert "bitsandbytes" in reference(case)[1]["tool"] or "torchao" in reference(case)[1]["tool"]


@pytest.mark.parametrize("case", CASES)
def test_count_is_dense_equivalent(case):
    folder, ref, _ = reference(case)
    data = run_json("count", folder)
    assert data["total_params"] == ref["num_parameters"]
    q = data["quantization"]
    assert q["method"] == ref["method"]
    assert q["bits"] == ref["bits"]
    assert q["head_quantized"] is ref["head_quantized"]
    assert q["embedding_quantized"] is False
    assert LAYOUT[case] in q["layouts"]
    groups = {g["name"]: g for g in data["groups"]}
    meta = groups["quantization"]
    assert meta["params"] == 0 and meta["bytes"] == q["metadata_bytes"] > 0
    files = list(folder.glob("*.safetensors"))
    data_bytes = sum(p.stat().st_size - _header_bytes(p) for p in files)
    assert sum(g["bytes"] for g in data["groups"]) == data["total_bytes"] == data_bytes
    assert data["head_params"] == 320 * 64
    if ref["head_quantized"]:
        assert 4 < data["head_bits_per_param"] < 9  # 4 or 8 bits plus its scales, never the packed dtype's 32
    else:
        assert data["head_bits_per_param"] == 16


def _header_bytes(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("case", [c for c in CASES if c != "mxfp4"])
def test_head_matches_the_reference_dequantizer(case):
    folder, _, arrays = reference(case)
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        whole = ckpt.read_rows(anatomy.head_matrix, 0, 320)
        chunks = np.concatenate([ckpt.read_rows(anatomy.head_matrix, a, min(a + 37, 320)) for a in range(0, 320, 37)])
    assert whole.dtype == np.float32 and whole.shape == (320, 64)
    np.testing.assert_array_equal(whole, arrays["head"])  # exactly the reference's values, rounding included
    assert np.array_equal(whole, chunks)  # chunk boundaries off the packing and block sizes change nothing


@pytest.mark.parametrize("case", CASES)
def test_topk_uses_the_dequantized_head(case, tmp_path):
    folder, _, arrays = reference(case)
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, arrays["hidden"])
    data = run_json("topk", folder, hidden, "--no-norm", "-k", "5", "--chunk-rows", "48")
    expected = np.argsort(-arrays["logits"], axis=1)[:, :5]
    for row, want in zip(data["positions"], expected, strict=True):
        got = [t["token_id"] for t in row["top"]]
        assert got == want.tolist()
        logits = [t["logit"] for t in row["top"]]
        assert np.allclose(logits, arrays["logits"][row["position"], want], atol=1e-4)
    assert data["warnings"] == []


@pytest.mark.parametrize("case", ["gptq", "bnb_nf4", "ct_fp8"])
def test_check_tying_compares_dequantized_values(case):
    folder, _, _ = reference(case)
    data = run_json("check-tying", folder, "--full")
    assert data["tied"] is False and data["problems"] == []
    assert data["comparison"]["rows_compared"] == 320
    assert 0.0 < data["comparison"]["max_abs_diff"] < 10
    assert any("dequantizing" in n for n in data["notes"])


def test_sharded_nf4_index_total_parameters_is_dense_equivalent():
    folder, ref, _ = reference("bnb_nf4")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_parameters"] == ref["num_parameters"]  # what transformers wrote
    data = run_json("doctor", folder)
    assert data["healthy"], data["problems"]
    assert data["counts"]["quantization"]["method"] == "bitsandbytes"


def test_doctor_reports_a_wrong_index_total(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(QUANT / "bnb_nf4", folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["metadata"]["total_parameters"] += 1000
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    data = run_json("doctor", folder, exit_code=1)
    assert any("dense-equivalent" in p and "-1,000" in p for p in data["problems"])


def test_human_count_names_the_method_and_the_head_bits():
    folder, _, _ = reference("gptq")
    out = run("count", folder).output
    assert "quantized: gptq (GPTQ; 4-bit, group size 32; from config.json quantization_config)" in out
    assert "as GPTQ (4.725 bits per parameter with its scales)" in out
    assert "quantization metadata" in out
    out = run("count", QUANT / "mxfp4").output
    assert "the LM head is not quantized" in out


def test_doctor_shows_the_quantization():
    out = run("doctor", QUANT / "awq").output
    assert "quantization" in out and "AWQ" in out


def test_unsupported_layout_is_refused_not_guessed(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(QUANT / "gptq", folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"]["checkpoint_format"] = "marlin"  # repacked words: not the GPTQ layout read here
    (folder / "config.json").write_text(json.dumps(config))
    assert run_json("count", folder)["total_params"] == reference("gptq")[1]["num_parameters"]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.ones((2, 64), np.float32))
    result = run("topk", folder, hidden, ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {folder}: lm_head is GPTQ-quantized; lmhead cannot dequantize it yet"


def test_method_is_found_inside_text_config_and_quantize_config():
    from lmhead_cli.quant import recognise

    wrapped = {"model_type": "llava", "text_config": {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}}
    scheme = recognise(wrapped, None, {})
    assert scheme is not None and (scheme.quant_method, scheme.bits, scheme.group_size) == ("awq", 4, 128)
    assert scheme.source == "config.json text_config quantization_config"
    scheme = recognise({"model_type": "llama"}, {"bits": 4, "group_size": 32, "desc_act": True}, {})
    assert scheme is not None and (scheme.quant_method, scheme.source) == ("gptq", "quantize_config.json")
    assert recognise({"model_type": "llama"}, None, {"format": "pt"}) is None


def test_a_dense_checkpoint_has_no_quantization():
    data = run_json("count", ROOT / "tests" / "fixtures" / "projected" / "opt_350m_like")
    assert data["quantization"] is None
    assert "quantization" not in [g["name"] for g in data["groups"]]


def test_a_dense_parameter_named_like_quantization_metadata_is_still_a_parameter(tmp_path):
    from builders import llama_config, llama_tensors, write_checkpoint

    tensors = llama_tensors()
    tensors["model.layers.0.mlp.input_scale"] = np.ones(16, np.float32)  # no quantization_config: a parameter like any other
    folder = write_checkpoint(tmp_path / "m", tensors, llama_config())
    data = run_json("count", folder)
    assert data["quantization"] is None
    assert data["total_params"] == sum(v.size for v in tensors.values())


@pytest.mark.parametrize("layout", ["bnb_nf4", "gptq", "awq", "ct_int4", "fp8_block", "torchao"])
def test_rows_read_one_at_a_time_equal_the_whole(tmp_path, layout):
    """Rows that cut through 4-bit blocks, packed words and scale blocks read the same as the whole matrix."""
    from hostile import quantized_checkpoint

    folder = quantized_checkpoint(tmp_path / "m", layout)
    with open_checkpoint(folder) as ckpt:
        whole = ckpt.read_rows("lm_head.weight", 0, 32)
        rows = np.concatenate([ckpt.read_rows("lm_head.weight", i, i + 1) for i in range(32)])
        odd = np.concatenate([ckpt.read_rows("lm_head.weight", a, min(a + 3, 32)) for a in range(0, 32, 3)])
    assert whole.shape == (32, 8) and np.isfinite(whole).all()
    assert np.array_equal(whole, rows) and np.array_equal(whole, odd)


def test_a_dense_verdict_is_only_given_where_recognise_and_group_find_nothing():
    """``detect.may_be_quantized`` lets a dense checkpoint skip the quant package: it may only say
    False where ``recognise`` finds no method and ``group`` neither groups nor refuses anything."""
    from lmhead_cli.formats.base import TensorInfo
    from lmhead_cli.quant import detect, group, recognise

    dense = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.0.mlp.scales"]
    odd = [
        "model.layers.0.q.weight_scale",
        "experts.gate_up_proj_blocks",
        "experts.gate_up_proj_scales",
        "m.weight.quant_state.bitsandbytes__nf4",
    ]
    odd += [f"model.layers.0.q{suffix}" for suffix in (*detect.QUANT_SUFFIXES, *detect.LOOSE_METADATA)]
    for extra in [None, *odd]:
        names = [*dense, *([extra] if extra else [])]
        tensors = {n: TensorInfo(n, (4, 4), "BF16", 32, Path("x.safetensors"), 0) for n in names}
        for config, quantize_config, metadata in [(None, None, {}), ({"model_type": "llama"}, None, {"format": "pt"})]:
            if detect.may_be_quantized(config, quantize_config, metadata, names):
                continue
            assert recognise(config, quantize_config, metadata) is None
            grouping = group(tensors, None, lambda info: pytest.fail(f"read {info.name}"), metadata=metadata)
            assert not grouping.consumed and not grouping.weights, extra
    assert detect.may_be_quantized({"quantization_config": {"quant_method": "fp8"}}, None, {}, dense)
    assert detect.may_be_quantized({"text_config": {"quantization_config": {}}}, None, {}, dense)
    assert detect.may_be_quantized(None, {"bits": 4}, {}, dense)
    assert detect.may_be_quantized(None, None, {"x": '{"_type": "Float8Tensor"}'}, dense)
