"""lmhead: inspect the output layer of language models.

The library is usable without the CLI::

    from lmhead_cli import open_checkpoint, locate_head, census
    ckpt = open_checkpoint("path/to/model")
    print(census(ckpt, locate_head(ckpt)).head_share)
"""

__version__ = "0.1.0"  # the one place the version lives (pyproject reads it)

from .anatomy import FinalNorm, HeadAnatomy, LogitTransform, locate_head
from .census import Census, Group, census
from .checkpoint import Checkpoint, TensorInfo, open_checkpoint
from .errors import AnatomyError, CheckpointError, HiddenStateError, LmheadError, TokenizerError
from .head import TopK, apply_final_norm, project
from .hidden import HiddenStates, load_hidden
from .predict import Predictions, predict
from .tokens import Vocabulary, load_vocabulary
from .tying import TyingReport, ValueComparison, compare_values, diagnose_tying

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
