"""GGUF files: header reading, roles and settings from metadata, quantized heads, tokens, bounded memory.

The fixtures in ``tests/fixtures/gguf`` are written by ``tests/fixtures/make_gguf.py``
with ``gguf.GGUFWriter``. Expected values never come from lmhead: F32 conversions
must reproduce the transformers logits stored in the reference fixtures, and
quantized heads must reproduce numpy logits over ``gguf.quants.dequantize`` of the
head bytes as llama.cpp's own ``GGUFReader`` finds them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from lmhead_cli import CheckpointError, locate_head, open_checkpoint
from lmhead_cli.formats.gguf import GGUFFile

from conftest import ROOT, reference, run, run_json

FIXTURES = ROOT / "tests" / "fixtures" / "gguf"
ALL_FILES = sorted(p.name for p in FIXTURES.glob("*.gguf"))

# file -> reference case it was converted from (tests/fixtures/make_gguf.py CONVERSIONS)
CONVERTED = {
    "llama_tied_f32.gguf": "llama_tied",
    "qwen2_f16.gguf": "qwen2",
    "mistral_q8_0.gguf": "mistral",
    "gemma2_f32.gguf": "gemma2",
    "cohere_f32.gguf": "cohere",
    "granite_f32.gguf": "granite",
    "qwen2_head_copy_f32.gguf": "qwen2_tied",
    "gemma_f32.gguf": "gemma",
    "gemma3_f32.gguf": "gemma3",
    "phi3_f32.gguf": "phi3",
    "qwen3_f32.gguf": "qwen3",
    "olmo2_f32.gguf": "olmo2",
    "stablelm_f32.gguf": "stablelm",
    "gpt_neox_f16.gguf": "gpt_neox",
    "phi_f32.gguf": "phi",
    "gpt2_f32.gguf": "gpt2",
    "falcon_f32.gguf": "falcon",
    "starcoder_f32.gguf": "gpt_bigcode",
    "olmo_f32.gguf": "olmo",
}
F32_CONVERSIONS = sorted(name for name in CONVERTED if name.endswith("_f32.gguf"))
QUANTIZED_HEADS = {  # file -> the head's type
    "qwen2_f16.gguf": "F16",
    "mistral_q8_0.gguf": "Q8_0",
    "synthetic_bf16.gguf": "BF16",
    "synthetic_q4_0.gguf": "Q4_0",
    "synthetic_q4_k.gguf": "Q4_K",
    "synthetic_q6_k.gguf": "Q6_K",
    "synthetic_iq4_nl.gguf": "IQ4_NL",
    "synthetic_tied_q6_k.gguf": "Q6_K",
    "synthetic_q2_k.gguf": "Q2_K",
    "synthetic_q3_k.gguf": "Q3_K",
    "synthetic_q5_k.gguf": "Q5_K",
    "synthetic_iq2_xxs.gguf": "IQ2_XXS",
    "synthetic_iq4_xs.gguf": "IQ4_XS",
}
TIED = {
    "llama_tied_f32.gguf",
    "gemma2_f32.gguf",
    "cohere_f32.gguf",
    "synthetic_tied_q6_k.gguf",
    "gemma_f32.gguf",
    "gemma3_f32.gguf",
    "gpt2_f32.gguf",
    "falcon_f32.gguf",
    "starcoder_f32.gguf",
}


def gguf_reader(name: str) -> gguf.GGUFReader:
    return gguf.GGUFReader(FIXTURES / name)


def reader_tensor(reader: gguf.GGUFReader, name: str) -> np.ndarray:
    """A tensor as float32 in numpy order, through llama.cpp's reader and dequantizer (the independent path)."""
    t = next(t for t in reader.tensors if t.name == name)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))


