"""Parameter and byte counts by role, from headers alone.

The totals follow transformers' ``num_parameters()``: buffers are not
parameters, and a tied matrix is counted once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..checkpoint.checkpoint import Checkpoint
from ..core.problems import Problem, ProblemKind
from ..formats.base import TensorInfo
from ..model.anatomy import HeadAnatomy
from ..model.conventions import BLOCK_PATTERN, PROJECTOR_PREFIXES, VISION_PREFIXES

__all__ = ["Census", "DtypeCount", "Group", "census"]

GROUP_ORDER = ("embedding", "head", "final_norm", "blocks", "vision", "projector", "other", "quantization")


@dataclass(frozen=True)
class Quantization:
    """How a quantized checkpoint stores its weights (None in ``Census`` for a dense one)."""

    method: str  # the config's quant_method ("gptq", "bitsandbytes", ...), else the layout's own name
    layouts: tuple[str, ...]  # every stored layout found, e.g. ("bitsandbytes NF4",)
    bits: int | None
    group_size: int | None
    source: str  # where the method was read
    head_quantized: bool
    embedding_quantized: bool
    head_layout: str | None  # the head matrix's layout, None when dense
    quantized_params: int  # dense-equivalent parameters stored quantized
    metadata_bytes: int  # scales, zero points, indices, states
    note: str | None = None  # a method lmhead does not know: its tensors are counted as stored


@dataclass(frozen=True)
class Group:
    name: str
    params: int  # parameters this group adds to the total
    nbytes: int  # bytes its tensors take on disk
    tensors: int
    dtypes: tuple[str, ...]
    layers: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class DtypeCount:
    dtype: str
    stored_params: int  # every parameter tensor on disk (a tied head stored anyway counts)
    effective_params: int  # as the loaded model has them: a tied matrix once
    nbytes: int


@dataclass(frozen=True)
class Census:
    total_params: int
    total_bytes: int
    embedding_params: int
    head_params: int  # head weight + bias, counted even when tied
    head_stored_params: int  # what the head adds to the total (bias only when tied)
    head_bytes: int  # the head matrix + bias in their stored dtypes
    head_stored_bytes: int
    tied: bool
    vocab_size: int
    hidden_size: int
    num_layers: int
    groups: tuple[Group, ...]
    buffers_skipped: tuple[str, ...]
    stored_params: int = 0  # parameters on disk, buffers excluded
    non_embedding_params: int = 0  # total minus the token embedding and the head's own matrix
    by_dtype: tuple[DtypeCount, ...] = ()
    index_findings: tuple[Problem, ...] = ()  # disagreements between the shard index and the headers
    tokenizer_vocab: int | None = None
    padded_rows: int | None = None
    head_bits_per_param: float = 0.0  # of the head matrix, quantization metadata included
    quantization: Quantization | None = None
    warnings: tuple[str, ...] = ()  # what the counts rest on that is a guess (an architecture outside the table)

    @property
    def head_share(self) -> float:
        return self.head_params / self.total_params if self.total_params else 0.0

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    @property
    def language_model_params(self) -> int:
        """Everything but a vision tower and its projector."""
        return self.total_params - self.group("vision").params - self.group("projector").params

    @property
    def head_share_of_language_model(self) -> float:
        return self.head_params / self.language_model_params if self.language_model_params else 0.0


def census(ckpt: Checkpoint, anatomy: HeadAnatomy, tokenizer_vocab: int | None = None) -> Census:
    """Count ``ckpt``'s parameters by role using only its headers."""
    members = _assign_groups(ckpt, anatomy)
    groups = tuple(_group(name, members[name], anatomy) for name in GROUP_ORDER)
    if anatomy.tie.config_directs is False and anatomy.head is None:
        groups = _with_missing_head(groups, anatomy)
    embedding = ckpt.tensors[anatomy.embedding] if anatomy.embedding else None
    matrix = ckpt.tensors[anatomy.head_matrix]
    matrix_quantized = ckpt.quantized.get(anatomy.head_matrix)
    matrix_bytes = matrix_quantized.nbytes if matrix_quantized else matrix.nbytes  # its scales and zero points too
    bias = ckpt.tensors[anatomy.head_bias] if anatomy.head_bias else None
    bias_params = bias.numel if bias else 0
    head_group = groups[GROUP_ORDER.index("head")]
    padded = None
    if tokenizer_vocab is not None and anatomy.vocab_size > tokenizer_vocab:
        padded = anatomy.vocab_size - tokenizer_vocab
    total = sum(g.params for g in groups)
    own_head = 0 if anatomy.tied or anatomy.head is None else ckpt.tensors[anatomy.head].numel
    return Census(
        total_params=total,
        total_bytes=sum(g.nbytes for g in groups),
        embedding_params=embedding.numel if embedding else 0,
        head_params=matrix.numel + bias_params,
        head_stored_params=head_group.params,
        head_bytes=matrix_bytes + (bias.nbytes if bias else 0),
        head_stored_bytes=head_group.nbytes + (matrix_bytes - matrix.nbytes if anatomy.head == anatomy.head_matrix else 0),
        tied=anatomy.tied,
        vocab_size=anatomy.vocab_size,
        hidden_size=anatomy.hidden_size,
        num_layers=groups[GROUP_ORDER.index("blocks")].layers or 0,
        groups=groups,
        buffers_skipped=anatomy.buffers,
        stored_params=sum(i.numel for name, g in members.items() if name != "quantization" for i in g),
        non_embedding_params=total - (embedding.numel if embedding else 0) - own_head,
        by_dtype=_by_dtype(members, anatomy),
        index_findings=_index_findings(ckpt),
        tokenizer_vocab=tokenizer_vocab,
        padded_rows=padded,
        head_bits_per_param=8 * matrix_bytes / matrix.numel if matrix.numel else 0.0,
        quantization=_quantization(ckpt, anatomy),
        warnings=_guessed_roles(ckpt, anatomy, members) + _unknown_method(ckpt),
    )


