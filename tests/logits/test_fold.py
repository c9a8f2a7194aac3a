"""The streamed top-k / log-sum-exp / rank fold against a brute-force numpy reference over the whole vocabulary.

Logits with many ties (small integers) make the order among equal values matter: the reference ranks by value
descending, then id ascending, which is the order lmhead promises.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhead_cli import load_hidden, locate_head, open_checkpoint, predict
from lmhead_cli.logits.fold import Fold

from builders import llama_config, llama_tensors, write_checkpoint


def brute_force(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """logits (N, V) -> ids (N, k), values (N, k), log-sum-exp (N,) over the whole row at once."""
    v = logits.shape[1]
    ids = np.empty((len(logits), k), dtype=np.int64)
    for i, row in enumerate(logits):
        ids[i] = np.lexsort((np.arange(v), -row))[:k]
    wide = logits.astype(np.float64)
    top = wide.max(axis=1)
    lse = top + np.log(np.exp(wide - top[:, None]).sum(axis=1))
    return ids, np.take_along_axis(logits, ids, axis=1), lse


def fold_in_chunks(logits: np.ndarray, k: int, chunk: int, targets: np.ndarray | None = None) -> Fold:
    fold = Fold(len(logits), k)
    if targets is not None:
        fold.set_targets(targets, np.where(targets >= 0, logits[np.arange(len(logits)), np.maximum(targets, 0)], np.nan))
    for start in range(0, logits.shape[1], chunk):
        fold.add(start, logits[:, start : start + chunk].T.copy())  # (C, N), as the head gives it; a copy: add overwrites it
    return fold


def check(logits: np.ndarray, k: int, chunk: int) -> None:
    ids, vals, lse = fold_in_chunks(logits, k, chunk).result()
    want_ids, want_vals, want_lse = brute_force(logits, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(vals, want_vals)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 16, 50, 1000])
@pytest.mark.parametrize("k", [1, 4, 5, 60])
def test_ties_everywhere(chunk: int, k: int) -> None:
    """Integer logits in [-2, 2]: every top-k boundary is a tie; the lower id must win."""
    logits = np.random.default_rng(chunk * 100 + k).integers(-2, 3, size=(6, 60)).astype(np.float32)
    check(logits, k, chunk)


@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_all_equal(chunk: int) -> None:
    check(np.zeros((3, 64), dtype=np.float32), 5, chunk)


@pytest.mark.parametrize("chunk", [1, 7, 32, 100])
def test_rising_and_falling_logits(chunk: int) -> None:
    """Rising with the id: every chunk beats the threshold everywhere (the merge must stay bounded and right)."""
    rising = np.tile(np.arange(300, dtype=np.float32), (4, 1))
    check(rising, 10, chunk)
    check(rising[:, ::-1].copy(), 10, chunk)


def test_k_equals_vocabulary() -> None:
    logits = np.random.default_rng(0).integers(-3, 3, size=(5, 12)).astype(np.float32)
    for chunk in (1, 5, 12, 20):
        check(logits, 12, chunk)


def test_infinite_logits() -> None:
    logits = np.random.default_rng(1).normal(size=(3, 40)).astype(np.float32)
    logits[:, 5:30] = -np.inf  # a mask
    for chunk in (1, 6, 40):
        check(logits, 20, chunk)  # more -inf than finite in the top 20: ids break the ties


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 6),
    v=st.integers(1, 90),
    k=st.integers(1, 12),
    chunk=st.integers(1, 40),
    spread=st.sampled_from([1, 3, 1000]),
)
def test_random_against_brute_force(seed: int, n: int, v: int, k: int, chunk: int, spread: int) -> None:
    logits = np.random.default_rng(seed).integers(-spread, spread + 1, size=(n, v)).astype(np.float32)
    check(logits, min(k, v), chunk)


def test_target_ranks_count_strictly_greater() -> None:
    logits = np.random.default_rng(2).integers(-2, 3, size=(8, 50)).astype(np.float32)
    targets = np.array([0, 49, 7, -1, 20, 20, 33, 1])
    fold = fold_in_chunks(logits, 3, 9, targets)
    for i, t in enumerate(targets):
        if t >= 0:
            assert fold.t_above[i] == np.count_nonzero(logits[i] > logits[i, t])


def test_topk_command_path_matches_brute_force(tmp_path) -> None:
    """Through open_checkpoint / predict: integer weights and states make every logit exact whatever the chunking."""
    rng = np.random.default_rng(5)
    tensors = llama_tensors(vocab=96, hidden=8)
    tensors["lm_head.weight"] = rng.integers(-1, 2, size=(96, 8)).astype(np.float32)  # many tied logits
    folder = write_checkpoint(tmp_path / "m", tensors, llama_config(vocab=96, hidden=8))
    states = rng.integers(-2, 3, size=(7, 8)).astype(np.float32)
    np.save(tmp_path / "h.npy", states)
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        hidden = load_hidden(tmp_path / "h.npy", 8)
        logits = states @ tensors["lm_head.weight"].T  # --no-norm: exact small integers
        want_ids, want_vals, want_lse = brute_force(logits, 9)
        for chunk in (1, 8, 9, 10, 33, 96):
            got = predict(ckpt, anatomy, hidden, 9, norm=False, chunk_rows=chunk).topk
            np.testing.assert_array_equal(got.ids, want_ids)
            np.testing.assert_array_equal(got.logits, want_vals)
            np.testing.assert_allclose(got.logsumexp, want_lse, rtol=1e-6)


@pytest.mark.parametrize("threaded", [True, False])
def test_many_states_folded_in_a_helper_thread_match_brute_force(tmp_path, monkeypatch, threaded: bool) -> None:
    """From FOLD_THREAD_STATES states on, chunks are folded in a second thread, in order: the same
    answer, targets and bias included."""
    from lmhead_cli.logits import head

    monkeypatch.setattr(head, "FOLD_THREAD_STATES", 1 if threaded else 10**9)
    rng = np.random.default_rng(6)
    tensors = llama_tensors(vocab=200, hidden=8)
    tensors["lm_head.weight"] = rng.integers(-2, 3, size=(200, 8)).astype(np.float32)
    folder = write_checkpoint(tmp_path / "m", tensors, llama_config(vocab=200, hidden=8))
    states = rng.integers(-2, 3, size=(300, 8)).astype(np.float32)
    targets = rng.integers(0, 200, size=300)
    logits = states @ tensors["lm_head.weight"].T  # (300, 200), exact small integers
    want_ids, want_vals, want_lse = brute_force(logits, 5)
    with open_checkpoint(folder) as ckpt:
        anatomy = locate_head(ckpt)
        for chunk in (7, 64, 200):
            got = head.project(ckpt, anatomy, states, 5, norm=False, targets=targets, chunk_rows=chunk)
            np.testing.assert_array_equal(got.ids, want_ids)
            np.testing.assert_array_equal(got.logits, want_vals)
            np.testing.assert_allclose(got.logsumexp, want_lse, rtol=1e-6)
            np.testing.assert_array_equal(got.target_ranks, (logits > logits[np.arange(300), targets][:, None]).sum(axis=1) + 1)
