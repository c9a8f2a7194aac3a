"""Claim: on a case shaped like a real head (V = 128256, d = 2048, bf16, untied,
T = 32), ``lmhead topk`` takes at most 0.35 × the wall time and 0.3 × the peak RSS
of the PyTorch script one would write (safetensors load, .float(), RMSNorm,
matmul, softmax, topk), measured in the same run.

The compute floor is one bf16 -> f32 conversion of the head plus one pass of
matrix multiply; after the table this script measures that floor in-process
with numpy (same chunking as lmhead, and variants), and profiles lmhead's topk
in-process by phase (import, open, read, convert, matmul, fold, render).

    python benchmarks/bench_topk.py [--quick] [--python-baseline PATH]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import _common as C

FULL = dict(vocab=128256, hidden=2048, positions=32)
QUICK = dict(vocab=32000, hidden=1024, positions=32)
K = 10
WALL_TARGET = 0.35
RSS_TARGET = 0.3


def norm_weight(hidden: int):
    """An RMSNorm weight near 1, as trained models have: 1 + N(0, 0.1²), in bf16."""
    import ml_dtypes

    def fill(start: int, stop: int) -> np.ndarray:
        weight = 1 + 0.1 * np.random.default_rng(3).standard_normal(hidden, dtype=np.float32)
        return weight[start:stop].astype(ml_dtypes.bfloat16)

    return fill


def build_checkpoint(vocab: int, hidden: int, positions: int) -> Path:
    def build(tmp: Path) -> None:
        C.write_json(tmp / "config.json", C.llama_config(vocab, hidden, layers=16, intermediate=4 * hidden))
        C.write_safetensors(
            tmp / "model.safetensors",
            [
                C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), C.bf16_normal(seed=11, cols=hidden)),
                C.TensorSpec("model.norm.weight", "BF16", (hidden,), norm_weight(hidden)),
                C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), C.bf16_normal(seed=12, cols=hidden)),
            ],
        )
        states = np.random.default_rng(13).standard_normal((positions, hidden), dtype=np.float32)
        np.save(tmp / "hidden.npy", states)

    return C.dataset(f"topk-V{vocab}-d{hidden}-T{positions}", build)


def contenders(ckpt: Path, baseline_python: str) -> list[C.Contender]:
    hidden = str(ckpt / "hidden.npy")
    baseline = "torch: load, .float(), RMSNorm, matmul, softmax, topk (baseline)"
    return [
        C.Contender(baseline, [baseline_python, str(C.BENCH_DIR / "baseline_topk_torch.py"), str(ckpt), hidden, str(K)]),
        C.Contender(
            f"lmhead topk -k {K} --json",
            [*C.lmhead_command(), "topk", str(ckpt), hidden, "-k", str(K), "--json"],
            baseline=baseline,
            wall_target=WALL_TARGET,
            rss_target=RSS_TARGET,
        ),
    ]


class Agreement:
    """Checks lmhead's answer against the baseline's (top-1 ids must match, probabilities agree)."""

    def __init__(self) -> None:
        self.baseline: dict | None = None
        self.summary = ""

    def __call__(self, c: C.Contender, result: C.RunResult) -> None:
        if c.baseline is None:
            self.baseline = json.loads(result.stdout)
            return
        assert self.baseline is not None, "the baseline runs first"
        positions = json.loads(result.stdout)["positions"]
        ids = np.array([[t["token_id"] for t in p["top"]] for p in positions])
        probs = np.array([[t["prob"] for t in p["top"]] for p in positions])
        ref_ids, ref_probs = np.array(self.baseline["ids"]), np.array(self.baseline["probs"])
        if ids.shape != ref_ids.shape or not (ids[:, 0] == ref_ids[:, 0]).all():
            C.die(f"lmhead's top-1 differs from the baseline's:\n{ids[:, 0]}\n{ref_ids[:, 0]}")
        same = float((ids == ref_ids).mean())
        diff = float(np.abs(probs - ref_probs).max())
        if diff > 1e-4:
            C.die(f"lmhead's probabilities differ from the baseline's by up to {diff:.2e}")
        self.summary = (
            f"agreement with the baseline: top-1 identical at all {len(ids)} positions, "
            f"{same:.1%} of top-{K} ids identical, max |Δprob| {diff:.1e}."
        )


def topk_profile(ckpt: Path) -> list[tuple[str, float]]:
    """Where lmhead topk spends its time, by phase (cProfile, in-process, warm cache)."""
    prof = C.profile_lmhead(["topk", str(ckpt), str(ckpt / "hidden.npy"), "-k", str(K), "--json"])
    rows = prof["rows"]
    read = C.pick(rows, "<built-in method posix.preadv>") + C.pick(rows, "<built-in method posix.pread>")
    alloc = C.pick(rows, "<built-in method numpy.empty>")
    read_rows = C.pick(rows, "read_rows", "safetensors.py", key="cumtime")
    read_raw = C.pick(rows, "stored_rows", "safetensors.py", key="cumtime")  # the map window read_rows converts from
    fold = C.pick(rows, "add", "head.py", key="cumtime")
    fold_topk = C.pick(rows, "_fold_topk", "head.py", key="cumtime")
    fold_lse = C.pick(rows, "_fold_lse", "head.py", key="cumtime")
    transforms = C.pick(rows, "apply_transforms", "head.py", key="cumtime")
    project = C.pick(rows, "project", "head.py", key="cumtime")
    project_self = C.pick(rows, "project", "head.py")
    others = project - read_rows - fold - transforms - project_self
    return [
        ("interpreter start (`python -c pass`)", C.startup_seconds(sys.executable, "pass")),
        ("import lmhead_cli.cli", prof["import"]),
        ("(compiling lmhead_cli sources, only when no .pyc is cached; inside import and run)", prof["compile"]),
        ("open checkpoint + locate head", C.pick(rows, "_open", "cli.py", key="cumtime")),
        ("load hidden states", C.pick(rows, "load_hidden", key="cumtime")),
        ("project() total", project),
        ("  read: os.preadv (page cache -> fresh buffer)", read),
        ("  allocate: np.empty per chunk", alloc),
        ("  convert: bf16 -> f32 astype", read_rows - read_raw),
        ("  matmul x @ w.T (project's own time)", project_self),
        ("  fold: running top-k (argpartition)", fold_topk),
        ("  fold: running log-sum-exp (exp, sum)", fold_lse),
        ("  fold: other", fold - fold_topk - fold_lse),
        ("  transforms + norm + rest", transforms + others + (read_raw - read - alloc)),
        ("render JSON", C.pick(rows, "emit_json", key="cumtime")),
        ("command total in-process (cProfile on)", prof["run"]),
    ]


FLOOR_SNIPPET = r"""
import json, mmap, os, sys, time
import numpy as np, ml_dtypes
path, offset, vocab, hidden, positions, default_rows = sys.argv[1], *map(int, sys.argv[2:])
fd = os.open(path, os.O_RDONLY)
mapped = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
x = np.random.default_rng(0).standard_normal((positions, hidden), dtype=np.float32)
row_bytes = 2 * hidden
bf16 = np.dtype(ml_dtypes.bfloat16)

