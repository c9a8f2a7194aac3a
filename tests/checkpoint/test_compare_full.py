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


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_identical_bytes_with_a_nan_are_measured(tmp_path, dtype: str) -> None:
    """A NaN's exponent bits are all ones, as an infinity's: the bit check must send it to the values too."""
    t = llama_tensors(vocab=40, hidden=8, dtype=getattr(ml_dtypes, dtype) if dtype == "bfloat16" else np.dtype(dtype))
    t["model.embed_tokens.weight"][5, 1] = np.nan
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    data = run_json("check-tying", write_checkpoint(tmp_path / "m", t, llama_config(vocab=40, hidden=8)), "--full")
    assert data["values_identical"] is True  # the same bytes
    assert data["comparison"]["identical_rows_fraction"] == 39 / 40  # NaN != NaN as values: row 5 differs


@pytest.mark.parametrize("memcmp", [True, False])
def test_bytes_equal_agrees_with_numpy(monkeypatch, memcmp: bool) -> None:
    from lmhead_cli.checkpoint import compare

    if not memcmp:  # a platform without a C library to call: numpy's comparison
        monkeypatch.setattr(compare, "_memcmp", lambda: None)
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 8, 4097, 2**20 + 3):
        x = rng.integers(0, 256, size, dtype=np.uint8)
        y = x.copy()
        assert compare.bytes_equal(x, y)
        for where in {0, size // 2, size - 1} if size else set():
            z = x.copy()
            z[where] ^= 1
            assert not compare.bytes_equal(x, z) and not compare.bytes_equal(z, x)
    assert not compare.bytes_equal(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    strided = np.arange(20, dtype=np.uint8)[::2]  # not contiguous: numpy compares it
    assert compare.bytes_equal(strided, strided.copy()) and not compare.bytes_equal(strided, strided[::-1].copy())


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_finite_bits_on_every_16_bit_pattern(dtype: str) -> None:
    """The two-reduction bit test against numpy's isfinite, one pattern at a time, all 65,536."""
    from lmhead_cli.checkpoint.compare import _finite_bits
    from lmhead_cli.formats.base import TensorInfo

    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    values = (bits.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else bits.view(np.float16)
    info = TensorInfo("w", (1, 1), dtype, 2, None, 0)
    got = np.array([_finite_bits(info, bits[i : i + 1].view(np.uint8)) for i in range(len(bits))])
    assert (got == np.isfinite(values)).all()
    assert _finite_bits(info, bits[np.isfinite(values)].view(np.uint8))  # all finite together
    assert not _finite_bits(info, bits.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_bits_on_wide_specials(dtype) -> None:
    from lmhead_cli.checkpoint.compare import _finite_bits
    from lmhead_cli.formats.base import TensorInfo

    info = TensorInfo("w", (1, 1), "F32" if dtype is np.float32 else "F64", 1, None, 0)
    finite = np.array([0.0, -0.0, 1.0, -1.0, np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny], dtype=dtype)
    assert _finite_bits(info, finite.view(np.uint8))
    for special in (np.inf, -np.inf, np.nan, -np.nan):
        assert not _finite_bits(info, np.append(finite, dtype(special)).view(np.uint8)), special
