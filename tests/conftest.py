"""Shared fixtures: paths to committed reference checkpoints and a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
SAMPLES = ROOT / "sample_weights"
REFERENCE_CASES = sorted(p.name for p in REFERENCE.iterdir() if (p / "reference.json").is_file())


def reference(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = REFERENCE / case
    meta = json.loads((folder / "reference.json").read_text())
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return folder, meta, arrays


def run(*args: str, ok: bool = True):
    """Invoke the CLI; with ``ok`` assert it succeeded and show its output if not."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def run_json(*args: str, exit_code: int = 0) -> dict:
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--json"])
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return json.loads(result.stdout)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