def one_pass(chunk_rows, source, orientation):
    # read (source -> bf16 array), convert (astype f32), matmul; seconds per phase over the whole head
    t = {"read": 0.0, "convert": 0.0, "matmul": 0.0}
    reused = np.empty(chunk_rows * hidden, np.uint16)
    for start in range(0, vocab, chunk_rows):
        rows = min(chunk_rows, vocab - start)
        t0 = time.perf_counter()
        if source == "mmap":  # no copy: convert straight from the mapped page cache, then release the window
            raw = np.frombuffer(mapped, bf16, rows * hidden, offset + start * row_bytes)
        else:
            raw = reused[: rows * hidden] if source == "reused" else np.empty(rows * hidden, np.uint16)
            os.preadv(fd, [raw], offset + start * row_bytes)
            raw = raw.view(bf16)
        t1 = time.perf_counter()
        w = raw.reshape(rows, hidden).astype(np.float32)
        if source == "mmap":
            del raw
            lo = offset + start * row_bytes
            mapped.madvise(mmap.MADV_DONTNEED, lo - lo % mmap.PAGESIZE, rows * row_bytes + lo % mmap.PAGESIZE)
        t2 = time.perf_counter()
        logits = x @ w.T if orientation == "x@w.T" else np.ascontiguousarray((w @ x.T).T)
        t3 = time.perf_counter()
        t["read"] += t1 - t0; t["convert"] += t2 - t1; t["matmul"] += t3 - t2
    t["total"] = t["read"] + t["convert"] + t["matmul"]
    return t

