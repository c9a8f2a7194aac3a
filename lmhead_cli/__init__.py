"""lmhead: inspect the output layer of language models.

The library is usable without the CLI::

    from lmhead_cli import open_checkpoint, locate_head, census
    ckpt = open_checkpoint("path/to/model")
    print(census(ckpt, locate_head(ckpt)).head_share)
"""

from typing import TYPE_CHECKING

# What every command needs is imported here; everything else loads on first use, so that ``lmhead count``
# pays neither for hidden-state files, tying, tokenizers nor the head matmul.
from .analyses.census import Census, Group, census
from .checkpoint.checkpoint import Checkpoint, TensorInfo
from .checkpoint.open import open_checkpoint
from .core.errors import AnatomyError, CheckpointError, HiddenStateError, LmheadError, TokenizerError
from .core.lazy import lazy_getattr
from .core.version import __version__
from .model.anatomy import HeadAnatomy, locate_head
from .model.head_settings import FinalNorm, LogitTransform

if TYPE_CHECKING:
    from .analyses.tying import TyingReport, ValueComparison, compare_values, diagnose_tying
    from .inputs.hidden import HiddenStates, load_hidden
    from .inputs.tokens import Vocabulary, load_vocabulary
    from .logits.head import TopK, apply_final_norm, project
    from .logits.prediction import Predictions, predict

_LAZY = {
    "TopK": "logits.head",
    "apply_final_norm": "logits.head",
    "project": "logits.head",
    "Predictions": "logits.prediction",
    "predict": "logits.prediction",
    "HiddenStates": "inputs.hidden",
    "load_hidden": "inputs.hidden",
    "Vocabulary": "inputs.tokens",
    "load_vocabulary": "inputs.tokens",
    "TyingReport": "analyses.tying",
    "ValueComparison": "analyses.tying",
    "compare_values": "analyses.tying",
    "diagnose_tying": "analyses.tying",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnatomyError",
    "Census",
    "Checkpoint",
    "CheckpointError",
    "FinalNorm",
    "Group",
    "HeadAnatomy",
    "HiddenStateError",
    "HiddenStates",
    "LmheadError",
    "LogitTransform",
    "Predictions",
    "TensorInfo",
    "TokenizerError",
    "TopK",
    "TyingReport",
    "ValueComparison",
    "Vocabulary",
    "__version__",
    "apply_final_norm",
    "census",
    "compare_values",
    "diagnose_tying",
    "load_hidden",
    "load_vocabulary",
    "locate_head",
    "open_checkpoint",
    "predict",
    "project",
]
