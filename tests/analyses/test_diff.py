"""`lmhead diff BASE OTHER`: pairs made with transformers, peft and gguf-py (tests/fixtures/make_diff.py), against
the figures torch and gguf's dequantizer computed from the same files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import ROOT, run, run_json

DIFF = ROOT / "tests" / "fixtures" / "diff"
EXPECTED = json.loads((DIFF / "expected.json").read_text())["cases"]
FIGURES = ("shared_rows", "identical_rows", "changed_rows", "base_rows", "other_rows")


def diff_json(case: dict) -> dict:
    return run_json("diff", DIFF / case["base"], DIFF / case["other"], exit_code=case["exit_code"])


def assert_matches(found: dict, want: dict) -> None:
    for key in FIGURES:
        assert found[key] == want[key], key
    assert found["relative_change"] == pytest.approx(want["relative_change"], rel=1e-9, abs=1e-12)
    assert found["max_abs_diff"] == pytest.approx(want["max_abs_diff"], rel=1e-6, abs=1e-12)
    if want["most_changed_row"] is not None:
        assert found["most_changed"][0]["row"] == want["most_changed_row"]
    else:
        assert found["most_changed"] == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figures_match_torch(name):
    case = EXPECTED[name]
    data = diff_json(case)
    assert_matches(data["head"], case["head"])
    if case["embedding"] is not None:
        assert_matches(data["embedding"], case["embedding"])
    assert (data["norm"]["changed_rows"] == 0) is case["norm_identical"]
    assert data["problem_kinds"] == case["problem_kinds"]
    assert data["ok"] is (not case["problem_kinds"])
    if "tied" in case:
        assert [data["base"]["tied"], data["other"]["tied"]] == case["tied"]


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if EXPECTED[n]["added"]])
def test_each_init_pattern_is_recognised(name):
    case = EXPECTED[name]
    data = diff_json(case)
    for role in ("head", "embedding"):
        added = data[role]["added"]
        assert added["start"] == 500 and added["count"] == case["added"]["count"]
        assert added["pattern"] == case["added"]["pattern"], role
        assert added["moved"] is case["added"]["moved"], role
    if "copied_from" in case:
        assert data["head"]["added"]["copied_from"] == data["embedding"]["added"]["copied_from"] == case["copied_from"]
    if "like_base_statistics" in case:
        assert data["head"]["added"]["like_base_statistics"] is case["like_base_statistics"]


def test_verdict_names_untrained_zero_rows():
    result = run("diff", DIFF / "base", DIFF / "resize_zero", ok=False)
    assert result.exit_code == 1
    first = result.stdout.splitlines()[1]
    assert first == "head and embedding unchanged in their shared rows; 3 added head and embedding rows initialised to zero, never trained"
    assert "problem: 3 added head rows initialised to zero and never trained: generation will never pick them" in result.stdout


def test_trained_new_rows_moved_from_the_mean():
    data = diff_json(EXPECTED["resize_trained"])
    added = data["head"]["added"]
    assert 1e-3 < added["offset"] < 0.1  # one Adam step of 1e-3 per value, in units of the old rows' spread
    assert "then trained" in data["verdict"]


def test_tokenizer_changes_from_resize():
    case = EXPECTED["resize_mean"]
    t = diff_json(case)["tokenizer"]
    assert (t["base_size"], t["other_size"], t["added"], t["removed"], t["changed"]) == (500, 503, 3, 0, 0)
    assert [c["other"] for c in t["examples_added"]] == case["tokens"]["texts"]
    assert t["special_added"] == ["<|tool|>"]
    assert t["chat_template"] == case["chat_template"]


def test_retied_head_is_a_problem_in_words():
    result = run("diff", DIFF / "head_trained", DIFF / "retied", ok=False)
    assert result.exit_code == 1
    assert "re-tied: the base's own head lm_head.weight is gone" in result.stdout


def test_padding_rows_never_set():
    data = diff_json(EXPECTED["padded_added"])
    assert data["head"]["unset_rows"] == EXPECTED["padded_added"]["unset_rows"]
    assert data["verdict"] == (
        "head unchanged; embedding unchanged; 3 added tokens fit in the padding rows of the base head and embedding, "
        "which still hold their old values: nothing set them"
    )


def test_quantized_against_dense_is_labelled_quantization_error():
    case = EXPECTED["gguf_q8_0"]
    data = diff_json(case)
    assert data["head"]["quantization_pair"] is True
    assert data["other"]["head_dtype"] == "Q8_0" and data["other"]["format"] == "gguf"
    assert data["verdict"].startswith("head differs by quantization: relative error 0.00533")
    reverse = run_json("diff", DIFF / case["other"], DIFF / case["base"])  # the GGUF as the base
    assert reverse["head"]["changed_rows"] == case["head"]["changed_rows"]


def test_same_checkpoint_is_unchanged():
    data = run_json("diff", DIFF / "base", DIFF / "base")
    assert data["verdict"] == "head unchanged; embedding unchanged"
    assert data["tokenizer"]["chat_template"] == "absent" and data["tokenizer"]["added"] == 0


def test_sharded_other_reads_the_same_rows(tmp_path):
    other = tmp_path / "sharded"
    other.mkdir()
    tensors = load_file(DIFF / "head_trained" / "model.safetensors")
    names = sorted(tensors)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for i, part in enumerate(halves, start=1):
        shard = f"model-{i:05d}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, other / shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    (other / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shutil.copy(DIFF / "head_trained" / "config.json", other / "config.json")
    data = run_json("diff", DIFF / "base", other)
    assert_matches(data["head"], EXPECTED["head_trained"]["head"])


def test_json_is_strict_when_a_zero_base_row_changed(tmp_path):
    base, other = tmp_path / "a", tmp_path / "b"
    tensors = load_file(DIFF / "base" / "model.safetensors")
    tensors["lm_head.weight"] = tensors["lm_head.weight"].copy()
    tensors["lm_head.weight"][7] = 0
    for folder, t in ((base, tensors), (other, load_file(DIFF / "base" / "model.safetensors"))):
        folder.mkdir()
        save_file(t, folder / "model.safetensors", metadata={"format": "pt"})
        shutil.copy(DIFF / "base" / "config.json", folder / "config.json")
    data = run_json("diff", base, other)  # run_json parses strictly: an infinite ratio is null
    assert data["head"]["changed_rows"] == 1
    assert data["head"]["most_changed"][0] == {
        "row": 7,
        "token": None,
        "relative": None,
        "absolute": pytest.approx(
            float(np.linalg.norm(load_file(DIFF / "base" / "model.safetensors")["lm_head.weight"][7].astype(np.float64)))
        ),
    }


def test_widths_differ_is_a_problem_not_a_crash():
    result = run("diff", DIFF / "base", ROOT / "sample_weights" / "llama-bf16", ok=False)
    assert result.exit_code == 1
    assert "hidden sizes differ (32 vs " in result.stdout


def test_missing_other_is_bad_input():
    result = run("diff", DIFF / "base", DIFF / "no-such-folder", ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_a_cast_is_named_as_rounding():
    case = EXPECTED["cast_bf16"]
    data = diff_json(case)
    assert data["head"]["rounding_of"] == data["embedding"]["rounding_of"] == case["rounding_of"]
    assert data["verdict"].startswith("head cast to BF16: every value is the base's rounded")
    assert data["other"]["head_dtype"] == "BF16"


def test_trained_head_is_not_called_a_cast(tmp_path):
    """head_trained cast to bf16 by torch: more than rounding apart from the base, so not 'a cast'."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as load_torch
    from safetensors.torch import save_file as save_torch

    other = tmp_path / "m"
    other.mkdir()
    tensors = {k: v.to(torch.bfloat16) for k, v in load_torch(DIFF / "head_trained" / "model.safetensors").items()}
    save_torch(tensors, other / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(DIFF / "base" / "config.json", other / "config.json")
    data = run_json("diff", DIFF / "base", other)
    assert data["head"]["rounding_of"] is None and data["head"]["changed_rows"] == 500
    assert data["embedding"]["rounding_of"] == "BF16"  # the embedding was not trained: a cast, nothing else
    assert data["verdict"].startswith("head changed: 500 of 500 rows")


def test_quantized_safetensors_against_its_dense_reference(tmp_path):
    """GPTQ's head against a dense checkpoint holding the reference dequantization (GPTQModel's, transcribed):
    no row differs, and the pair is labelled as quantized against dense."""
    gptq = ROOT / "tests" / "fixtures" / "quant" / "gptq"
    dense = tmp_path / "dense"
    dense.mkdir()
    from safetensors import safe_open

    with safe_open(gptq / "model.safetensors", "np") as f:
        tensors = {k: f.get_tensor(k) for k in ("model.embed_tokens.weight", "model.norm.weight")}
    with np.load(gptq / "reference.npz") as npz:
        tensors["lm_head.weight"] = np.ascontiguousarray(npz["head"], dtype=np.float32)  # stored F-order
    save_file(tensors, dense / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((gptq / "config.json").read_text())
    config.pop("quantization_config", None)
    (dense / "config.json").write_text(json.dumps(config))
    data = run_json("diff", dense, gptq)
    assert data["head"]["quantization_pair"] is True and data["head"]["changed_rows"] == 0
    assert data["other"]["head_quantized"] is True and data["other"]["head_dtype"].endswith("4-bit")
    assert data["verdict"].startswith("head differs by quantization: relative error 0")


def test_pytorch_bin_against_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    other = tmp_path / "bin"
    other.mkdir()
    tensors = {k: torch.from_numpy(v.copy()) for k, v in load_file(DIFF / "head_trained" / "model.safetensors").items()}
    torch.save(tensors, other / "pytorch_model.bin")
    shutil.copy(DIFF / "head_trained" / "config.json", other / "config.json")
    data = run_json("diff", DIFF / "base", other)
    assert_matches(data["head"], EXPECTED["head_trained"]["head"])
    assert data["other"]["format"] == "pytorch"


def test_over_hf_with_fetch_values_equals_local(fake_hub, hf_home, monkeypatch):
    from conftest import without_paths

    for name in ("base", "resize_mean"):
        fake_hub.add_repo(f"diff/{name}", DIFF / name)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    local = run_json("diff", DIFF / "base", DIFF / "resize_mean", exit_code=1)
    remote = run_json("diff", "hf://diff/base", "hf://diff/resize_mean", "--fetch-values", exit_code=1)
    for data in (local, remote):
        for key in ("base", "other"):
            data[key].pop("path")
        data.pop("tokenizer")  # tokenizer_config.json and the chat template are read from local folders only
    assert without_paths(remote) == without_paths(local)
    result = run("diff", "hf://diff/base", "hf://diff/resize_mean", ok=False)
    assert result.exit_code == 2
    assert "hf:// reads values only when asked" in result.stderr and "hint: add --fetch-values" in result.stderr


def test_untying_is_reported_not_a_problem():
    data = run_json("diff", DIFF / "retied", DIFF / "head_trained")
    assert data["tying"] == "untied" and data["problem_kinds"] == []
    assert [data["base"]["tied"], data["other"]["tied"]] == [True, False]
    assert "untied (the base was tied)" in data["verdict"]


GGUF = ROOT / "tests" / "fixtures" / "gguf"
GGUF_COPIES = sorted(
    p.name for p in GGUF.glob("*_f32.gguf") if (ROOT / "tests" / "fixtures" / "reference" / p.name.removesuffix("_f32.gguf")).is_dir()
)


@pytest.mark.parametrize("name", GGUF_COPIES)
def test_a_gguf_written_from_a_model_is_unchanged(name):
    """make_gguf.py wrote these float32 GGUFs from the reference models' tensors with gguf-py: nothing changed, across
    formats (llama.cpp's names, its (1 + w) norms stored as the scale they apply: equal to float32 rounding)."""
    source = ROOT / "tests" / "fixtures" / "reference" / name.removesuffix("_f32.gguf")
    data = run_json("diff", source, GGUF / name)
    assert data["head"]["changed_rows"] == 0 and data["head"]["quantization_pair"] is False
    assert data["embedding"] is None or data["embedding"]["changed_rows"] == 0
    assert data["norm"] is None or data["norm"]["relative_change"] < 1e-7
    assert data["base"]["tied"] == data["other"]["tied"]
    assert data["tokenizer"]["changed"] == data["tokenizer"]["added"] == data["tokenizer"]["removed"] == 0


def test_head_overwritten_by_the_embedding_and_saved_untied():
    data = run_json("diff", DIFF / "head_trained", DIFF / "overwritten", exit_code=1)
    assert data["tying"] == "same" and data["problem_kinds"] == ["head_overwritten"]
    assert data["verdict"].startswith("head overwritten: the other's lm_head.weight holds exactly its embedding's values")
    assert run_json("diff", DIFF / "base", DIFF / "head_trained")["problem_kinds"] == []  # a head of its own on both sides
