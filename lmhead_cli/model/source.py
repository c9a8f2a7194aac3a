"""Where a checkpoint's architecture knowledge comes from: a transformers ``config.json`` or a GGUF's
llama.cpp metadata. Each ``ModelSource`` answers the same questions (which architecture, which
table entry, where the sizes and settings live, how tying is decided, which sizes disagree), so
``locate_head`` applies either without asking which one it has. ``describe`` picks it, the one
place that looks at the checkpoint's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..checkpoint.checkpoint import Checkpoint, Format
from ..core.problems import Problem, ProblemKind
from .conventions import ARCHITECTURE_TYPES, Convention, convention
from .tie import TieSource
from .wrapped import LanguageConfig, language_config, relocate, wrapped_tying

__all__ = ["ModelSource", "Tying", "architecture_of", "describe"]

HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "model_dim")


@dataclass(frozen=True)
class Tying:
    """What the source says about tying, before storage and values are looked at."""

    source: TieSource
    directs: bool | None  # what the config (or llama.cpp's rule) directs: tied, untied, or undecided
    reason: str
    flag: bool | None = None  # the tie key's own value, when the config has one
    loader_ignores_head: bool = False  # llama.cpp's always-tied graphs
    problems: tuple[Problem, ...] = ()  # flags that disagree


class ModelSource(Protocol):
    @property
    def arch(self) -> str | None: ...

    @property
    def conv(self) -> Convention | None:
        """The table entry (relocated for the stored layout); None outside the table."""

    @property
    def settings(self) -> dict[str, Any] | None:
        """Where the language model's sizes, norm and eps live."""

    @property
    def where(self) -> str:
        """How to name that place to a person: "config", "config text_config", "GGUF metadata"."""

    @property
    def zero_is_off(self) -> bool:
        """A transform value of 0 means "off" (GGUF writes 0 for an absent softcap)."""

    @property
    def applies_text_transforms(self) -> bool:
        """False: a wrapper whose head drops the language model's transforms."""

    @property
    def wrapper_type(self) -> str | None: ...

    @property
    def explain(self) -> dict[str, str]:
        """What describing it found (nesting, layout)."""

    def tying(self, head: str | None, embedding: str | None, shares_storage: bool) -> Tying: ...

    def explain_settings(self, norm_kind: str | None) -> dict[str, str]: ...

    def size_problems(self, vocab: int, hidden: int, matrix: str) -> tuple[Problem, ...]: ...


def describe(ckpt: Checkpoint) -> ModelSource:
    if ckpt.format is Format.GGUF:
        return GGUFSource.of(ckpt)
    return ConfigSource.of(ckpt)


def architecture_of(config: dict[str, Any] | None) -> str | None:
    if not config:
        return None
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type:
        return model_type
    names = config.get("architectures")
    for name in names if isinstance(names, list) else []:
        if isinstance(name, str) and name in ARCHITECTURE_TYPES:
            return ARCHITECTURE_TYPES[name]
    return None


@dataclass(frozen=True)
class ConfigSource:
    """A transformers checkpoint: config.json (a wrapper's nested language config, when there is one)."""

    config: dict[str, Any] | None
    nest: LanguageConfig | None
    arch: str | None
    conv: Convention | None
    settings: dict[str, Any] | None
    where: str
    explain: dict[str, str] = field(default_factory=dict)
    zero_is_off: bool = False

    @classmethod
    def of(cls, ckpt: Checkpoint) -> ConfigSource:
        config = ckpt.config
        lm = language_config(config)
        nest = lm if lm is not None and lm.nesting is not None else None  # a wrapper's language model, nested
        settings = nest.config if nest else config
        arch = architecture_of(settings)
        conv = convention(arch) if arch else None
        explain: dict[str, str] = {}
        if nest:
            explain["language model"] = f"{nest.wrapper_type or 'wrapper'} nests a {arch or 'unknown'} model in {nest.nesting}"
        if conv:
            conv, layout = relocate(conv, ckpt.tensors)
            if layout != "plain decoder layout":
                explain["layout"] = layout
        where = f"config {nest.nesting}" if nest else "config"
        return cls(config, nest, arch, conv, settings, where, explain)

    @property
    def applies_text_transforms(self) -> bool:
        return not (self.nest and self.nest.wrapper and not self.nest.wrapper.applies_text_transforms)

    @property
    def wrapper_type(self) -> str | None:
        return self.nest.wrapper_type if self.nest else None

    def tying(self, head: str | None, embedding: str | None, shares_storage: bool) -> Tying:
        if self.nest and self.config is not None:
            directs, reason, flag, flag_problems = wrapped_tying(self.config, self.nest)
            problems = tuple(Problem(ProblemKind.TIE_FLAGS_DISAGREE, p) for p in flag_problems)
            return Tying(TieSource.WRAPPER, directs, reason, flag, problems=problems)
        if self.config is None:
            return Tying(TieSource.NO_CONFIG, None, "no config")
        return Tying(TieSource.CONFIG, *_config_tying(self.config, self.conv, self.arch))

    def explain_settings(self, norm_kind: str | None) -> dict[str, str]:
        return {}

    def size_problems(self, vocab: int, hidden: int, matrix: str) -> tuple[Problem, ...]:
        config = self.settings
        if not config:
            return ()
        problems = []
        cfg_vocab = config.get("vocab_size")
        if isinstance(cfg_vocab, int) and not isinstance(cfg_vocab, bool) and cfg_vocab != vocab:
            problems.append(Problem(ProblemKind.VOCAB_SIZE, f"config vocab_size {cfg_vocab} differs from the {vocab} rows of {matrix}"))
        for key in HIDDEN_KEYS:
            cfg_hidden = config.get(key)
            if isinstance(cfg_hidden, int) and not isinstance(cfg_hidden, bool):
                if cfg_hidden != hidden:
                    problems.append(
                        Problem(ProblemKind.HIDDEN_SIZE, f"config {key} {cfg_hidden} differs from the {hidden} columns of {matrix}")
                    )
                break
        return tuple(problems)


