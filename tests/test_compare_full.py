"""check-tying --full on identical matrices: the statistics of equal bytes, without float64 work per value."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from builders import llama_config, llama_tensors, write_checkpoint
from conftest import run_json


def test_identical_bytes_full_statistics(tmp_path) -> None:
    t = llama_tensors(vocab=300, hidden=16)
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    t["lm_head.weight"][7] = 0.0  # a zero row: cosine 1 by definition when both are zero
    t["model.embed_tokens.weight"][7] = 0.0
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(vocab=300, hidden=16)), "--full")
    c = data["comparison"]
    assert data["values_identical"] is True and c["rows_compared"] == 300
    assert c["max_abs_diff"] == 0.0 and c["identical_rows_fraction"] == 1.0 and c["mean_row_cosine"] == 1.0


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_identical_bytes_with_infinities_are_measured(tmp_path, dtype: str, value: float) -> None:
    """Equal bytes holding inf: the statistics are computed from the values (inf / inf is NaN), not assumed."""
    t = llama_tensors(vocab=40, hidden=8, dtype=getattr(ml_dtypes, dtype) if dtype == "bfloat16" else np.dtype(dtype))
    t["model.embed_tokens.weight"][3, 2] = value
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(vocab=40, hidden=8)), "--full")
    c = data["comparison"]
    assert c["identical_rows_fraction"] == 1.0  # inf == inf
    assert c["mean_row_cosine"] is None  # inf / inf: NaN, written as null
