"""The settings of the head's math: the final norm (kind, epsilon) and the logit transforms, read
from the architecture table and the config and validated, and the user's overrides of them.

``anatomy.locate_head`` decides which tensors play which role; this module decides what the math
does with them. An unusable value (NaN, infinite, negative) is bad input, or one of doctor's problems.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import AnatomyError
from .conventions import EPS_KEYS, NORM_PATTERNS, Convention, NormKind, TransformKind

__all__ = [
    "FinalNorm",
    "LogitTransform",
    "Overrides",
    "final_norm",
    "last_norm_weight",
    "logit_transforms",
    "override_norm",
    "override_transforms",
]


@dataclass(frozen=True)
class Overrides:
    """What the user set on the command line in place of the table (--norm, --eps, --logit-scale, --softcap)."""

    norm: NormKind | None = None
    eps: float | None = None
    logit_scale: float | None = None  # multiply the logits; replaces the table's multiply / divide
    softcap: float | None = None  # c · tanh(x / c); 0 turns the table's softcap off

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (("norm", self.norm), ("eps", self.eps), ("logit_scale", self.logit_scale), ("softcap", self.softcap))
            if v is not None
        }


@dataclass(frozen=True)
class FinalNorm:
    kind: NormKind
    eps: float
    weight: str | None  # tensor names; None when the norm has no such parameter
    bias: str | None
    eps_source: str


@dataclass(frozen=True)
class LogitTransform:
    kind: TransformKind
    value: float
    source: str


def override_norm(ckpt: Checkpoint, norm: FinalNorm | None, o: Overrides, hidden: int, explain: dict[str, str]) -> FinalNorm | None:
    """The located norm with the user's --norm kind and --eps; --norm none drops it."""
    if o.norm is NormKind.NONE:
        explain["final_norm"] = "none (--norm none)"
        return None
    if o.norm is None and o.eps is None:
        return norm
    if norm is None:
        if o.norm is None:
            return None  # --eps alone, and no norm to apply it to
        weight = last_norm_weight(ckpt.tensors, hidden)
        if weight is None and o.norm.weighted:
            raise AnatomyError(ckpt.path, f"--norm {o.norm}: no final-norm weight found", hint="check the tensor list with --explain")
        bias = weight[: -len(".weight")] + ".bias" if weight else None
        norm = FinalNorm(NormKind(o.norm), 1e-5, weight, bias if bias in ckpt.tensors else None, "default 1e-05 (no eps known)")
        explain["final_norm"] = f"{weight}: name pattern (--norm {o.norm})"
    kind, eps, source = norm.kind, norm.eps, norm.eps_source
    if o.norm is not None:
        kind = o.norm
        explain["norm_kind"] = f"{kind}: --norm"
    if o.eps is not None:
        eps, source = o.eps, f"--eps {o.eps:g}"
        explain["eps"] = source
    bias = norm.bias if kind.centred else None
    return FinalNorm(kind=kind, eps=eps, weight=norm.weight, bias=bias, eps_source=source)


def override_transforms(transforms: tuple[LogitTransform, ...], o: Overrides, explain: dict[str, str]) -> tuple[LogitTransform, ...]:
    out = list(transforms)
    if o.logit_scale is not None:
        out = [t for t in out if t.kind not in (TransformKind.MULTIPLY, TransformKind.DIVIDE)]
        if o.logit_scale != 1.0:
            out.append(LogitTransform(TransformKind.MULTIPLY, o.logit_scale, f"--logit-scale {o.logit_scale:g}"))
        explain["transform:multiply"] = f"--logit-scale {o.logit_scale:g}"
    if o.softcap is not None:
        out = [t for t in out if t.kind != TransformKind.SOFTCAP]
        if o.softcap != 0:
            out.insert(0, LogitTransform(TransformKind.SOFTCAP, o.softcap, f"--softcap {o.softcap:g}"))
        explain["transform:softcap"] = f"--softcap {o.softcap:g}" + (" (off)" if o.softcap == 0 else "")
    return tuple(out)


def final_norm(
    ckpt: Checkpoint,
    conv: Convention | None,
    hidden: int,
    explain: dict[str, str],
    config: dict[str, Any] | None,
    where: str = "config",
    bad: list[str] | None = None,
) -> FinalNorm | None:
    names = ckpt.tensors
    config = config or {}
    weight = bias = None
    if conv and not conv.final_norm:
        explain["final_norm"] = f"none ({conv.family}'s last block feeds the head)"
        return None
    if conv:
        for module in conv.final_norm:
            if module + ".weight" in names or module + ".bias" in names:
                weight = module + ".weight" if module + ".weight" in names else None
                bias = module + ".bias" if module + ".bias" in names else None
                explain["final_norm"] = f"{module}: architecture table"
                break
        else:
            if not conv.parameterless_norm:  # e.g. OPT-350m: do_layer_norm_before=False, no final norm
                explain["final_norm"] = f"none ({conv.final_norm[0]} is not stored)"
                return None
            explain["final_norm"] = f"{conv.final_norm[0]}: architecture table (a norm without parameters)"
        kind = conv.norm
        eps, eps_source = _eps(config, conv.eps_keys, conv.eps_default, conv.family, where, bad)
    else:
        weight = last_norm_weight(names, hidden)
        if weight is None:
            explain["final_norm"] = "not found"
            return None
        bias_name = weight[: -len(".weight")] + ".bias"
        bias = bias_name if bias_name in names else None
        kind = NormKind.LAYERNORM if bias else NormKind.RMSNORM
        explain["final_norm"] = f"{weight}: name pattern; {kind} guessed from {'a bias' if bias else 'no bias'}"
        eps, eps_source = _eps(config, EPS_KEYS, 1e-5, None, where, bad)
    explain["eps"] = eps_source
    return FinalNorm(kind=kind, eps=eps, weight=weight, bias=bias, eps_source=eps_source)


