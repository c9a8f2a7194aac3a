"""The tokenizer a GGUF carries: built from its metadata, compared with transformers' own conversion.

``tests/fixtures/gguf_tokenizer/`` holds GGUFs written by ``tests/fixtures/make_gguf_tokenizers.py``
from two real tokenizers it trains (a byte-level BPE saved as tokenizer.json, a SentencePiece BPE
with byte fallback), and ``expected.json``: the ids ``AutoTokenizer.from_pretrained(dir,
gguf_file=...)`` gives for a few hundred strings. transformers is not imported here.
"""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest

from lmhead_cli.core.errors import CheckpointError, TokenizerError
from lmhead_cli.formats.gguf import GGUFFile
from lmhead_cli.inputs.gguf_tokenizer import GGUFVocab, _merges, build_tokenizer, read_gguf_vocab

from conftest import ROOT, run, run_json

FIXTURES = ROOT / "tests" / "fixtures" / "gguf_tokenizer"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
STRINGS: list[str] = EXPECTED["strings"]
FILES = sorted(EXPECTED["files"])


def lmhead_tokenizer(name: str):
    reader = GGUFFile(FIXTURES / name)
    try:
        return build_tokenizer(read_gguf_vocab(reader))
    finally:
        reader.close()


def test_the_fixtures_cover_both_kinds_and_several_splitters():
    assert len(STRINGS) >= 300
    kinds = {name: gguf.GGUFReader(FIXTURES / name).fields["tokenizer.ggml.model"].contents() for name in FILES}
    assert set(kinds.values()) == {"gpt2", "llama"}
    archs = {gguf.GGUFReader(FIXTURES / name).fields["general.architecture"].contents() for name in FILES}
    assert {"llama", "qwen2", "gpt2", "gemma2", "phi3"} <= archs  # Gemma and Phi-3 SentencePiece files are built differently
    pres = {gguf.GGUFReader(FIXTURES / name).fields["tokenizer.ggml.pre"].contents() for name in FILES}
    assert {"llama-bpe", "qwen2", "smollm", "gpt-2"} <= pres
    assert all((FIXTURES / name).stat().st_size < 2**20 for name in FILES)
    assert any("\n" in s for s in STRINGS) and any(s.isdigit() for s in STRINGS) and any(ord(c) > 0xFFFF for s in STRINGS for c in s)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("special", ["with_special_tokens", "without_special_tokens"])
def test_encodings_match_transformers_gguf_tokenizer(name, special):
    tok = lmhead_tokenizer(name)
    expected = EXPECTED["files"][name][special]
    add = special == "with_special_tokens"
    mismatches = [(s, tok.encode(s, add_special_tokens=add).ids, ids) for s, ids in zip(STRINGS, expected, strict=True)]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert mismatches == [], f"{len(mismatches)} of {len(STRINGS)} strings differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("name", FILES)
def test_decoding_matches_transformers(name):
    tok = lmhead_tokenizer(name)
    ids = EXPECTED["files"][name]["without_special_tokens"]
    decoded = [tok.decode(i, skip_special_tokens=False) for i in ids]
    assert decoded == EXPECTED["files"][name]["decoded"]


def test_bos_is_added_exactly_when_the_file_says():
    for name, data in EXPECTED["files"].items():
        with_bos = [a[: len(a) - len(b)] for a, b in zip(data["with_special_tokens"], data["without_special_tokens"], strict=True)]
        added = {tuple(x) for x in with_bos}
        flag = gguf.GGUFReader(FIXTURES / name).fields.get("tokenizer.ggml.add_bos_token")
        assert added == ({(data["bos_token_id"],)} if flag and flag.contents() else {()}), name


# ---------------------------------------------------------------- topk --text with the GGUF alone


@pytest.mark.parametrize("name", FILES)
def test_topk_text_targets_are_the_next_tokens_of_transformers_encoding(name, tmp_path):
    """Position i predicts token i+1 of the text as the model's tokenizer encodes it (BOS included)."""
    index = STRINGS.index("The quick brown fox jumps over the lazy dog. It's 2024, and we're testing tokenizers: they'll split words.")
    ids = EXPECTED["files"][name]["with_special_tokens"][index]
    states = np.random.default_rng(0).normal(0, 1, (len(ids), 8)).astype(np.float32)
    np.save(tmp_path / "h.npy", states)
    data = run_json("topk", FIXTURES / name, tmp_path / "h.npy", "--text", STRINGS[index], "-k", "2")
    targets = [p["target"]["token_id"] for p in data["positions"] if "target" in p]
    assert targets == ids[1:]
    assert len(data["positions"]) == len(ids)
    if data.get("text_token_ids") is not None:  # only said when BOS/EOS were added
        assert data["text_token_ids"] == ids and "BOS" in data["text_tokenization"]
        assert EXPECTED["files"][name]["bos_token_id"] == ids[0]


