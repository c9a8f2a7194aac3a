"""What "tied" means in lmhead, defined once: ``loads_tied``.

Every command derives its verdict from this module: ``count`` (which matrix is
counted once), ``check-tying`` (the verdict) and ``doctor``. The other facts
about tying keep their own names so they cannot be mistaken for it:

- ``config_flag``: the ``tie_word_embeddings`` key as written (None when absent);
- ``config_directs``: what the config directs, the key or the class default
  (None when nothing in the config decides);
- ``shares_storage``: the head and the embedding are one stored buffer;
- ``values_identical``: the stored head holds exactly the embedding's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["TieEvidence", "TieSource", "loads_tied", "values_decide"]


class TieSource(Enum):
    """Where the tie decision comes from."""

    CONFIG = "config"  # config.json's key, or the architecture's class default
    WRAPPER = "wrapper"  # a vision-language wrapper's two flags (wrapped.py)
    GGUF = "gguf"  # llama.cpp's rule: output.weight when stored, else the embedding
    NO_CONFIG = "no config"  # nothing but the files: storage and values decide


@dataclass(frozen=True)
class TieEvidence:
    """The header-level facts ``loads_tied`` decides from."""

    source: TieSource
    config_flag: bool | None  # tie_word_embeddings as written at the top level; None when absent or no config
    config_directs: bool | None  # what the config directs (key or class default); None: nothing decides
    reason: str  # why ``config_directs`` is what it is, for people
    head_stored: bool  # a head weight is stored under its own name
    shares_storage: bool  # ... and it is the embedding's own buffer (two names, one matrix)
    loader_ignores_head: bool = False  # the loader multiplies by the embedding whatever is stored (llama.cpp's Gemma, Command-R)


def values_decide(e: TieEvidence) -> bool:
    """Whether ``loads_tied`` needs ``values_identical``: a head is stored apart and the config does not rule tying out."""
    return e.config_directs is not False and e.head_stored and not e.shares_storage and not e.loader_ignores_head


def loads_tied(e: TieEvidence, values_identical: bool | None) -> bool:
    """Tied: the model as transformers 5 loads it uses one matrix as both token embedding and LM head.

    transformers 5 never ties when the config directs untied; when it directs
    tied (the key, or the class default) it ties an absent head, or a stored
    head equal to the embedding, and otherwise loads the stored head (4.x
    replaced it: ``check-tying`` reports that as a problem). llama.cpp (GGUF)
    uses ``output.weight`` when stored and reuses the embedding when not, except
    in the graphs that always use the embedding (``loader_ignores_head``). With
    no config, or a flag that decides nothing, the files decide the same way:
    no head stored, a head on the embedding's storage, or a stored head equal
    to the embedding (same shape, every value) is one matrix.

    ``values_identical`` is whether the stored head equals the embedding (same
    shape); it is read only when ``values_decide(e)``, and None there counts
    as not equal.
    """
    if e.config_directs is False:
        return False
    if not e.head_stored or e.shares_storage or e.loader_ignores_head:
        return True
    return values_identical is True
