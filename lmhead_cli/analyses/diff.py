"""What changed in the head and the vocabulary between two checkpoints (``lmhead diff BASE OTHER``).

Structure from the headers (sizes, tying, norm, transforms, dtypes); values streamed in row
chunks of both sides at once, so memory is bounded by the chunk and by a few numbers per row
(never V × d): for the rows both sides have, how many are identical and how far the others
moved; for rows only OTHER has, how they were initialised (``InitPattern``) and whether they
moved from it. The tokenizers are compared by token text and id.

Distances of new rows are measured in units of the base rows' own spread ``S`` (the root mean
square distance of a base row from the base rows' mean), so that one threshold fits any scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..checkpoint.compare import compare_values
from ..core.errors import TokenizerError
from ..core.files import read_regular
from ..inputs.tokens import Vocabulary
from ..model.anatomy import HeadAnatomy

__all__ = [
    "AT_INIT",
    "NEAR_INIT",
    "DiffProblem",
    "DiffReport",
    "InitPattern",
    "MatrixDiff",
    "NewRows",
    "Side",
    "TokenizerDiff",
    "diff_checkpoints",
]

CHUNK_BYTES = 4 * 2**20  # float32 bytes per side per chunk: memory is bounded by this, not by V × d
TOP_ROWS = 10  # most-changed rows listed by id and token
LISTED_TOKENS = 20  # added / removed / changed tokens listed by id (the counts are complete)
AT_INIT = 1e-3  # a new row within this many S of a pattern is at it: transformers' mean + 1e-9·Σ draw lies ~3e-5 S off the mean
NEAR_INIT = 0.1  # within this many S (and not at it): initialised that way, then moved
SAME_STATISTICS = (0.5, 2.0)  # new rows' spread about the base mean, over the base rows' own: "like the base rows"
PLAIN_FLOATS = {"F64": 2**-52, "F32": 2**-23, "F16": 2**-10, "BF16": 2**-7}  # dtype -> its machine epsilon
SMALLEST_HALF_STEP = {"F32": 2.0**-150, "F16": 2.0**-25, "BF16": 2.0**-134}  # half the subnormal spacing: rounding's floor


class InitPattern(Enum):
    """How a block of new rows was initialised, as the values show it."""

    ZERO = "zero"  # every value 0 (transformers' zero init, or padding never set)
    OLD_MEAN = "old_mean"  # the base rows' mean (transformers' default mean_resizing: mean + a 1e-9-covariance draw)
    IDENTICAL = "identical"  # all new rows equal to one another, but not the mean or zero
    COPIED = "copied"  # each new row equal to some base row
    RANDOM = "random"  # none of the above: a random draw (its spread compared with the base rows')


class DiffProblem(Enum):
    NEW_ROWS_UNTRAINED = "new_rows_untrained"  # new rows still at their init in OTHER
    NEW_TOKENS_UNSET = "new_tokens_unset"  # the tokenizer grew into padding rows that still hold the base values
    HEAD_RETIED = "head_retied"  # a distinct head in BASE, the embedding stands in for it in OTHER
    HEAD_OVERWRITTEN = "head_overwritten"  # a distinct head in BASE; OTHER stores a head holding exactly its embedding
    WIDTHS_DIFFER = "widths_differ"  # hidden sizes differ: no value can be compared


@dataclass(frozen=True)
class Finding:
    kind: DiffProblem
    matrix: str | None  # "head", "embedding", or None for the checkpoint as a whole
    count: int  # rows (or tokens) concerned
    detail: str  # the init pattern or the names concerned (for render)


@dataclass(frozen=True)
class Side:
    """One checkpoint's structure, from its headers."""

    path: str
    format: str
    architecture: str | None
    config_vocab: int | None
    embedding_rows: int | None
    head_rows: int  # rows of the matrix the head multiplies by
    tokenizer_size: int | None
    hidden_size: int
    tied: bool
    tie_reason: str
    head: str  # the matrix the head uses
    embedding: str | None
    head_dtype: str
    embedding_dtype: str | None
    head_quantized: bool
    head_bias: str | None
    norm_kind: str | None
    norm_eps: float | None
    norm_weight: str | None
    transforms: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class RowChange:
    row: int
    token: str | None  # OTHER's token text for the id (raw; render makes it visible)
    relative: float | None  # ‖Δ‖/‖w‖ of the row; None when the base row is zero
    absolute: float  # ‖Δ‖


