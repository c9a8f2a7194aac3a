"""One exception hierarchy: every failure lmhead expects is an ``LmheadError``.

Each error carries the path it is about and a one-line reason; the CLI prints
``error: <path>: <reason>`` (and the hint, if any) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class LmheadError(Exception):
    """Base class: a problem with what the user gave lmhead, explained in one line."""

    def __init__(self, path: str | Path | None, reason: str, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class CheckpointError(LmheadError):
    """The checkpoint cannot be read, or its files contradict each other."""


class NotDequantizable(CheckpointError):
    """A quantized weight was read and counted, but lmhead cannot turn its stored values into rows
    (a layout it does not implement, or one whose rounding it cannot know). It is about the
    checkpoint as a whole, not the file that holds the weight."""


class AnatomyError(LmheadError):
    """The checkpoint was read, but a role (embedding, head, norm) cannot be identified."""


class HiddenStateError(LmheadError):
    """The hidden-state file cannot be used with this checkpoint."""


class TokenizerError(LmheadError):
    """The tokenizer cannot be read, or a target text cannot be encoded."""
