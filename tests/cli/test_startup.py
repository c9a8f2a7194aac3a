"""Start-up: a command imports only what it uses (ml_dtypes alone costs 0.65 s to import in 0.7.0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

HEAVY = ("ml_dtypes", "torch", "transformers", "gguf", "huggingface_hub", "scipy", "pandas")
LLAMA = SAMPLES / "llama-bf16"

CODE = """
import json, sys
from lmhead_cli.cli import main
sys.argv = ["lmhead", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    assert exc.code in (None, 0), exc.code
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def modules_loaded(*args: str) -> list[str]:
    code = CODE.format(heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps([str(a) for a in args])], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ("count", LLAMA),
        ("check-tying", LLAMA, "--full"),
        ("doctor", LLAMA),
        ("topk", LLAMA, LLAMA / "hidden.npy", "-k", "2"),
        ("topk", LLAMA, LLAMA / "hidden_layers.npy", "--layers"),
    ],
)
def test_no_heavy_imports(args: tuple) -> None:
    assert modules_loaded(*args) == []


NOT_FOR_COUNT = (
    "lmhead_cli.inputs.hidden",  # hidden-state files
    "lmhead_cli.analyses.tying",
    "lmhead_cli.checkpoint.compare",  # value comparison: only when the values decide tying
    "lmhead_cli.logits.head",  # the head matmul
    "lmhead_cli.logits.prediction",
    "lmhead_cli.model.gguf_conventions",  # llama.cpp's rules: only for a GGUF
    "lmhead_cli.quant.layouts",  # a dense checkpoint stops at quant.detect
    "lmhead_cli.quant.dequant",
    "tokenizers",  # a tokenizer.json is sized from its JSON
    "zipfile",
    "numpy.typing",
)


def loaded_by_count(ckpt, *flags: str) -> list[str]:
    watched = NOT_FOR_COUNT + ("lmhead_cli.inputs.tokens", "rich.table")
    code = (
        "import json, sys; from lmhead_cli.cli import main; sys.argv = ['lmhead', 'count', *json.loads(sys.argv[1])]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)), file=sys.stderr)"
    )
    args = json.dumps([str(ckpt), *flags])
    out = subprocess.run([sys.executable, "-c", code, args], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stderr.strip().splitlines()[-1])


def test_count_does_not_load_what_it_does_not_use(tmp_path) -> None:
    assert loaded_by_count(LLAMA) == ["lmhead_cli.inputs.tokens", "rich.table"]  # tokenizer.json sizes the vocabulary; the table
    bare = tmp_path / "model"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((LLAMA / name).read_bytes())
    assert loaded_by_count(bare) == ["rich.table"]  # no tokenizer.json: no tokenizer code
    assert loaded_by_count(bare, "--json") == []  # JSON draws no table


def test_topk_on_a_few_positions_loads_no_thread_pool_and_no_zip_reader() -> None:
    """concurrent.futures (a fold thread, from 256 states on) and zipfile (.npz only) cost start-up time."""
    code = (
        "import sys; from lmhead_cli.cli import main; sys.argv = ['lmhead', 'topk', sys.argv[1], sys.argv[2]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('concurrent.futures', 'zipfile') if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(LLAMA), str(LLAMA / "hidden.npy")], cwd=ROOT, capture_output=True, text=True)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


@pytest.mark.parametrize(
    "args, status",
    [
        (["count", LLAMA], 0),
        (["check-tying", LLAMA, "--expect", "tied"], 1),
        (["count", ROOT / "no-such-folder"], 2),
        (["--version"], 0),
        (["count"], 2),
    ],
)
def test_the_program_exits_with_mains_status_and_all_its_output(args, status) -> None:
    """``lmhead`` ends without interpreter teardown (lmhead_cli.cli.run): the status and every byte of
    output must be what main gives, through a pipe as at the end of a long JSON document."""
    program = subprocess.run([sys.executable, "-m", "lmhead_cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    code = "import sys; from lmhead_cli.cli import main; sys.argv = ['lmhead', *sys.argv[1:]]; main()"
    plain = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    assert program.returncode == plain.returncode == status, program.stderr
    assert (program.stdout, program.stderr) == (plain.stdout, plain.stderr)


def test_a_long_json_document_arrives_whole_through_a_pipe() -> None:
    hidden = LLAMA / "hidden_layers.npy"
    out = subprocess.run(
        [sys.executable, "-m", "lmhead_cli", "topk", LLAMA, hidden, "--layers", "-k", "50", "--json"], cwd=ROOT, capture_output=True
    )
    assert out.returncode == 0 and len(out.stdout) > 100_000
    assert json.loads(out.stdout)["positions"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_that_cannot_be_written_fails_as_python_fails_it() -> None:
    """A flush that fails (a full disk here, a closed pipe elsewhere) takes Python's own way out."""
    args = ["count", str(LLAMA)]
    code = "import sys; from lmhead_cli.cli import main; sys.argv = ['lmhead', *sys.argv[1:]]; main()"
    with open("/dev/full", "w") as full:
        program = subprocess.run([sys.executable, "-m", "lmhead_cli", *args], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True)
        plain = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True)
    assert program.returncode == plain.returncode != 0
    assert "No space left on device" in program.stderr