def expected_logits(name: str, states: np.ndarray) -> np.ndarray:
    """RMSNorm (metadata eps) · dequantized head, in float64; the synthetic and F16/Q8_0 files have no transform."""
    reader = gguf_reader(name)
    arch = reader.fields["general.architecture"].contents()
    eps = reader.fields[f"{arch}.attention.layer_norm_rms_epsilon"].contents()
    names = {t.name for t in reader.tensors}
    head = reader_tensor(reader, "output.weight" if "output.weight" in names else "token_embd.weight").astype(np.float64)
    weight = reader_tensor(reader, "output_norm.weight").astype(np.float64)
    h = states.astype(np.float64)
    normed = h / np.sqrt((h**2).mean(-1, keepdims=True) + eps) * weight  # (T, d)
    return normed @ head.T  # (T, d) @ (d, V) -> (T, V)


def states_for(name: str, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Hidden states before the final norm: the reference's own, or seeded random ones for synthetic files."""
    if name in CONVERTED:
        states = reference(CONVERTED[name])[2]["norm_input"]
    else:
        states = np.random.default_rng(7).normal(0, 3, (5, 256)).astype(np.float32)
    path = tmp_path / "states.npy"
    np.save(path, states)
    return path, states


def topk_logits(data: dict) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([[e["token_id"] for e in p["top"]] for p in data["positions"]])
    logits = np.array([[e["logit"] for e in p["top"]] for p in data["positions"]])
    return ids, logits


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------- the header


@pytest.mark.parametrize("name", ALL_FILES)
def test_header_agrees_with_llama_cpps_reader(name):
    """Names, numpy-order shapes, types, byte sizes, offsets, metadata and tokens as GGUFReader reads them."""
    reader = gguf_reader(name)
    ours = GGUFFile(FIXTURES / name)
    try:
        theirs = {
            t.name: (tuple(reversed(t.shape.tolist())), t.tensor_type.name, int(t.n_bytes), int(t.data_offset)) for t in reader.tensors
        }
        assert {t.name: (t.shape, t.dtype, t.nbytes, t.offset) for t in ours.tensors} == theirs
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "tokenizer.ggml.tokens":
                continue
            value = field.contents()
            if isinstance(value, float):
                assert ours.metadata[key] == pytest.approx(value, rel=1e-6), key
            else:
                assert ours.metadata[key] == value, key
        assert ours.tokens == reader.fields["tokenizer.ggml.tokens"].contents()
    finally:
        ours.close()


def test_a_folder_with_one_gguf_file_opens_it(tmp_path):
    shutil.copy(FIXTURES / "mistral_q8_0.gguf", tmp_path / "model.gguf")
    data = run_json("count", tmp_path)
    assert data["format"] == "gguf" and data["head"] == "output.weight"


def test_rows_that_cut_through_quant_blocks_are_read_exactly(tmp_path):
    """A 1-D quantized tensor: a 'row' is one value, so reads slice inside the covering blocks."""
    values = np.random.default_rng(0).normal(size=96).astype(np.float32)
    blocks = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
    writer = gguf.GGUFWriter(str(tmp_path / "v.gguf"), "llama")
    writer.add_tensor("v.weight", blocks, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    f = GGUFFile(tmp_path / "v.gguf")
    try:
        (info,) = f.tensors
        assert info.shape == (96,) and info.nbytes == 3 * 34
        with pytest.raises(CheckpointError, match="cut through Q8_0 blocks"):  # no whole-block rows to compare byte for byte
            with f.stored_rows(info, 0, 96):
                pass
        np.testing.assert_array_equal(f.read_rows(info, 5, 70), gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q8_0)[5:70])
    finally:
        f.close()


# ---------------------------------------------------------------- count


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_count_equals_transformers_num_parameters(name):
    _, meta, _ = reference(CONVERTED[name])
    data = run_json("count", FIXTURES / name)
    extra = meta["vocab_size"] * meta["hidden_size"] if name == "qwen2_head_copy_f32.gguf" else 0  # a stored copy unties
    assert data["total_params"] == meta["num_parameters"] + extra
    assert data["num_layers"] == meta["num_layers"]
    assert data["vocab_size"] == meta["vocab_size"] and data["hidden_size"] == meta["hidden_size"]
    assert data["tied"] == (name in TIED)


@pytest.mark.parametrize("name", ALL_FILES)
def test_count_bytes_are_the_stored_quantized_sizes(name):
    reader = gguf_reader(name)
    data = run_json("count", FIXTURES / name)
    assert data["total_bytes"] == sum(int(t.n_bytes) for t in reader.tensors)
    by_name = {t.name: t for t in reader.tensors}
    head = by_name.get("output.weight", by_name["token_embd.weight"])
    block, type_size = gguf.GGML_QUANT_SIZES[head.tensor_type]
    bias = by_name["output.bias"].n_bytes if "output.weight" in by_name and "output.bias" in by_name else 0
    assert data["head_bytes"] == head.n_elements // block * type_size + bias
    assert data["head_bits_per_param"] == pytest.approx(8 * type_size / block)
    groups = {g["name"]: g for g in data["groups"]}
    if "output.weight" in by_name:
        assert groups["head"]["dtypes"] == [head.tensor_type.name]
        assert groups["head"]["bytes"] == head.n_bytes + bias  # the head group holds output.bias too (Phi)


def test_count_of_a_k_quant_head():
    data = run_json("count", FIXTURES / "synthetic_q4_k.gguf")
    head = {g["name"]: g for g in data["groups"]}["head"]
    assert head == {"name": "head", "params": 64 * 256, "bytes": 64 * 144, "tensors": 1, "dtypes": ["Q4_K"]}
    assert data["head_bits_per_param"] == 4.5
    assert {d["dtype"]: d["bytes"] for d in data["by_dtype"]} == {"Q8_0": 64 * 8 * 34, "Q4_K": 64 * 144, "F32": 256 * 4}
    text = run("count", FIXTURES / "synthetic_q4_k.gguf").stdout
    assert "as Q4_K (4.5 bits per parameter)" in text


# ---------------------------------------------------------------- roles and settings from the metadata


@pytest.mark.parametrize(
    ("name", "kind", "eps", "transforms"),
    [
        ("llama_tied_f32.gguf", "rmsnorm", 0.07, []),
        ("gemma2_f32.gguf", "rmsnorm", 0.1, [("softcap", 2.0, "gemma2.final_logit_softcapping")]),
        ("cohere_f32.gguf", "layernorm", 0.06, [("multiply", 0.5, "command-r.logit_scale")]),
        ("granite_f32.gguf", "rmsnorm", 0.09, [("divide", 4.0, "granite.logit_scale")]),
    ],
)
def test_norm_and_transforms_come_from_the_metadata(name, kind, eps, transforms):
    with open_checkpoint(FIXTURES / name) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.convention == "gguf"
    assert anatomy.final_norm.kind == kind and anatomy.final_norm.eps == eps
    assert anatomy.final_norm.weight == "output_norm.weight"
    assert [(t.kind, t.value) for t in anatomy.transforms] == [(k, v) for k, v, _ in transforms]
    for t, (_, _, key) in zip(anatomy.transforms, transforms, strict=True):
        assert t.source.startswith(f"GGUF metadata {key}=")
    explain = run_json("count", FIXTURES / name, "--explain")["explain"]
    assert explain["eps"].startswith("GGUF metadata ") and explain["norm_kind"].startswith(kind)


def tiny_gguf(path: Path, arch: str, **metadata: float) -> Path:
    """A head-only GGUF of ``arch`` with the given ``<arch>.<key>`` float metadata."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_layer_norm_rms_eps(1e-5)
    for key, value in metadata.items():
        writer.add_float32(f"{arch}.{key}", value)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    return path


def test_gemma2_soft_caps_at_llama_cpps_default_when_the_key_is_absent(tmp_path):
    with open_checkpoint(tiny_gguf(tmp_path / "g.gguf", "gemma2")) as ckpt:
        (t,) = locate_head(ckpt).transforms
    assert (t.kind, t.value) == ("softcap", 30.0) and "default" in t.source


def test_a_logit_scale_lmhead_cannot_interpret_is_not_applied_but_explained(tmp_path):
    with open_checkpoint(tiny_gguf(tmp_path / "x.gguf", "someday", logit_scale=3.0, final_logit_softcapping=0.0)) as ckpt:
        anatomy = locate_head(ckpt)
    assert anatomy.transforms == ()  # a softcap of 0 is off, as in llama.cpp
    assert "someday.logit_scale=3.0 not applied" in anatomy.explain["transform:logit_scale"]


def test_gemma_norm_is_plain_rmsnorm_because_the_converter_stored_one_plus_w():
    with open_checkpoint(FIXTURES / "gemma2_f32.gguf") as ckpt:
        anatomy = locate_head(ckpt)
        weight = ckpt.read_tensor("output_norm.weight")
    hf = load_file(str(ROOT / "tests/fixtures/reference/gemma2/model.safetensors"))["model.norm.weight"]
    assert anatomy.final_norm.kind == "rmsnorm"
    np.testing.assert_array_equal(weight, hf + 1)  # stored as 1 + w, so a plain RMSNorm reproduces Gemma's
    assert "1 + w" in anatomy.explain["norm_kind"]


# ---------------------------------------------------------------- check-tying


@pytest.mark.parametrize("name", ALL_FILES)
def test_tied_exactly_when_no_output_weight_is_stored(name):
    data = run_json("check-tying", FIXTURES / name)
    assert data["tied"] == (name in TIED)
    assert data["head_stored"] == (name not in TIED)
    assert data["config_present"] is True  # the metadata decides, as config.json would
    assert data["problems"] == []
    assert data["tie_source"].startswith("GGUF stores")


def test_a_head_equal_to_the_embedding_byte_for_byte_is_noted_as_redundant():
    data = run_json("check-tying", FIXTURES / "qwen2_head_copy_f32.gguf")
    assert data["tied"] is False and data["values_identical"] is True
    (note,) = data["notes"]
    assert "output.weight holds exactly the values of token_embd.weight" in note and "6,656 parameters" in note


def test_different_quant_types_are_compared_by_value():
    data = run_json("check-tying", FIXTURES / "synthetic_q4_k.gguf", "--full")
    assert data["values_identical"] is False
    assert data["comparison"]["rows_compared"] == 64 and 0 < data["comparison"]["max_abs_diff"]
    assert any("Q8_0" in n and "Q4_K" in n for n in data["notes"])
    run_json("check-tying", FIXTURES / "synthetic_q4_k.gguf", "--expect", "tied", exit_code=1)


# ---------------------------------------------------------------- topk


@pytest.mark.parametrize("name", F32_CONVERSIONS)
def test_topk_of_an_f32_conversion_reproduces_transformers(name, tmp_path):
    states, _ = states_for(name, tmp_path)
    ref = reference(CONVERTED[name])[2]["logits"]  # (T, V) from the transformers model itself
    ids, logits = topk_logits(run_json("topk", FIXTURES / name, states, "-k", "5"))
    np.testing.assert_array_equal(ids, np.argsort(-ref, axis=1)[:, :5])
    assert relative(logits, np.take_along_axis(ref, ids, axis=1)) < 1e-4


@pytest.mark.parametrize("name", sorted(QUANTIZED_HEADS))
def test_topk_of_a_quantized_head_matches_gguf_dequantize(name, tmp_path):
    states_path, states = states_for(name, tmp_path)
    expected = expected_logits(name, states)  # (T, V)
    ids, logits = topk_logits(run_json("topk", FIXTURES / name, states_path, "-k", "8", "--chunk-rows", "24"))
    np.testing.assert_array_equal(ids, np.argsort(-expected, axis=1, kind="stable")[:, :8])
    assert relative(logits, np.take_along_axis(expected, ids, axis=1)) < 1e-5


@pytest.mark.parametrize(("name", "tolerance"), [("qwen2_f16.gguf", 5e-3), ("gpt_neox_f16.gguf", 5e-3), ("mistral_q8_0.gguf", 3e-2)])
def test_a_quantized_conversion_stays_close_to_transformers(name, tolerance, tmp_path):
    states_path, _ = states_for(name, tmp_path)
    ref = reference(CONVERTED[name])[2]["logits"]
    ids, logits = topk_logits(run_json("topk", FIXTURES / name, states_path, "-k", "3"))
    assert (ids[:, 0] == ref.argmax(axis=1)).all()
    assert relative(logits, np.take_along_axis(ref, ids, axis=1)) < tolerance


def test_reading_a_quantized_head_never_dequantizes_more_than_a_chunk(tmp_path, monkeypatch):
    states_path, _ = states_for("synthetic_q4_k.gguf", tmp_path)
    calls: list[tuple[int, ...]] = []
    original = gguf.quants.dequantize

    def watched(data, qtype):
        if qtype == gguf.GGMLQuantizationType.Q4_K:
            calls.append(data.shape)
        return original(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", watched)
    run_json("topk", FIXTURES / "synthetic_q4_k.gguf", states_path, "--chunk-rows", "16", "--targets", "1,2,3,4,5")
    assert calls, "the Q4_K head was never dequantized through gguf.quants"
    assert max(rows for rows, _ in calls) <= 16
    assert {row_bytes for _, row_bytes in calls} == {256 // 256 * 144}  # whole rows of raw blocks, never floats
    assert sum(rows for rows, _ in calls) == 64 + 5  # the head once, in chunks, plus one row per target


def test_a_type_gguf_cannot_dequantize_is_counted_but_not_read(tmp_path):
    """Q8_K has a block layout in gguf's table but no dequantizer: count works, topk says why it cannot."""
    q8_k = gguf.GGMLQuantizationType.Q8_K
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tensor("token_embd.weight", np.ones((4, 256), np.float32))
    writer.add_tensor("output.weight", np.zeros((4, 292), np.uint8), raw_dtype=q8_k)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    data = run_json("count", tmp_path / "m.gguf")
    assert data["head_bytes"] == 4 * 292
    np.save(tmp_path / "h.npy", np.ones((1, 256), np.float32))
    result = run("topk", tmp_path / "m.gguf", tmp_path / "h.npy", ok=False)
    assert result.exit_code == 2
    assert "cannot dequantize Q8_K" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("qtype", ["Q8_K", "Q8_1", "Q1_0"])
@pytest.mark.parametrize("tied", [False, True])
def test_every_command_that_reads_values_says_which_type_it_cannot_dequantize(qtype, tied, tmp_path):
    """Types with a block layout but no gguf.quants dequantizer: one error line, exit 2, for each reading command."""
    q = gguf.GGMLQuantizationType[qtype]
    block, size = gguf.GGML_QUANT_SIZES[q]
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_layer_norm_rms_eps(1e-5)
    raw = np.zeros((4, 256 // block * size), np.uint8)
    if tied:
        writer.add_tensor("token_embd.weight", raw, raw_dtype=q)
    else:
        writer.add_tensor("token_embd.weight", np.ones((4, 256), np.float32))
        writer.add_tensor("output.weight", raw, raw_dtype=q)
    writer.add_tensor("output_norm.weight", np.ones(256, np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    assert run_json("count", path)["head_bytes"] == raw.nbytes  # counting needs no values
    np.save(tmp_path / "h.npy", np.ones((2, 256), np.float32))
    commands = [("topk", path, tmp_path / "h.npy"), ("topk", path, tmp_path / "h.npy", "--targets", "1,2")]
    if not tied:
        commands += [("check-tying", path, "--full"), ("doctor", path, "--full")]
    for args in commands:
        result = run(*args, ok=False)
        assert result.exit_code == 2, (args, result.output)
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert line.startswith(f"error: {path}: ") and f"cannot dequantize {qtype}" in line, args
        assert "Traceback" not in result.output


def test_the_library_raises_checkpoint_errors_for_unreadable_values(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "ints.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.ones((4, 8), np.int32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with open_checkpoint(tmp_path / "ints.gguf") as ckpt:
        assert ckpt.info("token_embd.weight").dtype == "I32"
        with pytest.raises(CheckpointError, match="not a floating-point type"):
            ckpt.read_rows("token_embd.weight", 0, 1)


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    ("name", "targets", "texts"),
    [
        # SentencePiece pieces: ▁ is a space, <0x0A> a byte
        ("llama_tied_f32.gguf", "5,6,7,3,8", [" the", " [bold]red", "\x1b[2J", "\n", " café"]),
        # byte-level BPE pieces: Ġ is a space, Ċ a newline, Ã© the bytes of é
        ("qwen2_f16.gguf", "1,2,3,4,0", [" the", "\n", " café", " [bold]", "<|endoftext|>"]),
    ],
)
def test_tokens_come_from_tokenizer_ggml_tokens(name, targets, texts, tmp_path):
    states_path, _ = states_for(name, tmp_path)
    data = run_json("topk", FIXTURES / name, states_path, "--targets", targets)
    assert [p["target"]["token"] for p in data["positions"]] == texts
    assert run_json("count", FIXTURES / name)["tokenizer_vocab"] == len(gguf_reader(name).fields["tokenizer.ggml.tokens"].data)


def test_token_strings_from_the_file_cannot_drive_the_terminal(tmp_path):
    states_path, _ = states_for("llama_tied_f32.gguf", tmp_path)
    out = run("topk", FIXTURES / "llama_tied_f32.gguf", states_path, "--targets", "7,6,7,6,7").stdout
    assert "\x1b" not in out
    assert "\\x1b[2J" in out and "[bold]red" in out


def test_text_on_a_gguf_whose_vocabulary_cannot_encode_says_why(tmp_path):
    """These fixtures carry SentencePiece pieces but no scores and no merges: nothing orders the merges."""
    states_path, _ = states_for("llama_tied_f32.gguf", tmp_path)
    result = run("topk", FIXTURES / "llama_tied_f32.gguf", states_path, "--text", "hello", ok=False)
    assert result.exit_code == 2 and "tokenizer.ggml.scores is missing" in result.stderr
    assert result.stderr.startswith(f"error: {FIXTURES / 'llama_tied_f32.gguf'}: ")
    assert "hint: pass the model's tokenizer.json with --tokenizer" in result.stderr


def test_text_targets_on_a_gguf_with_the_models_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    field = gguf_reader("llama_tied_f32.gguf").fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    words = {t[1:]: i for i, t in enumerate(tokens) if t.startswith("▁") and t[1:].isalnum()}  # ▁w9 -> "w9"
    tok = Tokenizer(models.WordLevel({"<unk>": 0, **words}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tokenizer.json"))
    states_path, _ = states_for("llama_tied_f32.gguf", tmp_path)
    text = list(words)[:5]
    args = ["--tokenizer", tmp_path / "tokenizer.json", "--text", " ".join(text)]
    data = run_json("topk", FIXTURES / "llama_tied_f32.gguf", states_path, *args)
    assert [p["target"]["token_id"] for p in data["positions"][:4]] == [words[w] for w in text[1:]]


def test_the_fixture_readme_lists_every_file():
    readme = (FIXTURES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in ALL_FILES)
    assert sum((FIXTURES / n).stat().st_size for n in ALL_FILES) < 3 * 2**20
    assert all((FIXTURES / n).stat().st_size < 2**20 for n in ALL_FILES)
    json.dumps(ALL_FILES)  # names are plain text


def test_metadata_sizes_disagreeing_with_the_tensors_fail_doctor(tmp_path):
    path = tmp_path / "bad.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_embedding_length(999)  # the tensors say 8
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_token_list([f"t{i}" for i in range(16)])
    writer.add_tensor("token_embd.weight", np.ones((16, 8), np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = run_json("doctor", path, exit_code=1)
    assert "GGUF metadata llama.embedding_length 999 differs from the 8 columns of token_embd.weight" in data["problems"]
