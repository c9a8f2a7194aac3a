"""Checkpoints written by the quantization tools themselves (``tests/fixtures/make_quant_tools.py``).

llmcompressor / compressed-tensors, optimum-quanto and hqq each quantized the same small Llama on CPU
with their own save functions; the references are the tools' own numbers: the dense model's
``num_parameters()`` and the head as each tool's own loader dequantizes it. Nothing here imports torch
or the tools.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmhead_cli.checkpoint.open import open_checkpoint
from lmhead_cli.model.anatomy import locate_head

from conftest import ROOT, run, run_json

TOOLS = ROOT / "tests" / "fixtures" / "quant_tools"
CASES = sorted(p.name for p in TOOLS.iterdir() if (p / "reference.json").is_file())
VOCAB, HIDDEN = 512, 128
# case -> (quant_method lmhead reports, the head's layout or None for a dense head, a layout of the blocks)
EXPECTED = {
    "ct_w8a8": ("compressed-tensors", "compressed-tensors int8", "compressed-tensors int8"),
    "ct_nvfp4a16": ("compressed-tensors", "compressed-tensors FP4", "compressed-tensors FP4"),
    "ct_mxfp4a16": ("compressed-tensors", "compressed-tensors FP4", "compressed-tensors FP4"),
    "quanto_qint4": ("quanto", None, "quanto 4/2-bit"),
    "quanto_qint8_head": ("quanto", "quanto 8-bit", "quanto 8-bit"),
    "quanto_qint4_head": ("quanto", "quanto 4/2-bit", "quanto 4/2-bit"),
    "quanto_qfloat8_head": ("quanto", "quanto 8-bit", "quanto 8-bit"),
    "hqq_4bit": ("hqq", None, "HQQ"),
    "hqq_4bit_head": ("hqq", "HQQ", "HQQ"),
}


def reference(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = TOOLS / case
    if (folder / "qmodel.pt").exists():
        pytest.importorskip("torch")  # HQQ's qmodel.pt is read through torch (the 'torch' extra), like every .pt
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        return folder, json.loads((folder / "reference.json").read_text()), {k: npz[k] for k in npz.files}


def test_every_tool_layout_has_a_fixture():
    assert set(CASES) == set(EXPECTED)


@pytest.mark.parametrize("case", CASES)
def test_count_equals_the_source_models_num_parameters(case):
    folder, ref, _ = reference(case)
    data = run_json("count", folder)
    assert data["total_params"] == data["effective_params"] == ref["num_parameters"] == 278_912
    assert data["head_params"] == data["embedding_params"] == VOCAB * HIDDEN
    method, head_layout, block_layout = EXPECTED[case]
    q = data["quantization"]
    assert q["method"] == method and q["head_quantized"] is ref["head_quantized"]
    assert q["head_layout"] == head_layout and block_layout in q["layouts"]
    assert q["metadata_bytes"] > 0 and not data.get("warnings")
    assert data["tied"] is False


@pytest.mark.parametrize("case", CASES)
def test_head_is_the_tools_own_dequantization(case):
    folder, _, arrays = reference(case)
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        whole = ckpt.read_rows(anatomy.head_matrix, 0, VOCAB)
        chunks = np.concatenate([ckpt.read_rows(anatomy.head_matrix, a, min(a + 37, VOCAB)) for a in range(0, VOCAB, 37)])
    np.testing.assert_array_equal(whole, arrays["head"])  # bit for bit, the tool's rounding included
    assert np.array_equal(whole, chunks)  # chunks off the group and packing boundaries change nothing


@pytest.mark.parametrize("case", CASES)
def test_topk_and_doctor_on_the_tools_checkpoints(case, tmp_path):
    folder, _, arrays = reference(case)
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, arrays["hidden"])
    data = run_json("topk", folder, hidden, "--no-norm", "-k", "5", "--chunk-rows", "48")
    expected = np.argsort(-arrays["logits"], axis=1)[:, :5]
    for row, want in zip(data["positions"], expected, strict=True):
        assert [t["token_id"] for t in row["top"]] == want.tolist()
        assert np.allclose([t["logit"] for t in row["top"]], arrays["logits"][row["position"], want], atol=1e-4)
    doctor = run_json("doctor", folder)
    assert doctor["healthy"], doctor["problems"]
    assert doctor["counts"]["total_params"] == 278_912


def test_an_hqq_layout_lmhead_does_not_read_is_counted_and_refused_by_name(tmp_path):
    """Quantized along axis 0 (hqq's other grouping): counted at the dense shape HQQ states, and
    reading it names HQQ."""
    torch = pytest.importorskip("torch")
    folder = tmp_path / "m"
    folder.mkdir()
    state = torch.load(TOOLS / "hqq_4bit_head" / "qmodel.pt", weights_only=True)
    state["lm_head"]["axis"] = 0
    torch.save(state, folder / "qmodel.pt")
    (folder / "config.json").write_bytes((TOOLS / "hqq_4bit_head" / "config.json").read_bytes())
    data = run_json("count", folder)
    assert data["total_params"] == 278_912 and data["quantization"]["head_layout"] == "HQQ"
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, np.ones((1, HIDDEN), np.float32))
    result = run("topk", folder, hidden, ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[0].endswith("lm_head is HQQ-quantized; lmhead cannot dequantize it yet")


@pytest.mark.parametrize("case", ["quanto_qint8_head", "quanto_qint4_head"])
def test_quanto_without_its_qmap_is_still_counted_exactly(case, tmp_path):
    """Only the safetensors file copied: the tensor names alone say quanto; a packed head whose shape
    config.json would give is counted in quanto's groups and refused by name, never read by guesswork."""
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("model.safetensors", "config.json"):
        (folder / name).write_bytes((TOOLS / case / name).read_bytes())
    data = run_json("count", folder)
    assert data["total_params"] == 278_912 and data["head_params"] == VOCAB * HIDDEN
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, np.ones((1, HIDDEN), np.float32))
    result = run("topk", folder, hidden, "--no-norm", ok=False)
    if case == "quanto_qint8_head":
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2 and "lm_head is quanto 4/2-bit-quantized; lmhead cannot dequantize it yet" in result.stderr


def test_a_quanto_module_missing_its_scale_is_an_error(tmp_path):
    from hostile import st_raw

    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("config.json", "quanto_qmap.json"):
        (folder / name).write_bytes((TOOLS / "quanto_qint8_head" / name).read_bytes())
    raw = (TOOLS / "quanto_qint8_head" / "model.safetensors").read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + size]), raw[8 + size :]
    header.pop("__metadata__", None)
    kept = {k: (v["dtype"], v["shape"], data[slice(*v["data_offsets"])]) for k, v in header.items() if k != "lm_head.weight._scale"}
    (folder / "model.safetensors").write_bytes(st_raw(kept))
    result = run("count", folder, ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "lm_head.weight._data looks like part of a quantized module" in result.stderr
