"""Floats numpy has no type for (bfloat16, the float8 kinds), stored as raw bits and widened to float32 exactly.

Stored tensors of these kinds are viewed as unsigned integers of their width
(``STORAGE``) and widened by ``to_float32``:

- bfloat16 is the high half of a float32, so shifting its 16 bits into the top of
  a uint32 gives the float32 bit for bit (NaN payloads included);
- a float8 has 256 values, so a 256-entry table, computed here from each kind's
  exponent width, bias and special-value rule, decodes it.

This replaces ml_dtypes, whose import alone takes 0.65 s (0.7.0): lmhead reads
these types, it never computes in them. The tables are checked against
ml_dtypes in tests/test_dtypes.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = ["FLOAT8", "NARROW_FLOATS", "STORAGE", "Float8", "Special", "float8_table", "to_float32"]


class Special(enum.Enum):
    """Which bit patterns of a float8 kind are not plain numbers."""

    IEEE = "ieee"  # exponent all ones: infinity (mantissa 0) or NaN (E5M2)
    NAN_ALL_ONES = "nan-all-ones"  # no infinities; only exponent and mantissa all ones is NaN (E4M3FN, E8M0FNU)
    NAN_NEGATIVE_ZERO = "nan-negative-zero"  # no infinities, no -0: the -0 pattern 0x80 is the one NaN (the FNUZ kinds)


@dataclass(frozen=True)
class Float8:
    """An 8-bit float: sign (if any), ``exponent_bits`` of exponent with ``bias``, the rest mantissa."""

    name: str
    exponent_bits: int
    bias: int
    special: Special
    signed: bool = True
    subnormals: bool = True  # exponent 0 means 0.m × 2^(1-bias); without them (E8M0) it is 2^-bias

    @property
    def mantissa_bits(self) -> int:
        return 8 - int(self.signed) - self.exponent_bits


# The kinds safetensors files carry (its dtype names), as defined by the OCP 8-bit float spec and ml_dtypes.
FLOAT8: dict[str, Float8] = {
    "F8_E4M3": Float8("float8_e4m3fn", 4, 7, Special.NAN_ALL_ONES),
    "F8_E5M2": Float8("float8_e5m2", 5, 15, Special.IEEE),
    "F8_E4M3FNUZ": Float8("float8_e4m3fnuz", 4, 8, Special.NAN_NEGATIVE_ZERO),
    "F8_E5M2FNUZ": Float8("float8_e5m2fnuz", 5, 16, Special.NAN_NEGATIVE_ZERO),
    "F8_E8M0": Float8("float8_e8m0fnu", 8, 127, Special.NAN_ALL_ONES, signed=False, subnormals=False),
}

# dtype name -> the numpy dtype its stored bits are viewed as
STORAGE: dict[str, np.dtype] = {"BF16": np.dtype("<u2"), **{name: np.dtype("u1") for name in FLOAT8}}
NARROW_FLOATS = frozenset(STORAGE)


@cache
def float8_table(kind: str) -> np.ndarray:
    """The 256 float32 values of float8 ``kind``, indexed by its bit pattern."""
    f = FLOAT8[kind]
    code = np.arange(256)  # (256,)
    body = code & 0x7F if f.signed else code
    sign = np.where(code & 0x80, -1.0, 1.0) if f.signed else np.ones(256)
    exponent = body >> f.mantissa_bits
    mantissa = body & ((1 << f.mantissa_bits) - 1)
    fraction = mantissa / 2.0**f.mantissa_bits
    with np.errstate(over="ignore"):
        value = (1.0 + fraction) * np.exp2(exponent - f.bias)
    if f.subnormals:
        value = np.where(exponent == 0, fraction * 2.0 ** (1 - f.bias), value)
    value = sign * value  # sign × 0 keeps -0.0
    top = exponent == (1 << f.exponent_bits) - 1
    all_ones = mantissa == (1 << f.mantissa_bits) - 1
    if f.special is Special.IEEE:
        value = np.where(top & (mantissa == 0), sign * np.inf, value)
        value = np.where(top & (mantissa != 0), np.nan, value)
    elif f.special is Special.NAN_ALL_ONES:
        value = np.where(top & all_ones, np.nan, value)
    else:
        value = np.where(code == 0x80, np.nan, value)
    table = value.astype(np.float32)  # every float8 value is a float32 exactly
    table.flags.writeable = False
    return table


def to_float32(raw: np.ndarray, kind: str) -> np.ndarray:
    """Stored bits of ``kind`` (viewed as ``STORAGE[kind]``) -> float32 of the same shape, exactly."""
    if kind == "BF16":
        out = np.empty(raw.shape, dtype=np.uint32)
        np.copyto(out, raw, casting="unsafe")  # (…) uint16 -> uint32, zero-extended
        out <<= 16  # bf16 bits are the high half of the float32
        return out.view(np.float32)
    return float8_table(kind)[raw]
