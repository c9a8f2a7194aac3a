"""The head's math: final norm, projection, logit transforms, top-k and softmax.

The head matrix is streamed in row chunks: each chunk is widened to float32,
multiplied with every state at once and folded into a running top-k and a
running log-sum-exp, so memory is bounded by the chunk, never by V × d, and
probabilities are exact over the whole vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import CheckpointError
from ..model.anatomy import HeadAnatomy
from ..model.conventions import NormKind, TransformKind
from ..model.head_settings import FinalNorm, LogitTransform
from .fold import Fold

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["TopK", "apply_final_norm", "default_chunk_rows", "norm_weight_warnings", "normalise", "project"]

NEAR_ZERO_MEAN = 0.2  # x·w norms trained from 1 stay far from 0; x·(1+w) weights start at 0 and stay near it
FOLD_THREAD_STATES = 256  # from this many states on, chunks are folded in a helper thread
CHUNK_BYTES = 16 * 2**20  # float32 bytes per chunk with many states: fewer, larger matmuls and folds
FEW_STATES = 64  # up to this many states the matmul is memory-bound: smaller chunks stay in cache
FEW_STATES_CHUNK_BYTES = 4 * 2**20  # between widening and the matmul (V = 128256, d = 2048, T = 32: ~20% faster)


@dataclass(frozen=True)
class TopK:
    """Top-k per state vector, with exact probabilities and optional targets."""

    ids: np.ndarray  # (N, k) int64, best first
    logits: np.ndarray  # (N, k) float32
    probs: np.ndarray  # (N, k) float64
    logsumexp: np.ndarray  # (N,) float64
    masked_rows: int = 0  # vocabulary rows excluded (padding)
    target_ids: np.ndarray | None = None  # (N,) int64; -1 where a position has no target
    target_logits: np.ndarray | None = None  # (N,) float32
    target_probs: np.ndarray | None = None  # (N,) float64
    target_ranks: np.ndarray | None = None  # (N,) int64, 1 = top

    @property
    def scored_targets(self) -> TargetScores | None:
        """The four target columns together, or None when no targets were given."""
        if self.target_ids is None or self.target_logits is None or self.target_probs is None or self.target_ranks is None:
            return None
        return TargetScores(self.target_ids, self.target_logits, self.target_probs, self.target_ranks)


@dataclass(frozen=True)
class TargetScores:
    ids: np.ndarray  # (N,) int64; -1 where a position has no target
    logits: np.ndarray  # (N,) float32
    probs: np.ndarray  # (N,) float64
    ranks: np.ndarray  # (N,) int64, 1 = top


def default_chunk_rows(hidden_size: int, states: int, remote: bool = False) -> int:
    """Head rows per chunk: ~4 MiB of float32 for up to ``FEW_STATES`` states, ~16 MiB for more, and
    over hf:// (where each chunk is a ranged request) always ~16 MiB.
    Measured on a 128256 x 2048 bf16 head (in-process, min of 4): T = 1 0.14 s vs 0.23 s,
    T = 16 0.30 vs 0.39, T = 64 0.39 vs 0.47 with the smaller chunks; T = 128 0.91 vs 0.75 and
    T = 2048 7.8 vs 7.2 with the larger ones."""
    chunk_bytes = FEW_STATES_CHUNK_BYTES if states <= FEW_STATES and not remote else CHUNK_BYTES
    return max(64, chunk_bytes // (4 * hidden_size))


def apply_final_norm(x: np.ndarray, norm: FinalNorm, weight: np.ndarray | None, bias: np.ndarray | None) -> np.ndarray:
    """FinalNorm(x) over the last axis, computed in float64 and returned as float32."""
    kind = NormKind(norm.kind)  # an unknown kind fails here, loudly
    if kind is NormKind.NONE:
        return x.astype(np.float32)
    y = x.astype(np.float64)  # (N, d), a copy: every step below works in place on it
    if kind.centred:
        y -= y.mean(axis=-1, keepdims=True)
    mean_square = np.einsum("...d,...d->...", y, y) / y.shape[-1]  # (N,) without an (N, d) temporary
    y /= np.sqrt(mean_square + norm.eps)[..., None]
    if weight is not None and kind.weighted:
        y *= 1.0 + weight if kind.one_plus else weight
    if bias is not None and kind.centred:
        y += bias
    return y.astype(np.float32)


def apply_transforms(logits: np.ndarray, transforms: tuple[LogitTransform, ...]) -> np.ndarray:
    """The architecture's elementwise steps after the matmul, in place."""
    for t in transforms:
        kind = TransformKind(t.kind)
        if kind is TransformKind.SOFTCAP:  # Gemma 2/3: c · tanh(x / c)
            logits /= t.value
            np.tanh(logits, out=logits)
            logits *= t.value
        elif kind is TransformKind.MULTIPLY:  # Cohere: x · logit_scale
            logits *= t.value
        elif kind is TransformKind.DIVIDE:  # Granite: x / logits_scaling
            logits /= t.value
        else:
            raise ValueError(f"{kind} is not applied after the head")
    return logits


