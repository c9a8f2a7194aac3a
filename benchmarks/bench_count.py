"""Claim: "Counting a 1 GB checkpoint is as fast as a 1 MB one (within 20%)."

Two Llama-style checkpoints with the same 39 tensor names (4 layers) and
config keys, so their headers are alike and only the data size differs:
~1 MB (V=2048, d=64) and ~1 GB (V=64000, d=2048). The baseline is
``lmhead count`` on the 1 MB one; the contender the same command on the 1 GB
one, plain and with ``--json``. Target: wall ratio <= 1.2.

A cold-cache pair drops both checkpoints from the page cache before every
run (posix_fadvise DONTNEED), and afterwards mincore shows how much of the
1 GB file a count pulled back in: the header page and readahead, not the data.

    python benchmarks/bench_count.py [--quick] [--python-baseline PATH]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import _common as C

FULL = {"small": dict(vocab=2048, hidden=64, intermediate=256), "big": dict(vocab=64000, hidden=2048, intermediate=8192)}
QUICK = {"small": dict(vocab=2048, hidden=64, intermediate=256), "big": dict(vocab=16000, hidden=512, intermediate=2048)}
LAYERS = 4
TARGET = 1.2


def llama_tensors(vocab: int, hidden: int, intermediate: int, layers: int = LAYERS) -> list[C.TensorSpec]:
    """The tensor list of a Llama checkpoint: the names and order transformers saves."""
    specs = [C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), C.bf16_normal(1, hidden))]
    shapes = {
        "self_attn.q_proj.weight": (hidden, hidden),
        "self_attn.k_proj.weight": (hidden, hidden),
        "self_attn.v_proj.weight": (hidden, hidden),
        "self_attn.o_proj.weight": (hidden, hidden),
        "mlp.gate_proj.weight": (intermediate, hidden),
        "mlp.up_proj.weight": (intermediate, hidden),
        "mlp.down_proj.weight": (hidden, intermediate),
    }
    for layer in range(layers):
        for i, (name, shape) in enumerate(shapes.items()):
            specs.append(C.TensorSpec(f"model.layers.{layer}.{name}", "BF16", shape, C.bf16_normal(100 * layer + i + 10, shape[1])))
        for name in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            specs.append(C.TensorSpec(f"model.layers.{layer}.{name}", "BF16", (hidden,), C.bf16_constant(1.0)))
    specs.append(C.TensorSpec("model.norm.weight", "BF16", (hidden,), C.bf16_constant(1.0)))
    specs.append(C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), C.bf16_normal(2, hidden)))
    return specs


def build_checkpoint(name: str, vocab: int, hidden: int, intermediate: int) -> Path:
    def build(tmp: Path) -> None:
        C.write_json(tmp / "config.json", C.llama_config(vocab, hidden, LAYERS, intermediate))
        C.write_safetensors(tmp / "model.safetensors", llama_tensors(vocab, hidden, intermediate))

    return C.dataset(f"count-{name}-V{vocab}-d{hidden}-i{intermediate}-L{LAYERS}", build)


def expected_params(vocab: int, hidden: int, intermediate: int) -> int:
    return sum(s.nbytes for s in llama_tensors(vocab, hidden, intermediate)) // 2


def cold_cache_works(directory: Path) -> bool:
    """Can this machine evict a file from the page cache? (fadvise may be a no-op in some sandboxes.)"""
    target = directory / "model.safetensors"
    C.warm_cache([target])
    C.drop_cache([target])
    return C.resident_bytes(target) < 0.01 * target.stat().st_size


def contenders(small: Path, big: Path, small_mb: float, big_mb: float, cold: bool) -> list[C.Contender]:
    lmhead = C.lmhead_command()
    s, b = f"{small_mb:.1f} MiB", f"{big_mb:,.0f} MiB"
    out = [
        C.Contender(f"count {s} (baseline)", [*lmhead, "count", str(small)]),
        C.Contender(f"count {b}", [*lmhead, "count", str(big)], baseline=f"count {s} (baseline)", wall_target=TARGET),
        C.Contender(f"count --json {s} (baseline)", [*lmhead, "count", str(small), "--json"]),
        C.Contender(
            f"count --json {b}", [*lmhead, "count", str(big), "--json"], baseline=f"count --json {s} (baseline)", wall_target=TARGET
        ),
    ]
    if cold:
        out += [
            C.Contender(
                f"count --json {s}, cold cache (baseline)",
                [*lmhead, "count", str(small), "--json"],
                before_each=lambda: C.drop_cache(C.data_files(small)),
            ),
            C.Contender(
                f"count --json {b}, cold cache",
                [*lmhead, "count", str(big), "--json"],
                baseline=f"count --json {s}, cold cache (baseline)",
                wall_target=TARGET,
                before_each=lambda: C.drop_cache(C.data_files(big)),
            ),
        ]
    return out


def validator(expected: dict[str, int]):
    """--json output must report the exact parameter count of the checkpoint it was given."""

    def validate(c: C.Contender, result: C.RunResult) -> None:
        if "--json" not in c.cmd:
            return
        data = json.loads(result.stdout)
        want = expected[c.cmd[c.cmd.index("count") + 1]]
        if data["total_params"] != want:
            C.die(f"{c.label}: total_params {data['total_params']} != {want}")

    return validate


def residency_proof(big: Path) -> str:
    """Drop the 1 GB file, count it once, and see how many of its bytes came back into the cache."""
    target = big / "model.safetensors"
    C.drop_cache(C.data_files(big))
    before = C.resident_bytes(target)
    result = C.run_once([*C.lmhead_command(), "count", str(big), "--json"])
    after = C.resident_bytes(target)
    header = int.from_bytes(target.open("rb").read(8), "little") + 8
    return (
        f"page cache of {target.name} ({target.stat().st_size / C.MB:,.0f} MiB; header {header / 1024:.1f} KiB): "
        f"{before / 1024:.0f} KiB resident after the drop, {after / 1024:.0f} KiB after one cold `lmhead count --json` "
        f"(exit {result.returncode}, {result.wall:.3f} s): the header plus the kernel's readahead around it "
        f"(read_ahead_kb = {C.read_ahead_kb(target)} on this device), not the tensor data."
    )


def main() -> int:
    args = C.parse_args(__doc__.splitlines()[0], default_runs=9)
    torch_version = C.require_torch(args.python_baseline)  # not used by this benchmark's contenders; checked for uniformity
    sizes = QUICK if args.quick else FULL
    small, big = build_checkpoint("small", **sizes["small"]), build_checkpoint("big", **sizes["big"])
    expected = {str(small): expected_params(**sizes["small"]), str(big): expected_params(**sizes["big"])}
    cold = cold_cache_works(big)
    C.warm_cache(C.data_files(small) + C.data_files(big))
    runners = contenders(small, big, C.dir_bytes(small) / C.MB, C.dir_bytes(big) / C.MB, cold)
    noise = C.measure(runners, args.runs, validator(expected))

    C.print_header("bench_count: header-only census", C.machine_info(args.python_baseline, torch_version))
    n_small = len(llama_tensors(**sizes["small"]))
    print(f"Checkpoints: {n_small} tensors each, {C.dir_bytes(small):,} vs {C.dir_bytes(big):,} bytes on disk.\n")
    print(C.table(runners))
    print(f"\n{noise}")
    print()
    print(residency_proof(big) if cold else "cold-cache rows skipped: posix_fadvise(DONTNEED) does not evict pages on this machine.")
    return 0 if C.all_passed(runners) else C.EXIT_TARGET_MISSED


if __name__ == "__main__":
    sys.exit(main())