def _config_tying(config: dict[str, Any], conv: Convention | None, arch: str | None) -> tuple[bool | None, str, bool | None]:
    """(what the config directs, why, the key's own value): the key, else the class default."""
    key = config.get("tie_word_embeddings")
    flag = key if isinstance(key, bool) else None
    if conv and conv.rescale_key and conv.rescale_key in config:
        return None, f"{arch} saved by transformers 5 ({conv.rescale_key} present): tie_word_embeddings is always true", flag
    if flag is not None:
        return flag, f"config.json tie_word_embeddings={str(flag).lower()}", flag
    if conv is not None:
        return conv.tie_default, f"tie_word_embeddings absent; {arch}'s default is {str(conv.tie_default).lower()}", None
    return None, f"tie_word_embeddings absent and architecture {arch or 'unknown'} not in the table", None


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file: its metadata plays the part of config.json, llama.cpp's per-architecture rules the table's."""

    metadata: dict[str, Any]
    arch: str | None
    conv: Convention
    explain: dict[str, str] = field(default_factory=dict)
    where: str = "GGUF metadata"
    zero_is_off: bool = True
    applies_text_transforms: bool = True
    wrapper_type: str | None = None

    @classmethod
    def of(cls, ckpt: Checkpoint) -> GGUFSource:
        from .gguf_conventions import gguf_convention  # llama.cpp's rules: loaded only for a GGUF

        arch = ckpt.metadata.get("general.architecture")
        arch = arch if isinstance(arch, str) and arch else None
        return cls(ckpt.metadata, arch, gguf_convention(arch, ckpt.metadata))

    @property
    def settings(self) -> dict[str, Any]:
        return self.metadata

    def tying(self, head: str | None, embedding: str | None, shares_storage: bool) -> Tying:
        from .gguf_conventions import gguf_tying

        rule = gguf_tying(self.arch, None if shares_storage else head, embedding)
        return Tying(TieSource.GGUF, rule.config_tied, rule.source, loader_ignores_head=rule.forced, problems=rule.problems)

    def explain_settings(self, norm_kind: str | None) -> dict[str, str]:
        from .gguf_conventions import gguf_explain

        return gguf_explain(self.arch, self.metadata, norm_kind)

    def size_problems(self, vocab: int, hidden: int, matrix: str) -> tuple[Problem, ...]:
        """The metadata's own sizes against the tensors (llama.cpp trusts the metadata), then its other checks."""
        from .gguf_conventions import gguf_metadata_problems

        problems = []
        for key, actual, what in ((f"{self.arch}.vocab_size", vocab, "rows"), (f"{self.arch}.embedding_length", hidden, "columns")):
            value = self.metadata.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value != actual:
                kind = ProblemKind.VOCAB_SIZE if what == "rows" else ProblemKind.HIDDEN_SIZE
                problems.append(Problem(kind, f"GGUF metadata {key} {value} differs from the {actual} {what} of {matrix}"))
        return (*problems, *gguf_metadata_problems(self.arch, self.metadata))
