"""`lmhead topk`: streaming, targets, positions, logit lens, inputs and output shapes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from lmhead_cli import load_hidden, locate_head, open_checkpoint, project
from lmhead_cli.inputs.tokens import visible

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import SAMPLES, approx_json, run, run_json

V, D = 64, 16


def numpy_logits(t: dict[str, np.ndarray], h: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """An independent RMSNorm + head in float64."""
    h = h.astype(np.float64)
    normed = h / np.sqrt((h**2).mean(-1, keepdims=True) + eps) * t["model.norm.weight"].astype(np.float64)
    return normed @ t["lm_head.weight"].astype(np.float64).T  # (T, d) @ (d, V) -> (T, V)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_streaming_in_any_chunk_size_gives_the_same_exact_answer(model, chunk_rows):
    folder, t, h, _ = model
    ref = numpy_logits(t, h)
    with open_checkpoint(folder) as ckpt:
        top = project(ckpt, locate_head(ckpt), h, k=5, chunk_rows=chunk_rows)
    assert (top.ids == np.argsort(-ref, axis=1)[:, :5]).all()
    assert np.allclose(top.logits, np.take_along_axis(ref, top.ids, 1), rtol=1e-5, atol=1e-5)
    probs = np.exp(ref - ref.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert np.allclose(top.probs, np.take_along_axis(probs, top.ids, 1), rtol=1e-5)


def test_json_shape_for_positions(model):
    folder, t, h, path = model
    data = run_json("topk", folder, path, "-k", "3")
    assert [p["position"] for p in data["positions"]] == list(range(6))
    assert set(data["positions"][0]["top"][0]) == {"token_id", "token", "logit", "prob"}
    assert data["positions"][0]["top"][0]["token"] is None  # no tokenizer: ids only


def test_targets_give_rank_probability_and_perplexity(model):
    folder, t, h, path = model
    ref = numpy_logits(t, h)
    targets = [3, 10, 0, 63, 5, 7]
    data = run_json("topk", folder, path, "--targets", ",".join(map(str, targets)), "-k", "2")
    logp = ref - np.log(np.exp(ref).sum(1, keepdims=True))
    for i, entry in enumerate(data["positions"]):
        tgt = entry["target"]
        assert tgt["token_id"] == targets[i]
        assert tgt["rank"] == 1 + int((ref[i] > ref[i, targets[i]]).sum())
        assert tgt["prob"] == pytest.approx(np.exp(logp[i, targets[i]]), rel=1e-5)
    nll = -np.mean([logp[i, t] for i, t in enumerate(targets)])
    assert data["summary"][0]["nll"] == pytest.approx(nll, rel=1e-5)
    assert data["summary"][0]["perplexity"] == pytest.approx(np.exp(nll), rel=1e-5)


def test_one_fewer_target_than_positions_leaves_the_last_without_one(model, tmp_path):
    folder, t, h, path = model
    np.save(tmp_path / "ids.npy", np.array([1, 2, 3, 4, 5]))
    data = run_json("topk", folder, path, "--targets", tmp_path / "ids.npy")
    assert "target" in data["positions"][4] and "target" not in data["positions"][5]
    bad = run("topk", folder, path, "--targets", "1,2", ok=False)
    assert bad.exit_code == 2 and "2 target ids for 6 positions" in bad.stderr


def test_positions_select_and_negative_indices_count_from_the_end(model):
    folder, t, h, path = model
    data = run_json("topk", folder, path, "--positions", "0,-1,2:4")
    assert [p["position"] for p in data["positions"]] == [0, 5, 2, 3]
    bad = run("topk", folder, path, "--positions", "9", ok=False)
    assert bad.exit_code == 2 and "outside the 6 positions" in bad.stderr


def test_batch_input_reports_each_row(model, tmp_path):
    folder, t, h, _ = model
    np.save(tmp_path / "b.npy", np.stack([h, h[::-1]]))
    data = run_json("topk", folder, tmp_path / "b.npy", "-k", "1")
    assert [(p["batch"], p["position"]) for p in data["positions"]][:3] == [(0, 0), (0, 1), (0, 2)]
    ref = numpy_logits(t, h)
    assert data["positions"][6]["top"][0]["token_id"] == int(ref[5].argmax())  # batch 1 position 0 = h[5]


def test_single_vector_input(model, tmp_path):
    folder, t, h, _ = model
    np.save(tmp_path / "v.npy", h[2])
    data = run_json("topk", folder, tmp_path / "v.npy", "-k", "1")
    assert data["positions"][0]["top"][0]["token_id"] == int(numpy_logits(t, h)[2].argmax())


@pytest.mark.parametrize("fmt", ["npz", "safetensors", "bf16-npy", "f16-npy"])
def test_hidden_state_formats(model, tmp_path, fmt):
    folder, t, h, _ = model
    extra = []
    if fmt == "npz":
        path = tmp_path / "h.npz"
        np.savez(path, other=np.zeros(3), states=h)
        extra = ["--key", "states"]
    elif fmt == "safetensors":
        path = tmp_path / "h.safetensors"
        save_file({"hidden": h.astype(ml_dtypes.bfloat16)}, path)
    elif fmt == "bf16-npy":
        path = tmp_path / "h16.npy"
        np.save(path, h.astype(ml_dtypes.bfloat16))
    else:
        path = tmp_path / "hf16.npy"
        np.save(path, h.astype(np.float16))
    data = run_json("topk", folder, path, "-k", "1", *extra)
    ref = numpy_logits(t, h)
    assert [p["top"][0]["token_id"] for p in data["positions"]] == ref.argmax(1).tolist()


def test_npz_with_several_arrays_needs_a_key(model, tmp_path):
    folder, t, h, _ = model
    np.savez(tmp_path / "h.npz", a=h, b=h)
    result = run("topk", folder, tmp_path / "h.npz", ok=False)
    assert result.exit_code == 2 and "several arrays (a, b); pick one with --key" in result.stderr


def test_wrong_hidden_size_names_both_sizes(model, tmp_path):
    folder, *_ = model
    np.save(tmp_path / "bad.npy", np.zeros((3, 12), np.float32))
    result = run("topk", folder, tmp_path / "bad.npy", ok=False)
    assert result.exit_code == 2 and "last dimension is 12, but the model's hidden size is 16" in result.stderr


def test_nan_positions_are_reported(model, tmp_path):
    folder, t, h, _ = model
    bad = h.copy()
    bad[4, 0] = np.nan
    bad[1, 3] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    result = run("topk", folder, tmp_path / "nan.npy", ok=False)
    assert result.exit_code == 2 and "NaN or Inf in 2 state(s): position 1; position 4" in result.stderr


def test_no_norm_skips_the_final_norm(model, tmp_path):
    folder, t, h, _ = model
    np.save(tmp_path / "n.npy", h)
    data = run_json("topk", folder, tmp_path / "n.npy", "--no-norm", "-k", "1")
    plain = h.astype(np.float64) @ t["lm_head.weight"].astype(np.float64).T
    assert [p["top"][0]["token_id"] for p in data["positions"]] == plain.argmax(1).tolist()
    assert data["norm_applied"] is False


# ------------------------------------------------------------------ samples with a tokenizer


def sample_text(name: str) -> str:
    return (SAMPLES / name / "text.txt").read_text()


@pytest.mark.parametrize("name", ["gpt2-tied", "llama-bf16", "qwen2-sharded"])
def test_text_targets_on_the_samples(name):
    folder = SAMPLES / name
    data = run_json("topk", folder, folder / "hidden.npy", "--text", sample_text(name), "-k", "3")
    positions = data["positions"]
    assert "target" not in positions[-1]  # the last token has no next token in the text
    hits = sum(p["target"]["rank"] == 1 for p in positions[:-1])
    assert hits >= len(positions) - 3
    summary = data["summary"][0]
    assert summary["count"] == len(positions) - 1 and summary["perplexity"] < 5


def test_tokens_are_decoded_and_whitespace_is_visible():
    folder = SAMPLES / "gpt2-tied"
    out = run("topk", folder, folder / "hidden.npy", "-k", "1", "--positions", "0", "--text", sample_text("gpt2-tied")).stdout
    assert "␣keeper" in out and "next: ␣keeper" in out
    data = run_json("topk", folder, folder / "hidden.npy", "-k", "1", "--positions", "0")
    assert data["positions"][0]["top"][0]["token"] == " keeper"  # JSON keeps the raw text


def test_padded_rows_are_masked_unless_asked(tmp_path):
    folder = SAMPLES / "llama-bf16"  # 512 head rows, 450 tokens
    data = run_json("topk", folder, folder / "hidden.npy", "-k", "1")
    assert data["masked_rows"] == 62
    kept = run_json("topk", folder, folder / "hidden.npy", "-k", "1", "--include-padded")
    assert kept["masked_rows"] == 0
    assert kept["positions"][0]["top"][0]["prob"] < data["positions"][0]["top"][0]["prob"]


def test_padding_ids_show_as_padding(tmp_path):
    folder = SAMPLES / "llama-bf16"
    out = run("topk", folder, folder / "hidden.npy", "--include-padded", "--targets", ",".join(["500"] * 13), "--positions", "0").stdout
    assert "⟨pad⟩" in out


def test_logit_lens_grid_and_json():
    folder = SAMPLES / "gpt2-tied"
    text = sample_text("gpt2-tied")
    out = run("topk", folder, folder / "hidden_layers.npy", "--layers", "--text", text).stdout
    assert "logit lens" in out and "targets (layer 2)" in out
    data = run_json("topk", folder, folder / "hidden_layers.npy", "--layers", "-k", "2")
    layers = load_hidden(folder / "hidden_layers.npy", 64, layers=True).values.shape[0]
    assert len(data["positions"]) == layers * 13
    assert {p["layer"] for p in data["positions"]} == set(range(layers))
    final = run_json("topk", folder, folder / "hidden.npy", "-k", "2")
    last_layer = [p for p in data["positions"] if p["layer"] == layers - 1]
    # a stack of 39 states and a file of 13 are multiplied in different BLAS blockings: equal to float32 tolerance
    assert [p["top"] for p in last_layer] == approx_json([p["top"] for p in final["positions"]])


def test_last_normed_stack_matches_transformers_hidden_states():
    from conftest import reference

    folder, meta, arrays = reference("llama_tied")
    data = run_json("topk", folder, folder / "reference.npz", "--key", "hidden_states", "--layers", "--last-normed", "-k", "1")
    last = [p for p in data["positions"] if p["layer"] == arrays["hidden_states"].shape[0] - 1]
    assert [p["top"][0]["token_id"] for p in last] == arrays["logits"].argmax(1).tolist()
    assert [p["top"][0]["logit"] for p in last] == pytest.approx(arrays["logits"].max(1).tolist(), rel=1e-4)


def test_visible_escapes_control_and_terminal_sequences():
    assert visible(" a\nb\t") == "␣a\\nb\\t"
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("\u202e") == "\\u202e"  # right-to-left override


def test_rich_markup_in_tokens_is_printed_as_text(tmp_path):
    from tokenizers import Tokenizer, models

    t = llama_tensors(vocab=V, hidden=D)
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=V, hidden=D))
    vocab = {f"[bold]t{i}": i for i in range(V)}
    Tokenizer(models.WordLevel(vocab, unk_token="[bold]t0")).save(str(folder / "tokenizer.json"))
    h = np.random.default_rng(1).normal(size=(2, D)).astype(np.float32)
    np.save(tmp_path / "h.npy", h)
    out = run("topk", folder, tmp_path / "h.npy", "-k", "3").stdout
    assert "[bold]t" in out


def test_plain_output_has_no_box_drawing(model):
    folder, t, h, path = model
    out = run("topk", folder, path, "-k", "2").stdout
    assert "│" not in out and "position 0" in out and "no tokenizer found" in out


def test_default_chunks_are_small_for_few_states_except_over_the_hub():
    from lmhead_cli.logits.head import default_chunk_rows

    assert default_chunk_rows(2048, 32) == 512  # 4 MiB of float32: stays in cache between widening and matmul
    assert default_chunk_rows(2048, 65) == default_chunk_rows(2048, 32, remote=True) == 2048  # 16 MiB
    assert default_chunk_rows(2**20, 1) == 64  # never fewer rows than this


# ---------------------------------------------------------------- states that are not what they are said to be

GPT2 = SAMPLES / "gpt2-tied"  # hidden.npy and hidden_layers.npy hold states before the final norm (sample_weights/make_samples.py)


@pytest.mark.parametrize(
    "hidden, flags", [("hidden.npy", ["--no-norm"]), ("hidden_layers.npy", ["--layers", "--last-normed"])], ids=["no-norm", "last-normed"]
)
def test_raw_states_given_as_normalised_are_warned_about(hidden, flags):
    result = run("topk", GPT2, GPT2 / hidden, *flags)
    flag = flags[-1]
    assert f"warning: states given as already normalised ({flag}) have RMS" in result.stderr
    assert f"they look like raw states before the norm (then leave out {flag})" in result.stderr
    data = run_json("topk", GPT2, GPT2 / hidden, *flags)
    assert sum(f"normalised ({flag})" in w for w in data["warnings"]) == 1


def test_normalised_states_given_as_normalised_are_not_warned_about():
    family = SAMPLES.parent / "tests" / "fixtures" / "families" / "llama"  # transformers' own final-norm output
    data = run_json("topk", family, family / "reference.npz", "--key", "norm_output", "--no-norm")
    assert not any("already normalised" in w for w in data["warnings"])
    assert "already normalised" not in run("topk", GPT2, GPT2 / "hidden.npy").stderr  # the norm applied: nothing to check


def test_a_stack_of_layers_plus_one_read_as_a_batch_hints_layers(tmp_path):
    result = run("topk", GPT2, GPT2 / "hidden_layers.npy", "-k", "1")  # (3, T, d), and GPT-2's sample has n_layer 2
    hint = "3 sequences read as a batch, and the model has 2 layers: 2 + 1 is what output_hidden_states stacks"
    assert f"warning: {hint}; for a logit lens of every layer add --layers" in result.stderr
    assert any(w.startswith(hint) for w in run_json("topk", GPT2, GPT2 / "hidden_layers.npy", "-k", "1")["warnings"])
    two = tmp_path / "two.npy"
    np.save(two, np.load(GPT2 / "hidden_layers.npy")[:2])  # a batch of 2: no reason to think it is a stack
    assert "--layers" not in run("topk", GPT2, two, "-k", "1").stderr
    assert "output_hidden_states" not in run("topk", GPT2, GPT2 / "hidden_layers.npy", "--layers", "-k", "1").stderr


def test_k_past_the_vocabulary_reports_the_k_used():
    llama = SAMPLES / "llama-bf16"  # 512 head rows, 450 tokens in its tokenizer.json: 62 rows of padding masked
    data = run_json("topk", llama, llama / "hidden.npy", "-k", "100000", "--positions", "0")
    assert data["k"] == len(data["positions"][0]["top"]) == 450 and data["k_requested"] == 100000
    assert "-k 100,000 is more than the 450 head rows within the tokenizer's vocabulary: 450 predictions per position" in data["warnings"]
    result = run("topk", GPT2, GPT2 / "hidden.npy", "-k", "451", "--positions", "0")  # 450 rows, no padding
    assert "warning: -k 451 is more than the head's 450 rows: 450 predictions per position" in result.stderr
    exact = run_json("topk", GPT2, GPT2 / "hidden.npy", "-k", "450", "--positions", "0")
    assert exact["k"] == 450 and "k_requested" not in exact and not any(w.startswith("-k ") for w in exact["warnings"])
