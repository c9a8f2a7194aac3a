"""The public API, the lint and format gate, and the package's own promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lmhead_cli

from conftest import ROOT


def test_public_api_is_pinned():
    assert sorted(lmhead_cli.__all__) == [
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
    for name in lmhead_cli.__all__:
        assert hasattr(lmhead_cli, name), name


def test_errors_share_one_root():
    for cls in (lmhead_cli.CheckpointError, lmhead_cli.AnatomyError, lmhead_cli.HiddenStateError, lmhead_cli.TokenizerError):
        assert issubclass(cls, lmhead_cli.LmheadError)


def test_torch_and_transformers_are_not_imported_by_the_cli():
    code = (
        "import sys; from click.testing import CliRunner; from lmhead_cli.cli import cli; "
        "r = CliRunner().invoke(cli, ['count', 'sample_weights/gpt2-tied']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ci_runs_the_type_checker():
    """mypy comes with the test extras and .ci/run checks lmhead_cli with it (too slow for every pytest run)."""
    assert '"mypy' in (ROOT / "pyproject.toml").read_text()
    assert "python -m mypy lmhead_cli" in (ROOT / ".ci" / "run").read_text()


def test_type_check_needs_no_torch():
    """The README's `python -m mypy lmhead_cli` runs in the test set-up, where torch (an optional extra) is absent:
    mypy must not report its imports as missing there (it did: 2 errors in a fresh venv)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    excused = [o for o in overrides if o.get("ignore_missing_imports")]
    assert any({"torch", "torch.*"} <= set(o["module"]) for o in excused), overrides


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff_is_clean(args):
    """ruff comes with the test extras; the code is kept clean and formatted by it."""
    paths = ["lmhead_cli", "tests", "sample_weights", "benchmarks"]
    result = subprocess.run([sys.executable, "-m", "ruff", *args, *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_names_every_fixture_generator():
    """The README says each fixture was made by a committed script: every generator is named there."""
    readme = (ROOT / "README.md").read_text()
    scripts = sorted((ROOT / "tests" / "fixtures").glob("make_*.py")) + sorted((ROOT / "sample_weights").glob("make_*.py"))
    assert scripts
    assert [s.name for s in scripts if s.name not in readme] == []