def norm_weight_warnings(ckpt: Checkpoint, anatomy: HeadAnatomy) -> list[str]:
    """An x·w norm whose weight averages near 0 is almost certainly an x·(1+w) norm read wrongly."""
    fn = anatomy.final_norm
    if fn is None or fn.weight is None or fn.kind not in (NormKind.RMSNORM, NormKind.LAYERNORM):
        return []
    w = _vector(ckpt, fn.weight, anatomy.hidden_size, "final norm").astype(np.float64)  # (d,)
    mean = float(w.mean())
    if not abs(mean) < NEAR_ZERO_MEAN:
        return []
    one_plus = NormKind.RMSNORM_1P if fn.kind is NormKind.RMSNORM else NormKind.LAYERNORM_1P
    return [
        f"final-norm weight {fn.weight} averages {mean:.3g}, near 0, but {fn.kind} multiplies by it as is: "
        f"this checkpoint almost certainly uses x·(1+w) (try --norm {one_plus})"
    ]


def normalise(ckpt: Checkpoint, anatomy: HeadAnatomy, states: np.ndarray) -> np.ndarray:
    """The checkpoint's final norm applied to ``states`` (N, d); unchanged when it has none."""
    fn = anatomy.recipe.norm
    if fn is None:
        return states.astype(np.float32)
    weight = _vector(ckpt, fn.weight, anatomy.hidden_size, "final norm") if fn.weight else None
    bias = _vector(ckpt, fn.bias, anatomy.hidden_size, "final norm") if fn.bias else None
    return apply_final_norm(states, fn, weight, bias)


def _vector(ckpt: Checkpoint, name: str, size: int, role: str) -> np.ndarray:
    """A 1-D parameter read whole, refused unless it has exactly ``size`` entries (it comes from a stranger)."""
    shape = ckpt.info(name).shape
    if shape != (size,):
        raise CheckpointError(ckpt.path, f"{name} has shape {list(shape)}, but the {role} needs [{size}]")
    return ckpt.read_tensor(name)


def prepare_states(ckpt: Checkpoint, anatomy: HeadAnatomy, states: np.ndarray, norm: bool = True) -> np.ndarray:
    """What the head matmul sees: the recipe's steps before the matrix (FinalNorm(h) unless ``norm``
    is off, the projection, the pre-head scale)."""
    recipe = anatomy.recipe
    x = normalise(ckpt, anatomy, states) if norm else states.astype(np.float32)  # (N, d)
    if recipe.projection is not None:
        x = x @ ckpt.read_tensor(recipe.projection).T  # (N, d) @ (d, p) -> (N, p): OPT's project_out
    if recipe.scale is not None:
        x = x * np.float32(recipe.scale)
    return x


