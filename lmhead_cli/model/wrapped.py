"""Language models inside vision-language wrappers: nested configs, saved layouts, two tie flags.

A wrapper's config nests the text model's (``text_config``); its checkpoint
saves the text model under a prefix; and the tie flag may be written at both
levels. transformers 5 ties by the top-level flag only, with a per-class
default, and some config classes copy a true ``text_config`` flag up — so the
same two flags mean different things in different classes (transformers PR
43429: a Mistral3 whose text flag said tied got a random head).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .conventions import LAYOUTS, NESTED_CONFIG_KEYS, WRAPPERS, Convention, Wrapper

__all__ = ["LanguageConfig", "language_config", "relocate", "wrapped_tying"]


@dataclass(frozen=True)
class LanguageConfig:
    config: dict[str, Any]  # the language model's own settings
    nesting: str | None  # "text_config", ... ; None for a plain decoder
    wrapper_type: str | None  # the top-level model_type of a wrapper
    wrapper: Wrapper | None  # its table entry, None when unknown or not wrapped


def language_config(config: dict[str, Any] | None) -> LanguageConfig | None:
    if config is None:
        return None
    for key in NESTED_CONFIG_KEYS:
        nested = config.get(key)
        if isinstance(nested, dict):
            model_type = config.get("model_type")
            kind = model_type if isinstance(model_type, str) else None
            return LanguageConfig(nested, key, kind, WRAPPERS.get(kind) if kind else None)
    return LanguageConfig(config, None, None, None)


def relocate(conv: Convention, names: dict[str, Any]) -> tuple[Convention, str]:
    """The convention with its names moved to wherever this checkpoint saved the language model."""
    for old, new in LAYOUTS:
        moved = replace(
            conv,
            embedding=tuple(_move(n, old, new) for n in conv.embedding),
            head=tuple(_move(n, old, new) for n in conv.head),
            head_bias=tuple(_move(n, old, new) for n in conv.head_bias),
            final_norm=tuple(_move(n, old, new) for n in conv.final_norm),
            aliases=tuple(_move(n, old, new) for n in conv.aliases),
        )
        if any(n in names for n in moved.embedding + moved.head):
            return moved, (f"language model saved under {new}*" if new else "plain decoder layout")
    return conv, "plain decoder layout"


def _move(name: str, old: str, new: str) -> str:
    if not new:
        return name
    if old == "":  # everything moves under the prefix
        return new + name
    if name.startswith(old):  # only the model body moves; the head stays at the top
        return new + name[len(old) :]
    return name


def wrapped_tying(config: dict[str, Any], lm: LanguageConfig) -> tuple[bool, str, bool | None, tuple[str, ...]]:
    """(what the config directs, why, the top-level key's value, problems) for a wrapper's two tie flags."""
    top = config.get("tie_word_embeddings")
    top = top if isinstance(top, bool) else None
    text = lm.config.get("tie_word_embeddings")
    text = text if isinstance(text, bool) else None
    w = lm.wrapper
    kind = lm.wrapper_type or "this wrapper"
    if w and w.text_tie_wins and text is True:
        tied, why = True, f"{lm.nesting}.tie_word_embeddings=true, which {kind}'s config copies to the top level"
    elif top is not None:
        tied, why = top, f"top-level tie_word_embeddings={str(top).lower()} (the flag transformers honours)"
    elif w is not None:
        tied, why = w.tie_default, f"top-level tie_word_embeddings absent; {kind}'s default is {str(w.tie_default).lower()}"
    elif text is not None:
        tied, why = text, f"top-level flag absent and {kind} not in the table; {lm.nesting}.tie_word_embeddings={str(text).lower()}"
    else:
        tied, why = True, f"no tie flag at either level and {kind} not in the table; assuming the library default (true)"
    problems = _disagreement(tied, top, text, lm, kind)
    return tied, why, top, problems


def _disagreement(tied: bool, top: bool | None, text: bool | None, lm: LanguageConfig, kind: str) -> tuple[str, ...]:
    if text is None or text == tied:
        return ()
    top_text = "absent" if top is None else str(top).lower()
    return (
        f"tie flags disagree: top-level tie_word_embeddings is {top_text}, {lm.nesting}.tie_word_embeddings is "
        f"{str(text).lower()}; transformers 5 loads {kind} {'tied' if tied else 'untied'} by the top-level flag "
        f"(set both to the same value)",
    )