def test_topk_text_says_when_bos_was_added(tmp_path):
    ids = EXPECTED["files"]["spm_llama.gguf"]["with_special_tokens"][STRINGS.index("Hello world")]
    np.save(tmp_path / "h.npy", np.ones((len(ids), 8), np.float32))
    out = run("topk", FIXTURES / "spm_llama.gguf", tmp_path / "h.npy", "--text", "Hello world", "-k", "1").stdout
    assert "with BOS '<s>' (id 1) added (tokenizer.ggml.add_bos_token)" in out


def test_tokenizer_option_still_overrides_the_gguf_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {"<unk>": 0, "a": 5, "b": 7, "c": 9}
    words |= {f"x{i}": i for i in range(10) if i not in words.values()}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tokenizer.json"))
    np.save(tmp_path / "h.npy", np.ones((3, 8), np.float32))
    data = run_json("topk", FIXTURES / "spm_llama.gguf", tmp_path / "h.npy", "--text", "a b c", "--tokenizer", tmp_path / "tokenizer.json")
    assert [p["target"]["token_id"] for p in data["positions"][:2]] == [7, 9]
    assert "text_token_ids" not in data


# ---------------------------------------------------------------- errors and laziness


def gguf_with(path, model: str | None, **extra) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_layer_norm_rms_eps(1e-5)
    if model is not None:
        writer.add_tokenizer_model(model)
    writer.add_token_list(["<unk>", "<s>", "</s>", "\u2581", "a", "\u2581a"])
    writer.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.0])
    for key, value in extra.items():
        writer.add_uint32(f"tokenizer.ggml.{key}", value)
    writer.add_tensor("token_embd.weight", np.ones((6, 8), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()


@pytest.mark.parametrize("model", ["bert", "rwkv", "t5"])
def test_an_unsupported_tokenizer_model_is_named(model, tmp_path):
    gguf_with(tmp_path / "m.gguf", model)
    np.save(tmp_path / "h.npy", np.ones((2, 8), np.float32))
    result = run("topk", tmp_path / "m.gguf", tmp_path / "h.npy", "--text", "a", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"tokenizer.ggml.model '{model}' is not supported for --text" in result.stderr
    assert "hint: pass the model's tokenizer.json with --tokenizer" in result.stderr


def test_a_missing_tokenizer_model_is_said(tmp_path):
    gguf_with(tmp_path / "m.gguf", None)
    with pytest.raises(TokenizerError, match="tokenizer.ggml.model is missing"):
        read_gguf_vocab(GGUFFile(tmp_path / "m.gguf"))


def test_a_bos_id_outside_the_vocabulary_is_an_error(tmp_path):
    gguf_with(tmp_path / "m.gguf", "llama", bos_token_id=99)
    with pytest.raises(TokenizerError, match="bos_token_id 99 is not a token id"):
        read_gguf_vocab(GGUFFile(tmp_path / "m.gguf"))


def test_a_tiny_sentencepiece_file_without_merges_derives_them_from_scores(tmp_path):
    gguf_with(tmp_path / "m.gguf", "llama", bos_token_id=1)
    tok = build_tokenizer(read_gguf_vocab(GGUFFile(tmp_path / "m.gguf")))
    assert tok.encode("a a").ids == [1, 5, 5]  # BOS: llama.cpp's default for SentencePiece; ▁a from the merge ▁ + a
    assert tok.encode("a a", add_special_tokens=False).ids == [5, 5]


def test_header_only_commands_never_read_the_tokenizer_arrays(monkeypatch, tmp_path):
    """count, check-tying and --targets read no merges, scores or token types; only --text does."""
    calls: list[str] = []
    original = GGUFFile.metadata_array

    def watched(self, key):
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(GGUFFile, "metadata_array", watched)
    path = FIXTURES / "bpe_llama3.gguf"
    run_json("count", path)
    run_json("check-tying", path)
    np.save(tmp_path / "h.npy", np.ones((3, 8), np.float32))
    run_json("topk", path, tmp_path / "h.npy", "--targets", "1,2,3")
    assert calls == []
    n = len(lmhead_tokenizer("bpe_llama3.gguf").encode("ab").ids)
    np.save(tmp_path / "h.npy", np.ones((n, 8), np.float32))
    run_json("topk", path, tmp_path / "h.npy", "--text", "ab")
    assert {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"} <= set(calls)


def test_long_arrays_are_read_whole_and_exactly(tmp_path):
    """The header walk skips arrays over 256 elements; metadata_array reads them back in full."""
    n = 70_000
    writer = gguf.GGUFWriter(str(tmp_path / "big.gguf"), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(n)])
    writer.add_token_scores([i / 3 for i in range(n)])
    writer.add_token_merges([f"t{i} t{i + 1}" for i in range(n - 1)])
    writer.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    reader = GGUFFile(tmp_path / "big.gguf")
    assert "tokenizer.ggml.merges" not in reader.metadata and "tokenizer.ggml.scores" not in reader.metadata
    assert reader.metadata_array("tokenizer.ggml.merges")[-1] == f"t{n - 2} t{n - 1}"
    scores = reader.metadata_array("tokenizer.ggml.scores")
    np.testing.assert_array_equal(scores, (np.arange(n) / 3).astype(np.float32))  # float32 as stored, not rounded for display
    assert len(reader.metadata_array("tokenizer.ggml.tokens")) == n
    with pytest.raises(Exception, match="not an array"):
        reader.metadata_array("general.architecture")


def test_tokens_read_by_the_header_walk_are_those_a_strict_read_gives(tmp_path):
    """The header walk decodes the vocabulary once; metadata_array hands out the same strings (a copy)
    when every token was UTF-8, and reads strictly again, refusing by element, when one was not."""
    tokens = ["<unk>", "a", "\u2581b", "é"]
    for name, listed in (("ok", tokens), ("bad", [tokens[0], b"\xff\xfe", *tokens[2:]])):
        writer = gguf.GGUFWriter(str(tmp_path / f"{name}.gguf"), "llama")
        writer.add_tokenizer_model("llama")
        writer.add_token_list(listed)
        writer.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
        writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    ok = GGUFFile(tmp_path / "ok.gguf")
    read = ok.metadata_array("tokenizer.ggml.tokens")
    assert read == tokens and read is not ok.tokens
    bad = GGUFFile(tmp_path / "bad.gguf")
    assert bad.tokens == ["<unk>", "\\xff\\xfe", "\u2581b", "é"]  # shown, escaped
    with pytest.raises(CheckpointError, match="element 1 is not UTF-8 text"):
        bad.metadata_array("tokenizer.ggml.tokens")


def test_merges_derived_from_tied_scores_keep_the_documented_order():
    """Best score first; among equal scores the longer left part, then the longer right part, then the
    order the pieces come in. Expected order worked out by hand from that rule."""
    pieces = ["a", "b", "c", "ab", "bc", "abc", "ca"]
    vocab = GGUFVocab(
        source="t", model="llama", pre=None, architecture="llama", tokens=pieces, token_types=None,
        scores=[0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -2.0], merges=None,
        bos_id=None, eos_id=None, unk_id=None, pad_id=None, add_bos=False, add_eos=False,
    )  # fmt: skip
    assert _merges(vocab, pieces, None) == [("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c"), ("c", "a")]


# ---------------------------------------------------------------- the README's sample, converted


def test_the_sample_gguf_encodes_like_its_tokenizer_json(tmp_path):
    """sample_weights/gpt2-tied.gguf holds the vocabulary of gpt2-tied/tokenizer.json: both encode alike."""
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(ROOT / "sample_weights" / "gpt2-tied" / "tokenizer.json"))
    reader = GGUFFile(ROOT / "sample_weights" / "gpt2-tied.gguf")
    tok = build_tokenizer(read_gguf_vocab(reader))
    reader.close()
    differ = [s for s in STRINGS if tok.encode(s).ids != reference.encode(s).ids]
    assert differ == []


def test_the_sample_gguf_is_what_its_generator_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_gguf_sample", ROOT / "sample_weights" / "make_gguf_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "s.gguf")
    assert (tmp_path / "s.gguf").read_bytes() == (ROOT / "sample_weights" / "gpt2-tied.gguf").read_bytes()


@pytest.mark.parametrize(
    ("name", "text", "warned"),
    [("bpe_smollm.gguf", "it's 2024", True), ("bpe_smollm.gguf", "a 1 b", False), ("bpe_llama3.gguf", "it's 2024", False)],
)
def test_a_number_where_llama_cpp_and_transformers_split_differently_is_labelled(name, text, warned, tmp_path):
    """llama.cpp's smollm splitter takes digits one by one; transformers' GGUF tokenizer does not (lmhead follows it)."""
    index = STRINGS.index(text) if text in STRINGS else None
    n = len(lmhead_tokenizer(name).encode(text).ids) if index is None else len(EXPECTED["files"][name]["with_special_tokens"][index])
    np.save(tmp_path / "h.npy", np.ones((n, 8), np.float32))
    data = run_json("topk", FIXTURES / name, tmp_path / "h.npy", "--text", text, "-k", "1")
    said = [w for w in data["warnings"] if "splits numbers into single digits" in w]
    assert bool(said) == warned
    if warned:
        out = run("topk", FIXTURES / name, tmp_path / "h.npy", "--text", text, "-k", "1").stdout
        assert "warning: tokenizer.ggml.pre 'smollm': llama.cpp splits numbers into single digits" in out


def test_a_space_prefix_llama_cpp_would_not_add_is_labelled(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>", "\u2581", "a", "\u2581a"])
    writer.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.0])
    writer.add_bos_token_id(1)
    writer.add_add_space_prefix(False)
    writer.add_tensor("token_embd.weight", np.ones((6, 8), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    np.save(tmp_path / "h.npy", np.ones((2, 8), np.float32))
    data = run_json("topk", tmp_path / "m.gguf", tmp_path / "h.npy", "--text", "a", "-k", "1")
    assert data["text_token_ids"] == [1, 5]  # transformers' ▁a, not llama.cpp's a
    assert any("add_space_prefix is false" in w for w in data["warnings"])
