"""Claim: ``lmhead check-tying`` compares every row of two identical 128256 × 2048 bf16 matrices
(the worst case: nothing differs, so nothing stops early) in ≤ 0.2× the wall time of the PyTorch
script one would write (``baseline_tying_torch.py``: safetensors load + torch.equal), with a peak
RSS under 300 MiB. Timed in the same hyperfine rounds; ``--full`` (difference statistics over
every row) is timed alongside and reported.

    python benchmarks/bench_tying.py [--quick] [--rounds N] [--runs N] [--python-baseline PATH]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import _common as C

FULL = dict(vocab=128256, hidden=2048)
QUICK = dict(vocab=16000, hidden=512)
RSS_LIMIT_MIB = 300


def build(vocab: int, hidden: int) -> Path:
    def make(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(C.llama_config(vocab, hidden)))
        same = C.bf16_normal(7, hidden)  # one generator for both: byte-identical matrices
        ones = C.to_bf16_bits(np.ones(hidden, dtype=np.float32))
        C.write_safetensors(
            tmp / "model.safetensors",
            [
                C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), same),
                C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), same),
                C.TensorSpec("model.norm.weight", "BF16", (hidden,), lambda a, b: ones[a:b]),
            ],
        )

    return C.dataset(f"tying-V{vocab}-d{hidden}", make)


def check_answer(cmd: list[str]) -> str:
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True).stdout)
    comparison = data.get("comparison") or {}
    if data.get("values_identical") is not True or comparison.get("rows_compared") != comparison.get("rows_total"):
        sys.exit(f"error: lmhead check-tying did not compare every row and find them identical: {comparison}")
    return f"values identical, all {comparison['rows_total']} rows compared"


def main() -> None:
    args = C.parse_args(__doc__.splitlines()[0])
    size = QUICK if args.quick else FULL
    ckpt = build(**size)
    C.warm_cache(ckpt)
    commands = {
        "torch load + equal": [args.python_baseline, str(C.BENCH_DIR / "baseline_tying_torch.py"), str(ckpt)],
        "lmhead check-tying": [*C.lmhead_command(), "check-tying", str(ckpt), "--json"],
        "lmhead check-tying --full": [*C.lmhead_command(), "check-tying", str(ckpt), "--full", "--json"],
    }
    answer = check_answer(commands["lmhead check-tying"])
    rounds = [C.hyperfine(commands, args.runs) for _ in range(args.rounds)]
    rss = {name: C.peak_rss_mib(cmd) for name, cmd in commands.items()}
    claims = [
        C.Claim("check-tying wall vs torch", "lmhead check-tying", "torch load + equal", 0.2),
        C.Claim("check-tying --full wall vs torch", "lmhead check-tying --full", "torch load + equal", 0.2),
    ]
    rss_ok = all(v < RSS_LIMIT_MIB for k, v in rss.items() if k.startswith("lmhead"))
    extra = {
        "shape": f"two identical V={size['vocab']} d={size['hidden']} bf16 matrices",
        "peak RSS (MiB)": {k: round(v) for k, v in rss.items()},
        "lmhead peak RSS < 300 MiB": "PASS" if rss_ok else "FAIL",
        "answer": answer,
    }
    ok = C.report("tying", claims, rounds, extra, args.python_baseline) and rss_ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
