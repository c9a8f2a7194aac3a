"""``lmhead diff``: one verdict line, the structure side by side, the value changes, the tokenizer's, JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from ..analyses.diff import DiffProblem, DiffReport, Finding, InitPattern, MatrixDiff, NewRows, TokenChange
from ..core.escape import visible
from . import Text

PATTERN_WORDS = {
    InitPattern.ZERO: "zero",
    InitPattern.OLD_MEAN: "the old rows' mean",
    InitPattern.IDENTICAL: "one vector shared by all of them",
    InitPattern.COPIED: "copies of existing rows",
    InitPattern.RANDOM: "random values",
}


def problem_message(f: Finding) -> str:
    rows = f"{f.count:,} added {f.matrix} row{'s' if f.count != 1 else ''}"
    if f.kind is DiffProblem.NEW_ROWS_UNTRAINED:
        words = PATTERN_WORDS[InitPattern(f.detail)]
        tail = ": generation will never pick them" if f.matrix == "head" and f.detail == "zero" else ""
        return f"{rows} initialised to {words} and never trained{tail}"
    if f.kind is DiffProblem.NEW_TOKENS_UNSET:
        tokens = f"{f.count:,} added token{'s' if f.count != 1 else ''}"
        return f"{tokens} fit in the padding rows of the base {f.matrix}, which still hold their old values: nothing set them"
    if f.kind is DiffProblem.HEAD_RETIED:
        return f"re-tied: the base's own head {f.detail} is gone, the other's head is its embedding"
    if f.kind is DiffProblem.HEAD_OVERWRITTEN:
        return f"head overwritten: the other's {f.detail} holds exactly its embedding's values, where the base's head had its own"
    return f"hidden sizes differ ({f.detail}): no value can be compared"


def _new_rows_phrase(n: NewRows, role: str) -> str:
    what = f"{n.count:,} added {role} row{'s' if n.count != 1 else ''}"
    if n.pattern is InitPattern.RANDOM:
        like = "like the old rows' statistics" if n.like_base_statistics else "unlike the old rows"
        return f"{what} random ({like}: spread {n.spread_ratio:.3g}× theirs)"
    words = PATTERN_WORDS[n.pattern]
    if n.pattern is InitPattern.COPIED:
        more = ", …" if n.count > len(n.copied_from) else ""
        words = f"copies of row{'s' if n.count != 1 else ''} {', '.join(map(str, n.copied_from))}{more}"
    if n.moved:
        return f"{what} initialised to {words}, then trained (now {n.offset:.3g}× the old rows' spread from it)"
    return f"{what} initialised to {words}, never trained"


def _same_state(a: MatrixDiff | None, b: MatrixDiff | None) -> bool:
    """Head and embedding that tell one story (both unchanged, their new rows made alike): said once."""
    if a is None or b is None:
        return False
    unchanged = a.changed_rows == b.changed_rows == 0 and not (a.quantization_pair or b.quantization_pair)
    x, y = a.added, b.added
    same_rows = (x is None and y is None) or (
        x is not None and y is not None and (x.count, x.pattern, x.moved, x.copied_from) == (y.count, y.pattern, y.moved, y.copied_from)
    )
    return unchanged and same_rows and a.removed_rows == b.removed_rows and x is not None and x.pattern is not InitPattern.RANDOM


def _matrix_phrase(m: MatrixDiff) -> str:
    if m.quantization_pair:
        return f"{m.role} differs by quantization: relative error {_num(m.relative_change)}"
    if m.rounding_of is not None:
        return f"{m.role} cast to {m.rounding_of}: every value is the base's rounded (‖Δ‖/‖W‖ = {_num(m.relative_change)})"
    if m.changed_rows == 0:
        return f"{m.role} unchanged" + (" in its shared rows" if m.base_rows != m.other_rows else "")
    return f"{m.role} changed: {m.changed_rows:,} of {m.shared_rows:,} rows, ‖Δ‖/‖W‖ = {_num(m.relative_change)}"


def verdict(r: DiffReport) -> str:
    first = (DiffProblem.WIDTHS_DIFFER, DiffProblem.HEAD_RETIED, DiffProblem.HEAD_OVERWRITTEN)
    parts = [problem_message(p) for p in r.problems if p.kind in first]
    together = _same_state(r.head, r.embedding)
    if together and r.head is not None and r.head.added is not None:
        parts.append("head and embedding unchanged in their shared rows")
        parts.append(_new_rows_phrase(r.head.added, "head and embedding"))
        return "; ".join(parts + _unset(r))
    if r.head is not None:
        parts.append(_matrix_phrase(r.head))
    if r.embedding is not None and (r.embedding.changed_rows or r.head is None or r.head.changed_rows == 0):
        parts.append(_matrix_phrase(r.embedding))
    elif r.base.tied and r.other.tied:
        parts.append("tied on both sides")
    if r.tying == "untied":
        parts.append("untied (the base was tied)")
    for m in (r.head, r.embedding):
        if m is not None and m.added is not None:
            parts.append(_new_rows_phrase(m.added, m.role))
        if m is not None and m.removed_rows:
            parts.append(f"{m.removed_rows:,} {m.role} rows removed")
    return "; ".join(parts + _unset(r))


def _unset(r: DiffReport) -> list[str]:
    found = [p for p in r.problems if p.kind is DiffProblem.NEW_TOKENS_UNSET]
    if len(found) == 2 and found[0].count == found[1].count:  # head and embedding alike: said once
        found = [Finding(found[0].kind, "head and embedding", found[0].count, found[0].detail)]
    return [problem_message(p) for p in found]


def _num(value: float | None) -> str:
    return "n/a (base is zero)" if value is None else f"{value:.4g}"


def diff_json(r: DiffReport) -> dict[str, Any]:
    data = asdict(r)
    data["verdict"] = verdict(r)
    data["ok"] = r.ok
    data["problems"] = [problem_message(p) for p in r.problems]
    data["problem_kinds"] = [p.kind.value for p in r.problems]
    data["findings"] = [asdict(p) for p in r.problems]
    return data


def diff_view(r: DiffReport) -> Panel:
    style = "red" if r.problems else "green"
    lines: list[Any] = [Text(verdict(r), style=f"bold {style}")]
    for problem in r.problems:
        lines.append(Text(f"problem: {problem_message(problem)}", style="red"))
    lines += [Text(""), _structure(r)]
    for m in (r.head, r.embedding, r.norm, r.bias):
        if m is not None:
            lines += [Text(""), _values(m)]
    lines += [Text(""), _tokenizer(r)]
    return Panel(Group(*lines), title=Text(f"diff {r.base.path} → {r.other.path}"), title_align="left", border_style=style, expand=False)


def _opt(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _structure(r: DiffReport) -> Table:
    a, b = r.base, r.other
    table = Table(box=None, pad_edge=False)
    table.add_column("", style="bold")
    table.add_column("base")
    table.add_column("other")
    rows = [
        ("format", a.format, b.format),
        ("architecture", _opt(a.architecture), _opt(b.architecture)),
        ("vocab (config)", _opt(a.config_vocab), _opt(b.config_vocab)),
        ("embedding rows", _opt(a.embedding_rows), _opt(b.embedding_rows)),
        ("head rows", _opt(a.head_rows), _opt(b.head_rows)),
        ("tokenizer size", _opt(a.tokenizer_size), _opt(b.tokenizer_size)),
        ("tied", "yes" if a.tied else "no", "yes" if b.tied else "no"),
        ("head matrix", a.head, b.head),
        ("head dtype", a.head_dtype, b.head_dtype),
        ("embedding dtype", _opt(a.embedding_dtype), _opt(b.embedding_dtype)),
        ("head bias", _opt(a.head_bias), _opt(b.head_bias)),
        ("final norm", _norm(a.norm_kind, a.norm_eps), _norm(b.norm_kind, b.norm_eps)),
        ("logit transforms", _transforms(a.transforms), _transforms(b.transforms)),
    ]
    for label, x, y in rows:
        table.add_row(label, Text(x), Text(y, style="yellow" if x != y else ""))
    return table


def _norm(kind: str | None, eps: float | None) -> str:
    return "none" if kind is None else f"{kind} (eps {eps:g})"


def _transforms(transforms: tuple[tuple[str, float], ...]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in transforms) or "none"


def _values(m: MatrixDiff) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False, title=None)
    table.add_column(style="bold")
    table.add_column()
    label = m.role.replace("_", " ")
    names = m.base if m.base == m.other else f"{m.base} → {m.other}"
    table.add_row(label, Text(names))
    if m.shared_rows > 1 or m.base_rows != m.other_rows:
        table.add_row("rows", f"{m.base_rows:,} → {m.other_rows:,} ({m.shared_rows:,} shared)")
        table.add_row("identical rows", f"{m.identical_rows:,}")
        table.add_row("changed rows", f"{m.changed_rows:,}")
    else:
        table.add_row("values", "identical" if m.changed_rows == 0 else "changed")
    what = "quantization error" if m.quantization_pair else "relative change"
    table.add_row(f"{what} ‖Δ‖/‖W‖", _num(m.relative_change))
    table.add_row("max |Δ|", f"{m.max_abs_diff:.4g}")
    s = m.changed_summary
    if s is not None:
        table.add_row(
            "per changed row", f"min {s.minimum:.3g}  median {s.median:.3g}  p90 {s.p90:.3g}  p99 {s.p99:.3g}  max {s.maximum:.3g}"
        )
    if m.most_changed:
        shown = ", ".join(f"{c.row}{_quoted(c.token)} {_num(c.relative)}" for c in m.most_changed[:5])
        table.add_row("most changed", Text(shown))
    if m.added is not None:
        table.add_row("added rows", Text(_new_rows_phrase(m.added, m.role)))
    return table


def _quoted(token: str | None) -> str:
    return "" if token is None else f" “{visible(token)}”"


def _tokens(changes: tuple[TokenChange, ...], side: str) -> str:
    return ", ".join(f"{c.token_id}{_quoted(getattr(c, side))}" for c in changes[:8])


def _tokenizer(r: DiffReport) -> Table:
    t = r.tokenizer
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if t.base_size is None or t.other_size is None:
        table.add_row("tokenizer", "not compared (" + ("neither has one" if t.base_size == t.other_size else "only one side has one") + ")")
    else:
        table.add_row("tokenizer", "same tokens" if not (t.added or t.removed or t.changed) else f"{t.base_size:,} → {t.other_size:,} ids")
        if t.added:
            table.add_row("added tokens", Text(f"{t.added:,}: {_tokens(t.examples_added, 'other')}"))
        if t.removed:
            table.add_row("removed tokens", Text(f"{t.removed:,}: {_tokens(t.examples_removed, 'base')}"))
        if t.changed:
            shown = ", ".join(f"{c.token_id}{_quoted(c.base)} →{_quoted(c.other)}" for c in t.examples_changed[:8])
            table.add_row("changed tokens", Text(f"{t.changed:,}: {shown}"))
    if t.special_added or t.special_removed:
        table.add_row(
            "special tokens",
            Text(f"added {', '.join(map(visible, t.special_added)) or '-'}; removed {', '.join(map(visible, t.special_removed)) or '-'}"),
        )
    for role, (x, y) in t.special_ids.items():
        table.add_row(f"{role} id", f"{_opt(x)} → {_opt(y)}")
    table.add_row("chat template", t.chat_template)
    return table
