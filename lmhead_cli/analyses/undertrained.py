"""``lmhead tokens``: under-trained and unreachable tokens, from the weights alone.

The method is Land & Bartolo 2024, "Fishing for Magikarp" (arXiv 2405.05417; code:
github.com/cohere-ai/magikarp). A token training never (or rarely) showed the model keeps a
head row that gradient descent only pushed away from, the same way for every such token: its
row points where the rows of tokens known to be unused point. So:

* the reference set R: tokens no text can contain (bytes 0xF5-0xFF, which UTF-8 never uses),
  else reserved placeholders (``<unused12>``), else the largest group of bit-identical rows;
* the head indicator: cosine distance of each head row to the mean of R's rows (low: suspect),
  optionally after removing the first principal component of the centred head from every row
  and from the mean (the paper's variant; it needs the d x d covariance and a second pass);
* for an untied model, the input embedding's L2 norm (low: suspect): rows training never
  touched keep their small initial norm, or shrank under weight decay;
* exact evidence, apart: rows bit-identical in groups, zero rows, non-finite rows, rows at the
  mean of all rows (how resized embeddings are initialised).

A row is read chunk by chunk (``Checkpoint.row_chunks``): memory is bounded by the chunk, a few
per-row numbers, and the d x d covariance when it is asked for. The cut-off is the repository's:
tokens that round-trip through the tokenizer whose indicator is at most the 2nd percentile of the
round-trippable tokens' values. Weights only rank suspects: prompting the model confirms them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import LmheadError, TokenizerError
from ..core.files import read_regular
from ..inputs.tokens import Vocabulary
from ..logits.head import default_chunk_rows
from ..model.anatomy import HeadAnatomy
from .reachability import Category, Reachability, byte_value, is_byte_level, reachability, reserved_ids

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "Evidence",
    "Indicator",
    "Reference",
    "ReferenceSource",
    "TokenReport",
    "find_undertrained",
    "parse_ids",
]

PERCENTILE = 2.0  # the repository's cut-off: 2% of the round-trippable tokens are suspects
UNUSED_BYTES = range(0xF5, 0x100)  # never in UTF-8 text (RFC 3629): a byte token for one is never trained on text
CLIP = 1e-6  # the repository's floor under the product of norms (zero rows)
MEAN_TOLERANCE = 1e-2  # a row within 1% of the mean's norm from the mean of all rows is "at the mean"
MAX_TEMPLATE_BYTES = 2**24
BLOCK_ROWS = 256  # rows worked on at a time within a chunk read: 1.7x faster than whole 1638-row chunks (640 wide)


class Indicator(Enum):
    COSINE = "cosine"  # 1 - cos(head row, mean of R's head rows)
    COSINE_NO_PC = "cosine-no-pc"  # the same, the centred head's first principal component removed
    EMBEDDING_NORM = "embedding-norm"  # L2 norm of the input embedding row (untied models)

    @property
    def needs_reference(self) -> bool:
        return self is not Indicator.EMBEDDING_NORM


class ReferenceSource(Enum):
    BYTES = "bytes"  # byte tokens 0xF5-0xFF
    RESERVED = "reserved"  # <unused..>, <|reserved_special_token_..|>
    IDENTICAL = "identical"  # the largest group of bit-identical rows
    GIVEN = "given"  # --reference-tokens
    NONE = "none"


@dataclass(frozen=True)
class Reference:
    ids: tuple[int, ...]
    source: ReferenceSource


@dataclass(frozen=True)
class Evidence:
    """Facts about one matrix's rows, exact (not a ranking)."""

    matrix: str
    identical_groups: list[list[int]]  # ids whose rows are bit-identical (float32 values as read), largest group first
    zero_rows: list[int]
    nonfinite_rows: list[int]
    mean_rows: list[int]  # within MEAN_TOLERANCE of the mean of all rows (and not identical to it by chance)

    @property
    def any(self) -> bool:
        return bool(self.identical_groups or self.zero_rows or self.nonfinite_rows or self.mean_rows)

    def ids(self) -> set[int]:
        found = {i for group in self.identical_groups for i in group}
        return found | set(self.zero_rows) | set(self.nonfinite_rows) | set(self.mean_rows)


