"""A checkpoint's vocabulary, wherever it is kept: a tokenizer.json (given, or beside the weights), the
tokenizer a weight file carries (a GGUF's metadata), or bare token strings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import TokenizerError

if TYPE_CHECKING:
    from ..checkpoint.checkpoint import Checkpoint
    from .tokens import Vocabulary

__all__ = ["vocabulary_of", "vocabulary_size_of"]


def vocabulary_of(ckpt: Checkpoint, tokenizer: Path | None = None) -> Vocabulary | None:
    """The vocabulary ``tokenizer`` (a tokenizer.json) names, else the checkpoint's own; None when it has none."""
    source = tokenizer if tokenizer is not None else ckpt.tokenizer_path
    if source is not None:
        from .tokens import load_vocabulary

        return load_vocabulary(source)
    if ckpt.tokens is not None and not ckpt.tokens:  # an empty list would mask every head row as padding
        hint = "pass the model's tokenizer.json with --tokenizer"
        raise TokenizerError(ckpt.path, "tokenizer.ggml.tokens holds no tokens", hint=hint)
    if ckpt.embedded_tokenizer is not None:
        from .gguf_tokenizer import gguf_vocabulary

        return gguf_vocabulary(ckpt.embedded_tokenizer)
    if ckpt.tokens is not None:
        from .tokens import vocabulary_from_tokens

        return vocabulary_from_tokens(f"{ckpt.path} (tokenizer.ggml.tokens)", ckpt.tokens, ckpt.metadata.get("tokenizer.ggml.model"))
    return None


def vocabulary_size_of(ckpt: Checkpoint, tokenizer: Path | None = None) -> int | None:
    """The tokenizer's size alone (what ``count`` reports): a tokenizer.json is sized from its JSON,
    without building the tokenizer."""
    source = tokenizer if tokenizer is not None else ckpt.tokenizer_path
    if source is not None:
        from .tokens import tokenizer_size

        return tokenizer_size(source)
    vocab = vocabulary_of(ckpt)
    return vocab.size if vocab else None
