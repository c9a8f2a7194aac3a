"""``lmhead doctor``: every check on one checkpoint, one verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import LmheadError
from ..core.problems import Problem, ProblemKind
from ..inputs.tokens import Vocabulary
from ..logits.head import norm_weight_warnings
from ..model.anatomy import HeadAnatomy
from .census import Census, census
from .tying import TyingReport, diagnose_tying, unread_warnings
from .undertrained import TokenReport, find_undertrained
from .vocab import VocabAudit, audit_vocabulary

__all__ = ["DoctorReport", "doctor"]

T = TypeVar("T")


@dataclass(frozen=True)
class DoctorReport:
    healthy: bool
    census: Census
    tying: TyingReport
    vocabulary: VocabAudit
    anatomy: HeadAnatomy
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # guesses: the architecture is unverified, a suspicious norm weight
    tokens: TokenReport | None = None  # under-trained tokens (``lmhead tokens``' default analysis); None without values


def doctor(ckpt: Checkpoint, anatomy: HeadAnatomy, vocab: Vocabulary | None, full: bool = False, values: bool = True) -> DoctorReport:
    """Counts, tying, vocabulary, norm and transforms; every problem found, in one report.
    ``values`` off: tying from config and storage only (a remote checkpoint without --fetch-values)."""
    counts = census(ckpt, anatomy, tokenizer_vocab=vocab.size if vocab else None)
    tying = diagnose_tying(ckpt, anatomy, full=full, values=values)
    audit = audit_vocabulary(ckpt, anatomy, vocab)
    problems = _unique([*tying.problems, *audit.problems, *counts.index_findings, *anatomy.problems])
    sizes = {p.message for p in anatomy.problems}  # check-tying shows these as notes; here they are problems
    notes = _unique([*(n for n in tying.notes if n not in sizes), *audit.notes, *ckpt.notes])
    if anatomy.final_norm is None:
        notes.append("no final norm identified: topk will apply none (check with --explain)")
    guesses = [f"unverified architecture: {g}" for g in anatomy.guesses] + [f"unverified counts: {w}" for w in counts.warnings]
    warnings = guesses + (norm_weight_warnings(ckpt, anatomy) if values else unread_warnings(ckpt, anatomy, values))
    tokens = _tokens(ckpt, anatomy, vocab, notes) if values else None
    if tokens is not None and tokens.exact_in_used():
        problems.append(untrained_used_problem(tokens, vocab))
    return DoctorReport(not problems, counts, tying, audit, anatomy, problems, notes, warnings, tokens)


def _tokens(ckpt: Checkpoint, anatomy: HeadAnatomy, vocab: Vocabulary | None, notes: list[str]) -> TokenReport | None:
    try:
        return find_undertrained(ckpt, anatomy, vocab)
    except LmheadError as exc:  # a tokenizer lmhead cannot build: the rest of the report stands
        notes.append(f"under-trained tokens not checked: {exc.reason}")
        return None


def untrained_used_problem(tokens: TokenReport, vocab: Vocabulary | None) -> Problem:
    ids = tokens.exact_in_used()
    shown = ", ".join(f"{i} {vocab.token(i) if vocab else ''}".strip() for i in ids[:8]) + (", …" if len(ids) > 8 else "")
    return Problem(
        ProblemKind.UNTRAINED_USED_TOKENS,
        f"{len(ids)} token{'s' * (len(ids) > 1)} the chat template or the tokenizer's BOS/EOS/pad/unk use "
        f"{'have' if len(ids) > 1 else 'has'} an identical, zero or non-finite row (never trained): {shown} (lmhead tokens)",
    )


def _unique(items: list[T]) -> list[T]:
    return list(dict.fromkeys(items))
