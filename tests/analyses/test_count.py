"""`lmhead count`: every way people point at a checkpoint, every dtype, header-only."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import SAMPLES, run, run_json

V, D = 64, 16


def expected_total(tensors: dict[str, np.ndarray]) -> int:
    return sum(t.size for t in tensors.values())


def test_single_file_directory(tmp_path):
    t = llama_tensors()
    data = run_json("count", write_checkpoint(tmp_path / "m", t, llama_config()))
    assert data["total_params"] == expected_total(t)
    assert data["head_params"] == data["head_stored_params"] == V * D
    assert data["embedding_params"] == V * D
    assert data["tied"] is False
    assert [g["name"] for g in data["groups"]] == ["embedding", "head", "final_norm", "blocks", "vision", "projector", "other"]
    assert data["vision_params"] == data["projector_params"] == 0 and data["language_model_params"] == data["total_params"]
    blocks = next(g for g in data["groups"] if g["name"] == "blocks")
    assert blocks["layers"] == 2


def test_sharded_directory_index_path_and_bare_shard_folder_agree(tmp_path):
    t = llama_tensors()
    names = sorted(t)
    shards = [[n for n in names if "embed" in n], [n for n in names if "layers" in n], ["model.norm.weight", "lm_head.weight"]]
    folder = write_checkpoint(tmp_path / "m", t, llama_config(), shards=shards)
    by_dir = run_json("count", folder)
    by_index = run_json("count", folder / "model.safetensors.index.json")
    assert by_dir["total_params"] == by_index["total_params"] == expected_total(t)
    assert len(by_dir["files"]) == 3
    (folder / "model.safetensors.index.json").unlink()
    (folder / "config.json").unlink()
    bare = run_json("count", folder)  # a directory holding only safetensors files
    assert bare["total_params"] == expected_total(t)
    assert bare["architecture"] is None


@pytest.mark.parametrize("command", ["count", "check-tying", "doctor"])
def test_one_shard_named_alone_is_read_as_the_whole_checkpoint_with_a_note(tmp_path, command):
    t = llama_tensors()
    names = sorted(t)
    shards = [
        [n for n in names if "embed" in n or "layers.0." in n],
        [n for n in names if n not in ("model.embed_tokens.weight",) and "layers.0." not in n],
    ]
    folder = write_checkpoint(tmp_path / "m", t, llama_config(), shards=shards)
    first = next(folder.glob("*-00001-of-00002.safetensors"))
    data = run_json(command, first, exit_code=0)
    assert any(f"{first.name} is one of the 2 shards model.safetensors.index.json lists" in n for n in data["notes"]), data["notes"]
    if command == "count":
        assert data["total_params"] == expected_total(t) and len(data["files"]) == 2
        assert next(g for g in data["groups"] if g["name"] == "blocks")["layers"] == 2
    else:  # the head is in the other shard: never "no head is stored"
        assert data["problems"] == [] and data["checkpoint"] == str(first)


def test_one_shard_of_the_sample_counts_as_the_model(tmp_path):
    shard = SAMPLES / "qwen2-sharded" / "model-00001-of-00002.safetensors"
    data = run_json("count", shard)
    assert data["total_params"] == 131_904  # the whole sample, as sample_weights/README.md gives it


def test_bare_file_without_config_is_tied_when_no_head_is_stored(tmp_path):
    t = llama_tensors(tied=True)
    save_file(t, tmp_path / "weights.safetensors")
    data = run_json("count", tmp_path / "weights.safetensors")
    assert data["tied"] is True
    assert data["total_params"] == expected_total(t)
    assert data["head_params"] == V * D and data["head_stored_params"] == 0
    assert "no config" in data["tie_source"]


def test_bare_file_uses_the_config_in_its_folder(tmp_path):
    folder = write_checkpoint(tmp_path / "m", llama_tensors(tied=True), llama_config(tied=True))
    data = run_json("count", folder / "model.safetensors")
    assert data["architecture"] == "llama"
    assert data["tie_source"].startswith("config.json")


def test_absent_tie_key_uses_the_architecture_default(tmp_path):
    gemma = llama_config(tied=None, model_type="gemma", architectures=["GemmaForCausalLM"])
    data = run_json("count", write_checkpoint(tmp_path / "g", llama_tensors(tied=True), gemma))
    assert data["tied"] is True and "gemma's default is true" in data["tie_source"]
    llama = run_json("count", write_checkpoint(tmp_path / "l", llama_tensors(), llama_config(tied=None)))
    assert llama["tied"] is False and "llama's default is false" in llama["tie_source"]


DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


@pytest.mark.parametrize("name,dtype", DTYPES.items())
def test_every_dtype_is_counted_with_its_bytes(tmp_path, name, dtype):
    t = llama_tensors(dtype=np.float32)
    t["model.layers.0.extra.weight"] = np.ones((3, 5), dtype=dtype)
    data = run_json("count", write_checkpoint(tmp_path / "m", t, llama_config()))
    blocks = next(g for g in data["groups"] if g["name"] == "blocks")
    assert name in blocks["dtypes"]
    assert data["total_params"] == expected_total(t)
    assert data["total_bytes"] == sum(v.nbytes for v in t.values())


def test_bf16_head_costs_two_bytes_per_parameter(tmp_path):
    data = run_json("count", write_checkpoint(tmp_path / "m", llama_tensors(dtype=ml_dtypes.bfloat16), llama_config()))
    assert data["head_bytes"] == 2 * V * D


def test_buffers_are_not_parameters(tmp_path):
    t = llama_tensors()
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)
    data = run_json("count", write_checkpoint(tmp_path / "m", t, llama_config()))
    assert data["total_params"] == expected_total(t) - 4
    assert data["buffers_skipped"] == ["model.layers.0.self_attn.rotary_emb.inv_freq"]
    assert "skipped 1 buffer" in run("count", tmp_path / "m").stdout


def test_unknown_architecture_falls_back_to_name_patterns(tmp_path):
    rng = np.random.default_rng(1)
    t = {
        "net.tok_embeddings.weight": rng.normal(size=(V, D)).astype(np.float32),
        "net.blocks.0.w.weight": rng.normal(size=(D, D)).astype(np.float32),
        "net.final_norm.weight": np.ones(D, np.float32),
        "net.output.weight": rng.normal(size=(V, D)).astype(np.float32),
    }
    data = run_json("count", write_checkpoint(tmp_path / "m", t, {"model_type": "mystery", "vocab_size": V}))
    assert data["embedding"] == "net.tok_embeddings.weight"
    assert data["head"] == "net.output.weight"
    assert data["final_norm"]["weight"] == "net.final_norm.weight"
    assert data["tied"] is False


def test_overrides_name_the_roles(tmp_path):
    rng = np.random.default_rng(2)
    t = {"a": rng.normal(size=(V, D)).astype(np.float32), "b": rng.normal(size=(V, D)).astype(np.float32)}
    folder = write_checkpoint(tmp_path / "m", t, None)
    result = run("count", folder, ok=False)
    assert result.exit_code == 2 and "cannot identify" in result.stderr and "--embedding" in result.stderr
    data = run_json("count", folder, "--embedding", "a", "--head", "b")
    assert (data["embedding"], data["head"], data["tied"]) == ("a", "b", False)
    bad = run("count", folder, "--head", "nope", ok=False)
    assert bad.exit_code == 2 and "--head 'nope': no such tensor" in bad.stderr


def test_padded_rows_beyond_the_tokenizer_are_reported(tmp_path):
    from tokenizers import Tokenizer, models

    folder = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config())
    vocab = {f"t{i}": i for i in range(50)}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(folder / "tokenizer.json"))
    data = run_json("count", folder)
    assert data["tokenizer_vocab"] == 50 and data["padded_rows"] == V - 50
    assert f"{V - 50} head rows are padding" in run("count", folder).stdout


def test_table_names_every_group_and_the_head_share(tmp_path):
    out = run("count", write_checkpoint(tmp_path / "m", llama_tensors(), llama_config())).stdout
    for label in ("token embedding", "LM head", "final norm", "transformer blocks (2 layers)", "other", "total"):
        assert label in out
    assert f"V = {V}" in out and f"d = {D}" in out and "untied" in out
    assert "│" not in out  # plain text when stdout is not a terminal


def test_module_entry_point_version_and_help():
    version = subprocess.run([sys.executable, "-m", "lmhead_cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("lmhead, version")
    for command in ("count", "check-tying", "topk"):
        help_text = run(command, "--help").stdout
        assert "Example" in help_text and f"lmhead {command}" in help_text


def test_json_is_one_object_with_the_documented_keys(tmp_path):
    result = run("count", write_checkpoint(tmp_path / "m", llama_tensors(), llama_config()), "--json")
    data = json.loads(result.stdout)
    for key in ("total_params", "embedding_params", "head_params", "head_stored_params", "tied", "vocab_size", "hidden_size", "groups"):
        assert key in data
    assert all({"name", "params", "bytes"} <= set(g) for g in data["groups"])