def _quantization(ckpt: Checkpoint, anatomy: HeadAnatomy) -> Quantization | None:
    weights = ckpt.quantized
    scheme = ckpt.quantization
    if not weights and scheme is None:
        return None
    sizes: dict[str, int] = {}
    for w in weights.values():
        sizes[w.method.value] = sizes.get(w.method.value, 0) + w.numel
    layouts = sorted(sizes, key=lambda m: -sizes[m])
    head = weights.get(anatomy.head_matrix)
    embedding = weights.get(anatomy.embedding) if anatomy.embedding else None
    first = max(weights.values(), key=lambda w: w.numel, default=None)
    return Quantization(
        method=scheme.quant_method if scheme else (first.method.dtype_label if first else "unknown"),
        layouts=tuple(layouts),
        bits=scheme.bits if scheme and scheme.bits else (first.bits if first else None),
        group_size=scheme.group_size if scheme and scheme.group_size else (first.group_size if first else None),
        source=scheme.source if scheme else "tensor names",
        head_quantized=head is not None,
        embedding_quantized=embedding is not None,
        head_layout=head.method.value if head else None,
        quantized_params=sum(w.numel for w in weights.values()),
        metadata_bytes=sum(i.nbytes for i in ckpt.quant_metadata),
        note=_unknown_method_note(scheme.quant_method if scheme else None),
    )


def _unknown_method(ckpt: Checkpoint) -> tuple[str, ...]:
    """A method lmhead cannot read the layout of: its counts are the stored ones, so a guess."""
    note = _unknown_method_note(ckpt.quantization.quant_method if ckpt.quantization else None)
    return (note,) if note else ()


def _unknown_method_note(method: str | None) -> str | None:
    from ..quant.detect import KNOWN_METHODS

    if method is None or method in KNOWN_METHODS:
        return None
    return f"quantization method {method!r} is unknown to lmhead: its tensors are counted as stored, not at their dense size"


def _with_missing_head(groups: tuple[Group, ...], anatomy: HeadAnatomy) -> tuple[Group, ...]:
    """An untied model whose head is not stored still has one once loaded: initialised at random."""
    missing = anatomy.vocab_size * anatomy.hidden_size
    note = f"not stored: the config says untied, so loaders create a random {anatomy.vocab_size:,} × {anatomy.hidden_size:,} head"
    return tuple(replace(g, params=g.params + missing, note=note) if g.name == "head" else g for g in groups)


def _by_dtype(members: dict[str, list[TensorInfo]], anatomy: HeadAnatomy) -> tuple[DtypeCount, ...]:
    stored: dict[str, list[int]] = {}
    for group, infos in members.items():
        if group == "quantization":
            continue
        for info in infos:
            row = stored.setdefault(info.dtype, [0, 0, 0])
            row[0] += info.numel
            row[2] += info.nbytes
            if not (anatomy.tied and info.name == anatomy.head):
                row[1] += info.numel
    return tuple(DtypeCount(d, *stored[d]) for d in sorted(stored, key=lambda d: -stored[d][0]))


