"""What the benchmarks share: their data, the versions they ran with, hyperfine for time, peak RSS.

Timing is hyperfine's (``apt-get install hyperfine``): warm-up runs, then timed
runs of each command as its own process. A benchmark repeats hyperfine for a
few rounds and reports, per round, the ratio of medians against a baseline
timed in the same round, then the median and the spread of those ratios: the
machine is shared, and one ratio alone says little. Peak RSS, which hyperfine
does not measure, comes from ``_measure.py`` (one child, its own
``getrusage``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
MB = 2**20


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: checks that it runs, measures nothing")
    parser.add_argument("--rounds", type=int, default=3, help="hyperfine rounds, each timing every command (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command per round (default 3)")
    parser.add_argument(
        "--python-baseline", default=sys.executable, metavar="PATH", help="interpreter with torch for torch baselines (default: this one)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.runs = 1, 1
    return args


def lmhead_command() -> list[str]:
    """The ``lmhead`` console script beside this interpreter (a venv made with the README's install command)."""
    script = Path(sys.executable).with_name("lmhead")
    if not script.is_file():
        sys.exit(f"error: no lmhead script beside {sys.executable}; run the benchmark with the python of a venv where lmhead is installed")
    return [str(script)]


# ---------------------------------------------------------------------------- versions

VERSION_PROBE = """
import json, platform, sys
from importlib import metadata
out = {"python": platform.python_version()}
for name in ("numpy", "ml_dtypes", "safetensors", "torch", "lmhead", "rich", "click"):
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out[name] = None
try:
    from threadpoolctl import threadpool_info
    import numpy
    out["blas"] = [f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} threads)" for i in threadpool_info()]
except ImportError:
    import numpy
    blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    out["blas"] = [f"{blas['name']} {blas['version']}"]
print(json.dumps(out))
"""


def versions(python: str) -> dict[str, object]:
    """Python, numpy, ml_dtypes (None when absent), safetensors, torch and the BLAS numpy uses, in interpreter ``python``."""
    done = subprocess.run([python, "-c", VERSION_PROBE], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "load_1min": os.getloadavg()[0]}


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to write: ``fill(start, stop)`` returns rows ``start:stop`` as stored (bf16 as uint16 bits)."""

    name: str
    dtype: str  # safetensors dtype name: BF16 or F32
    shape: tuple[int, ...]
    fill: Callable[[int, int], np.ndarray]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * {"BF16": 2, "F32": 4}[self.dtype]


def write_safetensors(path: Path, tensors: Sequence[TensorSpec], chunk_bytes: int = 64 * MB) -> None:
    """Stream tensors into a safetensors file chunk by chunk (memory bounded by the chunk)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for t in tensors:
            rows = t.shape[0]
            step = max(1, chunk_bytes // max(t.nbytes // rows, 1))
            for start in range(0, rows, step):
                f.write(np.ascontiguousarray(t.fill(start, min(rows, start + step))).tobytes())


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest even (finite inputs)."""
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_normal(seed: int, cols: int, scale: float = 0.02) -> Callable[[int, int], np.ndarray]:
    def fill(start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng([seed, start])
        return to_bf16_bits(rng.standard_normal((stop - start, cols), dtype=np.float32) * np.float32(scale))

    return fill


def llama_config(vocab: int, hidden: int, layers: int = 16, tie: bool = False) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": tie,
        "vocab_size": vocab,
    }


def dataset(name: str, build: Callable[[Path], None]) -> Path:
    """``benchmarks/.data/NAME``, built by ``build(tmp_dir)`` once (a ``.complete`` marker says it is whole)."""
    final = DATA_DIR / name
    if (final / ".complete").is_file():
        return final
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / ".gitignore").write_text("*\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=DATA_DIR))
    try:
        print(f"building {final} ...", file=sys.stderr, flush=True)
        build(tmp)
        (tmp / ".complete").write_text("")
        tmp.chmod(0o755)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def warm_cache(directory: Path) -> None:
    """Read every file once, so the page cache, not the disk, serves the timed runs."""
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(64 * MB):
                    pass


# ---------------------------------------------------------------------------- measuring


def hyperfine(commands: dict[str, Sequence[str]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times (s) of each command, timed by hyperfine in one invocation (one round)."""
    if shutil.which("hyperfine") is None:
        sys.exit("error: hyperfine not found (apt-get install hyperfine)")
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "times.json"
        argv = ["hyperfine", "--style", "none", "-N", "--warmup", str(warmup), "--runs", str(runs), "--export-json", str(export)]
        for name, cmd in commands.items():
            argv += ["--command-name", name, " ".join(_quote(a) for a in cmd)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        results = json.loads(export.read_text())["results"]
    return {r["command"]: r["times"] for r in results}


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(str(arg))


def peak_rss_mib(cmd: Sequence[str]) -> float:
    """Peak RSS of one run of ``cmd`` (MiB), through the stdlib-only ``_measure.py`` wrapper."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(BENCH_DIR / "_measure.py"), f"{tmp}/out", f"{tmp}/err", "--", *cmd],
            capture_output=True,
            text=True,
            check=True,
        )
    report = json.loads(done.stdout)
    if report["returncode"] not in (0, 1):
        sys.exit(f"error: {' '.join(cmd)} exited {report['returncode']}")
    return report["maxrss_kb"] / 1024


@dataclass
class Claim:
    """``contender`` against ``baseline``, both timed in every round; passes when the median ratio meets ``target``."""

    name: str
    contender: str
    baseline: str
    target: float


def ratios(rounds: list[dict[str, list[float]]], claim: Claim) -> list[float]:
    return [statistics.median(r[claim.contender]) / statistics.median(r[claim.baseline]) for r in rounds]


def report(
    title: str, claims: Sequence[Claim], rounds: list[dict[str, list[float]]], extra: dict[str, object], python_baseline: str
) -> bool:
    """Print a markdown table and save the numbers with the versions they came from; True when every target holds."""
    info = {
        "lmhead venv": versions(sys.executable),
        "baseline venv": versions(python_baseline) if python_baseline != sys.executable else "same",
        "machine": machine(),
    }
    print(f"\n## {title}\n")
    for key, value in info.items():
        print(f"- {key}: {json.dumps(value)}")
    names = sorted({n for r in rounds for n in r})
    print("\n| command | median wall (s) | min | max | runs |\n| --- | --- | --- | --- | --- |")
    for n in names:
        times = [t for r in rounds for t in r[n]]
        print(f"| {n} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} | {len(times)} |")
    ok = True
    print("\n| claim | ratio (median of rounds) | spread over rounds | target | verdict |\n| --- | --- | --- | --- | --- |")
    results = []
    for c in claims:
        rs = ratios(rounds, c)
        med = statistics.median(rs)
        passed = med <= c.target
        ok &= passed
        print(f"| {c.name} | {med:.3f}× | {min(rs):.3f}–{max(rs):.3f}× | ≤ {c.target}× | {'PASS' if passed else 'FAIL'} |")
        results.append({"claim": c.name, "ratios": rs, "median": med, "target": c.target, "pass": passed})
    for key, value in extra.items():
        print(f"- {key}: {value}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{title.split()[0]}.json"
    out.write_text(json.dumps({"title": title, **info, "claims": results, "extra": extra, "rounds": rounds}, indent=1) + "\n")
    print(f"\nsaved {out.relative_to(REPO)}")
    return ok
