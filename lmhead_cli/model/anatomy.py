"""Which tensor plays which role: token embedding, head weight and bias, final norm.

``locate_head`` consults the conventions table for the checkpoint's
architecture, falls back to name patterns and shapes, and honours user
overrides. Every decision records the rule that made it (``explain``). What the
math does with the roles (norm kind and epsilon, logit transforms, the user's
overrides of them) is read by ``head_settings``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..checkpoint.checkpoint import Checkpoint
from ..core.errors import AnatomyError, LmheadError
from ..core.problems import Problem, ProblemKind
from .conventions import (
    BUFFER_PATTERNS,
    EMBEDDING_PATTERNS,
    HEAD_PATTERNS,
    Convention,
    TransformKind,
)
from .head_settings import (
    FinalNorm,
    LogitTransform,
    Overrides,
    final_norm,
    logit_transforms,
    override_norm,
    override_transforms,
)
from .recipe import HeadRecipe
from .source import ModelSource, describe
from .tie import TieEvidence, TieSource, loads_tied, values_decide

__all__ = ["FinalNorm", "HeadAnatomy", "LogitTransform", "Overrides", "locate_head"]


@dataclass(frozen=True)
class HeadAnatomy:
    architecture: str | None  # config model_type (or inferred)
    convention: str  # table entry used, or "name patterns"
    embedding: str | None
    head: str | None  # the stored head weight, None when none is stored
    recipe: HeadRecipe  # the head's steps in order: norm, projection, scale, matrix + bias, transforms
    tied: bool  # tie.loads_tied: the model as transformers 5 loads it uses one matrix for both
    tie: TieEvidence  # the facts ``tied`` follows from (config flag, what the config directs, storage sharing)
    tie_reason: str  # why, for people
    vocab_size: int  # rows of the matrix the head uses
    hidden_size: int
    aliases: tuple[str, ...] = ()  # stored copies of the embedding (T5 encoder/decoder)
    other_prefixes: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()
    explain: dict[str, str] = field(default_factory=dict)
    values_identical: bool | None = None  # stored head == embedding; compared only when tie.values_decide (else None)
    problems: tuple[Problem, ...] = ()  # config sizes that disagree with the tensors
    tie_problems: tuple[Problem, ...] = ()  # tie flags that disagree (wrapped models)
    wrapper: str | None = None  # model_type of a vision-language wrapper around the language model
    head_candidates: tuple[str, ...] = ()  # other tensors shaped like a head (MTP, Medusa, per-codebook)
    guesses: tuple[str, ...] = ()  # what was assumed rather than read from the table, the config or the user
    verified: bool = False  # the architecture is in the table (checked against transformers by its fixtures)
    overrides: dict[str, Any] = field(default_factory=dict)  # the user's --norm / --eps / --logit-scale / --softcap

    @property
    def head_matrix(self) -> str:
        """The tensor the head multiplies by: the embedding when tied or nothing else is stored."""
        return self.recipe.matrix

    @property
    def head_bias(self) -> str | None:
        return self.recipe.bias

    @property
    def final_norm(self) -> FinalNorm | None:
        return self.recipe.norm

    @property
    def projection(self) -> str | None:
        return self.recipe.projection

    @property
    def pre_head_scale(self) -> float | None:
        return self.recipe.scale

    @property
    def transforms(self) -> tuple[LogitTransform, ...]:
        return self.recipe.transforms


def locate_head(
    ckpt: Checkpoint,
    head: str | None = None,
    embedding: str | None = None,
    strict: bool = True,
    values: bool = True,
    overrides: Overrides | None = None,
) -> HeadAnatomy:
    """Identify the head's parts in ``ckpt``; ``head``/``embedding`` override by name, ``overrides`` the math.

    A norm epsilon or logit transform the math cannot use (NaN, infinite, negative) is bad input
    (``AnatomyError`` naming the config), or with ``strict`` off one of the anatomy's ``problems``,
    left out of the head (doctor reports it).

    ``values`` off (hf:// without --fetch-values): a stored head is never compared
    with the embedding, so where that would decide tying it counts as not equal
    (``loads_tied``'s reading of an unknown), and the caller must say so.
    """
    overrides = overrides or Overrides()
    source = describe(ckpt)
    conv, names = source.conv, ckpt.tensors
    explain: dict[str, str] = dict(source.explain)
    emb = _pick(ckpt, embedding, conv.embedding if conv else (), EMBEDDING_PATTERNS, "embedding", explain)
    head_name = _pick(ckpt, head, conv.head if conv else (), HEAD_PATTERNS, "head", explain, exclude=emb)
    if emb is None and head_name is None:
        raise AnatomyError(
            ckpt.path,
            "cannot identify the token embedding or the LM head",
            hint="name them with --embedding NAME and --head NAME (see the tensor list with --explain)",
        )
    bias = _head_bias(ckpt, conv, head_name, explain)
    evidence, tie_problems = _tie_evidence(ckpt, source, emb, head_name)
    identical = _values_identical(ckpt, emb, head_name, explain) if values and values_decide(evidence) else None
    if not values and values_decide(evidence):
        explain["values"] = "not read (hf:// without --fetch-values)"
    tied = loads_tied(evidence, identical)
    tie_reason = _tie_reason(evidence, tied, identical, head_name, emb)
    explain["tied"] = tie_reason
    matrix, tied = _head_matrix(ckpt, emb, head_name, tied)
    vocab, hidden = names[matrix].shape
    projection = _projection(ckpt, conv, hidden, explain)
    if projection is not None:
        hidden = names[projection].shape[1]  # the model's width; the head's is the projection's output
    norm, transforms, scale, problems = _math(ckpt, source, hidden, bool(evidence.config_directs), strict, overrides, explain)
    problems = (*problems, *source.size_problems(vocab, hidden, matrix))
    return HeadAnatomy(
        architecture=source.arch,
        convention=conv.family if conv else "name patterns",
        embedding=emb,
        head=head_name,
        recipe=HeadRecipe(norm=norm, projection=projection, scale=scale, matrix=matrix, bias=bias, transforms=transforms),
        tied=tied,
        tie=evidence,
        tie_reason=tie_reason,
        vocab_size=vocab,
        hidden_size=hidden,
        aliases=tuple(a for a in (conv.aliases if conv else ()) if a in names and a != emb),
        other_prefixes=conv.other_prefixes if conv else (),
        buffers=tuple(n for n in names if any(re.search(p, n) for p in (*BUFFER_PATTERNS, *(conv.buffers if conv else ())))),
        explain=explain,
        values_identical=identical,
        problems=problems,
        tie_problems=tie_problems,
        wrapper=source.wrapper_type,
        head_candidates=_head_candidates(names, (vocab, hidden), {emb, head_name, *(conv.aliases if conv else ())}),
        guesses=() if conv else _guesses(source.arch, norm, overrides),
        verified=conv is not None,
        overrides=overrides.as_dict(),
    )


def _tie_evidence(ckpt: Checkpoint, source: ModelSource, emb: str | None, head: str | None) -> tuple[TieEvidence, tuple[Problem, ...]]:
    """The facts tying follows from: what the source directs, whether a head is stored, shared storage."""
    shares = _shares_storage(ckpt, emb, head)
    rule = source.tying(head, emb, shares)
    evidence = TieEvidence(
        rule.source,
        rule.flag,
        rule.directs,
        rule.reason,
        head_stored=head is not None,
        shares_storage=shares,
        loader_ignores_head=rule.loader_ignores_head,
    )
    return evidence, rule.problems


def _head_matrix(ckpt: Checkpoint, emb: str | None, head: str | None, tied: bool) -> tuple[str, bool]:
    """The (V, d) matrix the head multiplies by, and whether it is the embedding's (tied)."""
    matrix = emb if (tied or head is None) else head
    if matrix is None:  # tied by config but no embedding stored: the head stands in for it
        matrix, tied = head, False
    assert matrix is not None  # an embedding or a head was found (checked by the caller)
    shape = ckpt.tensors[matrix].shape
    if len(shape) != 2:
        raise AnatomyError(ckpt.path, f"{matrix} has shape {list(shape)}; a head matrix must be 2-D (V, d)")
    if 0 in shape:
        raise AnatomyError(ckpt.path, f"{matrix} has shape {list(shape)}; a head matrix cannot be empty")
    return matrix, tied


def _math(
    ckpt: Checkpoint, source: ModelSource, hidden: int, directs: bool, strict: bool, overrides: Overrides, explain: dict[str, str]
) -> tuple[FinalNorm | None, tuple[LogitTransform, ...], float | None, tuple[Problem, ...]]:
    """The final norm, the logit transforms after the head and the scale before it, with the user's
    overrides; settings the math cannot use are bad input (``strict``) or problems."""
    conv, settings, where = source.conv, source.settings, source.where
    bad: list[str] = []  # settings the math cannot use (NaN, inf, negative): bad input, or doctor's problems
    norm = final_norm(ckpt, conv, hidden, explain, settings, where, bad)
    explain.update(source.explain_settings(norm.kind if norm else None))
    transforms = logit_transforms(settings, conv, explain, where, bad, zero_is_off=source.zero_is_off)
    if bad and strict:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise AnatomyError(ckpt.config_path or ckpt.path, bad[0] + more)  # name the file the setting came from
    if not source.applies_text_transforms and transforms:
        for t in transforms:
            explain[f"transform:{t.kind}"] = f"{t.source}, but {source.wrapper_type}'s head does not apply it"
        transforms = ()
    pre_head = tuple(t for t in transforms if t.kind.before_head)
    transforms = tuple(t for t in transforms if not t.kind.before_head)
    norm = override_norm(ckpt, norm, overrides, hidden, explain)
    transforms = override_transforms(transforms, overrides, explain)
    if overrides.as_dict():
        explain["overrides"] = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.as_dict().items())
    scale = hidden**-0.5 if _rescale(settings, conv, directs) else None
    for t in pre_head:
        scale = (scale or 1.0) * (
            t.value / hidden if t.kind == TransformKind.PRE_WIDTH_RATIO else 1 / t.value if t.kind == TransformKind.PRE_DIVIDE else t.value
        )
    return norm, transforms, scale, tuple(Problem(ProblemKind.BAD_SETTING, b) for b in bad)


def _guesses(arch: str | None, norm: FinalNorm | None, o: Overrides) -> tuple[str, ...]:
    """One line naming what was assumed for an architecture outside the table, and how to set it."""
    guessed = []
    if o.norm is None:
        guessed.append(f"final norm {norm.kind}" if norm else "no final norm")
    if norm is not None and o.eps is None and o.norm is None and not norm.eps_source.startswith("config"):
        guessed.append(f"eps {norm.eps:g}")
    if o.logit_scale is None and o.softcap is None:
        guessed.append("no logit transforms")
    if not guessed:
        return ()
    return (
        f"architecture {arch or 'unknown'} is not in lmhead's table: guessed {', '.join(guessed)}; "
        "if wrong, set --norm, --eps, --logit-scale or --softcap",
    )


def _pick(
    ckpt: Checkpoint,
    override: str | None,
    table: tuple[str, ...],
    patterns: tuple[str, ...],
    role: str,
    explain: dict[str, str],
    exclude: str | None = None,
) -> str | None:
    names = ckpt.tensors
    if override is not None:
        if override not in names:
            raise AnatomyError(ckpt.path, f"--{role} {override!r}: no such tensor")
        explain[role] = f"{override}: named with --{role}"
        return override
    for name in table:
        if name in names:
            explain[role] = f"{name}: architecture table"
            return name
    if table:
        # The architecture is known but its names are absent: the head is simply not stored.
        if role == "head":
            _no_unread_head(ckpt, table)
            explain[role] = f"not stored (looked for {', '.join(table)})"
            return None
    for pattern in patterns:
        found = [n for n in names if re.search(pattern, n) and n != exclude and len(names[n].shape) == 2]
        if found:
            name = min(found, key=len)
            explain[role] = f"{name}: name pattern {pattern}"
            return name
    explain[role] = "not found"
    return None


def _no_unread_head(ckpt: Checkpoint, table: tuple[str, ...]) -> None:
    """A head module with stored tensors lmhead did not recognise is not "no head": refuse, never fall back."""
    for name in table:
        module = name.rsplit(".", 1)[0] + "."
        stored = sorted(n for n in ckpt.on_disk if n.startswith(module) and n not in ckpt.tensors)
        stored = stored or sorted(n for n in ckpt.tensors if n.startswith(module) and n != name and not n.endswith(".bias"))
        if stored:
            raise AnatomyError(
                ckpt.path, f"{module[:-1]} stores {', '.join(stored[:3])} but no {name} lmhead can read; it will not guess another head"
            )


def _head_candidates(names: dict, shape: tuple[int, int], taken: set) -> tuple[str, ...]:
    """Other tensors a head could be: multi-token-prediction, Medusa or per-codebook heads."""
    found = []
    for name, info in names.items():
        if name in taken or len(info.shape) != 2:
            continue
        head_like = any(re.search(p, name) for p in HEAD_PATTERNS) or re.search(
            r"(^|\.)(lm_heads?|medusa_heads?|heads?)(\.\d+)*(\.\d+)?\.weight$", name
        )
        if info.shape == shape or (head_like and info.shape[1] == shape[1]):
            found.append(name)
    return tuple(found)


def _shares_storage(ckpt: Checkpoint, emb: str | None, head: str | None) -> bool:
    """Two names over the same bytes (a PyTorch state dict of a tied model)."""
    if emb is None or head is None:
        return False
    return ckpt.tensors[emb].same_bytes_as(ckpt.tensors[head])


def _head_bias(ckpt: Checkpoint, conv: Convention | None, head: str | None, explain: dict[str, str]) -> str | None:
    candidates = list(conv.head_bias) if conv else []
    if head and head.endswith(".weight"):
        candidates.append(head[: -len(".weight")] + ".bias")
    for name in candidates:
        if name in ckpt.tensors:
            explain["head_bias"] = f"{name}: {'architecture table' if conv and name in conv.head_bias else 'beside the head weight'}"
            return name
    return None


def _values_identical(ckpt: Checkpoint, emb: str | None, head: str | None, explain: dict[str, str]) -> bool | None:
    """Whether the stored head holds exactly the embedding's values (same shape): the one case where tying
    depends on data, so ``count`` reads it (stopping at the first differing chunk)."""
    if emb is None or head is None or ckpt.tensors[emb].shape != ckpt.tensors[head].shape:
        return None
    from ..checkpoint.compare import compare_values

    try:
        return compare_values(ckpt, ckpt.tensors[emb], ckpt.tensors[head]).identical
    except LmheadError as exc:  # e.g. integer tensors: not a head anyone can use as one
        explain["values"] = f"not compared: {exc.reason}"
        return None


def _tie_reason(e: TieEvidence, tied: bool, identical: bool | None, head: str | None, emb: str | None) -> str:
    """Why ``loads_tied`` decided as it did, in words."""
    if e.loader_ignores_head:  # llama.cpp's always-tied graphs: the rule says it all
        return e.reason
    if e.config_directs is False:
        return e.reason + ("; no head is stored" if head is None else "")
    if e.shares_storage:
        return f"{e.reason}; {head} shares storage with {emb} (tied by storage)"
    if head is None:
        if e.source is TieSource.NO_CONFIG:
            return "no config; no head stored, so loaders reuse the embedding"
        if e.config_directs or e.source is TieSource.GGUF:
            return e.reason
        return f"{e.reason}; no head stored, so loaders reuse the embedding"
    if tied:
        return f"{e.reason}; {head} holds exactly the values of {emb}, so the loaded model uses one matrix"
    if e.config_directs:
        return (
            f"{e.reason}, but {head} is stored: transformers 5 loads it (it ties only an absent or equal head), "
            "while 4.x replaced it with the embedding"
        )
    return f"{e.reason}; a head is stored" + ("" if identical is None else " with values of its own")


def _rescale(config: dict[str, Any] | None, conv: Convention | None, tied: bool) -> bool:
    """T5's hidden · d_model^-0.5 before the head: its own key in transformers 5, tying before."""
    if not conv or not conv.rescale_when_tied:
        return False
    if conv.rescale_key and config and isinstance(config.get(conv.rescale_key), bool):
        return config[conv.rescale_key]
    return tied


def _projection(ckpt: Checkpoint, conv: Convention | None, width: int, explain: dict[str, str]) -> str | None:
    for name in conv.projection if conv else ():
        info = ckpt.tensors.get(name)
        if info is None:
            continue
        if len(info.shape) != 2 or info.shape[0] != width:
            raise AnatomyError(ckpt.path, f"{name} has shape {list(info.shape)}; the head expects inputs of width {width}")
        explain["projection"] = f"{name}: architecture table ({info.shape[1]} -> {width} before the head)"
        return name
    return None
