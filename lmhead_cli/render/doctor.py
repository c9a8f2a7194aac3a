"""``lmhead doctor``: one report, one verdict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from ..analyses.doctor import DoctorReport
from ..checkpoint.checkpoint import Checkpoint
from . import Text, human_bytes, percent
from .census import census_json
from .explain import explain_json
from .tying import tying_dict
from .undertrained import tokens_doctor_json, tokens_summary


def doctor_json(ckpt: Checkpoint, r: DoctorReport) -> dict[str, Any]:
    return {
        "checkpoint": ckpt.shown,
        "healthy": r.healthy,
        "problems": [p.message for p in r.problems],
        "problem_kinds": [p.kind.value for p in r.problems],
        "notes": r.notes,
        "warnings": r.warnings,
        "verified": r.anatomy.verified,
        "counts": census_json(ckpt, r.anatomy, r.census),
        "tying": tying_dict(r.tying),
        "vocabulary": {**asdict(r.vocabulary), "problems": [p.message for p in r.vocabulary.problems]},
        "head": _head_json(r),
        "explain": explain_json(r.anatomy),
        "tokens": None if r.tokens is None else tokens_doctor_json(r.tokens),
    }


def _head_json(r: DoctorReport) -> dict[str, Any]:
    a = r.anatomy
    n = a.final_norm
    return {
        "matrix": a.head_matrix,
        "bias": a.head_bias,
        "final_norm": None if n is None else {"kind": n.kind, "eps": n.eps, "weight": n.weight, "bias": n.bias, "eps_source": n.eps_source},
        "pre_head_scale": a.pre_head_scale,
        "transforms": [{"kind": t.kind, "value": t.value, "source": t.source} for t in a.transforms],
    }


def doctor_view(ckpt: Checkpoint, r: DoctorReport) -> Group:
    if not r.healthy:
        verdict = Text(f"{len(r.problems)} problem{'s' * (len(r.problems) > 1)} found", style="bold red")
    elif r.warnings:
        verdict = Text(f"no problems found, but {len(r.warnings)} warning{'s' * (len(r.warnings) > 1)}: not verified", style="bold yellow")
    else:
        verdict = Text("healthy: no problems found", style="bold green")
    lines: list[Any] = [verdict]
    lines += [Text(f"problem: {p.message}", style="red") for p in r.problems]
    lines += [Text(f"warning: {w}", style="yellow") for w in r.warnings]
    lines += [Text(f"note: {n}", style="yellow") for n in r.notes]
    body = Group(*lines, Text(""), _facts(ckpt, r))
    return Group(
        Panel(
            body,
            title=Text(f"doctor {ckpt.shown}"),
            title_align="left",
            border_style=("yellow" if r.warnings else "green") if r.healthy else "red",
            expand=False,
        )
    )


def _facts(ckpt: Checkpoint, r: DoctorReport) -> Table:
    c, a, v, t = r.census, r.anatomy, r.vocabulary, r.tying
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    arch = f"{a.wrapper} wrapping {a.architecture or 'unknown'}" if a.wrapper else a.architecture or "unknown"
    table.add_row("architecture", Text(f"{arch} ({ckpt.format}, {len(ckpt.files)} file{'s' * (len(ckpt.files) > 1)})"))
    table.add_row(
        "parameters",
        Text(
            f"{c.total_params:,} effective, {c.stored_params:,} stored, {c.non_embedding_params:,} non-embedding; "
            f"{human_bytes(c.total_bytes)}"
        ),
    )
    table.add_row(
        "LM head", Text(f"{a.head_matrix} {c.vocab_size:,} × {c.hidden_size:,} = {percent(c.head_params, c.total_params)} of parameters")
    )
    q = c.quantization
    if q is not None:
        head = f"head {q.head_layout} at {c.head_bits_per_param:.4g} bits per parameter" if q.head_layout else "head not quantized"
        layouts = ", ".join(q.layouts) or "no quantized tensors"
        table.add_row(
            "quantization",
            Text(f"{q.method} ({layouts}; {q.bits}-bit); {head}; {c.total_params:,} parameters counted at their dense size"),
        )
    table.add_row("tying", Text(t.verdict + f" — {t.tie_source}"))
    rows = [f"head {v.head_rows:,}", f"embedding {v.embedding_rows:,}" if v.embedding_rows is not None else "embedding -"]
    rows.append(f"config {v.config_vocab_size:,}" if v.config_vocab_size is not None else "config -")
    rows.append(f"tokenizer {v.tokenizer_size:,}" if v.tokenizer_size is not None else "no tokenizer")
    table.add_row("vocabulary", Text(", ".join(rows)))
    if r.tokens is not None:
        table.add_row("tokens", Text(tokens_summary(r.tokens)))
    n = a.final_norm
    table.add_row("final norm", Text("none found" if n is None else f"{n.kind}, eps {n.eps:g} ({n.eps_source})"))
    steps = [f"{x.kind} {x.value:g} ({x.source})" for x in a.transforms]
    if a.pre_head_scale:
        steps.insert(0, f"hidden × {a.pre_head_scale:.4g} before the head")
    table.add_row("logit transforms", Text("; ".join(steps) or "none"))
    return table
