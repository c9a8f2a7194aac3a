"""Every command at a real (pseudo-)terminal: colour, NO_COLOR, TERM=dumb, 80 columns, the progress bar."""

from __future__ import annotations

import json

import pytest
from terminal import ESCAPE, colour_codes, run_in_terminal

from conftest import ROOT, SAMPLES

GPT2 = SAMPLES / "gpt2-tied"
LLAMA = SAMPLES / "llama-bf16"
QWEN = SAMPLES / "qwen2-sharded"
DIFF = ROOT / "tests" / "fixtures" / "diff"
TEXT = (GPT2 / "text.txt").read_text().strip()

COMMANDS = {
    "count": ("count", LLAMA),
    "check-tying": ("check-tying", QWEN, "--full"),
    "topk": ("topk", LLAMA, LLAMA / "hidden.npy", "-k", "3", "--positions", "0,1"),
    "lens": ("topk", GPT2, GPT2 / "hidden_layers.npy", "--layers", "--text", TEXT),
    "doctor": ("doctor", LLAMA),
    "diff": ("diff", DIFF / "base", DIFF / "resize_trained"),
    "error": ("count", SAMPLES / "no-such-model"),
}
EXPECTED_STATUS = {"error": 2}
PROGRESS = {"LMHEAD_PROGRESS_MIN_ELEMENTS": "0"}  # show the bar on a tiny head


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.fixture(scope="module")
def at_80() -> dict:
    return {name: run_in_terminal(*args, columns=80) for name, args in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_fits_80_columns(at_80: dict, name: str) -> None:
    run = at_80[name]
    assert run.returncode == EXPECTED_STATUS.get(name, 0), run.stdout + run.stderr
    assert widest(run.text) <= 80, run.text
    assert widest(run.error_text) <= 80, run.error_text
    assert "…" not in run.text, run.text  # nothing squeezed to an ellipsis
    assert "Traceback" not in run.error_text


@pytest.mark.parametrize("name", ["check-tying", "lens", "doctor", "diff"])
def test_colour_at_a_terminal(at_80: dict, name: str) -> None:
    assert colour_codes(at_80[name].stdout)


def test_styled_tables_at_a_terminal(at_80: dict) -> None:
    run = at_80["count"]
    assert ESCAPE.search(run.stdout)  # bold headers
    assert "┏" in run.text and "LM head" in run.text


def test_error_is_one_red_line(at_80: dict) -> None:
    run = at_80["error"]
    assert run.text == ""
    lines = run.error_text.splitlines()
    assert lines[0] == f"error: {SAMPLES / 'no-such-model'}: no such file or directory"
    assert colour_codes(run.stderr)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_color(name: str) -> None:
    run = run_in_terminal(*COMMANDS[name], env={"NO_COLOR": "1", **PROGRESS})
    assert run.returncode == EXPECTED_STATUS.get(name, 0), run.stdout + run.stderr
    assert colour_codes(run.stdout) == [] and colour_codes(run.stderr) == []
    assert widest(run.text) <= 80


@pytest.mark.parametrize("name", list(COMMANDS))
def test_dumb_terminal_gets_no_escapes(name: str) -> None:
    run = run_in_terminal(*COMMANDS[name], env={"TERM": "dumb", **PROGRESS})
    assert run.returncode == EXPECTED_STATUS.get(name, 0), run.stdout + run.stderr
    assert not ESCAPE.search(run.stdout) and not ESCAPE.search(run.stderr), repr(run.stdout + run.stderr)
    assert widest(run.text) <= 80


def test_lens_grid_splits_into_blocks_that_fit() -> None:
    narrow = run_in_terminal(*COMMANDS["lens"], columns=80)
    wide = run_in_terminal(*COMMANDS["lens"], columns=220)
    assert narrow.text.count("┏") == 2 and wide.text.count("┏") == 1
    assert widest(wide.text) > 80
    for run in (narrow, wide):
        header_rows = [line for line in run.text.splitlines() if line.startswith("┃  ") and "layer" not in line]
        shown = [int(cell) for row in header_rows for cell in row.strip("┃").split("┃") if cell.strip().isdigit()]
        assert shown == list(range(13))
        assert "␣keeper" in run.text and "perplexity" in run.text


@pytest.mark.parametrize("columns", [80, 40])
def test_progress_bar_runs_and_finishes(columns: int) -> None:
    """The bar shows on stderr (a terminal), reaches 100%, is cleared, and the results are the pipe's results."""
    run = run_in_terminal(*COMMANDS["topk"], "--chunk-rows", "32", env=PROGRESS, columns=columns)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "projecting" in run.stderr and "100%" in run.stderr
    assert run.stderr.rstrip().endswith("\x1b[2K")  # transient: the last line is erased
    assert "\x1b[?25h" in run.stderr  # the cursor is shown again
    assert "error" not in run.error_text
    quiet = run_in_terminal(*COMMANDS["topk"], "--chunk-rows", "32", columns=columns)
    assert quiet.stderr == ""  # a tiny head needs no bar
    assert quiet.text == run.text


def test_progress_bar_on_the_lens_grid() -> None:
    run = run_in_terminal(*COMMANDS["lens"], "--chunk-rows", "50", env=PROGRESS)
    assert run.returncode == 0 and "100%" in run.stderr
    assert "logit lens" in run.text


def test_progress_bar_on_check_tying_full() -> None:
    """check-tying --full reads both matrices whole: on a large head it shows topk's bar, comparing."""
    run = run_in_terminal(*COMMANDS["check-tying"], env=PROGRESS)
    assert run.returncode == 0 and "comparing" in run.stderr and "100%" in run.stderr, run.stderr
    assert run.stderr.rstrip().endswith("\x1b[2K")  # transient, as topk's
    quiet = run_in_terminal(*COMMANDS["check-tying"])
    assert quiet.stderr == "" and quiet.text == run.text  # a tiny head needs no bar
    assert run_in_terminal(*COMMANDS["check-tying"], "--json", env=PROGRESS).stderr == ""


def test_json_at_a_terminal_is_strict_and_plain() -> None:
    run = run_in_terminal(*COMMANDS["topk"], "--json", env=PROGRESS)
    assert run.returncode == 0 and run.stderr == ""  # no bar with --json
    assert not ESCAPE.search(run.stdout)
    data = json.loads(run.text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert [p["position"] for p in data["positions"]] == [0, 1]