@dataclass(frozen=True)
class Summary:
    """Distribution of the per-row relative change over the changed rows."""

    minimum: float
    median: float
    p90: float
    p99: float
    maximum: float


@dataclass(frozen=True)
class NewRows:
    start: int  # first new row id
    count: int
    pattern: InitPattern
    moved: bool | None  # False: still at the init; True: initialised so, then moved; None: cannot tell (random)
    offset: float  # largest distance of a new row from the pattern, in S
    spread_ratio: float  # RMS distance of new rows from the base mean, over S (1: like the base rows)
    like_base_statistics: bool  # spread_ratio within SAME_STATISTICS
    copied_from: tuple[int, ...] = ()  # base row each new row equals (COPIED), first few


@dataclass(frozen=True)
class MatrixDiff:
    """One matrix (head, embedding, final norm weight, head bias) of BASE against OTHER."""

    role: str
    base: str
    other: str
    base_rows: int
    other_rows: int
    shared_rows: int
    identical_rows: int
    changed_rows: int
    relative_change: float | None  # ‖Δ‖_F / ‖W_base‖_F over the shared rows; None when the base is zero
    max_abs_diff: float
    changed_summary: Summary | None
    most_changed: tuple[RowChange, ...]
    quantization_pair: bool  # one side quantized, the other dense: Δ is the quantization error
    rounding_of: str | None = None  # OTHER is a narrower float and every value is BASE's rounded to it (a cast, nothing else)
    added: NewRows | None = None
    removed_rows: int = 0
    unset_rows: int = 0  # rows of tokens OTHER's tokenizer added within BASE's rows (its padding) that still hold BASE's values

    @property
    def identical(self) -> bool:
        return self.changed_rows == 0 and self.base_rows == self.other_rows


@dataclass(frozen=True)
class TokenChange:
    token_id: int
    base: str | None
    other: str | None


@dataclass(frozen=True)
class TokenizerDiff:
    base_source: str | None
    other_source: str | None
    base_size: int | None
    other_size: int | None
    added: int  # ids only OTHER has
    removed: int
    changed: int  # ids both have, with different text
    examples_added: tuple[TokenChange, ...] = ()
    examples_removed: tuple[TokenChange, ...] = ()
    examples_changed: tuple[TokenChange, ...] = ()
    special_added: tuple[str, ...] = ()
    special_removed: tuple[str, ...] = ()
    special_ids: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # bos/eos/pad: (base, other) where they differ
    chat_template: str = "absent"  # "same", "changed", "added", "removed", "absent"

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed or self.special_added or self.special_removed or self.special_ids) and (
            self.chat_template in ("same", "absent")
        )


@dataclass(frozen=True)
class DiffReport:
    base: Side
    other: Side
    head: MatrixDiff | None  # None when widths differ
    embedding: MatrixDiff | None  # None when tied on both sides (the head is the embedding) or not stored
    norm: MatrixDiff | None
    bias: MatrixDiff | None
    tokenizer: TokenizerDiff
    tying: str  # "same", "untied" (tied before, untied after), "retied" (untied before, tied after)
    problems: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- structure


def _dtype(ckpt: Checkpoint, name: str) -> tuple[str, bool]:
    """(dtype as stored, whether it is quantized): a quantized method's name and bits, or the format's type."""
    quantized = ckpt.quantized.get(name)
    if quantized is not None:
        return f"{getattr(quantized.method, 'value', quantized.method)} {quantized.bits}-bit", True
    dtype = ckpt.tensors[name].dtype
    return dtype, dtype not in PLAIN_FLOATS


def precision(ckpt: Checkpoint, name: str) -> float:
    """How finely the stored values can resolve a number, relative to it: a float's machine epsilon, or for a
    quantized type 2^-(bits-1) (Q8_0: 2^-7, 4-bit: 2^-3), a stored-rounding scale for "still at the init"."""
    info = ckpt.tensors[name]
    quantized = ckpt.quantized.get(name)
    if quantized is None and info.dtype in PLAIN_FLOATS:
        return PLAIN_FLOATS[info.dtype]
    bits = quantized.bits if quantized is not None else int(info.bits_per_param)
    return float(2.0 ** -(max(bits, 2) - 1))


