"""``--explain``: which rule identified each role, and where each setting came from."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from ..model.anatomy import HeadAnatomy
from . import Text


def explain_json(anatomy: HeadAnatomy) -> dict[str, str]:
    return {"convention": anatomy.convention, **anatomy.explain}


def explain_view(anatomy: HeadAnatomy) -> Group:
    table = Table(show_header=True)
    table.add_column("role / setting")
    table.add_column("identified by")
    table.add_row("architecture", Text(f"{anatomy.architecture or 'unknown'} → table entry {anatomy.convention}"))
    for role, rule in anatomy.explain.items():
        table.add_row(role, Text(rule))
    return Group(Text("explain", style="bold"), table)
