"""Next-token predictions for a file of hidden states: positions, targets, summaries.

Glue between ``hidden`` (what the states are), ``head.project`` (the math) and
the renderers: it selects positions, lines up targets (position i predicts
token i+1), runs one streamed pass over the head for every state at once
(all layers and batch rows together) and lays the results back out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import HiddenStateError, TokenizerError
from ..model.anatomy import HeadAnatomy
from .head import TopK, normalise, project

if TYPE_CHECKING:
    from ..inputs.hidden import HiddenStates

__all__ = ["Predictions", "Summary", "check_targets", "predict", "targets_from_ids", "targets_from_text"]


@dataclass(frozen=True)
class Summary:
    """Mean negative log-likelihood of the targets over one sequence (one layer / batch row)."""

    coords: dict[str, int]
    count: int
    nll: float
    perplexity: float
    top1_accuracy: float


@dataclass(frozen=True)
class Predictions:
    axes: tuple[str, ...]  # leading axes of ``coords``, e.g. ("layer", "position")
    coords: list[dict[str, int]]  # one per state, in order; positions are the file's own indices
    topk: TopK
    norm_applied: bool
    warnings: tuple[str, ...] = ()  # what the states look like that is not what they were said to be

    def summaries(self) -> list[Summary]:
        t = self.topk.scored_targets
        if t is None:
            return []
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(self.coords):
            key = tuple((a, v) for a, v in c.items() if a != "position")
            groups.setdefault(key, []).append(i)
        out = []
        for key, rows in groups.items():
            rows = [r for r in rows if t.ids[r] >= 0]
            if not rows:
                continue
            nll = float(np.mean(-np.log(np.maximum(t.probs[rows], 1e-300))))
            acc = float(np.mean(t.ranks[rows] == 1))
            out.append(Summary(dict(key), len(rows), nll, math.exp(nll), acc))
        return out


IGNORE_INDEX = -100  # transformers' (and PyTorch's cross-entropy) label for "no target here"


def targets_from_ids(ids: Sequence[int], positions: int, source: str, selected: Sequence[int] | None = None) -> np.ndarray:
    """Next-token ids per position: T of them, or T-1 (the last position then has none), or with
    ``selected`` positions (--positions) one per selected position. -100, the label transformers gives
    positions without a target, leaves that position without one."""
    ids = [int(i) for i in ids]
    negative = [i for i in ids if i < 0 and i != IGNORE_INDEX]
    if negative:
        raise HiddenStateError(
            source,
            f"id {negative[0]} is negative; token ids start at 0",
            hint=f"{IGNORE_INDEX} leaves a position without a target; or give T-1 ids to leave the last one without",
        )
    ids = [-1 if i == IGNORE_INDEX else i for i in ids]
    huge = [i for i in ids if i > np.iinfo(np.int64).max]
    if huge:
        raise HiddenStateError(source, f"id {huge[0]} is larger than any vocabulary")
    if len(ids) == positions - 1:
        ids.append(-1)
    chosen = list(selected) if selected is not None and len(selected) < positions else None
    if len(ids) != positions and chosen is not None and len(ids) == len(chosen):  # one per selected position
        full = np.full(positions, -1, dtype=np.int64)
        full[chosen] = ids
        return full
    if len(ids) != positions:
        expected = f"{positions} or {positions - 1}" + (f", or {len(chosen)}: one per selected position" if chosen else "")
        raise HiddenStateError(source, f"gives {len(ids)} target ids for {positions} positions (expected {expected})")
    return np.asarray(ids, dtype=np.int64)


def check_targets(targets: np.ndarray, head_rows: int, limit: int | None, source: str) -> None:
    """Every target (``-1``: none) must be a head row the softmax ranges over: an id past the head, or in
    its masked padding, has no probability to report, and dropping it would change the perplexity silently."""
    given = targets >= 0  # (T,)
    outside = np.flatnonzero(given & (targets >= head_rows))
    if len(outside):
        i = int(outside[0])
        raise HiddenStateError(
            source,
            f"target id {int(targets[i])} at position {i} is outside the head's {head_rows:,} rows"
            + (f" ({len(outside)} such positions)" if len(outside) > 1 else ""),
        )
    masked = np.flatnonzero(given & (targets >= limit)) if limit is not None else np.zeros(0, dtype=np.int64)
    if limit is not None and len(masked):
        i = int(masked[0])
        raise HiddenStateError(
            source,
            f"target id {int(targets[i])} at position {i} is a padded head row beyond the tokenizer's {limit:,} tokens, "
            "which are masked" + (f" ({len(masked)} such positions)" if len(masked) > 1 else ""),
            hint="--include-padded keeps the padded rows",
        )


def targets_from_text(tokens: Sequence[int], positions: int) -> np.ndarray:
    """Position i's target is token i+1 of the text: T tokens (the last has no target) or T+1."""
    if len(tokens) not in (positions, positions + 1):
        raise TokenizerError(
            "--text",
            f"encodes to {len(tokens)} tokens, but the hidden states have {positions} positions "
            f"(expected {positions} or {positions + 1} tokens)",
        )
    nxt = list(tokens[1:]) + ([-1] if len(tokens) == positions else [])
    return np.asarray(nxt, dtype=np.int64)


