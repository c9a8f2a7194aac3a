"""Claim: "The value comparison streams both tensors in chunks: memory stays bounded
(under 300 MB peak RSS for two 128256 × 2048 bf16 matrices) and it runs at disk /
memory bandwidth."

Data: a Llama-style checkpoint (tie_word_embeddings false) whose
``model.embed_tokens.weight`` and ``lm_head.weight`` are two identical
128256 × 2048 bf16 matrices (the worst case: every byte must be compared) and
a small ``model.norm.weight``.

Baseline (same run): ``baseline_tying_torch.py``, safetensors + torch.equal.
Contender: ``lmhead check-tying DIR --json`` (exits 0, values identical).
Targets: wall <= 0.3 × baseline; lmhead peak RSS < 300 MiB (stricter than 300 MB).

After the table: an in-process profile of check-tying (cProfile, by phase)
and the memory-bandwidth floor for comparing the same bytes.

    python benchmarks/bench_tying.py [--quick] [--python-baseline PATH]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _common as C

FULL = dict(vocab=128256, hidden=2048)
QUICK = dict(vocab=32000, hidden=1024)
WALL_TARGET = 0.3
RSS_LIMIT_MB = 300


def build_checkpoint(vocab: int, hidden: int) -> Path:
    def build(tmp: Path) -> None:
        C.write_json(tmp / "config.json", C.llama_config(vocab, hidden, layers=16, intermediate=4 * hidden))
        same = C.bf16_normal(seed=7, cols=hidden)  # one generator for both: byte-identical matrices
        C.write_safetensors(
            tmp / "model.safetensors",
            [
                C.TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden), same),
                C.TensorSpec("lm_head.weight", "BF16", (vocab, hidden), same),
                C.TensorSpec("model.norm.weight", "BF16", (hidden,), C.bf16_constant(1.0)),
            ],
        )

    return C.dataset(f"tying-V{vocab}-d{hidden}", build)


def contenders(ckpt: Path, baseline_python: str) -> list[C.Contender]:
    baseline = "torch: safetensors + torch.equal (baseline)"
    return [
        C.Contender(baseline, [baseline_python, str(C.BENCH_DIR / "baseline_tying_torch.py"), str(ckpt)]),
        C.Contender(
            "lmhead check-tying --json",
            [*C.lmhead_command(), "check-tying", str(ckpt), "--json"],
            baseline=baseline,
            wall_target=WALL_TARGET,
            rss_limit_mb=RSS_LIMIT_MB,
        ),
    ]


def validator(vocab: int):
    """Both must find the matrices equal; lmhead must have compared every row."""

    def validate(c: C.Contender, result: C.RunResult) -> None:
        if c.baseline is None:
            if "equal: True" not in result.stdout:
                C.die(f"baseline did not find the matrices equal: {result.stdout!r}")
            return
        report = json.loads(result.stdout)
        comparison = report.get("comparison") or {}
        if report.get("values_identical") is not True or comparison.get("rows_compared") != vocab:
            C.die(f"lmhead check-tying: values_identical={report.get('values_identical')}, comparison={comparison}")

    return validate


def tying_profile(ckpt: Path) -> list[tuple[str, float]]:
    """Where check-tying's time goes, by phase (cProfile, in-process, warm cache)."""
    prof = C.profile_lmhead(["check-tying", str(ckpt), "--json"])
    rows = prof["rows"]
    read = C.pick(rows, "<built-in method posix.preadv>") + C.pick(rows, "<built-in method posix.pread>")
    equal = C.pick(rows, "array_equal", key="cumtime")
    alloc = C.pick(rows, "<built-in method numpy.empty>")
    compare_total = C.pick(rows, "compare_values", key="cumtime")
    open_total = C.pick(rows, "_open", "cli.py", key="cumtime")
    return [
        ("interpreter start (`python -c pass`)", C.startup_seconds(sys.executable, "pass")),
        ("import lmhead_cli.cli", prof["import"]),
        ("(compiling lmhead_cli sources, only when no .pyc is cached; inside import and run)", prof["compile"]),
        ("open checkpoint + locate head", open_total),
        ("compare_values total", compare_total),
        ("  read: os.preadv (copy page cache -> buffer)", read),
        ("  allocate: np.empty per chunk", alloc),
        ("  compare: np.array_equal (uint64 views)", equal),
        ("  other inside compare_values", compare_total - read - equal - alloc),
        ("command total in-process (cProfile on)", prof["run"]),
    ]


