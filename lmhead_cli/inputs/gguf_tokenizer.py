"""A ``tokenizers.Tokenizer`` from a GGUF file's own metadata (``tokenizer.ggml.*``).

A GGUF carries no ``tokenizer.json``: llama.cpp's converter writes the vocabulary (``tokens``), its
kind (``model``: ``gpt2`` byte-level BPE, ``llama`` SentencePiece), the BPE ``merges`` or the
SentencePiece ``scores``, each token's ``token_type`` (control, user-defined, byte, ...), the text
splitter's name (``pre``) and the BOS/EOS ids and ``add_bos_token`` flag. This module rebuilds the
tokenizer those describe, the way transformers' GGUF loader does
(``AutoTokenizer.from_pretrained(dir, gguf_file=...)``, transformers 5.24,
``integrations/gguf/gguf_tokenizer_mapping.py``); the tests compare both on a few hundred strings.

The facts it relies on:

* ``gpt2``: a BPE over GPT-2's byte alphabet with the file's merges, no unknown token; tokens
  spelled outside that alphabet are respelled byte by byte. Text is split by GPT-2's pattern, or,
  for the ``pre`` names below, by that family's pattern before the byte mapping.
* ``llama``: a BPE with byte fallback over ``▁``-spelled pieces; merges from the file, or derived
  from the pieces and their scores (every split of a piece into two pieces, best score first).
  A ``▁`` is put before the first word, none after special tokens; no normalizer.
  Gemma files spell runs of spaces with real spaces and order merges by position; Phi-3 puts ``▁``
  before every space with a normalizer.
* Control tokens (type 3) are special tokens matched whole in the text; user-defined ones (type 4,
  ``<think>``) are matched whole but are not special. The BOS/EOS/UNK/PAD tokens are special too.
* BOS is added when ``tokenizer.ggml.add_bos_token`` says so; a ``llama`` file without the key gets
  it (llama.cpp's default for SentencePiece vocabularies). EOS likewise with ``add_eos_token``.

Arrays are read only here, when text must be encoded: ``count`` never touches them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ..core.errors import TokenizerError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from ..formats.base import TokenizerMetadata
    from .tokens import Vocabulary

__all__ = ["GGUFVocab", "SUPPORTED_MODELS", "build_tokenizer", "gguf_vocabulary", "read_gguf_vocab"]

SPACE = "\u2581"  # SentencePiece's ▁


class TokenType(IntEnum):
    """llama.cpp's ``llama_token_type`` (gguf.TokenType)."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


