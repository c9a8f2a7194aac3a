"""Are the token embedding and the head one matrix? Evidence from config, storage and values.

The verdict is ``anatomy.tied`` (``tie.loads_tied``, the one meaning of tied);
this module gathers the evidence around it: shapes, storage, values (compared
by ``compare``) and the problems and notes they reveal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checkpoint.checkpoint import Checkpoint
from ..checkpoint.compare import Progress, ValueComparison, chunk_bytes, compare_transposed, compare_values
from ..core.problems import Problem, ProblemKind
from ..formats.base import TensorInfo
from ..model.anatomy import HeadAnatomy
from ..model.tie import TieSource, values_decide

__all__ = ["TyingReport", "ValueComparison", "compare_values", "diagnose_tying", "value_bytes", "values_unread"]


@dataclass(frozen=True)
class TensorSide:
    name: str
    file: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


@dataclass(frozen=True)
class TyingReport:
    tied: bool  # tie.loads_tied, the same verdict count and doctor use
    verdict: str
    config_present: bool
    config_flag: bool | None  # tie_word_embeddings as written; None when absent or no config
    config_directs: bool | None  # what the config directs (key or class default); None when nothing decides
    tie_source: str  # why, for people
    head_stored: bool
    embedding: TensorSide | None
    head: TensorSide | None
    shape_relation: str | None  # "same", "transposed", "slice", "different"; None when one is missing
    shares_storage: bool  # the head is the embedding's own stored buffer
    values_identical: bool | None  # None when not compared
    comparison: ValueComparison | None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def diagnose_tying(
    ckpt: Checkpoint, anatomy: HeadAnatomy, full: bool = False, values: bool = True, progress: Progress | None = None
) -> TyingReport:
    """Gather the evidence behind ``anatomy.tied``; ``full`` computes difference statistics; ``progress``
    is told the rows compared after each chunk.

    Without ``values`` (hf:// without --fetch-values) only the config and storage
    evidence is gathered: a stored head's values stay unknown, and a note says so.
    """
    emb = ckpt.tensors.get(anatomy.embedding) if anatomy.embedding else None
    head = ckpt.tensors.get(anatomy.head) if anatomy.head else None
    relation = _shape_relation(emb, head)
    shares = anatomy.tie.shares_storage
    comparison = None
    if values and emb and head and relation == "same" and not shares and anatomy.values_identical is True and not full:
        comparison = ValueComparison(True, emb.rows, emb.rows, True)  # locate_head compared them already, in full
    elif values and emb and head and relation in ("same", "slice") and not shares:
        comparison = compare_values(ckpt, emb, head, full=full, rows=min(emb.rows, head.rows), progress=progress)
    elif values and emb and head and relation == "transposed":
        comparison = compare_transposed(ckpt, emb, head, full=full, progress=progress)
    identical = True if shares else (None if comparison is None else comparison.identical)
    config_present = anatomy.tie.source is not TieSource.NO_CONFIG
    problems, notes = _findings(anatomy, emb, head, relation, identical)
    verdict = _verdict_line(anatomy.tied, config_present, head, identical, problems)
    unknown = not values and value_bytes(ckpt, anatomy) > 0
    if unknown:
        notes.append(f"values not compared (they are read only with --fetch-values: {value_bytes(ckpt, anatomy):,} bytes)")
        if values_unread(ckpt, anatomy) and head is not None and emb is not None:
            verdict = f"untied unless {head.name} equals {emb.name}: values not fetched (--fetch-values)"
        elif not problems:
            verdict = f"{'tied' if anatomy.tied else 'untied'} by config; stored values not compared"
    return TyingReport(
        tied=anatomy.tied,
        verdict=verdict,
        config_present=config_present,
        config_flag=anatomy.tie.config_flag,
        config_directs=anatomy.tie.config_directs,
        tie_source=anatomy.tie_reason,
        head_stored=head is not None,
        embedding=_side(emb),
        head=_side(head),
        shape_relation=relation,
        shares_storage=shares,
        values_identical=identical,
        comparison=comparison,
        problems=problems,
        notes=[*ckpt.notes, *notes],  # what opening it found (one shard read as the whole checkpoint)
    )


def value_bytes(ckpt: Checkpoint, anatomy: HeadAnatomy) -> int:
    """At most how many bytes a value comparison of the embedding and the head reads from a reader
    that reads whole rows (the remote one): a transposed head is read once per chunk of columns."""
    emb = ckpt.tensors.get(anatomy.embedding) if anatomy.embedding else None
    head = ckpt.tensors.get(anatomy.head) if anatomy.head else None
    relation = _shape_relation(emb, head)
    if emb is None or head is None or anatomy.tie.shares_storage or relation not in ("same", "slice", "transposed"):
        return 0

    def stored(info: TensorInfo) -> int:  # a quantized weight's scales, zero points and maps are read too
        quantized = ckpt.quantized.get(info.name)
        return quantized.nbytes if quantized is not None else info.nbytes

    if relation == "transposed":
        chunks = -(-emb.rows // max(1, chunk_bytes(ckpt) // max(4 * head.rows, 1)))  # as compare_transposed reads
        return stored(emb) + chunks * stored(head)
    rows = min(emb.rows, head.rows)
    return sum(stored(info) * rows // max(info.rows, 1) for info in (emb, head))


def unread_warnings(ckpt: Checkpoint, anatomy: HeadAnatomy, values: bool) -> list[str]:
    """What makes the answer a guess when values were not read (hf:// without --fetch-values):
    a tie only the values decide."""
    if values or not values_unread(ckpt, anatomy):
        return []
    return [
        f"whether {anatomy.head} equals {anatomy.embedding} decides tying, and values are not read over hf:// "
        "without --fetch-values: counted as untied"
    ]


def values_unread(ckpt: Checkpoint, anatomy: HeadAnatomy) -> bool:
    """Whether tying hangs on values that were not read: a stored head of the embedding's shape,
    apart from it, under a config that does not rule tying out (``tie.values_decide``)."""
    emb = ckpt.tensors.get(anatomy.embedding) if anatomy.embedding else None
    head = ckpt.tensors.get(anatomy.head) if anatomy.head else None
    return values_decide(anatomy.tie) and anatomy.values_identical is None and _shape_relation(emb, head) == "same"


def _side(info: TensorInfo | None) -> TensorSide | None:
    if info is None:
        return None
    return TensorSide(info.name, info.file.name, info.shape, info.dtype, info.nbytes)


def _shape_relation(emb: TensorInfo | None, head: TensorInfo | None) -> str | None:
    if emb is None or head is None:
        return None
    if emb.shape == head.shape:
        return "same"
    if emb.shape == head.shape[::-1]:
        return "transposed"
    if len(emb.shape) == len(head.shape) == 2 and emb.shape[1] == head.shape[1]:
        return "slice"  # same width, different row counts: one may be the first rows of the other
    return "different"


def _findings(
    anatomy: HeadAnatomy, emb: TensorInfo | None, head: TensorInfo | None, relation: str | None, identical: bool | None
) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = list(anatomy.tie_problems)
    notes: list[str] = []
    says_tied = anatomy.tie.config_directs is True
    says_untied = anatomy.tie.config_directs is False
    shares = anatomy.tie.shares_storage
    if emb is None:
        problems.append(Problem(ProblemKind.NO_EMBEDDING, "no token embedding is stored" + (f"; the head {head.name} is" if head else "")))
    if says_tied and head is not None and relation not in ("same", "transposed"):
        if emb is None:
            message = f"config ties the embedding and head, but only {head.name} is stored"
        else:
            message = f"config ties the embedding and head, but their shapes differ: {emb.name} {list(emb.shape)} vs {head.name} "
            message += f"{list(head.shape)}" + (f" ({_slice_phrase(emb, head)})" if relation == "slice" and identical else "")
        problems.append(Problem(ProblemKind.TIED_SHAPES_DIFFER, message))
    elif says_tied and head is not None and identical is False:
        problems.append(
            Problem(
                ProblemKind.TIED_VALUES_DIFFER,
                f"config ties the embedding and head, but {head.name} is stored with different values: "
                "transformers 4.x drops the stored head and 5.x unties them, so the same files load as different models",
            )
        )
    if emb is not None and head is not None and relation == "different" and emb.shape[1:] != head.shape[1:] and not says_tied:
        problems.append(
            Problem(
                ProblemKind.WIDTHS_DISAGREE,
                f"{emb.name} {list(emb.shape)} and {head.name} {list(head.shape)} disagree on the hidden size: "
                "they cannot belong to one model",
            )
        )
    notes.extend(p.message for p in anatomy.problems)  # config sizes that disagree with the tensors
    if says_untied and head is None and emb is not None:
        problems.append(
            Problem(ProblemKind.UNTIED_HEAD_MISSING, "config says untied, but no head is stored: loaders initialise the head at random")
        )
    if emb is not None and head is not None:
        notes.extend(_pair_notes(emb, head, relation, identical, says_tied, says_untied, shares))
    return problems, notes


def _pair_notes(
    emb: TensorInfo,
    head: TensorInfo,
    relation: str | None,
    identical: bool | None,
    says_tied: bool,
    says_untied: bool,
    shares: bool,
) -> list[str]:
    notes = []
    if relation == "slice" and identical and not says_tied:
        notes.append(f"{_slice_phrase(emb, head)}: tying them would need the loader to slice")
    if not says_tied and identical and relation != "slice" and not shares:
        if says_untied:  # the loaded model holds two matrices
            notes.append(
                f"untied, but {head.name} holds exactly the values of {emb.name}: tying would save "
                f"{head.numel:,} parameters ({head.nbytes:,} bytes)"
            )
        else:  # nothing directs tying: the identical copy is what ties them (tie.loads_tied), stored twice
            notes.append(
                f"{head.name} holds exactly the values of {emb.name} and is stored twice: storing it once would save {head.nbytes:,} bytes"
            )
    if says_tied and identical and not shares:
        notes.append(f"{head.name} is stored although tied; it equals the embedding, so loaders agree ({head.nbytes:,} bytes redundant)")
    if shares:
        notes.append(f"{head.name} and {emb.name} share one storage in the file: tied by storage")
    if emb.dtype != head.dtype:
        how = "dequantizing" if not (_plain(emb.dtype) and _plain(head.dtype)) else "widening"
        notes.append(f"embedding is {emb.dtype}, head is {head.dtype}; values were compared after {how}")
    if relation == "transposed":
        notes.append(f"{head.name} is stored transposed {list(head.shape)} relative to {emb.name}; values compared column by column")
    return notes


def _plain(dtype: str) -> bool:
    return dtype[:1] in ("F", "B", "I", "U") and not dtype.startswith(("IQ",))


def _slice_phrase(emb: TensorInfo, head: TensorInfo) -> str:
    if head.rows < emb.rows:
        return f"{head.name} equals the first {head.rows:,} rows of {emb.name}, which has {emb.rows - head.rows:,} more: a slice tie"
    return f"{emb.name} equals the first {emb.rows:,} rows of {head.name}, which has {head.rows - emb.rows:,} more: a slice tie"


def _verdict_line(tied: bool, config_present: bool, head: TensorInfo | None, identical: bool | None, problems: list[Problem]) -> str:
    state = "tied" if tied else "untied"
    if problems:
        return f"{state}, but the checkpoint is inconsistent ({len(problems)} problem{'s' if len(problems) > 1 else ''})"
    if not config_present:
        why = "no head stored" if head is None else ("identical values" if identical else "a distinct head is stored")
        return f"{state} (no config; {why})"
    return f"{state}, consistent"
