"""bfloat16 and float8 widening against ml_dtypes (the reference), bit for bit, over every code."""

from __future__ import annotations

import numpy as np
import pytest

from lmhead_cli.core.dtypes import FLOAT8, STORAGE, float8_table, to_float32

ml_dtypes = pytest.importorskip("ml_dtypes")


def same_floats(ours: np.ndarray, reference: np.ndarray) -> None:
    """Equal bits everywhere, except that any NaN matches any NaN."""
    assert ours.dtype == np.float32 and reference.dtype == np.float32
    nan = np.isnan(reference)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours.view(np.uint32)[~nan], reference.view(np.uint32)[~nan])


@pytest.mark.parametrize("kind", sorted(FLOAT8))
def test_float8_table_matches_ml_dtypes(kind: str) -> None:
    codes = np.arange(256, dtype=np.uint8)
    reference = codes.view(getattr(ml_dtypes, FLOAT8[kind].name)).astype(np.float32)
    same_floats(float8_table(kind), reference)
    same_floats(to_float32(codes.reshape(16, 16), kind).reshape(-1), reference)


@pytest.mark.parametrize(
    "kind, code, value",
    [
        ("F8_E4M3", 0x7E, 448.0),  # the largest E4M3FN
        ("F8_E4M3", 0x80, -0.0),
        ("F8_E4M3", 0x01, 2.0**-9),  # smallest subnormal
        ("F8_E5M2", 0x7C, np.inf),
        ("F8_E5M2", 0xFC, -np.inf),
        ("F8_E4M3FNUZ", 0x7F, 240.0),
        ("F8_E5M2FNUZ", 0x7F, 57344.0),
        ("F8_E8M0", 0x00, 2.0**-127),
        ("F8_E8M0", 0x7F, 1.0),
        ("F8_E8M0", 0xFE, 2.0**127),
    ],
)
def test_float8_landmarks(kind: str, code: int, value: float) -> None:
    got = float8_table(kind)[code]
    assert got == value and np.signbit(got) == np.signbit(value)


def test_bf16_every_code_matches_ml_dtypes() -> None:
    codes = np.arange(2**16, dtype=np.uint16)
    reference = codes.view(ml_dtypes.bfloat16).astype(np.float32)
    same_floats(to_float32(codes, "BF16"), reference)
    assert to_float32(codes.reshape(256, 256), "BF16").shape == (256, 256)


def test_bf16_from_a_strided_view() -> None:
    """Rows of a mapped window are views; widening must read them through their strides."""
    values = np.linspace(-3, 3, 60, dtype=np.float32).reshape(6, 10)
    stored = values.astype(ml_dtypes.bfloat16).view(np.uint16)
    same_floats(to_float32(stored[::2, 1:7], "BF16"), stored[::2, 1:7].view(ml_dtypes.bfloat16).astype(np.float32))


def test_storage_widths() -> None:
    assert STORAGE["BF16"].itemsize == 2
    assert all(STORAGE[k].itemsize == 1 for k in FLOAT8)


ML_NAMES = {"BF16": "bfloat16", **{k: f.name for k, f in FLOAT8.items()}}


@pytest.mark.parametrize("kind", sorted(ML_NAMES))
def test_checkpoint_rows_and_columns_widen_like_ml_dtypes(tmp_path, kind: str) -> None:
    """A head stored as ``kind``: rows and columns read as float32 equal ml_dtypes' conversion."""
    from safetensors.numpy import save_file

    from lmhead_cli import open_checkpoint

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**16 if kind == "BF16" else 256, size=(40, 24)).astype(STORAGE[kind])
    ml_type = getattr(ml_dtypes, ML_NAMES[kind])
    save_file({"w": bits.view(ml_type)}, tmp_path / "model.safetensors")
    reference = bits.view(ml_type).astype(np.float32)
    with open_checkpoint(tmp_path / "model.safetensors") as ckpt:
        assert ckpt.info("w").dtype == kind
        same_floats(ckpt.read_rows("w", 3, 17).reshape(-1), reference[3:17].reshape(-1))
        same_floats(np.ascontiguousarray(ckpt.read_cols("w", 5, 9)).reshape(-1), reference[:, 5:9].reshape(-1))


@pytest.mark.parametrize("kind", ["BF16", "F8_E4M3", "F8_E5M2"])
def test_hidden_states_in_narrow_floats(tmp_path, kind: str) -> None:
    from safetensors.numpy import save_file

    from lmhead_cli import load_hidden

    values = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    stored = values.astype(getattr(ml_dtypes, ML_NAMES[kind]))
    save_file({"h": stored}, tmp_path / "h.safetensors")
    loaded = load_hidden(tmp_path / "h.safetensors", 8)
    assert loaded.values.dtype == np.float32 and loaded.values.shape == (5, 8)
    same_floats(loaded.values.reshape(-1), stored.astype(np.float32).reshape(-1))
