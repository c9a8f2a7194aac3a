"""Vocabulary audit: embedding rows, head rows, config vocab_size and the tokenizer's size."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checkpoint.checkpoint import Checkpoint
from ..core.problems import Problem, ProblemKind
from ..inputs.tokens import Vocabulary
from ..model.anatomy import HeadAnatomy
from ..model.wrapped import language_config

__all__ = ["VocabAudit", "audit_vocabulary"]


@dataclass(frozen=True)
class VocabAudit:
    embedding_rows: int | None
    head_rows: int | None  # rows of the stored head; the embedding's when tied or not stored
    config_vocab_size: int | None
    tokenizer_size: int | None  # added tokens included
    tokenizer_source: str | None
    padded_rows: int  # head rows no token can be (beyond the tokenizer)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def audit_vocabulary(ckpt: Checkpoint, anatomy: HeadAnatomy, vocab: Vocabulary | None) -> VocabAudit:
    """Rows against rows and the tokenizer. The config's vocab_size against the head is checked once, in
    ``anatomy`` (``HeadAnatomy.problems``): here it is only reported as a fact."""
    emb_rows = ckpt.tensors[anatomy.embedding].rows if anatomy.embedding else None
    head_rows = anatomy.vocab_size
    lm = language_config(ckpt.config)
    config_size = lm.config.get("vocab_size") if lm else None
    config_size = config_size if isinstance(config_size, int) and not isinstance(config_size, bool) else None
    tok = vocab.size if vocab else None
    problems: list[Problem] = []
    notes: list[str] = []
    if emb_rows is not None and emb_rows != head_rows:
        problems.append(
            Problem(
                ProblemKind.EMBEDDING_HEAD_ROWS,
                f"embedding has {emb_rows:,} rows but the head has {head_rows:,}: ids differ between input and output",
            )
        )
    padded = 0
    if tok is not None:
        if tok > head_rows:
            problems.append(
                Problem(
                    ProblemKind.TOKENIZER_BEYOND_HEAD,
                    f"the tokenizer has {tok:,} tokens but the head only {head_rows:,} rows: "
                    f"ids {head_rows:,}–{tok - 1:,} can never be predicted",
                )
            )
        elif tok < head_rows:
            padded = head_rows - tok
            notes.append(f"{padded:,} head rows are padding beyond the tokenizer's {tok:,} tokens (masked in topk)")
    else:
        notes.append("no tokenizer found: the vocabulary cannot be checked against it")
    return VocabAudit(emb_rows, head_rows, config_size, tok, vocab.source if vocab else None, padded, problems, notes)
