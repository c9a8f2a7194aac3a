"""One streamed pass over the vocabulary: running top-k, log-sum-exp and target ranks.

Chunks of logits arrive as (C, N): C vocabulary rows (ids ``start .. start+C-1``)
by N states, the layout ``w @ x.T`` produces, so nothing is transposed or copied.
Per state the fold keeps its k best (value descending, id ascending: among equal
logits the lower id ranks first) and the k-th best value as a threshold. Chunks
arrive in id order, so a later logit enters only if it is strictly above the
threshold; after the first chunks almost nothing is, and only those few
candidates are merged. The running maximum needed by the log-sum-exp is the
best of the top-k, so the sum of exponentials is folded in the same pass,
in place, and memory stays bounded by the chunk.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Fold"]

NO_ID = np.iinfo(np.int64).max  # an empty top-k slot: loses every comparison with a real id
SUM_BLOCK = 64  # rows summed in float32 before the float64 accumulation (error ~64·eps, not C·eps)


class Fold:
    """Running top-k, log-sum-exp and target ranks for ``n`` states over vocabulary chunks."""

    def __init__(self, n: int, k: int):
        self.n, self.k = n, k
        self.vals = np.full((n, k), -np.inf, dtype=np.float32)  # (N, k) best first
        self.ids = np.full((n, k), NO_ID, dtype=np.int64)  # (N, k)
        self.filled = 0  # vocabulary rows seen; the top-k is full once this reaches k
        self.max = np.full(n, -np.inf)  # (N,) float64: the maximum the running sum is scaled by
        self.sum = np.zeros(n)  # (N,) float64: sum of exp(logit - max)
        self.targets: np.ndarray | None = None

    def set_targets(self, targets: np.ndarray, logits: np.ndarray) -> None:
        """Each state's target id (-1: none) and its logit (NaN where none); ranks count logits strictly above it."""
        self.targets = np.asarray(targets, dtype=np.int64)  # (N,)
        self.t_logit = np.asarray(logits, dtype=np.float32)  # (N,)
        self.t_above = np.zeros(len(targets), dtype=np.int64)  # (N,)

    def add(self, start: int, logits: np.ndarray) -> None:
        """Fold ``logits`` (C, N) of ids ``start .. start+C-1``. The array is used as scratch space (overwritten)."""
        self._fold_topk(start, logits)
        if self.targets is not None:
            self._fold_targets(start, logits)
        self._fold_lse(logits)  # last: turns ``logits`` into exponentials in place
        self.filled += len(logits)

    # ------------------------------------------------------------------ top-k

    def _fold_topk(self, start: int, logits: np.ndarray) -> None:
        c, k = logits.shape[0], self.k
        if self.filled >= k:
            threshold = self.vals[:, k - 1]  # (N,) a later id must beat the k-th best strictly
            mask = logits > threshold  # (C, N)
            if np.count_nonzero(mask) > 2 * k * self.n and c > k:  # e.g. logits rising with the id: bound the merge
                mask &= logits >= _kth_largest(logits, k)
        elif c > k:  # the first chunk: its own k best per state (ties at the k-th value all kept)
            mask = logits >= _kth_largest(logits, k)
        else:
            mask = np.ones(logits.shape, dtype=bool)
        flat = np.flatnonzero(mask)  # candidates, as flat indices: a 2-D np.nonzero costs ~15x more
        if len(flat):
            rows, cols = np.divmod(flat, logits.shape[1])  # (row, state) pairs
            self._merge(cols, rows + start, logits.reshape(-1)[flat])

    def _merge(self, states: np.ndarray, ids: np.ndarray, vals: np.ndarray) -> None:
        """Merge candidates into the top-k of the states they belong to: sort by (state, value desc, id asc), keep k each."""
        k = self.k
        touched = np.flatnonzero(np.bincount(states, minlength=self.n))  # (S,) sorted (np.unique would import numpy.ma)
        all_states = np.concatenate([np.repeat(touched, k), states])
        all_vals = np.concatenate([self.vals[touched].reshape(-1), vals])
        all_ids = np.concatenate([self.ids[touched].reshape(-1), ids])
        order = np.lexsort((all_ids, -all_vals, all_states))  # NaN sorts last: it never displaces a number
        first = np.searchsorted(all_states[order], touched)  # (S,) where each state's run begins
        keep = order[(first[:, None] + np.arange(k)).reshape(-1)]  # every run holds at least its k old entries
        self.vals[touched] = all_vals[keep].reshape(-1, k)
        self.ids[touched] = all_ids[keep].reshape(-1, k)

    # ------------------------------------------------------------------ ranks

    def _fold_targets(self, start: int, logits: np.ndarray) -> None:
        assert self.targets is not None
        self.t_above += np.count_nonzero(logits > self.t_logit, axis=0)  # (N,); NaN targets compare False
        own = np.flatnonzero((self.targets >= start) & (self.targets < start + len(logits)))
        if len(own):  # the target's own logit, computed in the matmul, may round above the separately computed one
            self.t_above[own] -= logits[self.targets[own] - start, own] > self.t_logit[own]

    # ------------------------------------------------------------------ log-sum-exp

    def _fold_lse(self, logits: np.ndarray) -> None:
        new_max = np.maximum(self.max, self.vals[:, 0].astype(np.float64))  # the top-1 is the maximum seen so far
        logits -= new_max.astype(np.float32)  # (C, N), in place
        np.exp(logits, out=logits)
        self.sum = self.sum * np.exp(self.max - new_max) + _column_sums(logits)
        self.max = new_max

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids (N, k) best first, logits (N, k), log-sum-exp (N,) float64)."""
        return self.ids.copy(), self.vals.copy(), self.max + np.log(self.sum)


def _kth_largest(logits: np.ndarray, k: int) -> np.ndarray:
    """(N,) the k-th largest value of each column of (C, N), C > k."""
    c = logits.shape[0]
    return np.partition(logits, c - k, axis=0)[c - k]


def _column_sums(values: np.ndarray) -> np.ndarray:
    """(C, N) -> (N,) float64: blocks of rows summed in float32, the partial sums in float64."""
    c = values.shape[0]
    whole = c - c % SUM_BLOCK
    total = np.zeros(values.shape[1])
    if whole:
        partial = values[:whole].reshape(-1, SUM_BLOCK, values.shape[1]).sum(axis=1)  # (C/64, N) float32
        total += partial.sum(axis=0, dtype=np.float64)
    if whole < c:
        total += values[whole:].sum(axis=0, dtype=np.float64)
    return total
