"""count sizes a tokenizer.json from its JSON; the tokenizers library's get_vocab_size(with_added_tokens=True)
is the reference, on real files and on generated ones (vocabularies overlapping the added tokens)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lmhead_cli.inputs.tokens import tokenizer_size

from conftest import SAMPLES, run_json

TOKENS = st.text(alphabet="abcde<>|", min_size=1, max_size=4)


def added_token(i: int, content: str) -> dict:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


@st.composite
def tokenizer_specs(draw) -> dict:
    kind = draw(st.sampled_from(["BPE", "WordPiece", "WordLevel", "Unigram"]))
    pieces = draw(st.lists(TOKENS, min_size=1, max_size=12, unique=kind != "Unigram"))
    if kind == "Unigram":
        model = {"type": "Unigram", "unk_id": 0, "vocab": [[p, -float(i)] for i, p in enumerate(pieces)]}
    else:
        model = {"type": kind, "vocab": {p: i for i, p in enumerate(pieces)}}
        if kind == "BPE":
            model["merges"] = []
        else:
            model["unk_token"] = pieces[0]
    contents = draw(st.lists(st.one_of(TOKENS, st.sampled_from(pieces)), max_size=6))
    ids = draw(st.lists(st.integers(0, 30), min_size=len(contents), max_size=len(contents)))
    return {"version": "1.0", "added_tokens": [added_token(i, c) for i, c in zip(ids, contents, strict=True)], "model": model}


@settings(max_examples=300, deadline=None)
@given(tokenizer_specs())
def test_size_from_json_is_what_tokenizers_counts(tmp_path_factory, spec) -> None:
    text = json.dumps(spec)
    try:
        want = Tokenizer.from_str(text).get_vocab_size(with_added_tokens=True)
    except Exception:  # a spec the library refuses: tokenizer_size hands it over, and refuses it too
        return
    path = tmp_path_factory.mktemp("t") / "tokenizer.json"
    path.write_text(text)
    assert tokenizer_size(path) == want


@pytest.mark.parametrize("sample", ["gpt2-tied", "llama-bf16", "qwen2-sharded"])
def test_samples_are_sized_as_tokenizers_sizes_them(sample: str) -> None:
    want = Tokenizer.from_file(str(SAMPLES / sample / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    assert tokenizer_size(SAMPLES / sample) == want
    assert run_json("count", SAMPLES / sample)["tokenizer_vocab"] == want


def test_a_layout_it_does_not_know_goes_to_tokenizers(tmp_path, monkeypatch) -> None:
    from lmhead_cli.inputs import tokens

    spec = {"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    calls = []
    monkeypatch.setattr(tokens, "_built", lambda p, text: calls.append(p) or tokens.Vocabulary("x", 7))
    assert tokenizer_size(path) == 2 and not calls  # read from the JSON
    spec["model"]["type"] = "SomethingNew"
    path.write_text(json.dumps(spec))
    assert tokenizer_size(path) == 7 and calls  # handed to the library
    path.write_text("{not json")
    assert tokenizer_size(path) == 7


def test_a_broken_or_empty_tokenizer_is_still_an_error(tmp_path) -> None:
    from lmhead_cli.core.errors import TokenizerError

    path = tmp_path / "tokenizer.json"
    path.write_text("{not json")
    with pytest.raises(TokenizerError, match="cannot read tokenizer"):
        tokenizer_size(path)
    path.write_text(json.dumps({"version": "1.0", "added_tokens": [], "model": {"type": "WordLevel", "vocab": {}, "unk_token": None}}))
    with pytest.raises(TokenizerError):
        tokenizer_size(path)
