"""lmhead: inspect the output layer of language models.

The library is usable without the CLI::

    from lmhead_cli import open_checkpoint, locate_head, census
    ckpt = open_checkpoint("path/to/model")
    print(census(ckpt, locate_head(ckpt)).head_share)
"""

__version__ = "0.1.0"  # the one place the version lives (pyproject reads it)

from typing import TYPE_CHECKING

# ``census`` is both a function and the module that defines it: importing the submodule later would
# replace the function on the package, so it is imported here (``count`` needs it anyway). Everything
# else loads on first use, so that ``lmhead count`` pays neither for hidden-state files, tying,
# tokenizers nor the head matmul.
from .anatomy import HeadAnatomy, locate_head
from .census import Census, Group, census
from .checkpoint import Checkpoint, TensorInfo, open_checkpoint
from .errors import AnatomyError, CheckpointError, HiddenStateError, LmheadError, TokenizerError
from .head_settings import FinalNorm, LogitTransform
from .lazy import lazy_getattr

if TYPE_CHECKING:
    from .head import TopK, apply_final_norm, project
    from .hidden import HiddenStates, load_hidden
    from .prediction import Predictions, predict
    from .tokens import Vocabulary, load_vocabulary
    from .tying import TyingReport, ValueComparison, compare_values, diagnose_tying

_LAZY = {
    "TopK": "head",
    "apply_final_norm": "head",
    "project": "head",
    "Predictions": "prediction",
    "predict": "prediction",
    "HiddenStates": "hidden",
    "load_hidden": "hidden",
    "Vocabulary": "tokens",
    "load_vocabulary": "tokens",
    "TyingReport": "tying",
    "ValueComparison": "tying",
    "compare_values": "tying",
    "diagnose_tying": "tying",
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
