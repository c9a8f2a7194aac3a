"""Shared helpers for the lmhead benchmarks: arguments, data, page cache, timing, tables.

Every benchmark follows the same steps:

1. parse arguments and check that the baseline interpreter has torch;
2. build its data under ``benchmarks/.data/`` once (reused when complete);
3. warm the page cache, so the disk is not what is measured;
4. run each contender as a separate process, rounds interleaved
   (baseline, contender, baseline, ...) so drift on a shared machine hits
   all of them alike, each run measured by ``_measure.py``;
5. print a markdown table: absolute numbers, ratios against the baseline
   measured in the same run, PASS/FAIL against the target.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
MEASURE = BENCH_DIR / "_measure.py"
DEFAULT_BASELINE_PYTHON = "/opt/ref/bin/python"
MB = 2**20  # sizes are printed in MiB


# --------------------------------------------------------------------------- arguments


def parse_args(description: str, default_runs: int = 5, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--python-baseline",
        default=os.environ.get("BENCH_BASELINE_PYTHON", DEFAULT_BASELINE_PYTHON),
        metavar="PATH",
        help="interpreter with torch + safetensors for the baseline (default: $BENCH_BASELINE_PYTHON or %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer runs: a smoke test, not a measurement")
    parser.add_argument("--runs", type=int, default=None, help=f"timed runs per contender (default {default_runs}; 2 with --quick)")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 2 if args.quick else default_runs
    return args


EXIT_TARGET_MISSED = 1  # a benchmark ran, and at least one target was not met
EXIT_SETUP = 2  # it could not run: no torch in the baseline interpreter, a contender failed or answered wrongly


def die(message: str) -> NoReturn:
    """Stop with ``error: message`` on stderr and exit status 2 (distinct from a missed target)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_SETUP)


def require_torch(python: str) -> str:
    """The torch version in the baseline interpreter; exit 2 with a clear message when it has none."""
    probe = "import torch, safetensors, numpy; print(torch.__version__)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        die(
            f"cannot run the baseline interpreter {python!r}: {exc}\n"
            "pass --python-baseline PATH (or set BENCH_BASELINE_PYTHON) to a Python with torch and safetensors"
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        die(
            f"torch is not available in the baseline interpreter {python!r} ({last})\n"
            "pass --python-baseline PATH (or set BENCH_BASELINE_PYTHON) to a Python with torch and safetensors"
        )
    return done.stdout.strip()


def lmhead_command() -> list[str]:
    """The ``lmhead`` console script of the interpreter running this benchmark."""
    beside = Path(sys.executable).parent / "lmhead"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("lmhead")
    return [found] if found else [sys.executable, "-m", "lmhead_cli"]


# --------------------------------------------------------------------------- machine