@dataclass(frozen=True)
class TokenReport:
    matrix: str  # the head's matrix (the embedding when tied)
    embedding: str | None
    tied: bool
    rows: int
    reference: Reference
    indicator: Indicator | None  # the one the ranking uses; None: no R and tied (exact evidence only)
    values: dict[Indicator, np.ndarray]  # (V,) float64 per indicator computed
    reachability: Reachability
    threshold: float | None
    candidates: list[int]  # round-trippable ids at or below the threshold, lowest indicator first
    evidence: list[Evidence]  # the head matrix's, then the embedding's when untied
    padded_rows: int
    bias: np.ndarray | None  # the head bias, (V,), when the checkpoint has one
    template_ids: frozenset[int]  # added tokens the chat template spells out
    role_ids: frozenset[int]  # BOS, EOS, padding, unknown (and additional special) tokens, as the checkpoint names them
    first_pc_share: float | None  # the share of the centred head's variance the removed component holds
    notes: list[str] = field(default_factory=list)

    def used_specials(self) -> set[int]:
        """Tokens every chat or tokenized text contains: the chat template's, and BOS / EOS / padding / unknown."""
        return set(self.template_ids) | set(self.role_ids)

    def exact_ids(self) -> set[int]:
        return {i for e in self.evidence for i in e.ids()}

    def exact_in_used(self) -> list[int]:
        return sorted(self.exact_ids() & self.used_specials())


def parse_ids(spec: str, rows: int) -> tuple[int, ...]:
    """``--reference-tokens``: ids and inclusive ranges, comma-separated (``245,250-255``)."""
    ids: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise LmheadError("--reference-tokens", f"{part!r} is not an id or a range a-b") from None
        if first > last or first < 0 or last >= rows:
            raise LmheadError("--reference-tokens", f"{part!r} is not within the head's ids 0-{rows - 1}")
        ids.extend(range(first, last + 1))
    if not ids:
        raise LmheadError("--reference-tokens", "names no token")
    return tuple(sorted(set(ids)))