def _narrower(a: Checkpoint, name_a: str, b: Checkpoint, name_b: str) -> str | None:
    """OTHER's float dtype when it is narrower than BASE's (both plain floats): a cast would round to it."""
    da, db = a.tensors[name_a].dtype, b.tensors[name_b].dtype
    if name_a in a.quantized or name_b in b.quantized or da not in PLAIN_FLOATS or db not in SMALLEST_HALF_STEP:
        return None
    return db if PLAIN_FLOATS[db] > PLAIN_FLOATS[da] else None


def _config_vocab(ckpt: Checkpoint, anatomy: HeadAnatomy) -> int | None:
    settings = ckpt.metadata if ckpt.format.value == "gguf" else (ckpt.config or {})
    key = f"{anatomy.architecture}.vocab_size" if ckpt.format.value == "gguf" else "vocab_size"
    value = settings.get(key)
    if value is None and isinstance(settings.get("text_config"), dict):
        value = settings["text_config"].get("vocab_size")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def side(ckpt: Checkpoint, anatomy: HeadAnatomy, vocab: Vocabulary | None) -> Side:
    head = anatomy.head_matrix
    head_dtype, quantized = _dtype(ckpt, head)
    emb = anatomy.embedding
    norm = anatomy.final_norm
    return Side(
        path=str(ckpt.path),
        format=ckpt.format.value,
        architecture=anatomy.architecture,
        config_vocab=_config_vocab(ckpt, anatomy),
        embedding_rows=ckpt.tensors[emb].rows if emb else None,
        head_rows=anatomy.vocab_size,
        tokenizer_size=vocab.size if vocab else None,
        hidden_size=anatomy.hidden_size,
        tied=anatomy.tied,
        tie_reason=anatomy.tie_reason,
        head=head,
        embedding=emb,
        head_dtype=head_dtype,
        embedding_dtype=_dtype(ckpt, emb)[0] if emb else None,
        head_quantized=quantized,
        head_bias=anatomy.head_bias,
        norm_kind=norm.kind.value if norm else None,
        norm_eps=norm.eps if norm else None,
        norm_weight=norm.weight if norm else None,
        transforms=tuple((t.kind.value, t.value) for t in anatomy.transforms),
    )


# --------------------------------------------------------------------------- values


