"""``lmhead doctor``: every check on one checkpoint, one verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from ..checkpoint.checkpoint import Checkpoint
from ..core.problems import Problem
from ..inputs.tokens import Vocabulary
from ..logits.head import norm_weight_warnings
from ..model.anatomy import HeadAnatomy
from .census import Census, census
from .tying import TyingReport, diagnose_tying, unread_warnings
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
    return DoctorReport(not problems, counts, tying, audit, anatomy, problems, notes, warnings)


def _unique(items: list[T]) -> list[T]:
    return list(dict.fromkeys(items))
