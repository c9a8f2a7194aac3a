"""Token ids to strings a person can read, and texts to ids.

Token strings come from the checkpoint (untrusted): whitespace and control
characters are made visible so that a token can never move the cursor or
change the terminal (rich markup is escaped later, in ``render``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import TokenizerError
from ..core.escape import visible
from ..core.files import read_regular

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Vocabulary", "load_vocabulary", "tokenizer_size", "visible"]

PADDING = "⟨pad⟩"
MAX_TOKENIZER_BYTES = 2**30  # the largest tokenizer.json files on the hub are tens of MB


def _gpt2_byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in character for each byte (GPT-2's published table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    chars = printable + [256 + i for i in range(len(extra))]
    return {chr(c): b for c, b in zip(chars, printable + extra, strict=True)}


BYTE_ALPHABET = _gpt2_byte_alphabet()


def _byte_level_bytes(raw: str) -> str | None:
    """A byte-level token as text, with bytes that are not UTF-8 on their own as \\xNN."""
    if not raw or any(ch not in BYTE_ALPHABET for ch in raw):
        return None
    data = bytes(BYTE_ALPHABET[ch] for ch in raw)
    return data.decode("utf-8", errors="backslashreplace")


@dataclass
class Vocabulary:
    """Decodes ids for display; ids the tokenizer does not know show as padding."""

    source: str
    size: int  # ids 0 .. size-1 are the tokenizer's (added tokens included)
    _tokenizer: Tokenizer | None = None
    _tokens: list[str] | None = None
    _show: Callable[[str], str] | None = None  # a stored token as text, applied per id on demand (150k tokens: seconds)
    _build: Callable[[], Any] | None = None  # builds the encoder on first use (a GGUF's tokenizer metadata)
    add_special: bool = False  # encode adds the tokenizer's BOS/EOS (a GGUF's add_bos_token)
    note: str | None = None  # how --text is tokenized, when a person should be told (BOS added)
    _warn: Callable[[str], str | None] | None = None  # a warning about how one text is tokenized

    def is_padding(self, token_id: int) -> bool:
        return self.text(token_id) is None

    def text(self, token_id: int) -> str | None:
        """The token as text (raw, untrusted); None for ids the tokenizer does not have."""
        if token_id < 0 or token_id >= self.size:
            return None
        if self._tokens is not None:
            raw_token = self._tokens[token_id]
            return self._show(raw_token) if self._show else raw_token
        if self._tokenizer is None:
            return None
        raw = self._tokenizer.id_to_token(token_id)
        if raw is None:
            return None
        text = self._tokenizer.decode([token_id], skip_special_tokens=False)
        if text and "\ufffd" not in text:
            return text
        # Part of a multi-byte character: show its bytes (\xNN) rather than U+FFFD.
        return _byte_level_bytes(raw) or raw

    def token(self, token_id: int) -> str:
        """The token for display: whitespace and control characters made visible."""
        text = self.text(token_id)
        return PADDING if text is None else visible(text)

    def warnings(self, text: str) -> list[str]:
        """What a person must know about how ``text`` was tokenized (a guess is labelled, never silent)."""
        warning = self._warn(text) if self._warn else None
        return [warning] if warning else []

    def tokenizer(self) -> Tokenizer | None:
        """The tokenizers library's tokenizer (built on first use from a GGUF's metadata); None for a bare token list."""
        if self._tokenizer is None and self._build is not None:
            self._tokenizer = self._build()
        return self._tokenizer

    def raw(self, token_id: int) -> str | None:
        """The token as the vocabulary spells it (Ġ, ▁, <0xF5>), untrusted; None beyond the tokenizer."""
        if token_id < 0 or token_id >= self.size:
            return None
        if self._tokens is not None:
            return self._tokens[token_id]
        return self._tokenizer.id_to_token(token_id) if self._tokenizer is not None else None

    def raws(self, n: int) -> list[str | None]:
        """``raw`` of ids 0 .. n-1 (n at most ``size``), at once."""
        if self._tokens is not None and n <= len(self._tokens):
            return list(self._tokens[:n])
        return [self.raw(i) for i in range(n)]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; with ``add_special``, BOS/EOS as the model's own tokenizer adds them."""
        if self._tokenizer is None and self._build is not None:
            self._tokenizer = self._build()
        if self._tokenizer is None:
            raise TokenizerError(
                self.source,
                "this vocabulary can only decode ids, not encode --text (a token list, no tokenizer.json)",
                hint="pass the model's tokenizer.json with --tokenizer, or give the next-token ids with --targets",
            )
        return list(self._tokenizer.encode(text, add_special_tokens=self.add_special).ids)