def _chunks(a: Checkpoint, name_a: str, b: Checkpoint, name_b: str, rows: int, width: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(start, rows of a, rows of b)`` float32 (C, width) each, for rows ``0:rows``; buffers reused."""
    chunk = max(1, CHUNK_BYTES // (4 * max(width, 1)))
    buf_a = np.empty((min(chunk, rows), width), dtype=np.float32)
    buf_b = np.empty_like(buf_a)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        x = a.read_rows(name_a, start, stop, out=buf_a[: stop - start]).reshape(stop - start, width)
        y = b.read_rows(name_b, start, stop, out=buf_b[: stop - start]).reshape(stop - start, width)
        yield start, x, y


def fingerprints(x: np.ndarray) -> np.ndarray:
    """One 64-bit number per float32 row, equal for rows of equal bits: their words times fixed odd multipliers,
    summed with wrap-around (integer arithmetic: the same for a row wherever it sits in a chunk)."""
    words = x.view(np.uint32).astype(np.uint64)  # (C, d)
    return (words * _multipliers(x.shape[1])).sum(axis=1, dtype=np.uint64)  # (C,)


def _multipliers(width: int) -> np.ndarray:
    return np.random.default_rng(0x1A4E).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)


class _BaseStats:
    """Sums over base rows: their mean, spread, and (for copy detection) each row's fingerprint: 8 bytes a row."""

    def __init__(self, width: int, hashes: bool) -> None:
        self.total = np.zeros(width, dtype=np.float64)
        self.squares = 0.0
        self.rows = 0
        self.hashes: dict[int, int] | None = {} if hashes else None  # fingerprint -> first base row with it

    def add(self, start: int, x: np.ndarray, squares: float | None = None) -> None:  # (C, d); squares: Σ‖row‖², if known
        self.total += x.sum(axis=0, dtype=np.float64)
        self.squares += float(np.einsum("cd,cd->", x, x, dtype=np.float64)) if squares is None else squares
        self.rows += len(x)
        if self.hashes is not None:
            for i, key in enumerate(fingerprints(x).tolist()):
                self.hashes.setdefault(key, start + i)

    @property
    def mean(self) -> np.ndarray:  # (d,)
        return self.total / max(self.rows, 1)

    @property
    def spread(self) -> float:
        """S: RMS distance of a base row from the base mean."""
        mean = self.mean
        return float(np.sqrt(max(self.squares / max(self.rows, 1) - float(mean @ mean), 0.0)))


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def compare_matrix(
    role: str,
    a: Checkpoint,
    name_a: str,
    b: Checkpoint,
    name_b: str,
    vocab: Vocabulary | None,
    quantization_pair: bool = False,
    watched: tuple[int, int] | None = None,
) -> MatrixDiff:
    """Stream both matrices' shared rows once; then OTHER's new rows (if any) against the base statistics."""
    info_a, info_b = a.info(name_a), b.info(name_b)
    width = info_a.numel // max(info_a.rows, 1)
    shared = min(info_a.rows, info_b.rows)
    grows = info_b.rows > info_a.rows
    cast = _narrower(a, name_a, b, name_b)
    rounded = cast is not None  # every value so far within the cast's rounding
    unit = PLAIN_FLOATS[cast] / 2 if cast else 0.0
    base = _BaseStats(width, hashes=grows)  # needed only to classify new rows
    rel = np.empty(shared, dtype=np.float64)  # per-row ‖Δ‖/‖w‖: a few numbers per row, never V × d
    delta = np.empty(shared, dtype=np.float64)
    same = np.empty(shared, dtype=bool)
    diff_sq = norm_sq = 0.0
    max_abs = 0.0
    for start, x, y in _chunks(a, name_a, b, name_b, shared, width):
        stop = start + len(x)
        d = np.subtract(x, y, dtype=np.float64)  # (C, d), one float64 temporary
        row_d = np.einsum("cd,cd->c", d, d)  # (C,)
        row_w = np.einsum("cd,cd->c", x, x, dtype=np.float64)
        if grows:
            base.add(start, x, float(row_w.sum()))
        if rounded and cast is not None:  # round-to-nearest: |x - y| ≤ u·|x| (+ half a subnormal step)
            rounded = bool((np.abs(d) <= unit * np.abs(x) + SMALLEST_HALF_STEP[cast]).all())
        same[start:stop] = (x == y).all(axis=1)
        delta[start:stop] = np.sqrt(row_d)
        rel[start:stop] = np.where(row_w > 0, np.sqrt(row_d / np.where(row_w > 0, row_w, 1.0)), np.where(row_d > 0, np.inf, 0.0))
        diff_sq += float(row_d.sum())
        norm_sq += float(row_w.sum())
        max_abs = max(max_abs, float(max(d.max(), -d.min())) if d.size else 0.0)  # no |d| temporary
    changed = ~same
    unset = int(same[watched[0] : min(watched[1], shared)].sum()) if watched else 0
    added = _new_rows(a, name_a, b, name_b, info_b.rows, base, precision(b, name_b)) if grows else None
    return MatrixDiff(
        role=role,
        base=name_a,
        other=name_b,
        base_rows=info_a.rows,
        other_rows=info_b.rows,
        shared_rows=shared,
        identical_rows=int(same.sum()),
        changed_rows=int(changed.sum()),
        relative_change=float(np.sqrt(diff_sq / norm_sq)) if norm_sq > 0 else (0.0 if diff_sq == 0 else None),
        max_abs_diff=max_abs,
        changed_summary=_summary(rel[changed]) if changed.any() else None,
        most_changed=_most_changed(rel, delta, changed, vocab),
        quantization_pair=quantization_pair,
        rounding_of=cast if rounded and shared and not same.all() else None,
        added=added,
        removed_rows=max(info_a.rows - info_b.rows, 0),
        unset_rows=unset,
    )


def _summary(values: np.ndarray) -> Summary:
    q = np.quantile(values, [0.0, 0.5, 0.9, 0.99, 1.0])  # inf (a zero base row that moved) stays inf: JSON null
    return Summary(*(float(v) for v in q))


def _most_changed(rel: np.ndarray, delta: np.ndarray, changed: np.ndarray, vocab: Vocabulary | None) -> tuple[RowChange, ...]:
    ids = np.flatnonzero(changed)
    if not ids.size:
        return ()
    key = np.where(np.isfinite(rel[ids]), rel[ids], np.finfo(np.float64).max)
    top = ids[np.lexsort((-delta[ids], -key))[:TOP_ROWS]]  # by relative change, then by absolute
    return tuple(
        RowChange(int(i), vocab.text(int(i)) if vocab else None, float(rel[i]) if np.isfinite(rel[i]) else None, float(delta[i]))
        for i in top
    )


def _new_rows(a: Checkpoint, name_a: str, b: Checkpoint, name: str, stop: int, base: _BaseStats, eps: float) -> NewRows:
    """Classify OTHER's rows past BASE's (a few thousand at most in practice; streamed regardless)."""
    start, width = base.rows, len(base.total)
    mean = base.mean  # (d,)
    spread = base.spread or 1.0
    first: np.ndarray | None = None
    zero = ident = to_mean = 0.0  # largest distance of a new row from each pattern, in S
    rounding = eps * float(np.linalg.norm(mean)) / spread  # the mean rounded to OTHER's dtype lies this far off it
    sq_from_mean = 0.0
    copies: list[int] = []
    all_copied = base.hashes is not None
    chunk = max(1, CHUNK_BYTES // (4 * width))
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        y = b.read_rows(name, lo, hi).reshape(hi - lo, width).astype(np.float64)  # (C, d)
        if first is None:
            first = y[0].copy()
        from_mean = np.linalg.norm(y - mean, axis=1) / spread  # (C,)
        sq_from_mean += float((from_mean**2).sum())
        zero = max(zero, float(np.linalg.norm(y, axis=1).max()) / spread)
        ident = max(ident, float(np.linalg.norm(y - first, axis=1).max()) / spread)
        to_mean = max(to_mean, float(from_mean.max()))
        if all_copied and base.hashes is not None:
            rows32 = y.astype(np.float32)  # exactly OTHER's values (read as float32)
            for row, key in zip(rows32, fingerprints(rows32).tolist(), strict=True):
                source = base.hashes.get(key)
                if source is None or not np.array_equal(
                    a.read_rows(name_a, source, source + 1).reshape(-1).view(np.uint32), row.view(np.uint32)
                ):
                    all_copied = False  # a matching fingerprint is checked against the base row's bits
                    break
                copies.append(source)
    count = stop - start
    ratio = float(np.sqrt(sq_from_mean / count))
    like = SAME_STATISTICS[0] <= ratio <= SAME_STATISTICS[1]

    def found(pattern: InitPattern, offset: float, moved: bool | None) -> NewRows:
        return NewRows(start, count, pattern, moved, offset, ratio, like, tuple(copies[:TOP_ROWS]) if pattern is InitPattern.COPIED else ())

    if zero == 0.0:
        return found(InitPattern.ZERO, 0.0, False)
    if to_mean <= AT_INIT + rounding:
        return found(InitPattern.OLD_MEAN, to_mean, False)
    if all_copied:  # before IDENTICAL: copies of one row are identical too, and "copied from row i" says more
        return found(InitPattern.COPIED, 0.0, False)
    if count > 1 and ident == 0.0:
        return found(InitPattern.IDENTICAL, 0.0, False)
    near = [(to_mean, InitPattern.OLD_MEAN), (zero, InitPattern.ZERO)] + ([(ident, InitPattern.IDENTICAL)] if count > 1 else [])
    offset, pattern = min(near, key=lambda p: p[0])
    if offset <= NEAR_INIT:
        return found(pattern, offset, True)
    return found(InitPattern.RANDOM, to_mean, None)


def compare_vectors(
    role: str, a: Checkpoint, name_a: str, b: Checkpoint, name_b: str, offsets: tuple[float, float] = (0.0, 0.0)
) -> MatrixDiff | None:
    """A final norm weight or a head bias: one row of d (or V) numbers; ``offsets`` added to each side first
    (1 for a (1 + w) norm, so that Gemma's stored w and its GGUF's stored 1 + w compare as the scale they apply)."""
    x = a.read_tensor(name_a).reshape(-1).astype(np.float64) + offsets[0]
    y = b.read_tensor(name_b).reshape(-1).astype(np.float64) + offsets[1]
    if x.shape != y.shape:
        return None
    d = x - y
    norm = float(np.linalg.norm(x))
    same = bool(np.array_equal(x, y))
    rel = float(np.linalg.norm(d)) / norm if norm > 0 else (0.0 if same else None)
    return MatrixDiff(
        role, name_a, name_b, 1, 1, 1, int(same), int(not same), rel, float(np.abs(d).max()) if d.size else 0.0, None, (), False
    )


# --------------------------------------------------------------------------- tokenizer


def tokenizer_files(ckpt: Checkpoint) -> tuple[dict[str, Any], str | None]:
    """(tokenizer_config.json's settings, the chat template) beside the checkpoint's tokenizer, or from GGUF metadata."""
    if ckpt.format.value == "gguf":
        template = ckpt.metadata.get("tokenizer.chat_template")
        return {}, template if isinstance(template, str) else None
    folder = ckpt.tokenizer_path.parent if ckpt.tokenizer_path is not None else (ckpt.path if ckpt.path.is_dir() else ckpt.path.parent)
    if ckpt.remote is not None:
        return {}, None
    settings: dict[str, Any] = {}
    path = folder / "tokenizer_config.json"
    if path.is_file():
        try:
            loaded = json.loads(read_regular(path, TokenizerError, "tokenizer config", limit=2**26))
            settings = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            settings = {}
    template = settings.get("chat_template")
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = read_regular(jinja, TokenizerError, "chat template", limit=2**24).decode("utf-8", errors="replace")
    return settings, template if isinstance(template, str) else None


def _special_tokens(ckpt: Checkpoint) -> set[str] | None:
    """Texts of tokenizer.json's special added tokens; None where unknown."""
    if ckpt.tokenizer_path is None or ckpt.remote is not None or not Path(ckpt.tokenizer_path).is_file():
        return None
    try:
        spec = json.loads(read_regular(ckpt.tokenizer_path, TokenizerError, "tokenizer", limit=2**30))
    except ValueError:
        return None
    added = spec.get("added_tokens") if isinstance(spec, dict) else None
    if not isinstance(added, list):
        return None
    return {t["content"] for t in added if isinstance(t, dict) and t.get("special") and isinstance(t.get("content"), str)}


SPECIAL_IDS = (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "pad_token_id"))
GGUF_SPECIAL_IDS = {"bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id", "pad": "tokenizer.ggml.padding_token_id"}


def _special_ids(ckpt: Checkpoint) -> dict[str, Any]:
    if ckpt.format.value == "gguf":
        return {role: ckpt.metadata.get(key) for role, key in GGUF_SPECIAL_IDS.items()}
    config = ckpt.config or {}
    return {role: config.get(key) for role, key in SPECIAL_IDS}


def compare_tokenizers(a: Checkpoint, va: Vocabulary | None, b: Checkpoint, vb: Vocabulary | None) -> TokenizerDiff:
    added: list[TokenChange] = []
    removed: list[TokenChange] = []
    changed: list[TokenChange] = []
    n_added = n_removed = n_changed = 0
    if va is not None and vb is not None:
        for i in range(min(va.size, vb.size)):
            ta, tb = va.text(i), vb.text(i)
            if ta != tb:
                n_changed += 1
                if len(changed) < LISTED_TOKENS:
                    changed.append(TokenChange(i, ta, tb))
        n_added, n_removed = max(vb.size - va.size, 0), max(va.size - vb.size, 0)
        added = [TokenChange(i, None, vb.text(i)) for i in range(va.size, min(vb.size, va.size + LISTED_TOKENS))]
        removed = [TokenChange(i, va.text(i), None) for i in range(vb.size, min(va.size, vb.size + LISTED_TOKENS))]
    sa, sb = _special_tokens(a), _special_tokens(b)
    ids_a, ids_b = _special_ids(a), _special_ids(b)
    _, ta_template = tokenizer_files(a)
    _, tb_template = tokenizer_files(b)
    template = (
        "absent"
        if ta_template is None and tb_template is None
        else "added"
        if ta_template is None
        else "removed"
        if tb_template is None
        else "same"
        if ta_template == tb_template
        else "changed"
    )
    return TokenizerDiff(
        base_source=va.source if va else None,
        other_source=vb.source if vb else None,
        base_size=va.size if va else None,
        other_size=vb.size if vb else None,
        added=n_added,
        removed=n_removed,
        changed=n_changed,
        examples_added=tuple(added),
        examples_removed=tuple(removed),
        examples_changed=tuple(changed),
        special_added=tuple(sorted(sb - sa)) if sa is not None and sb is not None else (),
        special_removed=tuple(sorted(sa - sb)) if sa is not None and sb is not None else (),
        special_ids={k: (ids_a[k], ids_b[k]) for k in ids_a if ids_a[k] != ids_b[k]},
        chat_template=template,
    )


# --------------------------------------------------------------------------- the whole diff


def diff_checkpoints(
    a: Checkpoint, anat_a: HeadAnatomy, vocab_a: Vocabulary | None, b: Checkpoint, anat_b: HeadAnatomy, vocab_b: Vocabulary | None
) -> DiffReport:
    base, other = side(a, anat_a, vocab_a), side(b, anat_b, vocab_b)
    problems: list[Finding] = []
    tying = "same" if base.tied == other.tied else ("untied" if base.tied else "retied")
    if tying == "retied" and anat_a.head is not None:
        problems.append(Finding(DiffProblem.HEAD_RETIED, "head", base.head_rows, anat_a.head))
    elif _overwritten(a, anat_a, b, anat_b):
        problems.append(Finding(DiffProblem.HEAD_OVERWRITTEN, "head", other.head_rows, anat_b.head or ""))
    head = embedding = norm = bias = None
    if base.hidden_size != other.hidden_size:
        problems.append(Finding(DiffProblem.WIDTHS_DIFFER, None, 0, f"{base.hidden_size} vs {other.hidden_size}"))
    else:
        quant_pair = base.head_quantized != other.head_quantized
        watched = _padding_tokens(base, other)
        head = compare_matrix("head", a, base.head, b, other.head, vocab_b, quantization_pair=quant_pair, watched=watched)
        both_tied = base.tied and other.tied
        if base.embedding and other.embedding and not both_tied:
            emb_pair = _dtype(a, base.embedding)[1] != _dtype(b, other.embedding)[1]
            embedding = compare_matrix(
                "embedding", a, base.embedding, b, other.embedding, vocab_b, quantization_pair=emb_pair, watched=watched
            )
        if base.norm_weight and other.norm_weight:
            offsets = (_one_plus(base.norm_kind), _one_plus(other.norm_kind))
            norm = compare_vectors("final_norm", a, base.norm_weight, b, other.norm_weight, offsets)
        if base.head_bias and other.head_bias:
            bias = compare_vectors("head_bias", a, base.head_bias, b, other.head_bias)
    for matrix in (head, embedding):
        if matrix is not None and matrix.added is not None and matrix.added.moved is False:
            problems.append(Finding(DiffProblem.NEW_ROWS_UNTRAINED, matrix.role, matrix.added.count, matrix.added.pattern.value))
    for matrix in (head, embedding):
        if matrix is not None and matrix.unset_rows:
            problems.append(Finding(DiffProblem.NEW_TOKENS_UNSET, matrix.role, matrix.unset_rows, ""))
    return DiffReport(
        base=base,
        other=other,
        head=head,
        embedding=embedding,
        norm=norm,
        bias=bias,
        tokenizer=compare_tokenizers(a, vocab_a, b, vocab_b),
        tying=tying,
        problems=tuple(problems),
    )


def _head_is_embedding(ckpt: Checkpoint, anatomy: HeadAnatomy) -> bool:
    """A stored, untied head of the embedding's shape holding exactly its values (stops at the first differing chunk)."""
    if anatomy.tied or anatomy.head is None or anatomy.embedding is None:
        return False
    if anatomy.values_identical is not None:  # locate_head compared them already
        return anatomy.values_identical
    emb, head = ckpt.tensors[anatomy.embedding], ckpt.tensors[anatomy.head]
    return emb.shape == head.shape and compare_values(ckpt, emb, head).identical


def _overwritten(a: Checkpoint, anat_a: HeadAnatomy, b: Checkpoint, anat_b: HeadAnatomy) -> bool:
    """transformers #45127: tying code copied the embedding over a trained head, and both were saved, untied."""
    return not anat_a.tied and anat_a.head is not None and _head_is_embedding(b, anat_b) and not _head_is_embedding(a, anat_a)


def _one_plus(kind: str | None) -> float:
    """1 where the norm multiplies by (1 + w): the scale it applies is w + 1."""
    return 1.0 if kind is not None and kind.endswith("-1p") else 0.0


def _padding_tokens(base: Side, other: Side) -> tuple[int, int] | None:
    """Ids OTHER's tokenizer added within rows BASE already had (its padding): if their rows still hold BASE's
    values, nobody set them (LlamaFactory #10547)."""
    if base.tokenizer_size is None or other.tokenizer_size is None:
        return None
    lo, hi = base.tokenizer_size, min(other.tokenizer_size, base.head_rows)
    return (lo, hi) if hi > lo else None
