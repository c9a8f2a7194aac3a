"""The README's recipes for getting hidden states, checked against the model's own logits.

A tiny random Llama (RMSNorm) and GPT-2 (LayerNorm) are built with transformers and saved; each
recipe's states go through ``lmhead topk`` and the top-k logits must equal the model's. TransformerLens
and llama.cpp are not installed here: their recipes are checked through the same tensors in
transformers (``resid_post`` of the last layer is the final norm's input; ``ln_final.hook_normalized``
is the normalised state with or without the norm's weight; llama.cpp's pooling-none embeddings are the
final norm's output, as transformers' last ``hidden_states`` entry).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

K = 5


def _model(kind: str, folder: Path):
    torch.manual_seed(0)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
        )
        model = transformers.LlamaForCausalLM(config)
        with torch.no_grad():
            model.model.norm.weight.normal_(1.0, 0.3)  # a weight far from 1: recipes that drop it must show it
    else:
        config = transformers.GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        model = transformers.GPT2LMHeadModel(config)
        with torch.no_grad():
            model.transformer.ln_f.weight.normal_(1.0, 0.3)
            model.transformer.ln_f.bias.normal_(0.0, 0.3)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def _final_norm(model):
    return model.model.norm if hasattr(model, "model") else model.transformer.ln_f


def _topk(folder: Path, states: np.ndarray, tmp: Path, *extra: str) -> list[list[float]]:
    path = tmp / "states.npy"
    np.save(path, states.astype(np.float32))
    result = CliRunner().invoke(cli, ["topk", str(folder), str(path), "-k", str(K), "--json", *extra])
    assert result.exit_code == 0, result.output
    return [[t["logit"] for t in p["top"]] for p in json.loads(result.stdout)["positions"]]


def _expected(logits) -> list[list[float]]:
    return torch.topk(logits[0], K, dim=-1).values.tolist()


@pytest.fixture(params=["llama", "gpt2"])
def model_and_folder(request, tmp_path):
    folder = tmp_path / request.param
    return request.param, _model(request.param, folder), folder


def _run(model):
    ids = torch.tensor([[3, 17, 42, 8, 77, 5]])
    captured = {}
    norm = _final_norm(model)
    handle = norm.register_forward_pre_hook(lambda module, args: captured.update(pre=args[0][0].detach().clone()))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    handle.remove()
    return out, captured["pre"]


def test_transformers_last_hidden_state_with_no_norm(model_and_folder, tmp_path):
    _, model, folder = model_and_folder
    out, _ = _run(model)
    got = _topk(folder, out.hidden_states[-1][0].numpy(), tmp_path, "--no-norm")
    np.testing.assert_allclose(got, _expected(out.logits), rtol=1e-4, atol=1e-4)


def test_transformers_final_norm_input_without_no_norm(model_and_folder, tmp_path):
    """Also TransformerLens's ``resid_post`` of the last layer: the residual stream entering ``ln_final``."""
    _, model, folder = model_and_folder
    out, pre = _run(model)
    got = _topk(folder, pre.numpy(), tmp_path)
    np.testing.assert_allclose(got, _expected(out.logits), rtol=1e-4, atol=1e-4)


def test_transformers_layer_stack_with_last_normed(model_and_folder, tmp_path):
    _, model, folder = model_and_folder
    out, _ = _run(model)
    path = tmp_path / "layers.npy"
    np.save(path, torch.stack(out.hidden_states)[:, 0].numpy())
    result = CliRunner().invoke(cli, ["topk", str(folder), str(path), "--layers", "--last-normed", "-k", str(K), "--json"])
    assert result.exit_code == 0, result.output
    last = [p for p in json.loads(result.stdout)["positions"] if p["layer"] == len(out.hidden_states) - 1]
    np.testing.assert_allclose([[t["logit"] for t in p["top"]] for p in last], _expected(out.logits), rtol=1e-4, atol=1e-4)


def test_normalised_state_needs_the_norm_weight(model_and_folder, tmp_path):
    """TransformerLens's ``ln_final.hook_normalized`` before the weight (RMSNorm, or any folded model):
    with the weight multiplied back in, ``--no-norm`` gives the model's logits; without it, it does not."""
    kind, model, folder = model_and_folder
    out, pre = _run(model)
    norm = _final_norm(model)
    x = pre.double()
    if kind == "gpt2":
        x = x - x.mean(-1, keepdim=True)
    eps = norm.variance_epsilon if kind == "llama" else norm.eps
    normalised = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)  # (T, d), before the weight
    weight = norm.weight.detach().double()
    weighted = normalised * weight + (norm.bias.detach().double() if kind == "gpt2" else 0)
    got = _topk(folder, weighted.numpy(), tmp_path, "--no-norm")
    np.testing.assert_allclose(got, _expected(out.logits), rtol=1e-4, atol=1e-4)
    wrong = _topk(folder, normalised.numpy(), tmp_path, "--no-norm")
    assert not np.allclose(wrong, _expected(out.logits), rtol=1e-3, atol=1e-3)
