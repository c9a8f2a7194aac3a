"""``lmhead doctor``: every check on one checkpoint, one verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from .anatomy import HeadAnatomy
from .census import Census, census
from .checkpoint import Checkpoint
from .head import norm_weight_warnings
from .tokens import Vocabulary
from .tying import TyingReport, diagnose_tying
from .vocab import VocabAudit, audit_vocabulary

__all__ = ["DoctorReport", "doctor"]


@dataclass(frozen=True)
class DoctorReport:
    healthy: bool
    census: Census
    tying: TyingReport
    vocabulary: VocabAudit
    anatomy: HeadAnatomy
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # guesses: the architecture is unverified, a suspicious norm weight


def doctor(ckpt: Checkpoint, anatomy: HeadAnatomy, vocab: Vocabulary | None, full: bool = False) -> DoctorReport:
    """Counts, tying, vocabulary, norm and transforms; every problem found, in one report."""
    counts = census(ckpt, anatomy, tokenizer_vocab=vocab.size if vocab else None)
    tying = diagnose_tying(ckpt, anatomy, full=full)
    audit = audit_vocabulary(ckpt, anatomy, vocab)
    problems = _unique(
        [*tying.problems, *audit.problems, *counts.index_findings, *[p for p in anatomy.problems if p not in audit.problems]]
    )
    problems = [p for p in problems if not _same_as_vocab_problem(p, audit)]
    notes = _unique([*tying.notes, *audit.notes, *[n for n in ckpt.notes if n not in counts.index_findings]])
    if anatomy.final_norm is None:
        notes.append("no final norm identified: topk will apply none (check with --explain)")
    warnings = [f"unverified architecture: {g}" for g in anatomy.guesses] + norm_weight_warnings(ckpt, anatomy)
    return DoctorReport(not problems, counts, tying, audit, anatomy, problems, notes, warnings)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _same_as_vocab_problem(problem: str, audit: VocabAudit) -> bool:
    """anatomy and the vocabulary audit both notice a config vocab_size mismatch: report it once."""
    return (
        problem.startswith("config vocab_size")
        and any(p.startswith("config vocab_size") for p in audit.problems)
        and problem not in audit.problems
    )
