"""Claim: ``lmhead diff`` of two 128256 × 2048 bf16 heads (every row differs, so every row's figures are
computed) takes ≤ 1.5× the wall time of ``lmhead check-tying --full`` comparing the same two matrices
(the same bytes, as embedding and head of one file), with a peak RSS under 300 MiB. Both are timed in
the same hyperfine rounds.

    python benchmarks/bench_diff.py [--quick] [--rounds N] [--runs N]
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
EMB, HEAD, NORM = "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"


def build(vocab: int, hidden: int) -> Path:
    """``pair/``: both matrices in one untied file (check-tying's input); ``base/``, ``other/``: each alone as a
    tied model's embedding, which is its head (diff's input). The same bytes either way."""

    def make(tmp: Path) -> None:
        first, second = C.bf16_normal(7, hidden), C.bf16_normal(8, hidden)  # two draws: every row differs
        ones = C.to_bf16_bits(np.ones(hidden, dtype=np.float32))
        norm = C.TensorSpec(NORM, "BF16", (hidden,), lambda a, b: ones[a:b])
        layout = {
            "pair": (False, [C.TensorSpec(EMB, "BF16", (vocab, hidden), first), C.TensorSpec(HEAD, "BF16", (vocab, hidden), second)]),
            "base": (True, [C.TensorSpec(EMB, "BF16", (vocab, hidden), first)]),
            "other": (True, [C.TensorSpec(EMB, "BF16", (vocab, hidden), second)]),
        }
        for name, (tie, specs) in layout.items():
            folder = tmp / name
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(C.llama_config(vocab, hidden, tie=tie)))
            C.write_safetensors(folder / "model.safetensors", [*specs, norm])

    return C.dataset(f"diff-V{vocab}-d{hidden}", make)


def check_answer(diff_cmd: list[str], tying_cmd: list[str], rows: int) -> str:
    diff = json.loads(subprocess.run(diff_cmd, capture_output=True, text=True).stdout)["head"]
    tying = json.loads(subprocess.run(tying_cmd, capture_output=True, text=True).stdout)["comparison"]
    if diff["changed_rows"] != rows or tying["rows_compared"] != rows:
        sys.exit(f"error: not every row compared: diff {diff['changed_rows']}, check-tying {tying['rows_compared']}")
    if abs(diff["max_abs_diff"] - tying["max_abs_diff"]) > 1e-7:
        sys.exit(f"error: max |Δ| disagrees: diff {diff['max_abs_diff']}, check-tying {tying['max_abs_diff']}")
    return f"all {rows} rows differ; max |Δ| {diff['max_abs_diff']:.4g} in both; ‖Δ‖/‖W‖ {diff['relative_change']:.4g}"


def main() -> None:
    args = C.parse_args(__doc__.splitlines()[0])
    size = QUICK if args.quick else FULL
    data = build(**size)
    for folder in ("pair", "base", "other"):
        C.warm_cache(data / folder)
    commands = {
        "lmhead check-tying --full": [*C.lmhead_command(), "check-tying", str(data / "pair"), "--full", "--json"],
        "lmhead diff": [*C.lmhead_command(), "diff", str(data / "base"), str(data / "other"), "--json"],
    }
    answer = check_answer(commands["lmhead diff"], commands["lmhead check-tying --full"], size["vocab"])
    rounds = [C.hyperfine(commands, args.runs) for _ in range(args.rounds)]
    rss = {name: C.peak_rss_mib(cmd) for name, cmd in commands.items()}
    claims = [C.Claim("diff wall vs check-tying --full", "lmhead diff", "lmhead check-tying --full", 1.5)]
    rss_ok = all(v < RSS_LIMIT_MIB for v in rss.values())
    extra = {
        "shape": f"two different V={size['vocab']} d={size['hidden']} bf16 matrices",
        "peak RSS (MiB)": {k: round(v) for k, v in rss.items()},
        "lmhead diff peak RSS < 300 MiB": "PASS" if rss["lmhead diff"] < RSS_LIMIT_MIB else "FAIL",
        "answer": answer,
    }
    ok = C.report("diff", claims, rounds, extra, args.python_baseline) and rss_ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
