"""What ``topk`` was asked, checked against the states, the head and the vocabulary before any row is read.

The user's strings are parsed where they enter (``Positions.parse``, ``TargetIds.parse``: the CLI's
parameter types call them); ``plan`` then resolves them against the file's positions, lines the
targets up (position i predicts token i+1), decides which head rows are padding, and gathers what
the reader must be told. ``predict`` runs the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import HiddenStateError, TokenizerError
from ..model.anatomy import HeadAnatomy
from .head import norm_weight_warnings
from .prediction import Predictions, check_targets, predict, targets_from_ids, targets_from_text

if TYPE_CHECKING:
    from ..inputs.hidden import HiddenStates
    from ..inputs.tokens import Vocabulary

__all__ = ["Positions", "TargetIds", "TopkPlan", "TopkRequest", "plan", "run", "settled_warnings"]


@dataclass(frozen=True)
class Positions:
    """``--positions`` as written (``0,5,-1``, ``2:8``): indices and ranges, resolved against a file's T."""

    parts: tuple[int | slice, ...]

    @classmethod
    def parse(cls, spec: str) -> Positions:
        if not spec.strip():
            return cls(())
        parts: list[int | slice] = []
        for part in spec.split(","):
            part = part.strip()
            try:
                parts.append(slice(*(int(p) if p else None for p in part.split(":"))) if ":" in part else int(part))
            except (ValueError, TypeError):  # TypeError: more than start:stop:step
                raise HiddenStateError("--positions", f"{part!r} is not an integer or a start:stop range") from None
        return cls(tuple(parts))

    def resolve(self, count: int) -> list[int]:
        """The file's position indices, in the order given, each once (every position when none is given)."""
        if not self.parts:
            return list(range(count))
        chosen: list[int] = []
        for part in self.parts:
            if isinstance(part, slice):
                selected = range(count)[part]
                if not selected:
                    raise HiddenStateError("--positions", f"{_spelled(part)!r} selects none of the {count} positions in the file")
                chosen.extend(selected)
                continue
            if not -count <= part < count:
                raise HiddenStateError("--positions", f"{part} is outside the {count} positions in the file")
            chosen.append(part % count)
        return list(dict.fromkeys(chosen))


def _spelled(s: slice) -> str:
    parts = [s.start, s.stop] + ([s.step] if s.step is not None else [])
    return ":".join("" if p is None else str(p) for p in parts)


@dataclass(frozen=True)
class TargetIds:
    """``--targets`` as written: ids separated by commas, or a ``.npy`` file of them (read when planned)."""

    spec: str
    ids: tuple[int, ...] | None  # None: read from the file ``spec``

    @classmethod
    def parse(cls, spec: str) -> TargetIds:
        if spec.endswith(".npy"):
            return cls(spec, None)
        try:
            return cls(spec, tuple(int(part) for part in spec.split(",") if part.strip()))
        except ValueError:
            raise HiddenStateError("--targets", f"{spec!r} is not a comma-separated list of ids (or a .npy file)") from None

    @property
    def source(self) -> str:
        return "--targets" if self.ids is not None else self.spec

    def load(self) -> list[int]:
        if self.ids is not None:
            return list(self.ids)
        from ..inputs.hidden import load_target_ids

        return load_target_ids(Path(self.spec))


@dataclass(frozen=True)
class TopkRequest:
    k: int = 10
    positions: Positions | None = None
    targets: TargetIds | None = None
    text: str | None = None  # the input text: its tokens after the first are the targets
    norm: bool = True  # False: the states are already normalised (--no-norm)
    last_normed: bool = False  # a layer stack whose last entry is already normalised
    include_padded: bool = False  # keep head rows beyond the tokenizer's vocabulary
    chunk_rows: int | None = None


@dataclass(frozen=True)
class TopkPlan:
    request: TopkRequest
    positions: list[int]
    targets: np.ndarray | None  # (T,) int64, -1 where a position has no target
    vocab_limit: int | None  # head rows past this are padding, masked
    text_ids: list[int] | None  # the text's token ids, when --text was given
    text_note: str | None  # how the text was tokenised
    text_warnings: tuple[str, ...]

    notices: tuple[str, ...]  # shown with the answer (above the table, in JSON warnings): the head's, then the text's


def plan(ckpt: Checkpoint, anatomy: HeadAnatomy, states: HiddenStates, vocab: Vocabulary | None, request: TopkRequest) -> TopkPlan:
    """Every check that needs no head row: positions, targets (ids or text), padding."""
    chosen = request.positions.resolve(states.positions) if request.positions else list(range(states.positions))
    text_ids: list[int] | None = None
    note: str | None = None
    text_warnings: tuple[str, ...] = ()
    targets: np.ndarray | None = None
    if request.text is not None:
        if vocab is None:
            raise TokenizerError("--text", f"needs a tokenizer.json, and {ckpt.path} has none", hint="pass --tokenizer PATH")
        text_ids = vocab.encode(request.text)
        targets = targets_from_text(text_ids, states.positions)
        note, text_warnings = vocab.note, tuple(vocab.warnings(request.text))
    elif request.targets is not None:
        targets = targets_from_ids(request.targets.load(), states.positions, request.targets.source, selected=chosen)
    limit = None
    if vocab is not None and vocab.size < anatomy.vocab_size and not request.include_padded:
        limit = vocab.size  # rows past the tokenizer are padding: no token can ever be them
    if targets is not None:
        check_targets(targets, anatomy.vocab_size, limit, "--text" if request.text is not None else "--targets")
    notices = (*_head_warnings(anatomy), *text_warnings)
    return TopkPlan(request, chosen, targets, limit, text_ids, note, text_warnings, notices)


def run(
    ckpt: Checkpoint, anatomy: HeadAnatomy, states: HiddenStates, p: TopkPlan, progress: Callable[[int, int], None] | None = None
) -> Predictions:
    r = p.request
    return predict(
        ckpt,
        anatomy,
        states,
        r.k,
        positions=p.positions,
        targets=p.targets,
        norm=r.norm,
        last_normed=r.last_normed,
        vocab_limit=p.vocab_limit,
        chunk_rows=r.chunk_rows,
        progress=progress,
    )


def settled_warnings(ckpt: Checkpoint, anatomy: HeadAnatomy, p: TopkPlan) -> tuple[list[str], list[str]]:
    """(what was guessed, for stderr too; every warning the answer carries), in the order JSON lists them."""
    # over hf:// the norm weight would be fetched twice (it is read again for the norm): local checkpoints only
    check_weight = p.request.norm and ckpt.remote is None
    guessed = [*anatomy.guesses, *(norm_weight_warnings(ckpt, anatomy) if check_weight else [])]
    return guessed, [*guessed, *p.notices]


def _head_warnings(anatomy: HeadAnatomy) -> list[str]:
    """What a person must know before trusting these predictions."""
    if anatomy.tie.config_directs is False and anatomy.head is None:
        return [
            f"no head is stored and the config says untied: the loaded model would have a random head; "
            f"showing {anatomy.head_matrix} as the head"
        ]
    return []