FLOOR_SNIPPET = r"""
import json, mmap, os, sys, time
import numpy as np
path, offset_a, offset_b, nbytes, chunk = sys.argv[1], *map(int, sys.argv[2:])
fd = os.open(path, os.O_RDONLY)

def fresh_buffers_array_equal():  # what lmhead does: new buffers each chunk, preadv, np.array_equal on uint64
    for pos in range(0, nbytes, chunk):
        n = min(chunk, nbytes - pos)
        a = np.empty(n, np.uint8); os.preadv(fd, [a], offset_a + pos)
        b = np.empty(n, np.uint8); os.preadv(fd, [b], offset_b + pos)
        if not np.array_equal(a.view(np.uint64), b.view(np.uint64)):
            return False
    return True

bufs = (bytearray(chunk), bytearray(chunk))
def reused_buffers_memcmp():  # two buffers for the whole run, preadv into them, bytearray == (memcmp)
    a, b = bufs
    for pos in range(0, nbytes, chunk):
        n = min(chunk, nbytes - pos)
        os.preadv(fd, [memoryview(a)[:n]], offset_a + pos); os.preadv(fd, [memoryview(b)[:n]], offset_b + pos)
        if (a != b) if n == chunk else (a[:n] != b[:n]):
            return False
    return True

def reused_buffers_array_equal():
    a, b = (np.frombuffer(x, np.uint64) for x in bufs)
    for pos in range(0, nbytes, chunk):
        n = min(chunk, nbytes - pos)
        os.preadv(fd, [a[: n // 8]], offset_a + pos); os.preadv(fd, [b[: n // 8]], offset_b + pos)
        if not np.array_equal(a[: n // 8], b[: n // 8]):
            return False
    return True

def read_only():  # the copy alone: page cache -> user buffer, both tensors
    a, _ = bufs
    for pos in range(0, nbytes, chunk):
        n = min(chunk, nbytes - pos)
        os.preadv(fd, [memoryview(a)[:n]], offset_a + pos); os.preadv(fd, [memoryview(a)[:n]], offset_b + pos)
    return True

def mmap_memcmp():  # no copy: compare the page-cache pages in place, release each window after use
    m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    try:
        ok = True
        for pos in range(0, nbytes, chunk):
            n = min(chunk, nbytes - pos)
            if m[offset_a + pos: offset_a + pos + n] != m[offset_b + pos: offset_b + pos + n]:
                ok = False; break
        return ok
    finally:
        m.close()

def mmap_array_equal():  # zero copy: numpy views on the mapping; each window released (MADV_DONTNEED) to keep RSS bounded
    m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    try:
        page = mmap.PAGESIZE
        ok = True
        for pos in range(0, nbytes, chunk):
            n = min(chunk, nbytes - pos)
            a = np.frombuffer(m, np.uint8, n, offset_a + pos)
            b = np.frombuffer(m, np.uint8, n, offset_b + pos)
            if n % 8 == 0:
                a, b = a.view(np.uint64), b.view(np.uint64)
            ok = np.array_equal(a, b)
            del a, b
            for off in (offset_a + pos, offset_b + pos):
                lo = off - off % page
                m.madvise(mmap.MADV_DONTNEED, lo, off + n - lo)
            if not ok:
                break
        return ok
    finally:
        m.close()

variants = {name: fn for name, fn in [
    ("read only (preadv both, reused buffer)", read_only),
    ("lmhead's loop: fresh np.empty + preadv + np.array_equal", fresh_buffers_array_equal),
    ("reused buffers + preadv + np.array_equal", reused_buffers_array_equal),
    ("reused buffers + preadv + memcmp (bytearray ==)", reused_buffers_memcmp),
    ("mmap slices + memcmp (2 copies + cmp)", mmap_memcmp),
    ("mmap + np.array_equal, zero copy, windows released", mmap_array_equal),
]}
times = {name: [] for name in variants}
for _ in range(3):  # rounds interleave the variants, so machine noise hits them alike
    for name, fn in variants.items():
        t0 = time.perf_counter(); ok = fn(); times[name].append(time.perf_counter() - t0)
        assert ok, name
print(json.dumps({name: min(t) for name, t in times.items()}))
"""


def tying_floor(ckpt: Path, chunk: int) -> dict[str, float]:
    """In-process wall time of variants of the same byte comparison (warm page cache, best of 3)."""
    file = ckpt / "model.safetensors"
    offset_a, nbytes = C.tensor_location(file, "model.embed_tokens.weight")
    offset_b, _ = C.tensor_location(file, "lm_head.weight")
    cmd = [sys.executable, "-c", FLOOR_SNIPPET, str(file), str(offset_a), str(offset_b), str(nbytes), str(chunk)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def print_profile(rows: list[tuple[str, float]], floor: dict[str, float], nbytes: int) -> None:
    print("\n### Where lmhead check-tying spends its time (in-process, cProfile, warm cache)\n")
    print("| phase | seconds |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"\n### Floor: comparing the same 2 × {nbytes / C.MB:,.0f} MiB in-process (best of 3 interleaved passes, 16 MiB chunks)\n")
    print("| variant | seconds | GB/s of tensor data |\n|---|---:|---:|")
    for name, seconds in floor.items():
        print(f"| {name} | {seconds:.3f} | {2 * nbytes / seconds / 1e9:.1f} |")


def main() -> int:
    args = C.parse_args(__doc__.splitlines()[0], default_runs=7)
    torch_version = C.require_torch(args.python_baseline)
    size = QUICK if args.quick else FULL
    ckpt = build_checkpoint(**size)
    C.warm_cache(C.data_files(ckpt))
    runners = contenders(ckpt, args.python_baseline)
    noise = C.measure(runners, args.runs, validator(size["vocab"]))
    profile = tying_profile(ckpt)
    floor = tying_floor(ckpt, chunk=16 * C.MB)

    C.print_header("bench_tying: check-tying on two identical bf16 matrices", C.machine_info(args.python_baseline, torch_version))
    nbytes = size["vocab"] * size["hidden"] * 2
    print(f"Checkpoint: 2 × {size['vocab']} × {size['hidden']} bf16 ({nbytes / C.MB:,.0f} MiB each), byte-identical.\n")
    print(C.table(runners))
    print(f"\n{noise}")
    print_profile(profile, floor, nbytes)
    return 0 if C.all_passed(runners) else C.EXIT_TARGET_MISSED


if __name__ == "__main__":
    sys.exit(main())
