"""``lmhead count``: the parameter table and its JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Group as RichGroup

from ..analyses.census import Census, Quantization
from ..checkpoint.checkpoint import Checkpoint
from ..model.anatomy import HeadAnatomy
from . import Text, human_bytes, human_count, percent

LABELS = {
    "embedding": "token embedding",
    "head": "LM head",
    "final_norm": "final norm",
    "blocks": "transformer blocks",
    "vision": "vision tower",
    "projector": "multimodal projector",
    "other": "other",
    "quantization": "quantization metadata",
}


def census_json(ckpt: Checkpoint, anatomy: HeadAnatomy, c: Census) -> dict[str, Any]:
    return {
        "checkpoint": ckpt.shown,
        "format": ckpt.format,
        "files": [str(p) for p in ckpt.files],
        "architecture": anatomy.architecture,
        "total_params": c.total_params,
        "effective_params": c.total_params,
        "stored_params": c.stored_params,
        "non_embedding_params": c.non_embedding_params,
        "total_bytes": c.total_bytes,
        "embedding_params": c.embedding_params,
        "head_params": c.head_params,
        "head_stored_params": c.head_stored_params,
        "head_bytes": c.head_bytes,
        "head_stored_bytes": c.head_stored_bytes,
        "head_bits_per_param": c.head_bits_per_param,
        "head_share": c.head_share,
        "language_model_params": c.language_model_params,
        "head_share_of_language_model": c.head_share_of_language_model,
        "vision_params": c.group("vision").params,
        "projector_params": c.group("projector").params,
        "wrapper": anatomy.wrapper,
        "head_candidates": [
            {"name": n, "shape": list(ckpt.tensors[n].shape), "dtype": ckpt.tensors[n].dtype} for n in anatomy.head_candidates
        ],
        "tied": c.tied,
        "tie_source": anatomy.tie_reason,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_layers": c.num_layers,
        "embedding": anatomy.embedding,
        "head": anatomy.head,
        "head_bias": anatomy.head_bias,
        "final_norm": _norm_json(anatomy),
        "groups": [
            {
                "name": g.name,
                "params": g.params,
                "bytes": g.nbytes,
                "tensors": g.tensors,
                "dtypes": list(g.dtypes),
                **({"layers": g.layers} if g.layers is not None else {}),
                **({"note": g.note} if g.note else {}),
            }
            for g in c.groups
            if g.name != "quantization" or g.tensors
        ],
        "by_dtype": [
            {"dtype": d.dtype, "stored_params": d.stored_params, "effective_params": d.effective_params, "bytes": d.nbytes}
            for d in c.by_dtype
        ],
        "index_findings": [p.message for p in c.index_findings],
        "buffers_skipped": list(c.buffers_skipped),
        "tokenizer_vocab": c.tokenizer_vocab,
        "padded_rows": c.padded_rows,
        "quantization": _quantization_json(c),
        "notes": list(ckpt.notes) + [p.message for p in anatomy.problems],
        **({"warnings": list(c.warnings)} if c.warnings else {}),
    }


def _quantization_json(c: Census) -> dict[str, Any] | None:
    q = c.quantization
    if q is None:
        return None
    return {
        "method": q.method,
        "bits": q.bits,
        "group_size": q.group_size,
        "head_quantized": q.head_quantized,
        "embedding_quantized": q.embedding_quantized,
        "layouts": list(q.layouts),
        "head_layout": q.head_layout,
        "source": q.source,
        "quantized_params": q.quantized_params,
        "metadata_bytes": q.metadata_bytes,
        "note": q.note,
    }


def _norm_json(anatomy: HeadAnatomy) -> dict[str, Any] | None:
    n = anatomy.final_norm
    if n is None:
        return None
    return {"kind": n.kind, "eps": n.eps, "weight": n.weight, "bias": n.bias, "eps_source": n.eps_source}


def census_view(ckpt: Checkpoint, anatomy: HeadAnatomy, c: Census) -> RichGroup:
    from rich.table import Table  # here, not at the top: ``count --json`` draws no table

    title = Text(
        f"{ckpt.shown}  ({_architecture(anatomy)}, {ckpt.format}, {len(ckpt.files)} file{'s' * (len(ckpt.files) > 1)})", style="bold"
    )
    table = Table()
    table.add_column("group")
    table.add_column("params", justify="right")
    table.add_column("share", justify="right")
    table.add_column("dtype")
    table.add_column("bytes", justify="right")
    table.add_column("tensors", justify="right")
    for g in c.groups:
        if g.name in ("vision", "projector", "quantization") and not g.tensors:
            continue
        label = LABELS[g.name] + (f" ({g.layers} layer{'s' * (g.layers > 1)})" if g.layers else "")
        params = f"{g.params:,}"
        if g.name == "head" and c.tied:
            params += " (tied)"
        share = "-" if g.name == "quantization" else percent(g.params, c.total_params)
        table.add_row(Text(label), params, share, ", ".join(g.dtypes) or "-", human_bytes(g.nbytes), str(g.tensors))
    table.add_section()
    table.add_row("total", f"{c.total_params:,}", "100%", "", human_bytes(c.total_bytes), str(sum(g.tensors for g in c.groups)))
    return RichGroup(title, table, *_summary(ckpt, anatomy, c))


def _quantization_line(q: Quantization) -> str:
    layouts = ", ".join(q.layouts) or "no quantized tensors found"
    settings = [f"{q.bits}-bit" if q.bits else None, f"group size {q.group_size}" if q.group_size else None]
    detail = ", ".join(s for s in settings if s)
    head = f"the LM head is {q.head_layout}-quantized" if q.head_layout else "the LM head is not quantized"
    emb = "; so is the token embedding" if q.embedding_quantized else ""
    return (
        f"quantized: {q.method} ({layouts}{'; ' + detail if detail else ''}; from {q.source}); {head}{emb}; "
        f"{human_bytes(q.metadata_bytes)} of scales and other quantization metadata (no parameters)"
    )


def _architecture(anatomy: HeadAnatomy) -> str:
    arch = anatomy.architecture or "unknown architecture"
    return f"{anatomy.wrapper} wrapping {arch}" if anatomy.wrapper else arch


def _summary(ckpt: Checkpoint, anatomy: HeadAnatomy, c: Census) -> list[Text]:
    matrix = ckpt.tensors[anatomy.head_matrix]
    q = c.quantization
    stored_as = q.head_layout if q and q.head_layout else matrix.dtype
    lines = [
        Text(f"V = {c.vocab_size:,}   d = {c.hidden_size:,}   {'tied' if c.tied else 'untied'} ({anatomy.tie_reason})"),
        Text(
            f"LM head: {human_count(c.head_params)} parameters = {percent(c.head_params, c.total_params)} of the model; "
            f"{human_bytes(c.head_bytes)} as {stored_as}"
            + (
                f" ({c.head_bits_per_param:.4g} bits per parameter with its scales)"
                if q and q.head_layout
                else f" ({c.head_bits_per_param:.4g} bits per parameter)"
                if c.head_bits_per_param % 1
                else ""
            )
            + (
                f", of which {human_bytes(c.head_stored_bytes)} stored for the head itself"
                if not c.tied
                else "; stored once, shared with the embedding"
            )
        ),
    ]
    if q is not None:
        lines.append(Text(_quantization_line(q)))
        if q.note:
            lines.append(Text(f"note: {q.note}", style="yellow"))
    if c.language_model_params != c.total_params:
        lines.append(
            Text(
                f"language model ({anatomy.wrapper or 'wrapped'}): {c.language_model_params:,} parameters; the head is "
                f"{percent(c.head_params, c.language_model_params)} of it"
            )
        )
    if anatomy.head_candidates:
        shown = ", ".join(f"{n} {list(ckpt.tensors[n].shape)}" for n in anatomy.head_candidates[:6])
        more = f" and {len(anatomy.head_candidates) - 6} more" if len(anatomy.head_candidates) > 6 else ""
        lines.append(Text(f"other head candidates (pick one with topk --head NAME): {shown}{more}"))
    lines.append(
        Text(
            f"parameters: {c.total_params:,} effective (tied counted once"
            + ("; quantized weights at their dense size" if q and q.quantized_params else "")
            + f"), {c.stored_params:,} stored on disk, "
            f"{c.non_embedding_params:,} non-embedding (without the token embedding and head matrices)"
        )
    )
    if len(c.by_dtype) > 1:
        parts = [f"{d.dtype} {d.effective_params:,} ({human_bytes(d.nbytes)})" for d in c.by_dtype]
        lines.append(Text("by dtype: " + ", ".join(parts)))
    for finding in c.index_findings:
        lines.append(Text(f"index: {finding.message}", style="yellow"))
    if c.tokenizer_vocab is not None:
        if c.padded_rows:
            lines.append(Text(f"vocabulary: {c.padded_rows:,} head rows are padding beyond the tokenizer's {c.tokenizer_vocab:,} tokens"))
        else:
            lines.append(Text(f"vocabulary: tokenizer has {c.tokenizer_vocab:,} tokens for {c.vocab_size:,} head rows"))
    if c.buffers_skipped:
        lines.append(
            Text(f"skipped {len(c.buffers_skipped)} buffer tensor(s) that are not parameters (e.g. {c.buffers_skipped[0]})", style="dim")
        )
    for note in list(ckpt.notes) + [p.message for p in anatomy.problems]:
        lines.append(Text(f"note: {note}", style="yellow"))
    return lines
