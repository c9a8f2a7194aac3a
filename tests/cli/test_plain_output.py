"""In a pipe, plain text that fits is written directly, without rich's wrapping pass (most of topk's
rendering time at T = 32). It must print exactly what rich prints."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import lmhead_cli.render as render
from lmhead_cli.cli import cli

from conftest import ROOT, SAMPLES

FIXTURES = ROOT / "tests" / "fixtures"
CASES = [
    ("count", SAMPLES / "llama-bf16", "--explain"),
    ("check-tying", SAMPLES / "gpt2-tied", "--full"),
    ("doctor", SAMPLES / "qwen2-sharded"),
    ("topk", SAMPLES / "llama-bf16", SAMPLES / "llama-bf16" / "hidden.npy", "-k", "3"),
    ("topk", SAMPLES / "gpt2-tied", SAMPLES / "gpt2-tied" / "hidden.npy", "--text", (SAMPLES / "gpt2-tied" / "text.txt").read_text()),
    ("topk", SAMPLES / "llama-bf16", SAMPLES / "llama-bf16" / "hidden_layers.npy", "--layers"),
    ("count", FIXTURES / "quant" / "gptq"),
    ("count", SAMPLES / "gpt2-tied.gguf"),
    ("diff", FIXTURES / "diff" / "base", FIXTURES / "diff" / "base-q8_0.gguf"),
    ("diff", FIXTURES / "diff" / "base", FIXTURES / "diff" / "resize_trained"),
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: f"{a[0]}-{a[1].name}")
def test_plain_lines_print_what_rich_prints(monkeypatch, args):
    runner = CliRunner()
    fast = runner.invoke(cli, [str(a) for a in args])
    monkeypatch.setattr(render, "_plain_lines", lambda renderable: None)  # every renderable through rich
    slow = runner.invoke(cli, [str(a) for a in args])
    assert fast.exit_code == slow.exit_code == 0, fast.output
    assert fast.output == slow.output


def test_what_rich_must_lay_out_is_left_to_it():
    from rich.console import Group

    assert render._plain_lines(render.Text("a" * (render.PLAIN_WIDTH + 1))) is None  # rich wraps it
    assert render._plain_lines(render.Text("a\tb")) is None  # rich expands the tab
    assert render._plain_lines(render.Text("x", justify="right")) is None
    assert render._plain_lines(Group(render.Text("one\ntwo"), render.Text(""))) == ["one", "two", ""]