def openblas_corename() -> str:
    """The kernel set OpenBLAS picked at run time (what OPENBLAS_CORETYPE would override)."""
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    for lib in sorted(libs.glob("*openblas*")) if libs.is_dir() else []:
        handle = ctypes.CDLL(str(lib))
        for symbol in (
            "scipy_openblas_get_corename64_",
            "scipy_openblas_get_corename",
            "openblas_get_corename64_",
            "openblas_get_corename",
        ):
            fn = getattr(handle, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def blas_summary() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older numpy: no dict mode
        return "unknown"


def machine_info(baseline_python: str, torch_version: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env = {
        name: os.environ.get(name, "unset") for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPUs (nproc), {cpu}, {_mem_total_gb():.0f} GB RAM, {platform.system()} {platform.release()}",
        "lmhead python": f"{sys.executable} (Python {platform.python_version()}, numpy {np.__version__})",
        "numpy BLAS": f"{blas_summary()}, core {openblas_corename()}",
        "BLAS env": ", ".join(f"{k}={v}" for k, v in env.items()),
        "baseline python": f"{baseline_python} (torch {torch_version})",
        "bytecode": f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')}; "
        f"lmhead_cli .pyc cached: {'yes' if _lmhead_pyc_cached() else 'no (its modules are compiled on every run)'}",
    }


def _lmhead_pyc_cached() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("lmhead_cli.cli")
    return bool(spec and spec.origin and os.path.exists(importlib.util.cache_from_source(spec.origin)))


def _mem_total_gb() -> float:
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        return kb / 2**20
    except (OSError, StopIteration):
        return float("nan")


def print_header(title: str, info: dict[str, str]) -> None:
    print(f"## {title}\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to write: ``fill(start, stop)`` returns rows ``start:stop`` in the stored dtype."""

    name: str
    dtype: str  # safetensors dtype name
    shape: tuple[int, ...]
    fill: Callable[[int, int], np.ndarray]

    @property
    def itemsize(self) -> int:
        return {"BF16": 2, "F16": 2, "F32": 4}[self.dtype]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


def write_safetensors(path: Path, tensors: Sequence[TensorSpec], chunk_bytes: int = 64 * MB) -> None:
    """Stream tensors into a safetensors file, chunk by chunk (memory bounded by the chunk)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for t in tensors:
            rows = t.shape[0] if t.shape else 1
            row_bytes = t.nbytes // max(rows, 1)
            step = max(1, chunk_bytes // max(row_bytes, 1))
            for start in range(0, rows, step):
                stop = min(rows, start + step)
                data = np.ascontiguousarray(t.fill(start, stop))
                assert data.nbytes == (stop - start) * row_bytes, (t.name, data.nbytes)
                f.write(data.tobytes())


def bf16_normal(seed: int, cols: int, scale: float = 0.02) -> Callable[[int, int], np.ndarray]:
    """Rows of N(0, scale²) rounded to bfloat16, reproducible per row range."""
    import ml_dtypes

    def fill(start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng([seed, start])
        return (rng.standard_normal((stop - start, cols), dtype=np.float32) * np.float32(scale)).astype(ml_dtypes.bfloat16)

    return fill


def bf16_constant(value: float, cols: int | None = None) -> Callable[[int, int], np.ndarray]:
    import ml_dtypes

    def fill(start: int, stop: int) -> np.ndarray:
        shape = (stop - start,) if cols is None else (stop - start, cols)
        return np.full(shape, value, dtype=ml_dtypes.bfloat16)

    return fill


def llama_config(vocab: int, hidden: int, layers: int, intermediate: int, tie: bool = False) -> dict[str, object]:
    heads = max(1, hidden // 64)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": hidden // heads,
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": tie,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "hidden_act": "silu",
        "rope_theta": 500000.0,
        "torch_dtype": "bfloat16",
    }


def dataset(name: str, build: Callable[[Path], None]) -> Path:
    """``benchmarks/.data/NAME``, built by ``build(tmp_dir)`` unless a complete copy is there."""
    final = DATA_DIR / name
    if (final / ".complete").is_file():
        return final
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / ".gitignore").write_text("*\n")
    if final.exists():
        shutil.rmtree(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=DATA_DIR))
    try:
        print(f"building {final.relative_to(REPO)} ...", file=sys.stderr, flush=True)
        build(tmp)
        (tmp / ".complete").write_text("")
        tmp.chmod(0o755)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def tensor_location(path: Path, name: str) -> tuple[int, int]:
    """(absolute byte offset, byte length) of tensor ``name`` in a safetensors file, from its header only."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        begin, end = json.loads(f.read(length))[name]["data_offsets"]
    return 8 + length + begin, end - begin


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


# --------------------------------------------------------------------------- page cache


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def warm_cache(paths: Sequence[Path], chunk: int = 64 * MB) -> None:
    """Read every byte once so runs are served from the page cache, not the disk."""
    buf = bytearray(chunk)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def drop_cache(paths: Sequence[Path]) -> None:
    """Evict the files' pages from the page cache (fsync first: dirty pages are not dropped)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(path: Path) -> int:
    """Bytes of ``path`` currently in the page cache (mincore on a PROT_READ mapping; no page is touched)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = os.sysconf("SC_PAGE_SIZE")
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vec = np.zeros((size + page - 1) // page, dtype=np.uint8)
            if libc.mincore(addr, size, vec.ctypes.data) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return int((vec & 1).sum()) * page
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def read_ahead_kb(path: Path) -> int | None:
    """The kernel readahead window of the block device holding ``path`` (read_ahead_kb)."""
    dev = os.stat(path).st_dev
    base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    for candidate in (base / "queue" / "read_ahead_kb", base.parent / "queue" / "read_ahead_kb", base / ".." / "queue" / "read_ahead_kb"):
        try:
            return int(candidate.read_text())
        except (OSError, ValueError):
            continue
    return None


# --------------------------------------------------------------------------- measuring


@dataclass
class Contender:
    label: str
    cmd: list[str]
    baseline: str | None = None  # label of the contender this one is compared with (None: it is a baseline)
    wall_target: float | None = None  # pass when median wall ratio <= this
    rss_target: float | None = None  # pass when peak RSS ratio <= this
    rss_limit_mb: float | None = None  # pass when peak RSS < this many MiB
    before_each: Callable[[], None] | None = None  # untimed, e.g. drop the page cache
    ok_codes: tuple[int, ...] = (0,)
    walls: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_mb(self) -> float:
        return max(self.rss_mb)


@dataclass
class RunResult:
    wall: float
    maxrss_mb: float
    cpu: float  # user + system seconds of the measured process
    returncode: int
    stdout: str
    stderr: str


def run_once(cmd: Sequence[str]) -> RunResult:
    """One fresh process, measured by the ``_measure.py`` wrapper (wall around the process, its own peak RSS)."""
    with tempfile.TemporaryDirectory(prefix="lmhead-bench-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        wrapper = [sys.executable, "-I", "-S", str(MEASURE), str(out), str(err), "--", *cmd]
        done = subprocess.run(wrapper, capture_output=True, text=True, check=True)
        report = json.loads(done.stdout)
        return RunResult(
            report["wall"],
            report["maxrss_kb"] / 1024,
            report["cpu"],
            report["returncode"],
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )


def checked_run(contender: Contender) -> RunResult:
    if contender.before_each:
        contender.before_each()
    result = run_once(contender.cmd)
    if result.returncode not in contender.ok_codes:
        die(f"{contender.label} exited {result.returncode}\n$ {' '.join(contender.cmd)}\n{result.stderr[-2000:]}")
    return result


def measure(contenders: Sequence[Contender], runs: int, validate: Callable[[Contender, RunResult], None] | None = None) -> str:
    """One untimed warm-up run each (validated), then ``runs`` interleaved rounds; returns a note on machine noise."""
    for c in contenders:
        print(f"warm-up + check: {c.label}", file=sys.stderr, flush=True)
        result = checked_run(c)
        if validate:
            validate(c, result)
    load = OtherLoad()
    for r in range(runs):
        print(f"round {r + 1}/{runs}", file=sys.stderr, flush=True)
        for c in contenders:
            result = checked_run(c)
            c.walls.append(result.wall)
            c.rss_mb.append(result.maxrss_mb)
    return load.note()


class OtherLoad:
    """CPU time used by *other* processes while we measured: the noise on a shared machine.

    /proc/stat's busy time over the interval, minus this process's and its
    children's CPU time (wrappers and measured commands), over the wall time.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float]:
        hz = os.sysconf("SC_CLK_TCK")
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        own = sum(
            getattr(resource.getrusage(who), f)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for f in ("ru_utime", "ru_stime")
        )
        return time.perf_counter(), (user + nice + system + irq + softirq) / hz, steal / hz, own

    def note(self) -> str:
        end = self._sample()
        wall, busy, steal, own = (b - a for a, b in zip(self.start, end, strict=True))
        other = max(0.0, busy - own)
        return (
            f"Machine noise during the timed rounds: other processes used {other:.1f} CPU-s in {wall:.1f} s "
            f"(on average {other / wall:.2f} of {os.cpu_count()} CPUs busy with other work), hypervisor steal {steal:.1f} s."
        )


# --------------------------------------------------------------------------- reporting


def _verdicts(c: Contender, base: Contender | None) -> tuple[str, str, str, list[bool]]:
    wall_ratio = rss_ratio = ""
    targets, passes = [], []
    if base is not None:
        wr, rr = c.wall / base.wall, c.peak_mb / base.peak_mb
        wall_ratio, rss_ratio = f"{wr:.3f}× ({min(c.walls) / min(base.walls):.3f}×)", f"{rr:.3f}×"
        if c.wall_target is not None:
            targets.append(f"wall ≤ {c.wall_target:g}×")
            passes.append(wr <= c.wall_target)
        if c.rss_target is not None:
            targets.append(f"RSS ≤ {c.rss_target:g}×")
            passes.append(rr <= c.rss_target)
    if c.rss_limit_mb is not None:
        targets.append(f"RSS < {c.rss_limit_mb:g} MiB")
        passes.append(c.peak_mb < c.rss_limit_mb)
    return wall_ratio, rss_ratio, ", ".join(targets) or "—", passes


def table(contenders: Sequence[Contender]) -> str:
    """Markdown: median/min wall, peak RSS, ratios vs the named baseline, PASS/FAIL."""
    by_label = {c.label: c for c in contenders}
    lines = [
        "| contender | wall median (s) | wall min (s) | peak RSS (MiB) | wall vs baseline: median (min) "
        "| RSS vs baseline | target | result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in contenders:
        base = by_label.get(c.baseline) if c.baseline else None
        wall_ratio, rss_ratio, target, passes = _verdicts(c, base)
        if passes:
            result = "**PASS**" if all(passes) else "**FAIL**"
        else:
            result = "baseline" if c.baseline is None else "info"
        lines.append(
            f"| {c.label} | {c.wall:.3f} | {min(c.walls):.3f} | {c.peak_mb:.0f} | {wall_ratio or '—'} "
            f"| {rss_ratio or '—'} | {target} | {result} |"
        )
    runs = len(contenders[0].walls) if contenders else 0
    lines.append("")
    lines.append(
        f"{runs} timed runs per contender, interleaved, after one untimed warm-up run each. Ratios are against the baseline "
        "measured in this same run; PASS/FAIL uses the median wall ratio (the min-to-min ratio is shown in brackets) and the "
        "largest peak RSS of any run."
    )
    return "\n".join(lines)


def all_passed(contenders: Sequence[Contender]) -> bool:
    by_label = {c.label: c for c in contenders}
    return all(all(_verdicts(c, by_label.get(c.baseline) if c.baseline else None)[3]) for c in contenders)


def chunks(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


# --------------------------------------------------------------------------- profiling

PROFILE_SNIPPET = r"""
import cProfile, contextlib, io, json, pstats, sys, time
t0 = time.perf_counter()
from lmhead_cli import cli
t_import = time.perf_counter() - t0
profiler = cProfile.Profile()
sink = io.StringIO()
t0 = time.perf_counter()
with contextlib.redirect_stdout(sink):
    profiler.enable()
    try:
        cli.cli.main(sys.argv[1:], prog_name="lmhead", standalone_mode=False)
    except SystemExit:
        pass
    finally:
        profiler.disable()
t_run = time.perf_counter() - t0
import importlib.util, os
t_compile = 0.0  # what compiling lmhead_cli's loaded modules costs when no .pyc is cached
for name, module in list(sys.modules.items()):
    source = getattr(module, "__file__", None) or ""
    if name.split(".")[0] == "lmhead_cli" and source.endswith(".py"):
        if not os.path.exists(importlib.util.cache_from_source(source)):
            text = open(source, "rb").read()
            t0 = time.perf_counter(); compile(text, source, "exec"); t_compile += time.perf_counter() - t0
rows = [
    {"file": f, "line": l, "func": fn, "ncalls": nc, "tottime": tt, "cumtime": ct}
    for (f, l, fn), (cc, nc, tt, ct, callers) in pstats.Stats(profiler).stats.items()
]
print(json.dumps({"import": t_import, "run": t_run, "compile": t_compile, "rows": rows}))
"""


def profile_lmhead(args: Sequence[str]) -> dict:
    """cProfile one in-process lmhead command (stdout discarded): import time, run time, per-function rows."""
    done = subprocess.run([sys.executable, "-c", PROFILE_SNIPPET, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def pick(rows: list[dict], func: str, file_part: str = "", key: str = "tottime") -> float:
    """Sum ``key`` over profile rows whose function name (and, if given, file path part) match."""
    return sum(r[key] for r in rows if r["func"] == func and file_part in r["file"])


def startup_seconds(python: str, code: str, runs: int = 5) -> float:
    """Best wall time of ``python -c code`` as a fresh process."""
    return min(run_once([python, "-c", code]).wall for _ in range(runs))


def import_breakdown(python: str, module: str, runs: int = 3, top: int = 8) -> list[tuple[str, float]]:
    """Seconds of ``import module`` by top-level package (``-X importtime`` self times, best of ``runs``)."""
    best: dict[str, float] = {}
    for _ in range(runs):
        done = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True)
        totals: dict[str, float] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _cumulative, name = line.removeprefix("import time:").split("|")  # "self | cumulative | indented name"
            package = name.strip().split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(self_us) / 1e6
        for name, seconds in totals.items():
            best[name] = min(best.get(name, seconds), seconds)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    rest = sum(s for _, s in ranked[top:])
    return ranked[:top] + [("(everything else)", rest)]


def print_phases(title: str, rows: Sequence[tuple[str, float]]) -> None:
    print(f"\n### {title}\n")
    print("| phase | seconds |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
