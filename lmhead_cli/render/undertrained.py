"""``lmhead tokens``: exact evidence first, then the ranked suspects, the cut-off and what weights cannot show."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group
from rich.table import Table

from ..analyses.reachability import Category
from ..analyses.undertrained import PERCENTILE, Evidence, Indicator, ReferenceSource, TokenReport
from ..checkpoint.checkpoint import Checkpoint
from ..inputs.tokens import Vocabulary
from . import Text

CAVEAT = (
    "weights alone rank suspects: a token is confirmed under-trained only by prompting the model with it "
    "(the paper's verification step); identical and zero rows are near-certain"
)
INDICATOR_TEXT = {
    Indicator.COSINE: "cosine distance of the head row to the mean of R's rows (the repository's default; one pass)",
    Indicator.COSINE_NO_PC: "cosine distance to the mean of R's rows, the head's first principal component removed (the paper's variant)",
    Indicator.EMBEDDING_NORM: "L2 norm of the input embedding row (the repository's default for untied models)",
}
SOURCE_TEXT = {
    ReferenceSource.BYTES: "byte tokens 0xF5-0xFF (never in UTF-8 text)",
    ReferenceSource.RESERVED: "reserved placeholder tokens",
    ReferenceSource.IDENTICAL: "the largest group of bit-identical rows (no byte tokens 0xF5-0xFF, no reserved tokens)",
    ReferenceSource.GIVEN: "--reference-tokens",
    ReferenceSource.NONE: "none found",
}
SHOW_IDS = 12  # ids listed per group in text


def _token(vocab: Vocabulary | None, i: int) -> str:
    return vocab.token(i) if vocab is not None else "?"


def evidence_tags(report: TokenReport) -> dict[int, list[str]]:
    """Per id: the exact facts about its rows, short."""
    tags: dict[int, list[str]] = {}
    for e in report.evidence:
        where = "" if e.matrix == report.matrix else "embedding "
        for n, group in enumerate(e.identical_groups, 1):
            for i in group:
                tags.setdefault(i, []).append(f"{where}identical ×{len(group)} (group {n})")
        for label, ids in (("zero row", e.zero_rows), ("non-finite row", e.nonfinite_rows), ("at the mean", e.mean_rows)):
            for i in ids:
                tags.setdefault(i, []).append(where + label)
    return tags


def _evidence_lines(report: TokenReport, vocab: Vocabulary | None) -> list[Text]:
    lines: list[Text] = []
    for e in report.evidence:
        prefix = "" if e.matrix == report.matrix else f"embedding {e.matrix}: "
        rows = sum(len(g) for g in e.identical_groups)
        if e.identical_groups:
            lines.append(
                Text(
                    f"{prefix}{rows:,} rows bit-identical in {len(e.identical_groups):,} group{'s' * (len(e.identical_groups) > 1)}:",
                    style="bold",
                )
            )
            for group in e.identical_groups[:SHOW_IDS]:
                shown = ", ".join(f"{i} {_token(vocab, i)}" for i in group[:SHOW_IDS])
                more = f", … {len(group) - SHOW_IDS:,} more" if len(group) > SHOW_IDS else ""
                lines.append(Text(f"  ×{len(group)}: {shown}{more}"))
            if len(e.identical_groups) > SHOW_IDS:
                lines.append(Text(f"  … {len(e.identical_groups) - SHOW_IDS:,} more groups (--json)"))
        facts = (("zero rows", e.zero_rows), ("non-finite rows", e.nonfinite_rows), ("rows at the mean of all rows", e.mean_rows))
        for label, ids in facts:
            if ids:
                shown = ", ".join(f"{i} {_token(vocab, i)}" for i in ids[:SHOW_IDS])
                more = f", … {len(ids) - SHOW_IDS:,} more" if len(ids) > SHOW_IDS else ""
                lines.append(Text(f"{prefix}{len(ids):,} {label}: {shown}{more}", style="bold"))
        if not e.any:
            lines.append(Text(f"{prefix}no identical, zero, non-finite or mean rows in {e.matrix}"))
    return lines


def _counts(report: TokenReport) -> str:
    counts = Counter(report.reachability.categories.tolist())
    order = [c for c in Category if counts.get(c)]
    return ", ".join(f"{counts[c]:,} {c.value}" for c in order)


def tokens_view(ckpt: Checkpoint, report: TokenReport, vocab: Vocabulary | None, top: int) -> Group:
    r = report
    tie = "tied" if r.tied else f"untied; embedding {r.embedding}"
    lines: list[Any] = [Text(f"tokens {ckpt.path}  ({ckpt.format}; head {r.matrix}, {r.rows:,} rows, {tie})", style="bold")]
    lines.append(Text("exact evidence (near-certain):", style="bold"))
    lines += _evidence_lines(r, vocab)
    ref = r.reference
    ids = ", ".join(str(i) for i in ref.ids[:SHOW_IDS]) + (", …" if len(ref.ids) > SHOW_IDS else "")
    lines.append(Text(f"reference set R: {len(ref.ids):,} tokens, {SOURCE_TEXT[ref.source]}" + (f" (ids {ids})" if ref.ids else "")))
    lines.append(Text(f"tokenizer: {_counts(r)}" if r.reachability.checked else f"tokenizer: not checked ({r.reachability.reason})"))
    if r.bias is not None:
        lines.append(Text("head bias: present, shown per token in --json; it shifts logits the indicators do not see"))
    if r.indicator is None:
        lines.append(Text("indicator: none (a tied head needs a reference set R: give --reference-tokens IDS)", style="yellow"))
    else:
        lines.append(Text(f"indicator: {INDICATOR_TEXT[r.indicator]}; low = suspect"))
        if r.first_pc_share is not None:
            lines.append(Text(f"first principal component: {100 * r.first_pc_share:.2f}% of the centred head's variance"))
        pool = "round-trippable tokens" if r.reachability.checked else "rows"
        lines.append(
            Text(
                f"cut-off: {PERCENTILE:g}nd percentile of the {pool}' values = {r.threshold:.4g}: "
                f"{len(r.candidates):,} suspects (showing {min(top, len(r.candidates)):,}; --top N, --json --all)"
            )
        )
        lines.append(_table(r, vocab, top))
    lines += [Text(f"note: {n}", style="yellow") for n in r.notes]
    lines.append(Text(f"note: {CAVEAT}", style="dim"))
    return Group(*lines)


def _table(r: TokenReport, vocab: Vocabulary | None, top: int) -> Table:
    assert r.indicator is not None
    tags = evidence_tags(r)
    table = Table(box=None, pad_edge=False)
    for header, justify in (("rank", "right"), ("id", "right"), ("token", "left"), ("category", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    shown = [i for i in (Indicator.COSINE, Indicator.COSINE_NO_PC, Indicator.EMBEDDING_NORM) if i in r.values]
    for ind in shown:
        table.add_column(ind.value + (" *" if ind is r.indicator else ""), justify="right")
    table.add_column("exact evidence")
    for rank, i in enumerate(r.candidates[:top], 1):
        cells: list[str | Text] = [str(rank), str(i), Text(_token(vocab, i)), Text(r.reachability.categories[i].value)]
        cells += [f"{r.values[ind][i]:.6f}" for ind in shown]
        cells.append(Text("; ".join(tags.get(i, []))))
        table.add_row(*cells)
    return table


def _evidence_json(e: Evidence) -> dict[str, Any]:
    return {
        "matrix": e.matrix,
        "identical_groups": e.identical_groups,
        "zero_rows": e.zero_rows,
        "nonfinite_rows": e.nonfinite_rows,
        "mean_rows": e.mean_rows,
    }


def _entry(r: TokenReport, vocab: Vocabulary | None, i: int, tags: dict[int, list[str]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": i, "token": vocab.text(i) if vocab is not None else None, "category": r.reachability.categories[i].value}
    entry["indicators"] = {ind.value: float(r.values[ind][i]) for ind in r.values}
    if r.bias is not None:
        entry["bias"] = float(r.bias[i])
    entry["evidence"] = tags.get(i, [])
    return entry


def tokens_json(ckpt: Checkpoint, r: TokenReport, vocab: Vocabulary | None, top: int, every: bool) -> dict[str, Any]:
    tags = evidence_tags(r)
    data: dict[str, Any] = {
        "checkpoint": str(ckpt.path),
        "matrix": r.matrix,
        "embedding": r.embedding,
        "tied": r.tied,
        "rows": r.rows,
        "indicator": r.indicator.value if r.indicator else None,
        "indicators_computed": [i.value for i in r.values],
        "reference": {"source": r.reference.source.value, "ids": list(r.reference.ids)},
        "cutoff": {"rule": f"{PERCENTILE:g}th percentile of round-trippable tokens", "percentile": PERCENTILE, "threshold": r.threshold},
        "candidate_count": len(r.candidates),
        "candidates": [_entry(r, vocab, i, tags) for i in r.candidates[:top]],
        "evidence": [_evidence_json(e) for e in r.evidence],
        "categories": {c.value: n for c, n in Counter(r.reachability.categories.tolist()).items()},
        "special_ids": sorted(r.reachability.special_ids),
        "template_ids": sorted(r.template_ids),
        "exact_evidence_in_used_tokens": sorted(r.exact_in_used()),
        "padded_rows": r.padded_rows,
        "first_pc_share": r.first_pc_share,
        "notes": r.notes,
        "warnings": [],
        "caveat": CAVEAT,
    }
    if every:
        data["tokens"] = [_entry(r, vocab, i, tags) for i in range(r.rows)]
    return data


def tokens_summary(r: TokenReport) -> str:
    """doctor's line: exact evidence, then how many suspects the cut-off leaves."""
    head = r.evidence[0]
    rows = sum(len(g) for g in head.identical_groups)
    parts = [f"{rows:,} rows identical in {len(head.identical_groups):,} groups" if head.identical_groups else "no identical rows"]
    if head.zero_rows:
        parts.append(f"{len(head.zero_rows):,} zero rows")
    if head.nonfinite_rows:
        parts.append(f"{len(head.nonfinite_rows):,} non-finite rows")
    if r.indicator is not None:
        parts.append(f"{len(r.candidates):,} suspects by {r.indicator.value} (lmhead tokens)")
    return "; ".join(parts)


def tokens_doctor_json(r: TokenReport) -> dict[str, Any]:
    head = r.evidence[0]
    return {
        "summary": tokens_summary(r),
        "identical_groups": head.identical_groups,
        "zero_rows": head.zero_rows,
        "nonfinite_rows": head.nonfinite_rows,
        "indicator": r.indicator.value if r.indicator else None,
        "reference": {"source": r.reference.source.value, "ids": list(r.reference.ids)},
        "threshold": r.threshold,
        "suspects": len(r.candidates),
        "exact_evidence_in_used_tokens": r.exact_in_used(),
    }
