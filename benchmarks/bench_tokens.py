"""Claim: ``lmhead tokens`` on Gemma-3-270M Q4_K_M (a 262144 × 640 Q8_0 head) runs within 2× the wall
time of one streamed pass over the same head (``lmhead topk`` with T = 1, timed in the same hyperfine
rounds), with a peak RSS under 300 MiB beyond the tokenizer's (a process that only builds the
tokenizer from the file, as ``tokens`` does, is measured and timed too; its time is reported apart).
``--indicator cosine-no-pc`` (a second pass and the
d × d covariance) is timed alongside and reported.

The model is the package registry's (see tests/fixtures/make_undertrained_reference.py): pass
--model PATH or set LMHEAD_REAL_MODELS to the folder holding gemma-3-270m-q4_k_m.gguf. With --quick,
SmolLM2-135M-Instruct.Q4_1.gguf from the same folder.

    python benchmarks/bench_tokens.py [--quick] [--rounds N] [--runs N] [--model PATH]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

import _common as C

GEMMA = "gemma-3-270m-q4_k_m.gguf"
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"
RSS_BEYOND_MIB = 300
# what ``tokens`` spends on the tokenizer before reading a row: open the file, build the tokenizer
# from its metadata (the same code ``tokens`` runs), nothing else
TOKENIZER_ONLY = (
    "import sys; from lmhead_cli.checkpoint.open import open_checkpoint; from lmhead_cli.cli import _vocabulary; "
    "_vocabulary(open_checkpoint(sys.argv[1]), None).tokenizer()"
)


def model_path(quick: bool) -> Path:
    if "--model" in sys.argv:
        path = Path(sys.argv[sys.argv.index("--model") + 1])
        del sys.argv[sys.argv.index("--model") : sys.argv.index("--model") + 2]
        return path
    folder = os.environ.get("LMHEAD_REAL_MODELS")
    if not folder:
        sys.exit("error: pass --model PATH or set LMHEAD_REAL_MODELS (see this script's docstring)")
    return Path(folder) / (SMOLLM if quick else GEMMA)


def hidden_state(ckpt: Path, tmp: Path) -> Path:
    data = json.loads(subprocess.run([*C.lmhead_command(), "count", str(ckpt), "--json"], capture_output=True, text=True).stdout)
    path = tmp / f"hidden-{data['hidden_size']}.npy"
    np.save(path, np.random.default_rng(0).normal(size=(1, data["hidden_size"])).astype(np.float32))
    return path


def main() -> None:
    ckpt = model_path("--quick" in sys.argv)
    args = C.parse_args(__doc__.splitlines()[0])
    C.DATA_DIR.mkdir(parents=True, exist_ok=True)
    (C.DATA_DIR / ".gitignore").write_text("*\n")
    hidden = hidden_state(ckpt, C.DATA_DIR)
    C.warm_cache(ckpt.parent)
    commands = {
        "lmhead topk T=1": [*C.lmhead_command(), "topk", str(ckpt), str(hidden), "-k", "1", "--json"],
        "lmhead tokens": [*C.lmhead_command(), "tokens", str(ckpt), "--json"],
        "lmhead tokens --indicator cosine-no-pc": [*C.lmhead_command(), "tokens", str(ckpt), "--indicator", "cosine-no-pc", "--json"],
        "tokenizer alone": [sys.executable, "-c", TOKENIZER_ONLY, str(ckpt)],
    }
    answer = json.loads(subprocess.run(commands["lmhead tokens"], capture_output=True, text=True, check=True).stdout)
    rounds = [C.hyperfine(commands, args.runs) for _ in range(args.rounds)]
    rss = {name: C.peak_rss_mib(cmd) for name, cmd in commands.items()}
    beyond = {name: rss[name] - rss["tokenizer alone"] for name in commands if name.startswith("lmhead tokens")}
    wall = {name: statistics.median(t for r in rounds for t in r[name]) for name in commands}
    analysis = (wall["lmhead tokens"] - wall["tokenizer alone"]) / wall["lmhead topk T=1"]
    claims = [
        C.Claim("tokens wall vs topk T=1", "lmhead tokens", "lmhead topk T=1", 2.0),
        C.Claim(
            "tokens --indicator cosine-no-pc wall vs topk T=1 (reported)", "lmhead tokens --indicator cosine-no-pc", "lmhead topk T=1", 2.0
        ),
    ]
    rss_ok = beyond["lmhead tokens"] < RSS_BEYOND_MIB
    extra = {
        "model": ckpt.name,
        "peak RSS (MiB)": {k: round(v) for k, v in rss.items()},
        "peak RSS beyond the tokenizer's (MiB)": {k: round(v) for k, v in beyond.items()},
        f"tokens peak RSS beyond the tokenizer's < {RSS_BEYOND_MIB} MiB": "PASS" if rss_ok else "FAIL",
        "tokens wall less the tokenizer alone, vs topk T=1": f"{analysis:.2f}×",
        "answer": f"R {answer['reference']['source']} ({len(answer['reference']['ids'])}), {answer['candidate_count']} suspects",
    }
    ok = C.report("tokens", claims[:1], rounds, extra, sys.executable) and rss_ok
    C.report("tokens-no-pc", claims[1:], rounds, {}, sys.executable)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
