"""README examples show real output of this code (regenerate: python tests/readme_examples.py --write)."""

from __future__ import annotations

import pytest

from readme_examples import README, examples, matches, run

EXAMPLES = examples(README.read_text())


def test_the_readme_has_examples_of_every_command():
    commands = " ".join(e.command for e in EXAMPLES)
    for name in ("count", "check-tying", "topk", "doctor", "--layers", "--json", "--explain"):
        assert name in commands


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.command[:60] for e in EXAMPLES])
def test_readme_example_is_real_output(example):
    assert matches(example.shown, run(example.command)), f"README shows other output for: {example.command}"