def find_undertrained(
    ckpt: Checkpoint,
    anatomy: HeadAnatomy,
    vocab: Vocabulary | None,
    *,
    reference: Sequence[int] | None = None,
    indicator: Indicator | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TokenReport:
    """Every head row's indicators, the tokenizer's categories, the exact evidence and the suspects."""
    matrix, rows = anatomy.head_matrix, anatomy.vocab_size
    untied = not anatomy.tied and anatomy.embedding is not None and anatomy.embedding != matrix
    chunk_rows = chunk_rows or default_chunk_rows(anatomy.hidden_size, 1, remote=ckpt.remote is not None)
    roles = frozenset(_role_ids(ckpt, vocab))
    reach = reachability(vocab, rows, roles)
    notes: list[str] = []
    ref = Reference(tuple(reference), ReferenceSource.GIVEN) if reference else _spelled_reference(vocab, rows)
    if indicator is None:
        indicator = Indicator.EMBEDDING_NORM if untied else Indicator.COSINE
    if indicator is Indicator.EMBEDDING_NORM and not untied:
        raise LmheadError("--indicator", "embedding-norm needs an untied model: this head is the embedding")
    steps = Progress(progress, rows * (1 + (indicator is Indicator.COSINE_NO_PC) + untied))

    v = _mean_rows(ckpt, matrix, ref.ids) if ref.ids else None  # (d,)
    head = _scan(ckpt, matrix, rows, chunk_rows, v, covariance=indicator is Indicator.COSINE_NO_PC, progress=steps)
    evidence = [_evidence(ckpt, matrix, head, chunk_rows)]
    if ref.source is ReferenceSource.NONE and evidence[0].identical_groups:
        ref = Reference(tuple(evidence[0].identical_groups[0]), ReferenceSource.IDENTICAL)
        v = _mean_rows(ckpt, matrix, ref.ids)
        head.dots = None
    values: dict[Indicator, np.ndarray] = {}
    share = None
    if v is not None:
        if head.dots is None or indicator is Indicator.COSINE_NO_PC:
            p = share = None
            if indicator is Indicator.COSINE_NO_PC:
                assert head.moments is not None
                p, share = head.moments.first_component()
            second = _second_pass(ckpt, matrix, chunk_rows, v, p, steps)
            head.dots = second[0]
            if p is not None:
                values[Indicator.COSINE_NO_PC] = second[1]
        assert head.dots is not None
        values[Indicator.COSINE] = _cosine_distance(head.dots, np.sqrt(head.squares), float(np.linalg.norm(v)))
    elif indicator.needs_reference:
        notes.append("no reference set of unused tokens: no byte tokens 0xF5-0xFF, no reserved tokens, no identical rows")
    if untied:
        assert anatomy.embedding is not None
        emb = _scan(ckpt, anatomy.embedding, ckpt.tensors[anatomy.embedding].rows, chunk_rows, None, covariance=False, progress=steps)
        values[Indicator.EMBEDDING_NORM] = np.sqrt(emb.squares[:rows])
        evidence.append(_evidence(ckpt, anatomy.embedding, emb, chunk_rows))
    chosen = indicator if indicator in values else None
    threshold, candidates = _candidates(values[chosen], reach) if chosen is not None else (None, [])
    if not reach.checked:
        notes.append(f"tokens not categorised ({reach.reason}): the cut-off is taken over every row")
    padded = int(sum(1 for c in reach.categories if c is Category.PADDING))
    bias = ckpt.read_tensor(anatomy.head_bias).astype(np.float64).reshape(-1) if anatomy.head_bias else None
    return TokenReport(
        matrix=matrix,
        embedding=anatomy.embedding,
        tied=not untied,
        rows=rows,
        reference=ref,
        indicator=chosen,
        values=values,
        reachability=reach,
        threshold=threshold,
        candidates=candidates,
        evidence=evidence,
        padded_rows=padded,
        bias=bias,
        template_ids=frozenset(_template_ids(ckpt, vocab)),
        role_ids=roles,
        first_pc_share=share,
        notes=notes,
    )


class Progress:
    """Rows done over every pass, for one bar."""

    def __init__(self, update: Callable[[int, int], None] | None, total: int):
        self.update, self.total, self.done = update, total, 0

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.update is not None:
            self.update(min(self.done, self.total), self.total)


# ---------------------------------------------------------------- the reference set


def _spelled_reference(vocab: Vocabulary | None, rows: int) -> Reference:
    """Byte tokens 0xF5-0xFF, else reserved placeholders; NONE when the vocabulary has neither."""
    if vocab is None:
        return Reference((), ReferenceSource.NONE)
    raws = vocab.raws(min(rows, vocab.size))
    level = is_byte_level(raws)
    # a byte token is spelled <0xNN> or, byte-level, as one character
    unused = [i for i, r in enumerate(raws) if r is not None and len(r) in (1, 6) and byte_value(r, level) in UNUSED_BYTES]
    if unused:
        return Reference(tuple(unused), ReferenceSource.BYTES)
    placeholders = reserved_ids(raws)
    if placeholders:
        return Reference(tuple(placeholders), ReferenceSource.RESERVED)
    return Reference((), ReferenceSource.NONE)


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as [start, stop) runs of consecutive ids."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _rows(ckpt: Checkpoint, name: str, ids: Iterable[int], chunk_rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """``(id, row)`` for ``ids`` in order, float32, read run by run, at most ``chunk_rows`` at a time
    (each row valid until the next block is read)."""
    for start, stop in _runs(ids):
        for a in range(start, stop, chunk_rows):
            b = min(a + chunk_rows, stop)
            block = ckpt.read_rows(name, a, b).reshape(b - a, -1)  # (n, d)
            yield from ((a + k, block[k]) for k in range(b - a))


def _mean_rows(ckpt: Checkpoint, name: str, ids: Sequence[int]) -> np.ndarray:
    total = None
    for _, row in _rows(ckpt, name, ids):
        total = row.astype(np.float64) if total is None else total + row
    assert total is not None
    return total / len(set(ids))  # (d,)


# ---------------------------------------------------------------- streamed passes


class Moments:
    """Mean and centred second moment of rows seen chunk by chunk, in float64 (Chan, Golub and
    LeVeque's pairwise update): each chunk is centred on its own mean before its (d, d) product."""

    def __init__(self, d: int):
        self.n = 0
        self.mean = np.zeros(d)
        self.m2 = np.zeros((d, d))

    def add(self, x: np.ndarray) -> None:  # x: (C, d) float32
        c = len(x)
        mc = x.mean(axis=0, dtype=np.float64)  # (d,)
        shift = mc.astype(np.float32)
        xc = x - shift  # (C, d) float32, centred on (nearly) its mean
        g = (xc.T @ xc).astype(np.float64)  # (d, C) @ (C, d) -> (d, d)
        off = mc - shift.astype(np.float64)  # what float32 rounding left of the chunk mean
        g -= c * np.outer(off, off)
        delta = mc - self.mean
        n = self.n + c
        self.m2 += g + np.outer(delta, delta) * (self.n * c / n)
        self.mean += delta * (c / n)
        self.n = n

    def first_component(self) -> tuple[np.ndarray, float]:
        """The first principal component (unit, (d,)) and the share of the variance it holds."""
        w, vecs = np.linalg.eigh(self.m2)
        total = float(w.sum())
        return vecs[:, -1].copy(), float(w[-1] / total) if total > 0 else 0.0


@dataclass
class Scan:
    squares: np.ndarray  # (V,) |x|², float64
    sums: np.ndarray  # (V,) Σ x_j
    dots: np.ndarray | None  # (V,) x · v (the mean of R), when v was known before the pass
    probe: np.ndarray  # (V,) x · u for a fixed unit u: with the others, a filter for rows at the mean
    keys: np.ndarray  # (V,) uint64 hash of the row's bits: equal rows, equal keys
    nonfinite: np.ndarray  # (V,) bool
    mean: np.ndarray  # (d,) mean of all rows
    u: np.ndarray
    moments: Moments | None


def _scan(ckpt: Checkpoint, name: str, rows: int, chunk_rows: int, v: np.ndarray | None, *, covariance: bool, progress: Progress) -> Scan:
    d = ckpt.tensors[name].shape[1] if len(ckpt.tensors[name].shape) > 1 else 1
    rng = np.random.default_rng(0x5EED)
    keys_mult = rng.integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    probes = np.stack([u] if v is None else [u, v], axis=1)  # (d, 1|2)
    squares, sums, probe = np.empty(rows), np.empty(rows), np.empty(rows)
    dots = np.empty(rows) if v is not None else None
    keys = np.empty(rows, dtype=np.uint64)
    nonfinite = np.zeros(rows, dtype=bool)
    column_sum = np.zeros(d)
    moments = Moments(d) if covariance else None
    for first, chunk in ckpt.row_chunks(name, chunk_rows):  # chunk: (C, d) float32
        for start in range(first, first + len(chunk), BLOCK_ROWS):  # blocks that stay in the cache
            x = chunk[start - first : start - first + BLOCK_ROWS]  # (b, d)
            stop = start + len(x)
            x64 = x.astype(np.float64)  # (b, d)
            squares[start:stop] = np.einsum("ij,ij->i", x64, x64)
            sums[start:stop] = x64.sum(axis=1)
            projected = x64 @ probes  # (b, d) @ (d, 1|2) -> (b, 1|2)
            probe[start:stop] = projected[:, 0]
            if dots is not None:
                dots[start:stop] = projected[:, 1]
            keys[start:stop] = _row_keys(x, keys_mult)
            bad = ~np.isfinite(squares[start:stop])
            nonfinite[start:stop] = bad
            column_sum += x64[~bad].sum(axis=0) if bad.any() else x64.sum(axis=0)  # (d,)
        if moments is not None:
            bad = nonfinite[first : first + len(chunk)]
            moments.add(chunk if not bad.any() else chunk[~bad])
        progress.advance(len(chunk))
    finite = rows - int(nonfinite.sum())
    return Scan(squares, sums, dots, probe, keys, nonfinite, column_sum / max(finite, 1), u, moments)


def _row_keys(x: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """(C,) uint64: each row's bits times odd multipliers, summed (wrapping mod 2**64). Equal rows have
    equal keys. Two float32 values make one uint64 when d is even (a fifteenth of the time of widening
    each uint32: measured on a 1618 x 640 chunk)."""
    if x.shape[1] % 2 == 0 and x.flags.c_contiguous:
        return (x.view(np.uint64) * mult[: x.shape[1] // 2]).sum(axis=1)  # (C, d/2) -> (C,)
    return (x.view(np.uint32).astype(np.uint64) * mult).sum(axis=1)  # (C, d) -> (C,)


def _second_pass(
    ckpt: Checkpoint, name: str, chunk_rows: int, v: np.ndarray, p: np.ndarray | None, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """x · v for every row, and (with a component p) the cosine distance with p removed from both."""
    rows = ckpt.tensors[name].rows
    dots = np.empty(rows)
    no_pc = np.full(rows, np.nan)
    vp = None if p is None else v - (v @ p) * p  # (d,): mean of R with p removed (removal is linear)
    for start, x in ckpt.row_chunks(name, chunk_rows):
        stop = start + len(x)
        x64 = x.astype(np.float64)  # (C, d)
        dots[start:stop] = x64 @ v
        if p is not None and vp is not None:
            xp = x64 - np.outer(x64 @ p, p)  # (C, d): each row without its component along p
            no_pc[start:stop] = _cosine_distance(xp @ vp, np.linalg.norm(xp, axis=1), float(np.linalg.norm(vp)))
        progress.advance(len(x))
    return dots, no_pc


def _cosine_distance(dots: np.ndarray, norms: np.ndarray, v_norm: float) -> np.ndarray:
    return 1.0 - dots / np.clip(norms * v_norm, CLIP, None)


# ---------------------------------------------------------------- exact evidence


def _evidence(ckpt: Checkpoint, name: str, scan: Scan, chunk_rows: int) -> Evidence:
    zero = np.flatnonzero(scan.squares == 0).tolist()  # float32 squares in float64 underflow never: zero iff all zero
    nonfinite = np.flatnonzero(scan.nonfinite).tolist()
    groups = _identical_groups(ckpt, name, scan.keys, scan.squares == 0, chunk_rows)  # zero rows are listed as such
    return Evidence(name, groups, zero, nonfinite, _at_mean(ckpt, name, scan))


def _identical_groups(ckpt: Checkpoint, name: str, keys: np.ndarray, skip: np.ndarray, chunk_rows: int) -> list[list[int]]:
    """Rows with equal keys (``skip``: zero rows, listed apart), read again run by run and split by a
    BLAKE2b digest of their bytes: only rows whose bits agree stay together. Memory: 16 bytes a row."""
    import hashlib

    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    shared = np.flatnonzero((counts[inverse] > 1) & ~skip)
    groups: dict[tuple[int, bytes], list[int]] = {}
    for i, row in _rows(ckpt, name, shared.tolist(), chunk_rows):
        digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        groups.setdefault((int(inverse[i]), digest), []).append(i)
    found = [g for g in groups.values() if len(g) > 1]
    return sorted(found, key=lambda g: (-len(g), g[0]))


def _at_mean(ckpt: Checkpoint, name: str, scan: Scan) -> list[int]:
    """Rows within MEAN_TOLERANCE·|mean| of the mean of all rows. Necessary conditions on the per-row
    numbers pick the few to read again; the distance is then computed on the rows themselves."""
    m = scan.mean
    m_norm = float(np.linalg.norm(m))
    if m_norm == 0:
        return []
    radius = MEAN_TOLERANCE * m_norm * (1 + 1e-6)
    close = np.abs(np.sqrt(scan.squares) - m_norm) <= radius
    close &= np.abs(scan.probe - m @ scan.u) <= radius
    close &= np.abs(scan.sums - m.sum()) <= radius * np.sqrt(len(m))
    picked = np.flatnonzero(close).tolist()
    return [i for i, row in _rows(ckpt, name, picked) if np.linalg.norm(row.astype(np.float64) - m) <= MEAN_TOLERANCE * m_norm]


# ---------------------------------------------------------------- the cut-off


def _candidates(values: np.ndarray, reach: Reachability) -> tuple[float | None, list[int]]:
    """The repository's rule: the 2nd percentile of the round-trippable ("ok") tokens' values; every
    round-trippable token (special ones included) at or below it, lowest first."""
    if reach.checked:
        ok = reach.categories == Category.OK  # (V,) bool, compared element by element
        eligible = ok | (reach.categories == Category.SPECIAL)
    else:
        ok = eligible = reach.categories != Category.PADDING
    pool = values[ok & np.isfinite(values)]
    if not len(pool):
        return None, []
    threshold = float(np.percentile(pool, PERCENTILE))
    ids = np.flatnonzero(eligible & (values <= threshold))
    return threshold, ids[np.argsort(values[ids], kind="stable")].tolist()


# ---------------------------------------------------------------- the chat template


def _template_ids(ckpt: Checkpoint, vocab: Vocabulary | None) -> set[int]:
    """Added tokens whose text the chat template spells out (``<|im_start|>``)."""
    template = _chat_template(ckpt, vocab)
    tokenizer = _tokenizer(vocab) if template else None
    if tokenizer is None or not template:
        return set()
    return {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.content and t.content in template}


ROLES = ("bos", "eos", "pad", "unk", "sep", "mask")
GGUF_ROLE_KEYS = tuple(f"tokenizer.ggml.{k}_token_id" for k in ("bos", "eos", "padding", "unknown", "seperator", "mask"))  # sic


def _role_ids(ckpt: Checkpoint, vocab: Vocabulary | None) -> set[int]:
    """BOS, EOS, padding and unknown ids: a GGUF's metadata, or the config's ids and the tokenizer
    files' token strings (tokenizer_config.json, special_tokens_map.json) beside the tokenizer."""
    found: set[int] = set()
    for key in GGUF_ROLE_KEYS:
        value = ckpt.metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = (ckpt.config or {}).get(key)
        values = value if isinstance(value, list) else [value]
        found |= {v for v in values if isinstance(v, int) and not isinstance(v, bool)}
    tokenizer = _tokenizer(vocab)
    for config in _tokenizer_files(vocab, ("tokenizer_config.json", "special_tokens_map.json")):
        for role in ROLES:
            token = config.get(f"{role}_token")
            text = token.get("content") if isinstance(token, dict) else token
            token_id = tokenizer.token_to_id(text) if tokenizer is not None and isinstance(text, str) else None
            if token_id is not None:
                found.add(token_id)
        for key in ("additional_special_tokens", "extra_special_tokens"):
            extra = config.get(key)
            for token in extra if isinstance(extra, list) else []:
                text = token.get("content") if isinstance(token, dict) else token
                token_id = tokenizer.token_to_id(text) if tokenizer is not None and isinstance(text, str) else None
                if token_id is not None:
                    found.add(token_id)
    return {i for i in found if vocab is None or 0 <= i < vocab.size}


def _tokenizer(vocab: Vocabulary | None) -> Tokenizer | None:
    try:
        return vocab.tokenizer() if vocab is not None else None
    except TokenizerError:  # said once, by reachability
        return None


def _tokenizer_files(vocab: Vocabulary | None, names: Sequence[str]) -> list[dict]:
    """The JSON objects of ``names`` beside the tokenizer, those that are readable JSON objects."""
    if vocab is None or not Path(vocab.source).is_file():  # a GGUF's own vocabulary: its metadata says it all
        return []
    folder = Path(vocab.source).parent
    out = []
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(read_regular(path, TokenizerError, "tokenizer config", limit=MAX_TEMPLATE_BYTES))
        except (TokenizerError, ValueError):
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def _chat_template(ckpt: Checkpoint, vocab: Vocabulary | None) -> str:
    meta = ckpt.metadata.get("tokenizer.chat_template")
    if isinstance(meta, str):
        return meta
    texts = []
    if vocab is not None and Path(vocab.source).is_file():
        path = Path(vocab.source).parent / "chat_template.jinja"
        if path.is_file():
            try:
                texts.append(
                    read_regular(path, TokenizerError, "chat template", limit=MAX_TEMPLATE_BYTES).decode("utf-8", errors="replace")
                )
            except TokenizerError:
                pass
    for config in _tokenizer_files(vocab, ("tokenizer_config.json",)):
        found = config.get("chat_template")
        texts.append(found if isinstance(found, str) else json.dumps(found) if found else "")
    return "\n".join(texts)