def last_norm_weight(names: dict, hidden: int) -> str | None:
    found = [
        n
        for n, info in names.items()
        if info.shape == (hidden,) and any(re.search(p, n) for p in NORM_PATTERNS) and not re.search(r"\.\d+\.", n)
    ]
    return found[-1] if found else None


FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def _number(value: Any) -> float | None:
    """A config value as a float (None when it is not a number); 10**400 becomes inf, never an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _bad_eps(value: float) -> str | None:
    if math.isnan(value) or value < 0:  # the norm would divide by the square root of a negative
        return "must be ≥ 0"
    if value > FLOAT32_MAX:
        return "must be finite"
    return None


def _bad_transform(kind: str, value: float) -> str | None:
    """softcap c·tanh(x/c), scale x·s and divide x/s each need a positive, finite float32."""
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        return "must be finite"
    if value < 0:
        return "must be positive" + (" (a negative scale would reverse the ranking)" if kind != TransformKind.SOFTCAP else "")
    if value < FLOAT32_TINY:
        multiplies = kind in (TransformKind.MULTIPLY, TransformKind.PRE_MULTIPLY, TransformKind.PRE_WIDTH_RATIO)
        return f"is too small to {'scale by' if multiplies else 'divide by'} in float32"
    return None


def _eps(
    config: dict[str, Any], keys: tuple[str, ...], default: float, family: str | None, where: str = "config", bad: list[str] | None = None
) -> tuple[float, str]:
    """The norm's epsilon from the first key present; an unusable value is recorded in ``bad`` (or raised) and skipped."""
    for key in keys:
        if config.get(key) is None:  # absent (or null): the next key, or the default
            continue
        value = _number(config[key])
        why = "not a number" if value is None else _bad_eps(value)
        if value is not None and why is None:
            return value, f"{where} {key}={config[key]}"
        problem = f"{where} {key}={_shown(config[key])} is not a valid epsilon ({why})"
        if bad is None:
            raise AnatomyError(None, problem)
        bad.append(problem)  # doctor: a problem; the default stands in, and the source says so
        return default, f"{where} {key}={_shown(config[key])} is unusable; {default:g} in its place"
    if family:
        reason = f"{keys[0]} absent" if keys else "fixed in code"
        return default, f"{family} default {default} ({reason})"
    return default, f"default {default} (no eps key in {where})"


def _shown(value: Any) -> str:
    """A config number as the user wrote it, without printing all 400 digits of 10**400."""
    text = json.dumps(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 24 else f"{text[:8]}…({len(text)} digits)"


def logit_transforms(
    config: dict[str, Any] | None,
    conv: Convention | None,
    explain: dict[str, str],
    where: str = "config",
    bad: list[str] | None = None,
    zero_is_off: bool = False,
) -> tuple[LogitTransform, ...]:
    """The architecture's logit transforms with their values; 0 means "off" only where llama.cpp reads it so (GGUF).

    transformers applies a config's value whenever it is not None, so a 0 there is unusable (a division by 0, or every
    logit multiplied to 0): bad input, never silently dropped."""
    out: list[LogitTransform] = []
    if conv is None:
        return ()
    for t in conv.transforms:
        raw = (config or {}).get(t.key, t.default)
        value = _number(raw)
        if value is None and raw is not None:  # a string, a list: transformers would fail on it
            problem = f"{where} {t.key}={_shown(raw)} is not a valid {t.kind.noun} (not a number)"
            if bad is None:
                raise AnatomyError(None, problem)
            bad.append(problem)
            continue
        if value is None:
            continue
        if t.kind != TransformKind.SOFTCAP and value == 1.0:
            continue
        if value == 0 and zero_is_off:  # llama.cpp reads 0 as "off"
            continue
        why = _bad_transform(t.kind, value)
        if why is not None:
            problem = f"{where} {t.key}={_shown(raw)} is not a valid {t.kind.noun} ({why})"
            if bad is None:
                raise AnatomyError(None, problem)
            bad.append(problem)
            continue
        source = f"{where} {t.key}={raw}" if t.key in (config or {}) else f"{conv.family} default {t.key}={raw}"
        out.append(LogitTransform(kind=t.kind, value=value, source=source))
        explain[f"transform:{t.kind}"] = source
    return tuple(out)
