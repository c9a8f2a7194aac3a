"""Claims for ``lmhead topk`` on a head shaped like Llama 3.2 1B's (V = 128256, d = 2048, bf16, untied):

- T = 32: wall ≤ 0.25× and peak RSS ≤ 0.1× the PyTorch script one would write
  (``baseline_topk_torch.py``: safetensors load, .float(), RMSNorm, matmul, softmax, topk);
- T = 2048: wall ≤ 1.3× a bare float32 numpy matmul process of the same shape
  (``floor_matmul.py``), the floor any streamed top-k has to pay.

All timed in the same hyperfine rounds. The T = 32 answer is checked against
torch's (same top-1 everywhere, probabilities within 1e-4).

    python benchmarks/bench_topk.py [--quick] [--rounds N] [--runs N] [--python-baseline PATH]
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
SMALL_T, LARGE_T = 32, 2048
K = 10


def build(vocab: int, hidden: int) -> Path:
    def make(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(C.llama_config(vocab, hidden)))
        norm = C.to_bf16_bits(1 + 0.1 * np.random.default_rng(3).standard_normal(hidden, dtype=np.float32))
        C.write_safetensors(
            tmp / "model.safetensors",
            [
                C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), C.bf16_normal(11, hidden)),
                C.TensorSpec("model.norm.weight", "BF16", (hidden,), lambda a, b: norm[a:b]),
                C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), C.bf16_normal(12, hidden)),
            ],
        )
        for t in (SMALL_T, LARGE_T):
            np.save(tmp / f"hidden-T{t}.npy", np.random.default_rng(t).standard_normal((t, hidden), dtype=np.float32))

    return C.dataset(f"topk-V{vocab}-d{hidden}", make)


def check_agreement(torch_cmd: list[str], lmhead_cmd: list[str]) -> str:
    ref = json.loads(subprocess.run(torch_cmd, capture_output=True, text=True, check=True).stdout)
    got = json.loads(subprocess.run(lmhead_cmd, capture_output=True, text=True, check=True).stdout)["positions"]
    ids = np.array([[t["token_id"] for t in p["top"]] for p in got])
    probs = np.array([[t["prob"] for t in p["top"]] for p in got])
    if not (ids[:, 0] == np.array(ref["ids"])[:, 0]).all():
        sys.exit("error: lmhead's top-1 differs from torch's")
    diff = float(np.abs(probs - np.array(ref["probs"])).max())
    if diff > 1e-4:
        sys.exit(f"error: lmhead's probabilities differ from torch's by {diff:.1e}")
    same = float((ids == np.array(ref["ids"])).mean())
    return f"top-1 identical at all {len(ids)} positions, {same:.1%} of top-{K} ids identical, max |Δprob| {diff:.1e}"


def main() -> None:
    args = C.parse_args(__doc__.splitlines()[0])
    size = QUICK if args.quick else FULL
    ckpt = build(**size)
    C.warm_cache(ckpt)
    hidden = {t: str(ckpt / f"hidden-T{t}.npy") for t in (SMALL_T, LARGE_T)}
    commands = {
        "torch T=32": [args.python_baseline, str(C.BENCH_DIR / "baseline_topk_torch.py"), str(ckpt), hidden[SMALL_T], str(K)],
        "lmhead T=32": [*C.lmhead_command(), "topk", str(ckpt), hidden[SMALL_T], "-k", str(K), "--json"],
        "numpy f32 matmul T=2048": [
            sys.executable,
            str(C.BENCH_DIR / "floor_matmul.py"),
            str(size["vocab"]),
            str(size["hidden"]),
            str(LARGE_T),
        ],
        "lmhead T=2048": [*C.lmhead_command(), "topk", str(ckpt), hidden[LARGE_T], "-k", str(K), "--json"],
    }
    agreement = check_agreement(commands["torch T=32"], commands["lmhead T=32"])
    rounds = [C.hyperfine(commands, args.runs) for _ in range(args.rounds)]
    rss = {name: C.peak_rss_mib(commands[name]) for name in ("torch T=32", "lmhead T=32")}
    rss_ratio = rss["lmhead T=32"] / rss["torch T=32"]
    claims = [
        C.Claim("topk T=32 wall vs torch", "lmhead T=32", "torch T=32", 0.25),
        C.Claim("topk T=2048 wall vs numpy f32 matmul", "lmhead T=2048", "numpy f32 matmul T=2048", 1.3),
    ]
    extra = {
        "shape": f"V={size['vocab']} d={size['hidden']} bf16 untied head, k={K}",
        "peak RSS (MiB)": {k: round(v) for k, v in rss.items()},
        "topk T=32 RSS vs torch": f"{rss_ratio:.3f}× (target ≤ 0.1×: {'PASS' if rss_ratio <= 0.1 else 'FAIL'})",
        "agreement with torch": agreement,
    }
    ok = C.report("topk", claims, rounds, extra, args.python_baseline) and rss_ratio <= 0.1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
