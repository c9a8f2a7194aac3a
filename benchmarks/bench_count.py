"""Claims for ``lmhead count`` (headers only):

- start-up: on a small checkpoint it takes ≤ 1.3× ``python -c "import numpy, click, rich.console"``
  in the same venv (the imports any rich numpy CLI pays);
- flat in checkpoint size: on a 1 GiB checkpoint it takes ≤ 1.2× what it takes on a 1 MiB one
  with the same tensor names.

    python benchmarks/bench_count.py [--quick] [--rounds N] [--runs N]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import _common as C

SIZES = {"small": dict(vocab=2048, hidden=64), "big": dict(vocab=64000, hidden=2048)}
LAYERS = 4


def tensors(vocab: int, hidden: int) -> list[C.TensorSpec]:
    """A Llama checkpoint's tensor list, in the names and order transformers saves."""
    ones = C.to_bf16_bits(np.ones(hidden, dtype=np.float32))
    specs = [C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), C.bf16_normal(1, hidden))]
    shapes = {
        "self_attn.q_proj.weight": (hidden, hidden),
        "self_attn.k_proj.weight": (hidden, hidden),
        "self_attn.v_proj.weight": (hidden, hidden),
        "self_attn.o_proj.weight": (hidden, hidden),
        "mlp.gate_proj.weight": (4 * hidden, hidden),
        "mlp.up_proj.weight": (4 * hidden, hidden),
        "mlp.down_proj.weight": (hidden, 4 * hidden),
    }
    for layer in range(LAYERS):
        for i, (name, shape) in enumerate(shapes.items()):
            specs.append(C.TensorSpec(f"model.layers.{layer}.{name}", "BF16", shape, C.bf16_normal(100 * layer + i, shape[1])))
        for name in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            specs.append(C.TensorSpec(f"model.layers.{layer}.{name}", "BF16", (hidden,), lambda a, b: ones[a:b]))
    specs.append(C.TensorSpec("model.norm.weight", "BF16", (hidden,), lambda a, b: ones[a:b]))
    specs.append(C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), C.bf16_normal(2, hidden)))
    return specs


def build(name: str, vocab: int, hidden: int) -> Path:
    def make(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(C.llama_config(vocab, hidden, layers=LAYERS)))
        C.write_safetensors(tmp / "model.safetensors", tensors(vocab, hidden))

    return C.dataset(f"count-{name}-V{vocab}-d{hidden}-L{LAYERS}", make)


def check_answer(cmd: list[str], vocab: int, hidden: int) -> None:
    want = sum(t.nbytes for t in tensors(vocab, hidden)) // 2  # bf16: two bytes a parameter
    got = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True).stdout)["total_params"]
    if got != want:
        sys.exit(f"error: {' '.join(cmd)} counted {got} parameters, not {want}")


def main() -> None:
    args = C.parse_args(__doc__.splitlines()[0])
    sizes = {k: (dict(vocab=16000, hidden=512) if args.quick and k == "big" else v) for k, v in SIZES.items()}
    ckpts = {k: build(k, **v) for k, v in sizes.items()}
    for ckpt in ckpts.values():
        C.warm_cache(ckpt)
    mib = {k: (p / "model.safetensors").stat().st_size / C.MB for k, p in ckpts.items()}
    lmhead = C.lmhead_command()
    commands = {
        'python -c "import numpy, click, rich.console"': [sys.executable, "-c", "import numpy, click, rich.console"],
        f"count {mib['small']:.1f} MiB": [*lmhead, "count", str(ckpts["small"])],
        f"count {mib['big']:,.0f} MiB": [*lmhead, "count", str(ckpts["big"])],
    }
    names = list(commands)
    for key, name in zip(ckpts, names[1:], strict=True):
        check_answer(commands[name], **sizes[key])
    rounds = [C.hyperfine(commands, args.runs * 5, warmup=3) for _ in range(args.rounds)]  # short runs: more of them
    claims = [
        C.Claim("count (small) vs bare imports", names[1], names[0], 1.3),
        C.Claim("count 1 GiB vs 1 MiB", names[2], names[1], 1.2),
    ]
    ok = C.report("count", claims, rounds, {"tensors": f"{len(tensors(64, 8))} per checkpoint"}, sys.executable)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
