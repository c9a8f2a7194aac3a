"""Which tokens text can reach: each id decoded, the text encoded again (the tokenizers library).

A token whose decoded text encodes back to it alone is reachable ("ok"); one whose text
encodes to other ids can never be produced by a tokenizer from text, however the model
was trained. The categories follow Land & Bartolo 2024 ("Fishing for Magikarp",
arXiv 2405.05417, and its repository's tokenization step): ok, special (ok and one of the
tokenizer's special tokens), unreachable special (``<...>`` / ``[...]`` text that does not
round-trip), partial UTF-8 (decodes to U+FFFD: a fragment of a character), unreachable.
Ids beyond the tokenizer are padding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import TokenizerError
from ..inputs.tokens import BYTE_ALPHABET, Vocabulary

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Category", "Reachability", "byte_value", "is_byte_level", "reachability", "reserved", "reserved_ids"]

SPACE_MARKS = " ▁_Ġ"  # a first token starting with one of these: the tokenizer put a space before the text
PREFIXES = ("«", "»")
BATCH = 16384  # tokens decoded and encoded at a time  # a character to stand before the text, so that no space is added to the token's own


class Category(Enum):
    OK = "ok"
    SPECIAL = "special"
    UNREACHABLE_SPECIAL = "unreachable special"
    PARTIAL_UTF8 = "partial UTF-8"
    UNREACHABLE = "unreachable"
    PADDING = "padding"  # a head row beyond the tokenizer
    UNKNOWN = "unknown"  # no tokenizer to check with

    @property
    def round_trips(self) -> bool:
        return self in ROUND_TRIPS


ROUND_TRIPS = frozenset({Category.OK, Category.SPECIAL})
UNREACHABLE = frozenset({Category.UNREACHABLE, Category.UNREACHABLE_SPECIAL})


@dataclass(frozen=True)
class Reachability:
    categories: np.ndarray  # (V,) object array of Category, one per head row
    special_ids: frozenset[int]
    checked: bool  # False: no tokenizer could encode (a bare token list), every token is UNKNOWN
    reencoded: dict[int, list[int]]  # unreachable id -> the ids its text encodes to
    placeholders: frozenset[int] = frozenset()  # reserved tokens by their spelling (<unused12>)
    reason: str | None = None  # why the tokens were not checked


def reachability(vocab: Vocabulary | None, rows: int, specials: frozenset[int] = frozenset()) -> Reachability:
    """Each of ``rows`` head rows' category, from ``vocab``'s tokenizer (decode, then encode).
    ``specials``: the tokens a round trip makes "special" rather than "ok" (BOS, EOS, padding, unknown
    and the tokenizer's additional special tokens, as the repository counts them): they stay out of
    the cut-off's pool."""
    categories = np.full(rows, Category.UNKNOWN, dtype=object)
    known = min(rows, vocab.size) if vocab is not None else 0
    if vocab is not None:
        categories[known:] = Category.PADDING
    placeholders = frozenset(reserved_ids(vocab.raws(known))) if vocab is not None else frozenset()
    try:
        tokenizer = vocab.tokenizer() if vocab is not None else None
    except TokenizerError as exc:  # a GGUF whose metadata lmhead cannot build a tokenizer from
        return Reachability(categories, frozenset(), False, {}, placeholders, exc.reason)
    if tokenizer is None:
        reason = "no tokenizer" if vocab is None else "a token list without a tokenizer that can encode"
        return Reachability(categories, frozenset(), False, {}, placeholders, reason)
    reencoded: dict[int, list[int]] = {}
    prefixed = _adds_space(tokenizer)
    for start in range(0, known, BATCH):  # a batch at a time: 262,144 Encodings at once would hold hundreds of MB
        ids = range(start, min(start + BATCH, known))
        texts, encoded = _round_trip_prefixed(tokenizer, ids) if prefixed else _round_trip(tokenizer, ids)
        categories[ids.start : ids.stop] = Category.OK  # most tokens; the others are looked at one by one
        odd = [k for k, (i, back) in enumerate(zip(ids, encoded, strict=True)) if back != [i] or i in specials]
        for k in odd:
            i, back = ids[k], encoded[k]
            category = categories[i] = _category(i, texts[k], back, specials)
            if category in UNREACHABLE:
                reencoded[i] = back
    return Reachability(categories, frozenset(specials), True, reencoded, placeholders)


def _category(token_id: int, text: str, back: list[int], specials: frozenset[int]) -> Category:
    if back == [token_id]:
        return Category.SPECIAL if token_id in specials else Category.OK
    if len(text) >= 3 and text[0] in "[<" and text[-1] in "]>" and any(c.isalpha() for c in text):
        return Category.UNREACHABLE_SPECIAL
    if "\ufffd" in text:
        return Category.PARTIAL_UTF8
    return Category.UNREACHABLE


def _adds_space(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer puts a space before the text (SentencePiece's ▁): then every token without
    one would look unreachable, so a prefix character stands before the text and is taken off again."""
    probe = tokenizer.encode("test", add_special_tokens=False).ids
    first = tokenizer.id_to_token(probe[0]) if probe else None
    return first is not None and first != "" and first[0] in SPACE_MARKS


def _round_trip(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[list[str], list[list[int]]]:
    """Every id's text and the ids that text encodes to, without special tokens added."""
    texts = tokenizer.decode_batch([[i] for i in ids], skip_special_tokens=False)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # the same ids, no offsets (tokenizers >= 0.21)
    return texts, [e.ids for e in encode(texts, add_special_tokens=False)]


def _round_trip_prefixed(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[list[str], list[list[int]]]:
    texts: list[str] = []
    encoded: list[list[int]] = []
    prefix_ids = [tokenizer.encode(p, add_special_tokens=False).ids for p in PREFIXES]
    for i in ids:
        text, back = "", [-1]
        for prefix, pid in zip(PREFIXES, prefix_ids, strict=True):
            if len(pid) != 1:
                continue
            decoded = tokenizer.decode([pid[0], i], skip_special_tokens=False)
            decoded = decoded[1:] if decoded.startswith(" ") else decoded
            if not decoded.startswith(prefix):
                continue
            text = decoded[1:]
            out = tokenizer.encode(prefix + text, add_special_tokens=False).ids
            if out and out[0] == pid[0]:
                back = out[1:]
                break
        texts.append(text)
        encoded.append(back)
    return texts, encoded


# ---------------------------------------------------------------- reference tokens, by spelling

RESERVED = re.compile(
    r"<unused\d+>|<\|?unused[_\w-]*\|?>|\[unused\d+\]|<\|reserved[_\w-]*\|>|<reserved[_\w-]*>|<\|?extra_?\d+\|?>|<madeupword\d+>",
    re.IGNORECASE,
)


def byte_value(raw: str, byte_level: bool) -> int | None:
    """The byte a single-byte token stands for: SentencePiece's ``<0xNN>``, or in a byte-level
    vocabulary one character of GPT-2's byte alphabet; None for any other token."""
    if len(raw) == 6 and raw.startswith("<0x") and raw.endswith(">"):
        try:
            return int(raw[3:5], 16)
        except ValueError:
            return None
    if byte_level and len(raw) == 1 and raw in BYTE_ALPHABET:
        return BYTE_ALPHABET[raw]
    return None


def is_byte_level(raws: Sequence[str | None]) -> bool:
    """GPT-2-style byte-level BPE: more than a tenth of the tokens start with Ġ (its space)."""
    return sum(1 for r in raws if r and r.startswith("Ġ")) > len(raws) / 10


def reserved_ids(raws: Sequence[str | None]) -> list[int]:
    """The ids of the reserved placeholders among ``raws`` (every one is spelled <...> or [...])."""
    return [i for i, r in enumerate(raws) if r and r[0] in "<[" and reserved(r)]


def reserved(raw: str) -> bool:
    """A placeholder the vocabulary reserves and training never uses: ``<unused12>``, ``<|reserved_special_token_3|>``."""
    return RESERVED.fullmatch(raw) is not None
