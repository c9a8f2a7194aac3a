"""PyTorch checkpoints: pytorch_model.bin (single, sharded), nanoGPT .pt, tying by storage, no code execution.

These need torch to *write* the files and lmhead needs torch to read them (the
``torch`` extra); CI installs it.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys

import numpy as np
import pytest

from conftest import ROOT, reference, run, run_json

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402  (needs torch)


def to_torch_dir(case: str, tmp_path, shards: int = 1):
    folder, meta, arrays = reference(case)
    state = load_file(folder / "model.safetensors")
    out = tmp_path / case
    out.mkdir()
    shutil.copy(folder / "config.json", out / "config.json")
    if shards == 1:
        torch.save(state, out / "pytorch_model.bin")
    else:
        names = sorted(state)
        groups = [names[i::shards] for i in range(shards)]
        weight_map = {}
        for i, group in enumerate(groups, start=1):
            shard = f"pytorch_model-{i:05d}-of-{shards:05d}.bin"
            torch.save({n: state[n] for n in group}, out / shard)
            weight_map.update({n: shard for n in group})
        (out / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out, meta, arrays


@pytest.mark.parametrize("case", ["gpt2", "llama", "phi", "t5_untied"])
def test_pytorch_bin_counts_and_logits_match_transformers(case, tmp_path):
    out, meta, arrays = to_torch_dir(case, tmp_path)
    data = run_json("count", out)
    assert data["format"] == "pytorch"
    assert data["total_params"] == meta["num_parameters"] and data["tied"] is meta["tied"]
    top = run_json("topk", out, reference(case)[0] / "reference.npz", "--key", "norm_input", "-k", "1")
    assert [p["top"][0]["token_id"] for p in top["positions"]] == arrays["logits"].argmax(1).tolist()


def test_sharded_pytorch_index(tmp_path):
    out, meta, _ = to_torch_dir("qwen2", tmp_path, shards=3)
    data = run_json("count", out)
    assert data["total_params"] == meta["num_parameters"] and len(data["files"]) == 3
    assert run_json("check-tying", out / "pytorch_model.bin.index.json")["tied"] is False


def test_two_names_sharing_one_storage_are_tied_by_storage(tmp_path):
    emb = torch.randn(32, 8)
    state = {"model.embed_tokens.weight": emb, "lm_head.weight": emb, "model.norm.weight": torch.ones(8)}
    torch.save(state, tmp_path / "model.pt")
    data = run_json("check-tying", tmp_path / "model.pt")
    assert data["tied"] is True and data["shares_storage"] is True and data["values_identical"] is True
    assert any("share one storage" in n for n in data["notes"])
    count = run_json("count", tmp_path / "model.pt")
    assert count["tied"] is True and count["total_params"] == 32 * 8 + 8


def test_nanogpt_checkpoint_with_compile_prefix(tmp_path):
    rng = torch.Generator().manual_seed(0)
    wte = torch.randn(50, 16, generator=rng)
    model = {
        "_orig_mod.transformer.wte.weight": wte,
        "_orig_mod.transformer.wpe.weight": torch.randn(8, 16, generator=rng),
        "_orig_mod.transformer.h.0.attn.c_attn.weight": torch.randn(48, 16, generator=rng),
        "_orig_mod.transformer.ln_f.weight": torch.ones(16),
        "_orig_mod.lm_head.weight": wte,
    }
    torch.save({"model": model, "iter_num": 100, "best_val_loss": torch.tensor(2.5), "model_args": {"n_embd": 16}}, tmp_path / "ckpt.pt")
    data = run_json("count", tmp_path / "ckpt.pt")
    assert data["embedding"] == "transformer.wte.weight" and data["tied"] is True
    assert data["total_params"] == 50 * 16 + 8 * 16 + 48 * 16 + 16


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    target = tmp_path / "pwned"
    with open(tmp_path / "evil.bin", "wb") as f:
        pickle.dump({"lm_head.weight": _Exploit(str(target))}, f)
    result = run("count", tmp_path / "evil.bin", ok=False)
    assert result.exit_code == 2 and "weights_only=True" in result.stderr
    assert not target.exists()


def test_without_torch_a_clear_message(tmp_path, monkeypatch):
    torch.save({"lm_head.weight": torch.zeros(4, 2)}, tmp_path / "m.bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    result = run("count", tmp_path / "m.bin", ok=False)
    assert result.exit_code == 2 and "needs PyTorch" in result.stderr and "lmhead[torch]" in result.stderr


def test_hidden_states_from_a_pt_file(tmp_path):
    folder, meta, arrays = reference("gpt2")
    torch.save({"h": torch.from_numpy(arrays["norm_input"])}, tmp_path / "h.pt")
    data = run_json("topk", folder, tmp_path / "h.pt", "-k", "1")
    assert [p["top"][0]["token_id"] for p in data["positions"]] == np.argmax(arrays["logits"], 1).tolist()


QUANT = ROOT / "tests" / "fixtures" / "quant"


# mxfp4: the head is dense. torchao_fp8: its Float8Tensor's dtype (what the product is rounded to) is in the safetensors
# __metadata__, which a .bin has no place for; torchao's own .bin files pickle the tensor subclass, which weights_only refuses.
BIN_CASES = sorted(p.name for p in QUANT.iterdir() if (p / "reference.npz").is_file() and p.name not in ("mxfp4", "torchao_fp8"))


@pytest.mark.parametrize("case", BIN_CASES)
def test_a_quantized_head_in_a_bin_file_is_dequantized_as_from_safetensors(case, tmp_path):
    """The quant fixtures' tensors saved by torch.save: the parts are read through the torch reader (rows, column
    ranges), and the head equals the reference dequantizer's, as it does from the safetensors files."""
    from lmhead_cli.checkpoint.open import open_checkpoint
    from lmhead_cli.model.anatomy import locate_head

    folder = QUANT / case
    state = {name: tensor for file in sorted(folder.glob("*.safetensors")) for name, tensor in load_file(file).items()}
    out = tmp_path / case
    out.mkdir()
    for name in ("config.json", "quantize_config.json"):
        if (folder / name).is_file():
            shutil.copy(folder / name, out / name)
    torch.save(state, out / "pytorch_model.bin")
    with np.load(folder / "reference.npz") as npz:
        expected = npz["head"]
    with open_checkpoint(out) as ckpt:
        matrix = locate_head(ckpt).head_matrix
        assert ckpt.quantized[matrix].data.file == out / "pytorch_model.bin"
        whole = ckpt.read_rows(matrix, 0, 320)
        chunks = np.concatenate([ckpt.read_rows(matrix, a, min(a + 48, 320)) for a in range(0, 320, 48)])
    np.testing.assert_array_equal(whole, expected)
    np.testing.assert_array_equal(chunks, expected)