def project(
    ckpt: Checkpoint,
    anatomy: HeadAnatomy,
    states: np.ndarray,
    k: int = 10,
    *,
    norm: bool = True,
    targets: np.ndarray | None = None,
    vocab_limit: int | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TopK:
    """Top-k next-token predictions for each row of ``states`` (N, d)."""
    recipe = anatomy.recipe
    x = prepare_states(ckpt, anatomy, states, norm)  # (N, d)
    matrix = recipe.matrix
    vocab = anatomy.vocab_size
    limit = vocab if vocab_limit is None else min(vocab, vocab_limit)
    k = min(k, limit)
    chunk_rows = chunk_rows or default_chunk_rows(anatomy.hidden_size, len(x), remote=ckpt.remote is not None)
    bias = _vector(ckpt, recipe.bias, vocab, "head bias") if recipe.bias else None  # (V,)
    fold = Fold(len(x), k)
    target_logits = None
    if targets is not None:
        target_logits = _target_logits(ckpt, anatomy, x, targets, limit, bias)
        fold.set_targets(targets, target_logits)

    def finish(start: int, logits: np.ndarray) -> None:  # (C, N): bias, transforms, then into the fold
        if bias is not None:
            logits += bias[start : start + len(logits), None]
        apply_transforms(logits, recipe.transforms)
        fold.add(start, logits)

    xt = x.T  # (d, N), a view
    # With many states, one helper thread folds chunk i while this one multiplies chunk i + 1: the fold's
    # numpy work runs on one core and would leave the other idle between matmuls (T = 2048: about 4%
    # faster). With few states the fold is small, and handing it over costs more than it saves.
    pool = _fold_pool() if len(x) >= FOLD_THREAD_STATES else None
    folding: Future[None] | None = None
    try:
        for start, w in ckpt.row_chunks(matrix, chunk_rows):  # w: (C, d) float32, reused by the next chunk
            if start >= limit:
                break
            w = w[: limit - start]  # drop masked (padding) rows before multiplying
            logits = w @ xt  # (C, d) @ (d, N) -> (C, N): the vocabulary along axis 0, nothing transposed or copied
            if folding is not None:
                folding.result()  # folds stay in order, one at a time
            if pool is None:
                finish(start, logits)
            else:
                folding = pool.submit(finish, start, logits)
            if progress:
                progress(start + len(w), limit)
        if folding is not None:
            folding.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return _topk(fold, targets, target_logits, masked_rows=vocab - limit)


def _fold_pool() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor  # here: few states never start a thread (concurrent.futures: ~7 ms)

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmhead-fold")


def _topk(fold: Fold, targets: np.ndarray | None, target_logits: np.ndarray | None, masked_rows: int) -> TopK:
    ids, vals, lse = fold.result()  # (N, k), (N, k), (N,)
    probs = np.exp(vals.astype(np.float64) - lse[:, None])
    if targets is None or target_logits is None:
        return TopK(ids=ids, logits=vals, probs=probs, logsumexp=lse, masked_rows=masked_rows)
    valid = ~np.isnan(target_logits)
    return TopK(
        ids=ids,
        logits=vals,
        probs=probs,
        logsumexp=lse,
        masked_rows=masked_rows,
        target_ids=np.where(valid, targets, -1),
        target_logits=target_logits,
        target_probs=np.where(valid, np.exp(target_logits.astype(np.float64) - lse), np.nan),
        target_ranks=np.where(valid, fold.t_above + 1, -1),
    )


def _target_logits(
    ckpt: Checkpoint, anatomy: HeadAnatomy, x: np.ndarray, targets: np.ndarray, limit: int, bias: np.ndarray | None
) -> np.ndarray:
    """Each state's logit for its own target, from the target rows alone (NaN where no valid target)."""
    out = np.full(len(x), np.nan, dtype=np.float32)
    valid = np.flatnonzero((targets >= 0) & (targets < limit))
    if not len(valid):
        return out
    ids, inverse = np.unique(targets[valid], return_inverse=True)
    rows = np.stack([ckpt.read_rows(anatomy.recipe.matrix, int(t), int(t) + 1)[0] for t in ids])  # (U, d)
    logits = np.einsum("nd,nd->n", x[valid], rows[inverse])  # (M,)
    if bias is not None:
        logits += bias[targets[valid]]
    out[valid] = apply_transforms(logits.astype(np.float32)[:, None], anatomy.recipe.transforms)[:, 0]
    return out