# Split patterns by tokenizer.ggml.pre, as transformers' GGUF loader applies them (llama.cpp's
# llama-vocab.cpp has the same families). Other names keep GPT-2's own pattern.
_LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN35 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_CONTRACTION = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
_TEKKEN = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTION}|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTION}"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLITS: dict[str, str] = {
    **dict.fromkeys(
        ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"),
        _LLAMA3,
    ),
    "tekken": _TEKKEN,
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"), _QWEN2),
    "qwen35": _QWEN35,
    **dict.fromkeys(("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), _GPT4O),
}

SUPPORTED_MODELS = ("gpt2", "llama")
GEMMA = ("gemma", "gemma2", "gemma3")  # SentencePiece files built as transformers builds Gemma's


@dataclass(frozen=True)
class GGUFVocab:
    """What a GGUF's metadata says about its tokenizer."""

    source: str  # the file, for errors
    model: str  # tokenizer.ggml.model
    pre: str | None  # tokenizer.ggml.pre
    architecture: str | None  # general.architecture (Gemma and Phi-3 SentencePiece files differ)
    tokens: list[str]
    token_types: list[int] | None
    scores: list[float] | None
    merges: list[str] | None
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    add_eos: bool

    @property
    def bos_token(self) -> str | None:
        return self._token(self.bos_id)

    def _token(self, token_id: int | None) -> str | None:
        return self.tokens[token_id] if token_id is not None and 0 <= token_id < len(self.tokens) else None


def gguf_vocabulary(reader: TokenizerMetadata) -> Vocabulary | None:
    """The file's vocabulary: token strings for display now, the full tokenizer when --text needs it."""
    from .tokens import vocabulary_from_tokens

    if reader.tokens is None:
        return None
    meta = reader.metadata
    model = meta.get("tokenizer.ggml.model")
    return vocabulary_from_tokens(
        f"{reader.path} (tokenizer.ggml.tokens)",
        reader.tokens,
        model,
        build=lambda: build_tokenizer(read_gguf_vocab(reader)),
        add_special=True,
        note=_note(meta, reader.tokens),
        warn=lambda text: digit_split_warning(meta.get("tokenizer.ggml.pre"), text) or space_prefix_warning(meta, text),
    )


def space_prefix_warning(meta: dict[str, Any], text: str) -> str | None:
    """llama.cpp honours add_space_prefix=false for SentencePiece; transformers' GGUF tokenizer always adds the ▁."""
    if meta.get("tokenizer.ggml.model") != "llama" or meta.get("tokenizer.ggml.add_space_prefix") is not False or not text:
        return None
    return (
        "tokenizer.ggml.add_space_prefix is false: llama.cpp puts no ▁ before the first word, transformers' GGUF "
        "tokenizer (followed here) does; the first tokens may differ from llama.cpp's"
    )


# llama.cpp splits numbers into single digits before GPT-2's pattern for these (llama-vocab.cpp,
# LLAMA_VOCAB_PRE_TYPE_SMOLLM and its case group); transformers' GGUF loader keeps GPT-2's pattern,
# which groups digits. lmhead follows transformers and says so when the text has a run of digits.
DIGIT_SPLITTERS = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva", "mellum2"})


def digit_split_warning(pre: object, text: str) -> str | None:
    if pre not in DIGIT_SPLITTERS or not re.search(r"\d\d", text):  # two decimal digits in a row
        return None
    return (
        f"tokenizer.ggml.pre {pre!r}: llama.cpp splits numbers into single digits, transformers' GGUF tokenizer "
        "(followed here) does not; targets at multi-digit numbers may differ from llama.cpp's"
    )


def _note(meta: dict[str, Any], tokens: list[str]) -> str | None:
    """What encoding adds to the text, from the header alone (BOS/EOS are what shift the targets)."""
    model = meta.get("tokenizer.ggml.model")
    flag = meta.get("tokenizer.ggml.add_bos_token")
    added = []
    for name, on in (
        ("bos", flag if isinstance(flag, bool) else model == "llama"),
        ("eos", meta.get("tokenizer.ggml.add_eos_token") is True),
    ):
        token_id = meta.get(f"tokenizer.ggml.{name}_token_id")
        if on and isinstance(token_id, int) and 0 <= token_id < len(tokens):
            added.append(f"{name.upper()} {tokens[token_id]!r} (id {token_id})")
    if not added:
        return None
    why = "tokenizer.ggml.add_bos_token" if isinstance(flag, bool) else "llama.cpp's default for SentencePiece"
    return f"--text tokenized by the GGUF's own tokenizer with {' and '.join(added)} added ({why}), as llama.cpp and transformers do"


def read_gguf_vocab(reader: TokenizerMetadata) -> GGUFVocab:
    """The tokenizer metadata of one GGUF file, its long arrays read now (and only now)."""
    meta = reader.metadata
    source = f"{reader.path} (tokenizer.ggml.model)"
    model = meta.get("tokenizer.ggml.model")
    if not isinstance(model, str):
        raise TokenizerError(source, "the file names no tokenizer (tokenizer.ggml.model is missing)", hint=_HINT)
    if model not in SUPPORTED_MODELS:
        raise TokenizerError(
            source,
            f"tokenizer.ggml.model {model!r} is not supported for --text (lmhead builds {' and '.join(SUPPORTED_MODELS)} tokenizers)",
            hint=_HINT,
        )
    tokens = reader.metadata_array("tokenizer.ggml.tokens")
    if not tokens or not set(map(type, tokens)) <= {str}:
        raise TokenizerError(source, "tokenizer.ggml.tokens is missing or not a list of strings", hint=_HINT)
    types = _optional_array(reader, "tokenizer.ggml.token_type", int, len(tokens))
    scores = _optional_array(reader, "tokenizer.ggml.scores", float, len(tokens))
    merges = reader.metadata_array("tokenizer.ggml.merges") if "tokenizer.ggml.merges" in reader.array_keys() else None
    if merges is not None and not (set(map(type, merges)) <= {str} and all(m.count(" ") == 1 for m in merges)):
        raise TokenizerError(f"{reader.path} (tokenizer.ggml.merges)", "merges must be strings of two tokens separated by one space")
    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    return GGUFVocab(
        source=str(reader.path),
        model=model,
        pre=_str(meta.get("tokenizer.ggml.pre")),
        architecture=_str(meta.get("general.architecture")),
        tokens=tokens,
        token_types=types,
        scores=scores,
        merges=merges,
        bos_id=_id(reader, "tokenizer.ggml.bos_token_id", len(tokens)),
        eos_id=_id(reader, "tokenizer.ggml.eos_token_id", len(tokens)),
        unk_id=_id(reader, "tokenizer.ggml.unknown_token_id", len(tokens)),
        pad_id=_id(reader, "tokenizer.ggml.padding_token_id", len(tokens)),
        add_bos=add_bos if isinstance(add_bos, bool) else model == "llama",  # llama.cpp adds BOS to SentencePiece by default
        add_eos=meta.get("tokenizer.ggml.add_eos_token") is True,
    )


_HINT = "pass the model's tokenizer.json with --tokenizer, or give the next-token ids with --targets"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _id(reader: TokenizerMetadata, key: str, n: int) -> int | None:
    value = reader.metadata.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
        raise TokenizerError(reader.path, f"{key} {value!r} is not a token id (the vocabulary has {n:,} tokens)")
    return value


def _optional_array(reader: TokenizerMetadata, key: str, kind: type, n: int) -> list | None:
    if key not in reader.array_keys():
        return None
    values = reader.metadata_array(key)
    allowed = {float, int} if kind is float else {kind}  # type(), not isinstance: a bool is not an int here
    if len(values) != n or not set(map(type, values)) <= allowed:
        raise TokenizerError(f"{reader.path} ({key})", f"expected {n:,} {kind.__name__} values, one per token, found {len(values):,}")
    return values


# ---------------------------------------------------------------- building


def build_tokenizer(vocab: GGUFVocab) -> Tokenizer:
    """The tokenizer ``vocab`` describes; ``encode(text)`` adds BOS/EOS as the file says."""
    if vocab.model == "gpt2":
        tokenizer = _byte_level(vocab)
    elif vocab.architecture in GEMMA:
        tokenizer = _gemma(vocab)
    elif vocab.architecture == "phi3":
        tokenizer = _phi3(vocab)
    else:
        tokenizer = _sentencepiece(vocab, vocab.tokens, _merges(vocab, vocab.tokens, None))
    _add_default_specials(tokenizer, vocab)
    _add_special_tokens(tokenizer, vocab)
    _post_processor(tokenizer, vocab)
    return tokenizer


def _default_specials(vocab: GGUFVocab) -> tuple[str, ...]:
    """The special tokens transformers' tokenizer class for this vocabulary names by default
    (GPT2Tokenizer, LlamaTokenizer, GemmaTokenizer): added before the file's own, in this order."""
    if vocab.model == "gpt2":
        return ("<|endoftext|>",)
    if vocab.architecture in GEMMA:
        return ("<bos>", "<eos>", "<unk>", "<pad>", "<mask>")
    return ("<s>", "</s>", "<unk>")


def _add_default_specials(tokenizer: Tokenizer, vocab: GGUFVocab) -> None:
    """Matched whole in the text like the file's specials; one the vocabulary lacks gets the next id, as in transformers."""
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in _default_specials(vocab)])