def predict(
    ckpt: Checkpoint,
    anatomy: HeadAnatomy,
    hidden: HiddenStates,
    k: int = 10,
    *,
    positions: list[int] | None = None,
    targets: np.ndarray | None = None,
    norm: bool = True,
    last_normed: bool = False,
    vocab_limit: int | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Top-k for every selected state; ``last_normed``: a layer stack whose last entry is already normalised."""
    normed = norm and anatomy.final_norm is not None  # with --no-norm nothing is normalised, --last-normed or not
    values = hidden.values if hidden.values.ndim > 1 else hidden.values[None, :]  # (..., T, d)
    axes = hidden.axes if hidden.axes else ("position",)
    positions = list(range(values.shape[-2])) if positions is None else positions
    values = values[..., positions, :]  # (..., P, d)
    leading = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])  # (N, d)
    flat_targets = None
    if targets is not None:
        flat_targets = np.broadcast_to(targets[positions], leading).reshape(-1)  # same targets for every layer / batch row
    coords = [{a: (positions[i] if a == "position" else i) for a, i in zip(axes, idx, strict=True)} for idx in np.ndindex(*leading)]
    warnings = [*_stack_warnings(ckpt, values, axes)]
    if anatomy.final_norm is not None and not norm:
        warnings += _normed_warnings(ckpt, anatomy, flat, "--no-norm")
    if norm and last_normed and axes[0] == "layer":
        # transformers' output_hidden_states: the final entry is after the final norm already.
        per_layer = flat.reshape(values.shape[0], -1, flat.shape[-1])  # (L, rest, d)
        if anatomy.final_norm is not None:
            warnings += _normed_warnings(ckpt, anatomy, per_layer[-1], "--last-normed")
        per_layer[:-1] = normalise(ckpt, anatomy, per_layer[:-1].reshape(-1, flat.shape[-1])).reshape(per_layer[:-1].shape)
        flat, norm = per_layer.reshape(flat.shape), False
    with np.errstate(over="ignore", invalid="ignore"):  # finite states whose logits overflow float32: checked below
        result = project(
            ckpt, anatomy, flat, k, norm=norm, targets=flat_targets, vocab_limit=vocab_limit, chunk_rows=chunk_rows, progress=progress
        )
    _check_finite_logits(hidden.path, result, coords)
    return Predictions(axes=axes, coords=coords, topk=result, norm_applied=normed, warnings=tuple(warnings))


NORMED_RMS_FACTOR = 3.0  # normalised states are within 0.76-1.01 of their own re-normalised RMS (every family fixture)
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def _normed_warnings(ckpt: Checkpoint, anatomy: HeadAnatomy, given: np.ndarray, flag: str) -> list[str]:
    """States said to be normalised (``flag``) whose RMS is far from what the final norm makes of them:
    raw pre-norm states, most likely (a residual stream's RMS grows far past the norm's output)."""
    rms = _median_rms(given)  # given: (N, d)
    normed = _median_rms(normalise(ckpt, anatomy, given))
    if normed == 0 or 1 / NORMED_RMS_FACTOR <= rms / normed <= NORMED_RMS_FACTOR:
        return []
    return [
        f"states given as already normalised ({flag}) have RMS {rms:.3g}, but the final norm's output from them "
        f"has RMS {normed:.3g}: they look like raw states before the norm (then leave out {flag})"
    ]


def _median_rms(x: np.ndarray) -> float:
    x = x.astype(np.float64)  # (N, d)
    return float(np.median(np.sqrt(np.einsum("nd,nd->n", x, x) / x.shape[-1])))


def _stack_warnings(ckpt: Checkpoint, values: np.ndarray, axes: tuple[str, ...]) -> list[str]:
    """A (B, T, d) file read as a batch whose B is the model's layer count + 1: what
    output_hidden_states stacks (the embeddings, then every layer), so most likely a layer stack."""
    if axes[:1] != ("batch",) or values.ndim != 3:
        return []
    layers = _layer_count(ckpt)
    if layers is None or values.shape[0] != layers + 1:
        return []
    return [
        f"{values.shape[0]} sequences read as a batch, and the model has {layers} layers: "
        f"{layers} + 1 is what output_hidden_states stacks; for a logit lens of every layer add --layers"
    ]


def _layer_count(ckpt: Checkpoint) -> int | None:
    """The config's number of layers (a wrapper's text_config's), or a GGUF's block_count."""
    if ckpt.metadata:
        arch = ckpt.metadata.get("general.architecture")
        count = ckpt.metadata.get(f"{arch}.block_count")
        return count if isinstance(count, int) and not isinstance(count, bool) else None
    config = ckpt.config or {}
    for settings in (config, config.get("text_config"), config.get("llm_config")):
        if not isinstance(settings, dict):
            continue
        for key in LAYER_KEYS:
            count = settings.get(key)
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                return count
    return None


def _check_finite_logits(path: Path, result: TopK, coords: list[dict[str, int]]) -> None:
    """Finite states can still give logits that overflow float32 (|h| ~ 1e38): an error, never inf/NaN ranks with exit 0."""
    bad = ~(np.isfinite(result.logsumexp) & np.isfinite(result.logits).all(axis=1))  # (N,)
    if not bad.any():
        return
    where = ["; ".join(f"{a} {i}" for a, i in coords[n].items()) for n in np.flatnonzero(bad)[:3]]
    more = f" and {int(bad.sum()) - 3} more" if bad.sum() > 3 else ""
    raise HiddenStateError(
        path,
        f"logits are not finite in float32 at {', '.join(where)}{more}",
        hint="the states (after the norm) or the head hold values too large to multiply in float32",
    )