def _index_findings(ckpt: Checkpoint) -> tuple[Problem, ...]:
    """The index's own totals and names against the shard headers (transformers writes both)."""
    meta = ckpt.index_metadata or {}
    findings = []
    size = meta.get("total_size")
    actual_bytes = sum(i.nbytes for i in ckpt.on_disk.values())
    if isinstance(size, int) and size != actual_bytes:
        findings.append(
            Problem(
                ProblemKind.INDEX_TOTAL_SIZE,
                f"index metadata total_size is {size:,} bytes, the shards hold {actual_bytes:,} ({actual_bytes - size:+,})",
            )
        )
    params = meta.get("total_parameters")
    actual_params = sum(i.numel for i in ckpt.tensors.values())  # dense-equivalent: quantization metadata is no parameter
    if isinstance(params, int) and params != actual_params:
        findings.append(
            Problem(
                ProblemKind.INDEX_TOTAL_PARAMETERS,
                f"index metadata total_parameters is {params:,}, the shards hold {actual_params:,}"
                + (" dense-equivalent parameters" if ckpt.quantized else "")
                + f" ({actual_params - params:+,})",
            )
        )
    findings.extend(Problem(ProblemKind.INDEX_MISSING_TENSOR, f"index {p}") for p in ckpt.index_problems)
    if ckpt.unindexed:
        n, first = len(ckpt.unindexed), ckpt.unindexed[0]
        findings.append(
            Problem(ProblemKind.INDEX_UNLISTED_TENSORS, f"{n} tensor(s) in the shards are not named by the index (e.g. {first})")
        )
    return tuple(findings)


PARAMETER_LEAVES = ("weight", "bias")  # what a module's parameters are called; anything else may be a buffer


def _guessed_roles(ckpt: Checkpoint, anatomy: HeadAnatomy, members: dict[str, list[TensorInfo]]) -> tuple[str, ...]:
    """For an architecture outside the table, what the counts assume: roles found by name patterns,
    and the counted tensors not named like parameters (a buffer saved by a new family would count
    as one: transformers 5.25's router biases did)."""
    if anatomy.verified:
        return ()
    counted = [i.name for name, infos in members.items() if name != "quantization" for i in infos]
    odd = [n for n in counted if n.rsplit(".", 1)[-1] not in PARAMETER_LEAVES]
    what = f"architecture {anatomy.architecture or 'unknown'} is not in lmhead's table: roles found by name patterns"
    if odd:
        shown = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
        what += f"; counted as parameters, though they may be buffers: {shown}"
    return (what,)


def _assign_groups(ckpt: Checkpoint, anatomy: HeadAnatomy) -> dict[str, list[TensorInfo]]:
    members: dict[str, list[TensorInfo]] = {name: [] for name in GROUP_ORDER}
    norm = anatomy.final_norm
    norm_names = {norm.weight, norm.bias} - {None} if norm else set()
    head_names = {anatomy.head, anatomy.head_bias} - {None}
    skip = set(anatomy.buffers) | set(anatomy.aliases)
    for name, info in ckpt.tensors.items():
        if name in skip:
            continue
        if name == anatomy.embedding:
            members["embedding"].append(info)
        elif name in head_names:
            members["head"].append(info)
        elif name in norm_names:
            members["final_norm"].append(info)
        elif name.startswith(PROJECTOR_PREFIXES):
            members["projector"].append(info)
        elif name.startswith(VISION_PREFIXES):
            members["vision"].append(info)
        elif _is_block(name, anatomy):
            members["blocks"].append(info)
        else:
            members["other"].append(info)
    members["quantization"].extend(ckpt.quant_metadata)
    return members


def _is_block(name: str, anatomy: HeadAnatomy) -> bool:
    if any(name.startswith(prefix) for prefix in anatomy.other_prefixes):
        return False
    return re.search(BLOCK_PATTERN, name) is not None


def _group(name: str, infos: list[TensorInfo], anatomy: HeadAnatomy) -> Group:
    params = 0 if name == "quantization" else sum(i.numel for i in infos)  # scales and states are no parameters
    note = None
    if name == "head" and anatomy.tied:
        weight = next((i for i in infos if i.name == anatomy.head), None)
        if weight is not None:  # one matrix under two names: counted once, as the loaded model has it
            params -= weight.numel
            note = (
                f"{weight.name} shares storage with the embedding"
                if anatomy.tie.shares_storage
                else f"{weight.name} is a stored copy of the embedding: tied, counted once"
            )
        else:
            note = f"tied: uses {anatomy.embedding}"
    layers = None
    if name == "blocks":
        layers = len({m.group(1) for i in infos if (m := re.search(BLOCK_PATTERN, i.name))})  # blocks matched the pattern
    return Group(
        name=name,
        params=params,
        nbytes=sum(i.nbytes for i in infos),
        tensors=len(infos),
        dtypes=tuple(sorted({i.dtype for i in infos})),
        layers=layers,
        note=note,
    )