def _sentencepiece(vocab: GGUFVocab, pieces: list[str], merges: list[tuple[str, str]]) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    ids = {piece: i for i, piece in enumerate(pieces)}  # a repeated piece keeps its last id
    tokenizer = Tokenizer(models.BPE(vocab=ids, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    )
    return tokenizer


def _gemma(vocab: GGUFVocab) -> Tokenizer:
    """Gemma: runs of spaces are stored as spaces (looked up as ▁▁), merges follow the file's order."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    pieces = [SPACE * len(t) if t and not t.strip(" ") else t for t in vocab.tokens]
    rank = {piece: -i for i, piece in enumerate(pieces)}
    merges = _merges(vocab, pieces, rank)
    ids = {piece: i for i, piece in enumerate(pieces)}
    # GemmaTokenizer's own unknown token, whatever the file's unknown id says
    tokenizer = Tokenizer(models.BPE(vocab=ids, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def _phi3(vocab: GGUFVocab) -> Tokenizer:
    """Phi-3: ▁ before every space and before the text, by a normalizer; no pre-tokenizer."""
    from tokenizers import normalizers

    tokenizer = _sentencepiece(vocab, vocab.tokens, _merges(vocab, vocab.tokens, None))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(prepend=SPACE), normalizers.Replace(pattern=" ", content=SPACE)])
    tokenizer.pre_tokenizer = None
    return tokenizer


def _merges(vocab: GGUFVocab, pieces: list[str], scores: Mapping[str, float] | None) -> list[tuple[str, str]]:
    """The file's merges, or every split of a piece into two pieces, best-scored piece first."""
    import numpy as np

    if vocab.merges is not None:
        return [_pair(m) for m in vocab.merges]
    if scores is None:
        if vocab.scores is None:
            raise TokenizerError(
                vocab.source,
                "tokenizer.ggml.scores is missing: a SentencePiece vocabulary without merges needs scores to order its merges",
                hint=_HINT,
            )
        scores = dict(zip(pieces, vocab.scores, strict=True))
    known = set(pieces)
    merges: list[tuple[str, str]] = []
    keys: list[float] = []
    for piece, score in scores.items():  # a piece's splits, pieces in the order the scores name them
        for cut in range(1, len(piece)):
            left = piece[:cut]
            if left in known and (right := piece[cut:]) in known:
                merges.append((left, right))
                keys.append(score)
    # Best score first; among equal scores the longer left part, then the longer right part; among
    # equal keys the order found (a stable sort). One piece's splits never tie: their left parts'
    # lengths differ.
    left_len = np.fromiter((len(m[0]) for m in merges), dtype=np.int64, count=len(merges))
    right_len = np.fromiter((len(m[1]) for m in merges), dtype=np.int64, count=len(merges))
    order = np.lexsort((-right_len, -left_len, -np.asarray(keys, dtype=np.float64)))  # last key first
    return [merges[i] for i in order.tolist()]


def _pair(merge: str) -> tuple[str, str]:
    left, right = merge.split(" ")  # checked when read: exactly one space
    return left, right


def _byte_level(vocab: GGUFVocab) -> Tokenizer:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from .tokens import BYTE_ALPHABET

    spelling = {byte: char for char, byte in BYTE_ALPHABET.items()}
    alphabet = set(BYTE_ALPHABET)
    ids = {}
    for i, token in enumerate(vocab.tokens):
        key = token if set(token) <= alphabet else "".join(spelling[b] for b in token.encode("utf-8"))
        ids[key] = i
    merges = [_pair(m) for m in vocab.merges or ()]
    bpe = models.BPE(vocab=ids, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tokenizer = Tokenizer(bpe)
    split = SPLITS.get(vocab.pre or "")
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _add_special_tokens(tokenizer: Tokenizer, vocab: GGUFVocab) -> None:
    """Control tokens, then user-defined ones, then BOS/EOS/UNK/PAD: each matched whole in the text."""
    from tokenizers import AddedToken

    from .tokens import BYTE_ALPHABET

    types = vocab.token_types or [TokenType.NORMAL] * len(vocab.tokens)
    alphabet = set(BYTE_ALPHABET) if vocab.model == "gpt2" else None
    control = [
        t for t, kind in zip(vocab.tokens, types, strict=True) if kind == TokenType.CONTROL and (alphabet is None or set(t) <= alphabet)
    ]
    if control:
        tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in control])
    user = [
        t for t, kind in zip(vocab.tokens, types, strict=True) if kind == TokenType.USER_DEFINED and tokenizer.token_to_id(t) is not None
    ]
    if user:
        tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])
    added = {str(t.content) for t in tokenizer.get_added_tokens_decoder().values()}
    named = [vocab._token(i) for i in (vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.pad_id)]
    fresh = list(dict.fromkeys(t for t in named if t is not None and t not in added))
    if fresh:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in fresh])


def _post_processor(tokenizer: Tokenizer, vocab: GGUFVocab) -> None:
    from tokenizers import processors

    bos = vocab._token(vocab.bos_id) if vocab.add_bos else None
    eos = vocab._token(vocab.eos_id) if vocab.add_eos else None
    parts = ([f"{bos}:0"] if bos else []) + ["$A:0"] + ([f"{eos}:0"] if eos else [])
    pair = [*parts, *([f"{bos}:1"] if bos else []), "$B:1", *([f"{eos}:1"] if eos else [])]
    specials = [(t, tokenizer.token_to_id(t)) for t in dict.fromkeys(x for x in (bos, eos) if x)]
    tokenizer.post_processor = processors.TemplateProcessing(single=" ".join(parts), pair=" ".join(pair), special_tokens=specials)