def load_vocabulary(path: str | Path) -> Vocabulary:
    """Read a Hugging Face ``tokenizer.json`` (a regular file of at most ``MAX_TOKENIZER_BYTES``) with the tokenizers library."""
    return _built(*_tokenizer_text(path))


def tokenizer_size(path: str | Path) -> int:
    """How many ids a ``tokenizer.json`` defines, as the tokenizers library counts them
    (``get_vocab_size(with_added_tokens=True)``: the model's vocabulary, plus the added tokens it does
    not already hold), read from the JSON without building the tokenizer. ``count`` needs only this
    number, and building a Llama-3-sized tokenizer takes 0.3-0.4 s (json alone: about half, and no
    tokenizers import). A layout this does not know, or text the JSON reader refuses, goes to the
    tokenizers library, whose size (or error) is the reference."""
    path, text = _tokenizer_text(path)
    try:
        size = _size_from_json(json.loads(text))
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        size = None
    return size if size else _built(path, text).size  # 0: refused there ("holds no tokens")


def _tokenizer_text(path: str | Path) -> tuple[Path, str]:
    """The ``tokenizer.json`` at ``path`` (or inside the folder ``path``) and its text."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    data = read_regular(path, TokenizerError, "tokenizer", limit=MAX_TOKENIZER_BYTES)
    try:
        return path, data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenizerError(path, "cannot read tokenizer: not UTF-8 text") from None


def _built(path: Path, text: str) -> Vocabulary:
    """The tokenizers library's tokenizer from ``text``; its refusal as one line."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception for every failure
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TokenizerError(path, f"cannot read tokenizer: {reason}") from exc
    return _checked(Vocabulary(source=str(path), size=tokenizer.get_vocab_size(with_added_tokens=True), _tokenizer=tokenizer))


def _size_from_json(spec: Any) -> int | None:
    """The model's entries (distinct keys of a BPE / WordPiece / WordLevel vocabulary, every piece of a
    Unigram one) plus the added tokens whose text is not among them; None for any other layout."""
    model = spec.get("model") if isinstance(spec, dict) else None
    added = (spec.get("added_tokens") or []) if isinstance(spec, dict) else None
    if not isinstance(model, dict) or not isinstance(added, list):
        return None
    kind, vocab = model.get("type"), model.get("vocab")
    if kind in ("BPE", "WordPiece", "WordLevel") and isinstance(vocab, dict):
        entries, known = len(vocab), set(vocab)
    elif kind == "Unigram" and isinstance(vocab, list) and all(isinstance(p, list) and p and isinstance(p[0], str) for p in vocab):
        entries, known = len(vocab), {p[0] for p in vocab}
    else:
        return None
    if not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in added):
        return None
    return entries + len({t["content"] for t in added} - known)


def _checked(vocab: Vocabulary) -> Vocabulary:
    """A vocabulary of no tokens would mask every head row: refuse it."""
    if vocab.size == 0:
        raise TokenizerError(vocab.source, "holds no tokens", hint="pass the model's tokenizer.json with --tokenizer")
    return vocab


def vocabulary_from_tokens(
    source: str,
    tokens: list[str],
    model: object = None,
    build: Callable[[], Any] | None = None,
    add_special: bool = False,
    note: str | None = None,
    warn: Callable[[str], str | None] | None = None,
) -> Vocabulary:
    """A vocabulary from a list of token strings (GGUF ``tokenizer.ggml.tokens``).

    ``model`` is GGUF's ``tokenizer.ggml.model``: "gpt2" tokens are byte-level BPE (Ġ for a
    space), "llama" ones SentencePiece (▁ for a space, <0x0A> for a byte); both are shown as text.
    ``build`` makes the encoder for --text when it is first needed.
    """
    show = {"gpt2": _byte_level_text, "llama": _sentencepiece_text}.get(model) if isinstance(model, str) else None
    return _checked(
        Vocabulary(
            source=source, size=len(tokens), _tokens=tokens, _show=show, _build=build, add_special=add_special, note=note, _warn=warn
        )
    )


def _byte_level_text(token: str) -> str:
    return _byte_level_bytes(token) or token


def _sentencepiece_text(piece: str) -> str:
    """▁ as a space; a byte-fallback piece <0xNN> as that byte (\\xNN when it is not ASCII on its own)."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            byte = int(piece[3:5], 16)
        except ValueError:
            return piece
        return chr(byte) if byte < 0x80 else f"\\x{byte:02x}"
    return piece.replace("\u2581", " ")
