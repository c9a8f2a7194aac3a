"""The head as the model computes it, one value: ``locate_head`` assembles it, ``logits.head`` applies
it, and ``render`` describes it, each walking the same steps in the same order.

    logits = transforms( scale · (FinalNorm(h) · Pᵀ) · Wᵀ + b )

with every step optional but the matrix ``W`` (V × d).
"""

from __future__ import annotations

from dataclasses import dataclass

from .head_settings import FinalNorm, LogitTransform

__all__ = ["HeadRecipe"]


@dataclass(frozen=True)
class HeadRecipe:
    """Each field is one step, in the order they run (the transforms last, in their own order)."""

    norm: FinalNorm | None  # FinalNorm(h), over the model's width
    projection: str | None  # (p, d_model) matrix after the norm: h · Pᵀ (OPT-350m's project_out)
    scale: float | None  # h × scale before the head (T5's tied d_model^-0.5, pre-head ratios and divisors)
    matrix: str  # (V, d): the head weight, or the embedding when tied
    bias: str | None  # (V,) added to the logits
    transforms: tuple[LogitTransform, ...] = ()  # elementwise on the logits: softcap, multiply, divide
