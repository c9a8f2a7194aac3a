"""Everything a person or a script sees: rich tables on a terminal, plain text in a pipe, JSON.

Only this module imports rich. Builders return renderables or plain dicts;
``emit`` prints once. Strings from checkpoints (tensor and token names) go
into ``Text`` objects, never into markup, so they cannot style the output.

Layer rule: imports only core, formats, quant, checkpoint, model, inputs, logits, analyses.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.segment import Segment, Segments
from rich.text import Text as RichText

from ..core.errors import LmheadError
from ..core.escape import visible

if TYPE_CHECKING:
    from rich.table import Table

PLAIN_WIDTH = 200  # pipes have no width; do not wrap tables at 80 columns
RICH_STRIPS = frozenset("\x07\x08\x0b\x0c\r")  # rich deletes these from text (rich.control.STRIP_CONTROL_CODES)


def _shown(text: str) -> str:
    """The control characters rich would silently delete, made visible (\\x07, \\r) instead."""
    if RICH_STRIPS.isdisjoint(text):
        return text
    return "".join(visible(ch) if ch in RICH_STRIPS else ch for ch in text)


class Text(RichText):
    """rich's ``Text``, except that BEL, BS, VT, FF and CR in a name are shown escaped, not dropped.

    Every renderer builds its text with this class, so a token or tensor name that holds them reads
    as what it is; the other control characters are escaped by ``emit``.
    """

    def __init__(self, text: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(_shown(text), *args, **kwargs)

    def append(self, text: str | RichText, style: Any = None) -> RichText:
        return super().append(_shown(text) if isinstance(text, str) else text, style)


def stdout_console() -> Console:
    console = Console(emoji=False)  # emoji codes are never wanted here, and their table costs start-up time
    if not console.is_terminal:
        console = Console(width=PLAIN_WIDTH, no_color=True, highlight=False, emoji=False)
    return console


def output_width() -> int:
    """Columns that stdout's tables may use: the terminal's width, or ``PLAIN_WIDTH`` in a pipe."""
    return stdout_console().width


def emit(renderable: RenderableType) -> None:
    """Print once. Text from checkpoints may hold control characters (an ESC in a tensor name):
    every segment's text is escaped before it reaches the terminal; rich's own styling is not text."""
    console = stdout_console()
    if not console.is_terminal:
        renderable = _plain(renderable)
        lines = _plain_lines(renderable)
        if lines is not None:  # plain text that fits: written as is, without rich's wrapping pass
            sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
            return
    segments = [Segment(_escape_controls(seg.text), seg.style, seg.control) for seg in console.render(renderable)]
    if console.is_terminal:
        console.print(Segments(segments), end="")
        return
    with console.capture() as captured:
        console.print(Segments(segments), end="")
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _plain_lines(renderable: RenderableType) -> list[str] | None:
    """The lines rich would print for plain text in a pipe, or None where rich has work to do: text
    wider than ``PLAIN_WIDTH`` (wrapped), tabs or control characters (expanded, escaped), justified text."""
    if isinstance(renderable, Group):
        lines: list[str] = []
        for item in renderable.renderables:
            more = _plain_lines(item)
            if more is None:
                return None
            lines += more
        return lines
    if not isinstance(renderable, RichText) or renderable.justify not in (None, "default", "left") or renderable.end != "\n":
        return None
    lines = []
    for line in renderable.plain.split("\n"):
        if not line.isprintable() or cell_len(line) > PLAIN_WIDTH:
            return None
        lines.append(line)
    return lines


def _escape_controls(text: str) -> str:
    if text.isprintable() or all(ch == "\n" or ch.isprintable() for ch in text):
        return text
    return "\n".join(visible(line).replace("␣", " ") for line in text.split("\n"))


def _plain(renderable: RenderableType) -> RenderableType:
    """No box drawing when stdout is not a terminal: tables as aligned columns, panels as their
    title and contents. Easy to grep and cut."""
    from rich.panel import Panel  # here, not at the top: ``--json`` never draws a table
    from rich.table import Table

    if isinstance(renderable, Group):
        return Group(*(_plain(item) for item in renderable.renderables))
    if isinstance(renderable, Table):
        renderable.box = None
        renderable.show_edge = False
        renderable.pad_edge = False
        return _plain_table(renderable) or renderable
    if isinstance(renderable, Panel):
        title = renderable.title.copy() if isinstance(renderable.title, Text) else Text(str(renderable.title or ""))
        title.stylize("bold")
        return Group(title, _plain(renderable.renderable))
    return renderable


def _plain_table(table: Table) -> RichText | None:
    """A borderless table as aligned text, laid out here: what rich draws for box=None, pad_edge=False,
    (0, 1) padding, at a fraction of its cost (rich measures and wraps every cell; this was most of
    ``count``'s run time). None, for rich to draw, unless every cell is one line and the table fits."""
    if table.padding != (0, 1, 0, 1) or table.title or table.caption or table.show_footer or table.expand:
        return None
    console = Console(width=PLAIN_WIDTH, no_color=True, highlight=False, emoji=False)
    columns = table.columns
    rows: list[list[Any]] = [[c.header for c in columns]] if table.show_header else []
    rows += [list(row) for row in zip(*(c.cells for c in columns), strict=True)]
    grid: list[list[RichText]] = []
    for row in rows:
        cells = [console.render_str(cell) if isinstance(cell, str) else cell for cell in row]
        if not all(isinstance(cell, RichText) and "\n" not in cell.plain for cell in cells):
            return None
        grid.append(cells)
    widths = [max(cell_len(row[i].plain) for row in grid) for i in range(len(columns))]
    if sum(widths) + 2 * (len(columns) - 1) > PLAIN_WIDTH:
        return None
    lines = []
    for row in grid:
        parts = []
        for cell, width, column in zip(row, widths, columns, strict=True):
            pad = width - cell_len(cell.plain)
            left = {"right": pad, "center": pad // 2}.get(column.justify, 0)
            parts.append(" " * left + cell.plain + " " * (pad - left))
        lines.append("  ".join(parts).rstrip())
    return RichText("\n".join(lines))  # the cells' text as rich would show it, not escaped again


def emit_json(data: dict[str, Any]) -> None:
    """Strict JSON (RFC 8259) in UTF-8: a number that is not finite (NaN, ±Infinity) is written as null, never as a
    bare token, and text UTF-8 cannot encode (a lone surrogate from a ``\\udcff`` escape in a config) as a JSON
    escape, never as a raw byte."""
    clean = strict_json(data)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False)
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raw = json.dumps(clean, indent=2, ensure_ascii=True, allow_nan=False).encode("ascii")
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    if out is None:  # a text-only stream (a caller's StringIO): it holds str, not bytes
        sys.stdout.write(raw.decode("utf-8") + "\n")
        return
    sys.stdout.flush()
    out.write(raw + b"\n")
    out.flush()


def strict_json(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values, enums as their values and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        return strict_json(value.item())
    if isinstance(value, Enum):
        return strict_json(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error(exc: LmheadError) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(Text(f"error: {_one_line(exc.message)}", style="bold red"), soft_wrap=True)
    if exc.hint:
        console.print(Text(f"hint: {_one_line(exc.hint)}", style="dim"), soft_wrap=True)


def _one_line(message: str) -> str:
    """Messages quote names from the checkpoint: newlines and escape sequences in them are shown, not obeyed."""
    return "".join(ch if ch == " " else visible(ch) for ch in message)


def internal_error(exc: BaseException) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(Text(f"error: internal error: {type(exc).__name__}: {_one_line(str(exc))}", style="bold red"), soft_wrap=True)
    console.print(Text("hint: rerun with --debug for a traceback, and please report it", style="dim"), soft_wrap=True)


def warn(message: str) -> None:
    Console(stderr=True, highlight=False).print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


def note(message: str) -> None:
    Console(stderr=True, highlight=False).print(Text(f"note: {message}", style="dim"), soft_wrap=True)


PROGRESS_MIN_ELEMENTS = 2**26  # head weights (V·d) below which a projection is too quick to need a bar
PROGRESS_ENV = "LMHEAD_PROGRESS_MIN_ELEMENTS"  # overrides it (tests show the bar on a tiny head)


def progress_wanted(elements: int) -> bool:
    """Whether a projection over a head of ``elements`` weights is slow enough to show a bar."""
    try:
        threshold = int(os.environ.get(PROGRESS_ENV, PROGRESS_MIN_ELEMENTS))
    except ValueError:
        threshold = PROGRESS_MIN_ELEMENTS
    return elements > threshold


@contextmanager
def progress_bar(description: str, enabled: bool, fetched: Callable[[], int] | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr when it is a terminal; a no-op otherwise. ``fetched``:
    bytes read over the network so far, shown beside the bar."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal or console.is_dumb_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn

    class Fetched(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{human_bytes(fetched())} fetched" if fetched else "")

    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    ]
    if fetched is not None:
        columns.insert(3, Fetched())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# ---------------------------------------------------------------- numbers


def human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"
