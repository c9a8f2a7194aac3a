"""Problems lmhead finds in a checkpoint: a kind to decide on, a message to show.

Every check produces ``Problem`` values; commands decide (exit status, which
report lists it, de-duplication) on the kind and on equality, never on the
message text, which only ``render`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Problem", "ProblemKind"]


class ProblemKind(Enum):
    # tying (tying.py, wrapped.py)
    TIED_SHAPES_DIFFER = "tied_shapes_differ"  # the config ties two matrices of different shapes
    TIED_VALUES_DIFFER = "tied_values_differ"  # the config ties, but a head with other values is stored
    TIE_FLAGS_DISAGREE = "tie_flags_disagree"  # a wrapper's two tie flags say different things
    UNTIED_HEAD_MISSING = "untied_head_missing"  # the config says untied, no head is stored: a random head
    NO_EMBEDDING = "no_embedding"
    WIDTHS_DISAGREE = "widths_disagree"  # embedding and head of different hidden sizes
    # llama.cpp's rules for GGUF files (gguf_conventions.py): files llama.cpp refuses to load
    GGUF_HEAD_NEVER_READ = "gguf_head_never_read"  # output.weight stored for a graph that always uses token_embd
    GGUF_HEAD_MISSING = "gguf_head_missing"  # output.weight absent for a graph that requires it
    GGUF_KEY_MISSING = "gguf_key_missing"  # a metadata key the graph requires (the final norm's eps)
    # sizes (anatomy.py, vocab.py)
    VOCAB_SIZE = "vocab_size"  # the config's (or GGUF metadata's) vocab size against the head's rows
    HIDDEN_SIZE = "hidden_size"  # the config's hidden size against the head's columns
    EMBEDDING_HEAD_ROWS = "embedding_head_rows"  # embedding and head rows differ
    TOKENIZER_BEYOND_HEAD = "tokenizer_beyond_head"  # tokens the head can never predict
    # settings (anatomy.py): a norm epsilon or logit transform the math cannot use (NaN, infinite, negative)
    BAD_SETTING = "bad_setting"
    # under-trained tokens (undertrained.py): exact evidence in tokens every chat uses
    UNTRAINED_USED_TOKENS = "untrained_used_tokens"
    # shard index (census.py)
    INDEX_TOTAL_SIZE = "index_total_size"
    INDEX_TOTAL_PARAMETERS = "index_total_parameters"
    INDEX_MISSING_TENSOR = "index_missing_tensor"  # the index names a tensor its shard does not hold
    INDEX_UNLISTED_TENSORS = "index_unlisted_tensors"  # shards hold tensors the index does not name


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return self.message
