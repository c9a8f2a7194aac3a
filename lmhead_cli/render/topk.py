"""``lmhead topk``: a table per position, the logit-lens grid, and JSON."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table

from ..inputs.tokens import Vocabulary
from ..logits.prediction import Predictions
from ..model.anatomy import HeadAnatomy
from . import Text


def topk_header(
    anatomy: HeadAnatomy,
    vocab: Vocabulary | None,
    no_norm: bool,
    masked: int,
    text_note: str | None = None,
    notices: list[str] | None = None,
) -> list[Text]:
    """The head as applied (norm, scale, matrix, transforms), then what the reader should know."""
    recipe = anatomy.recipe  # the steps as logits.head applies them, in the same order
    steps = []
    if no_norm:
        steps.append("no final norm (--no-norm)")
    elif recipe.norm:
        steps.append(f"{recipe.norm.kind} (eps {recipe.norm.eps:g})")
    if recipe.projection:
        steps.append(f"· {recipe.projection}ᵀ")
    if recipe.scale:
        steps.append(f"× {recipe.scale:.4g}")
    steps.append(f"· {recipe.matrix}ᵀ" + (f" + {recipe.bias}" if recipe.bias else ""))
    steps.extend(f"{t.kind} {t.value:g}" for t in recipe.transforms)
    lines = [Text(f"head: {' → '.join(steps)}", style="dim")]
    lines += [Text(f"warning: {w}", style="bold yellow") for w in notices or []]
    if text_note:
        lines.append(Text(text_note, style="dim"))
    if vocab is None:
        lines.append(Text("no tokenizer found: showing token ids only (pass --tokenizer PATH)", style="yellow"))
    if masked and vocab is not None:
        lines.append(
            Text(f"masked {masked} padded head rows beyond the tokenizer's {vocab.size} tokens (--include-padded keeps them)", style="dim")
        )
    return lines


def _token(vocab: Vocabulary | None, token_id: int) -> str:
    return vocab.token(token_id) if vocab else f"#{token_id}"


def k_warnings(asked: int, used: int, masked_rows: int) -> list[str]:
    """``-k`` past the rows the softmax ranges over: every row is shown, and the output says how many."""
    if used >= asked:
        return []
    what = f"the {used:,} head rows within the tokenizer's vocabulary" if masked_rows else f"the head's {used:,} rows"
    return [f"-k {asked:,} is more than {what}: {used:,} predictions per position"]


def topk_json(p: Predictions, vocab: Vocabulary | None, meta: dict[str, Any]) -> dict[str, Any]:
    t = p.topk
    scored = t.scored_targets
    rows = []
    for i, coords in enumerate(p.coords):
        entry: dict[str, Any] = dict(coords)
        entry["top"] = [
            {
                "token_id": int(tid),
                "token": vocab.text(int(tid)) if vocab else None,
                "logit": float(t.logits[i, j]),
                "prob": float(t.probs[i, j]),
            }
            for j, tid in enumerate(t.ids[i])
        ]
        if scored is not None and scored.ids[i] >= 0:
            tid = int(scored.ids[i])
            entry["target"] = {
                "token_id": tid,
                "token": vocab.text(tid) if vocab else None,
                "rank": int(scored.ranks[i]),
                "logit": float(scored.logits[i]),
                "prob": float(scored.probs[i]),
            }
        rows.append(entry)
    data = dict(meta)
    data["norm_applied"] = p.norm_applied
    data["masked_rows"] = t.masked_rows
    data["positions"] = rows
    summaries = p.summaries()
    if summaries:
        data["summary"] = [
            {**s.coords, "count": s.count, "nll": s.nll, "perplexity": s.perplexity, "top1_accuracy": s.top1_accuracy} for s in summaries
        ]
    return data


def topk_view(p: Predictions, vocab: Vocabulary | None, header: list[Text]) -> Group:
    t = p.topk
    scored = t.scored_targets
    parts: list[Any] = list(header)
    for i, coords in enumerate(p.coords):
        title = Text("  ".join(f"{a} {v}" for a, v in coords.items()), style="bold")
        if scored is not None and scored.ids[i] >= 0:
            tid = int(scored.ids[i])
            title.append(f"   next: {_token(vocab, tid)} (id {tid}) rank {int(scored.ranks[i])}, p={scored.probs[i]:.4f}", style="cyan")
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("token")
        table.add_column("id", justify="right")
        table.add_column("logit", justify="right")
        table.add_column("prob", justify="right")
        for j, tid in enumerate(t.ids[i]):
            hit = t.target_ids is not None and tid == t.target_ids[i]
            table.add_row(
                str(j + 1),
                Text(_token(vocab, int(tid))),
                str(int(tid)),
                f"{t.logits[i, j]:.4f}",
                f"{t.probs[i, j]:.4f}",
                style="cyan" if hit else None,
            )
        parts.extend([title, table])
    parts.extend(_summary_lines(p))
    return Group(*parts)


def _summary_lines(p: Predictions) -> list[Text]:
    lines = []
    for s in p.summaries():
        where = ", ".join(f"{a} {v}" for a, v in s.coords.items())
        lines.append(
            Text(
                f"targets{' (' + where + ')' if where else ''}: {s.count} positions, mean NLL {s.nll:.4f} nats, "
                f"perplexity {s.perplexity:.3f}, top-1 accuracy {100 * s.top1_accuracy:.1f}%"
            )
        )
    return lines


def _prob_style(prob: float) -> str:
    """Brighter as the prediction firms up."""
    if prob >= 0.5:
        return "bold black on green"
    if prob >= 0.2:
        return "black on yellow"
    if prob >= 0.05:
        return "white on dark_orange3"
    return "dim"


def lens_view(p: Predictions, vocab: Vocabulary | None, header: list[Text], inputs: list[int] | None, width: int | None = None) -> Group:
    """Rows are layers, columns positions; each cell the top-1 token and its probability.

    With ``width`` (the terminal's), positions are split into blocks of columns that fit it,
    one table per block, rather than squeezing every cell to an ellipsis."""
    t = p.topk
    layers = sorted({c["layer"] for c in p.coords})
    positions = list(dict.fromkeys(c["position"] for c in p.coords))
    batches = sorted({c.get("batch", 0) for c in p.coords})
    parts: list[Any] = list(header)
    index = {tuple(sorted(c.items())): i for i, c in enumerate(p.coords)}

    def state(layer: int, pos: int, b: int) -> int:
        return index[tuple(sorted({"layer": layer, "position": pos, **({"batch": b} if "batch" in p.axes else {})}.items()))]

    for b in batches:
        parts.append(Text(f"logit lens: top-1 per layer and position{f' (batch {b})' if len(batches) > 1 else ''}", style="bold"))
        heads = {pos: _lens_head(pos, vocab, inputs) for pos in positions}
        cells = {(layer, pos): _lens_cell(vocab, t, state(layer, pos, b)) for layer in layers for pos in positions}
        targets = None
        if t.target_ids is not None:
            targets = {pos: _lens_target(vocab, t, state(layers[-1], pos, b)) for pos in positions}
        for block in _blocks(positions, heads, cells, targets, layers, width):
            table = Table()
            table.add_column("layer", justify="right")
            for pos in block:
                table.add_column(heads[pos], justify="center")
            for layer in layers:
                table.add_row(str(layer), *(cells[layer, pos] for pos in block))
            if targets is not None:
                table.add_section()
                table.add_row(Text("target", style="cyan"), *(targets[pos] for pos in block))
            parts.append(table)
    parts.extend(_summary_lines(p))
    return Group(*parts)


def _lens_head(pos: int, vocab: Vocabulary | None, inputs: list[int] | None) -> Text:
    head = f"{pos}"
    if inputs is not None and pos < len(inputs):
        head += f"\n{_token(vocab, inputs[pos])}"
    return Text(head)


def _lens_cell(vocab: Vocabulary | None, t: Any, i: int) -> Text:
    prob = float(t.probs[i, 0])
    return Text(f"{_token(vocab, int(t.ids[i, 0]))}\n{prob:.2f}", style=_prob_style(prob))


def _lens_target(vocab: Vocabulary | None, t: Any, i: int) -> Text:
    return Text(_token(vocab, int(t.target_ids[i])) if t.target_ids[i] >= 0 else "", style="cyan")


def _blocks(
    positions: list[int],
    heads: dict[int, Text],
    cells: dict[tuple[int, int], Text],
    targets: dict[int, Text] | None,
    layers: list[int],
    width: int | None,
) -> list[list[int]]:
    """Consecutive positions grouped so that each table (boxed: 3 cells of padding and rule per column) fits ``width``."""
    if width is None:
        return [positions]

    def widest(texts: list[Text]) -> int:
        return max(max(cell_len(line) for line in text.plain.split("\n")) for text in texts)

    def needed(pos: int) -> int:
        column = [heads[pos], *(cells[layer, pos] for layer in layers), *([targets[pos]] if targets else [])]
        return widest(column) + 3

    used = 1 + max(len("layer"), len("target"), *(len(str(layer)) for layer in layers)) + 3  # left edge + layer column
    blocks: list[list[int]] = [[]]
    total = used
    for pos in positions:
        w = needed(pos)
        if blocks[-1] and total + w > width:
            blocks.append([])
            total = used
        blocks[-1].append(pos)
        total += w
    return blocks