def whole_matmul(orientation):  # BLAS's best case: the whole f32 head in memory, one call
    w = np.frombuffer(mapped, bf16, vocab * hidden, offset).reshape(vocab, hidden).astype(np.float32)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        logits = x @ w.T if orientation == "x@w.T" else (w @ x.T).T
        best = min(best, time.perf_counter() - t0)
    return {"read": 0.0, "convert": 0.0, "matmul": best, "total": best}

variants = {
    f"lmhead today: {default_rows}-row chunks, fresh buffer + pread, astype, x @ w.T": (default_rows, "fresh", "x@w.T"),
    f"{default_rows}-row chunks, fresh buffer + pread, astype, (w @ x.T).T": (default_rows, "fresh", "w@x.T"),
}
for rows in (256, 512, 1024, 2048, 4096):
    variants[f"{rows}-row chunks, reused buffer + pread, astype, (w @ x.T).T"] = (rows, "reused", "w@x.T")
variants["512-row chunks, mmap (no copy), astype, (w @ x.T).T"] = (512, "mmap", "w@x.T")
variants["512-row chunks, mmap (no copy), astype, x @ w.T"] = (512, "mmap", "x@w.T")
results = {name: [] for name in variants}
for _ in range(3):  # rounds interleave the variants, so machine noise hits them alike
    for name, args in variants.items():
        results[name].append(one_pass(*args))
out = {name: min(runs, key=lambda r: r["total"]) for name, runs in results.items()}
out["whole f32 head in memory, one x @ w.T (BLAS best case, no read/convert)"] = whole_matmul("x@w.T")
out["whole f32 head in memory, one (w @ x.T).T (BLAS best case, no read/convert)"] = whole_matmul("w@x.T")
print(json.dumps(out))
"""


def topk_floor(ckpt: Path, vocab: int, hidden: int, positions: int) -> dict[str, dict[str, float]]:
    """In-process numpy floor: read + convert + matmul over the head, by phase (best of 3 passes)."""
    file = ckpt / "model.safetensors"
    offset, _ = C.tensor_location(file, "lm_head.weight")
    chunk_rows = max(64, 16 * C.MB // (4 * hidden))  # lmhead's default (head.py CHUNK_BYTES)
    args = [str(file), str(offset), str(vocab), str(hidden), str(positions), str(chunk_rows)]
    done = subprocess.run([sys.executable, "-c", FLOOR_SNIPPET, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def print_floor(floor: dict[str, dict[str, float]]) -> None:
    print("\n### Compute floor: one pass of read + bf16 -> f32 + matmul, in-process numpy (best of 3 interleaved passes)\n")
    print("| variant | read (s) | convert (s) | matmul (s) | total (s) |\n|---|---:|---:|---:|---:|")
    for name, t in floor.items():
        print(f"| {name} | {t['read']:.3f} | {t['convert']:.3f} | {t['matmul']:.3f} | {t['total']:.3f} |")


def main() -> int:
    args = C.parse_args(__doc__.splitlines()[0], default_runs=7)
    torch_version = C.require_torch(args.python_baseline)
    size = QUICK if args.quick else FULL
    ckpt = build_checkpoint(**size)
    C.warm_cache(C.data_files(ckpt))
    runners = contenders(ckpt, args.python_baseline)
    agreement = Agreement()
    noise = C.measure(runners, args.runs, agreement)
    profile = topk_profile(ckpt)
    imports = C.import_breakdown(sys.executable, "lmhead_cli.cli")
    torch_import = C.startup_seconds(args.python_baseline, "import torch, safetensors.torch", runs=3)
    floor = topk_floor(ckpt, size["vocab"], size["hidden"], size["positions"])

    C.print_header("bench_topk: top-k over a Llama-3-sized head", C.machine_info(args.python_baseline, torch_version))
    v, d, t = size["vocab"], size["hidden"], size["positions"]
    print(f"Head: {v} × {d} bf16 ({v * d * 2 / C.MB:,.0f} MiB; {v * d * 4 / C.MB:,.0f} MiB as f32), untied, T = {t} states.\n")
    print(C.table(runners))
    print(f"\n{noise}")
    print(f"\n{agreement.summary}")
    print(f"For scale: `import torch, safetensors.torch` alone takes {torch_import:.3f} s in the baseline interpreter (best of 3).")
    C.print_phases("Where lmhead topk spends its time (in-process, cProfile, warm cache)", profile)
    C.print_phases("`import lmhead_cli.cli` by package (-X importtime self times, best of 3)", imports)
    print_floor(floor)
    return 0 if C.all_passed(runners) else C.EXIT_TARGET_MISSED


if __name__ == "__main__":
    sys.exit(main())
