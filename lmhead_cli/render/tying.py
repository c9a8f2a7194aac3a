"""``lmhead check-tying``: verdict panel, evidence table, JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from ..analyses.tying import TyingReport
from ..checkpoint.checkpoint import Checkpoint
from . import Text, human_bytes


def tying_dict(report: TyingReport) -> dict[str, Any]:
    """The report's fields; problems as their messages, with their kinds alongside."""
    data = asdict(report)
    data["problems"] = [p.message for p in report.problems]
    data["problem_kinds"] = [p.kind.value for p in report.problems]
    return data


def tying_json(ckpt: Checkpoint, report: TyingReport, expect: str | None) -> dict[str, Any]:
    data = tying_dict(report)
    data["checkpoint"] = ckpt.shown
    if expect is not None:
        data["expected"] = expect
        data["matches_expectation"] = report.tied == (expect == "tied")
    return data


def tying_view(ckpt: Checkpoint, report: TyingReport, expect: str | None) -> Panel:
    style = "red" if report.problems else "green"
    lines: list[Text] = [Text(report.verdict, style=f"bold {style}")]
    for problem in report.problems:
        lines.append(Text(f"problem: {problem.message}", style="red"))
    for note in report.notes:
        lines.append(Text(f"note: {note}", style="yellow"))
    if expect is not None and report.tied != (expect == "tied"):
        lines.append(Text(f"expected {expect}, found {'tied' if report.tied else 'untied'}", style="bold red"))
    return Panel(
        Group(*lines, Text(""), _evidence(report)),
        title=Text(f"check-tying {ckpt.shown}"),
        title_align="left",
        border_style=style,
        expand=False,
    )


def _evidence(r: TyingReport) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("config", Text(r.tie_source if r.config_present else "no config.json"))
    for label, side in (("embedding", r.embedding), ("head", r.head)):
        if side is None:
            table.add_row(label, "not stored")
        else:
            table.add_row(label, Text(f"{side.name}  {list(side.shape)} {side.dtype}  {human_bytes(side.nbytes)}  in {side.file}"))
    if r.shape_relation:
        table.add_row("shapes", r.shape_relation + ("; one stored buffer (shared storage)" if r.shares_storage else ""))
    table.add_row("values", _values(r))
    return table


def _values(r: TyingReport) -> str:
    c = r.comparison
    if c is None:
        return "not compared" if r.head_stored else "not compared (no head stored)"
    text = "identical" if c.identical else f"differ (first difference within rows 0–{c.rows_compared - 1})"
    if not c.complete:
        text += f"; stopped after {c.rows_compared:,} of {c.rows_total:,} rows (--full for statistics)"
    if c.max_abs_diff is not None and c.mean_row_cosine is not None and c.identical_rows_fraction is not None:
        text += (
            f"; max |Δ| = {c.max_abs_diff:.4g}, mean row cosine = {c.mean_row_cosine:.6f}, "
            f"identical rows = {100 * c.identical_rows_fraction:.2f}%"
        )
    return text
