"""Fuzzing: mutated safetensors, GGUF, .npy and config files never end in a traceback or a hang.

Valid files from ``hostile.py`` are truncated, bit-flipped, spliced with other
valid files, given lying length prefixes or rewritten headers, and every
command must end with a clean error (exit 2, ``error: <path>: ...``) or a
result. When a mutation leaves the header alone, the result must be the
correct one: ``count`` reads headers only, so it must not change at all.

MLX configs get fuzzed quantization settings: any count that comes back is the true dense one. GGUF
files mutated the same way are also served over hf:// by the fake hub, where the same rules hold.

Deterministic (``derandomize=True``, no example database) and bounded: 1,230
examples in all (about 20 s of CPU), each command under a ``setitimer`` guard.
"""

from __future__ import annotations

import json
import signal
import struct
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmhead_cli.cli import cli

from hostile import (
    MLX_D,
    D,
    V,
    config_json,
    gguf_bytes,
    mlx_checkpoint,
    npy_array,
    st_bytes,
    st_split,
    valid_safetensors,
    write,
)

COMMAND_SECONDS = 10  # one command on a 2 KB file takes milliseconds: ten seconds is a hang


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class Hang(BaseException):
    """Raised from SIGALRM; a BaseException, so neither lmhead nor CliRunner can swallow it."""


def invoke_guarded(*args: object):
    def on_alarm(signum, frame):
        raise Hang(f"lmhead {' '.join(map(str, args))} ran for more than {COMMAND_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, COMMAND_SECONDS)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_clean(result, allowed: tuple[int, ...] = (0, 1, 2)) -> dict | None:
    """A result (JSON on stdout) or a clean error; returns the JSON of a result."""
    assert result.exit_code in allowed, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        lines = result.stderr.splitlines()
        assert lines and lines[0].startswith("error: ") and "internal error" not in lines[0], result.stderr
        assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
        return None
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return json.loads(result.stdout)


def commands(ckpt: Path, hidden: Path) -> list[list[object]]:
    return [
        ["count", ckpt, "--json"],
        ["check-tying", "--full", ckpt, "--json"],
        ["doctor", ckpt, "--json"],
        ["topk", ckpt, hidden, "-k", "3", "--json"],
    ]


def without_paths(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("checkpoint", "files")}


# ---------------------------------------------------------------- mutations


@st.composite
def mutated(draw, blob: bytes, header_end: int, others: tuple[bytes, ...]) -> tuple[bytes, bool]:
    """(mutated bytes, whether only tensor data bytes changed, length kept)."""
    kind = draw(st.sampled_from(["truncate", "flip header", "flip anywhere", "flip data", "splice", "insert", "length"]))
    data = bytearray(blob)
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(blob) - 1))]), False
    if kind.startswith("flip"):
        ranges = {"flip header": (0, header_end - 1), "flip anywhere": (0, len(blob) - 1), "flip data": (header_end, len(blob) - 1)}
        low, high = ranges[kind]
        flips = draw(st.lists(st.tuples(st.integers(low, high), st.integers(1, 255)), min_size=1, max_size=6))
        for pos, mask in flips:
            data[pos] ^= mask
        return bytes(data), all(pos >= header_end for pos, _ in flips)
    if kind == "splice":  # the start of this file, the rest of another valid one
        other = draw(st.sampled_from(others))
        i, j = draw(st.integers(0, len(blob))), draw(st.integers(0, len(other)))
        return bytes(data[:i]) + other[j:], False
    if kind == "insert":
        pos = draw(st.integers(0, header_end))
        return bytes(data[:pos]) + draw(st.binary(min_size=1, max_size=16)) + bytes(data[pos:]), False
    # "length": a lying length prefix (safetensors' u64 header length; GGUF's version and counts; .npy's u16)
    offset, fmt = draw(st.sampled_from(LENGTH_FIELDS[bytes(blob[:4])]))
    size = struct.calcsize(fmt)
    value = draw(st.one_of(st.integers(0, 2 ** (8 * size) - 1), st.sampled_from([0, 1, 2 ** (8 * size) - 1, len(blob), len(blob) + 1])))
    data[offset : offset + size] = struct.pack(fmt, value)
    return bytes(data), False


SAFETENSORS = valid_safetensors()
SAFETENSORS_OTHERS = (valid_safetensors(tied=True, seed=1), valid_safetensors(vocab=16, hidden=4, dtype=np.float16, seed=2))
SAFETENSORS_HEADER_END = 8 + struct.unpack("<Q", SAFETENSORS[:8])[0]

NPY = npy_array(np.random.default_rng(0).normal(size=(4, D)).astype(np.float32))
NPY_OTHERS = (npy_array(np.ones((2, 3, D), np.float16)), npy_array(np.arange(D, dtype=np.float64)))
NPY_HEADER_END = 10 + struct.unpack("<H", NPY[8:10])[0]

GGUF = gguf_bytes()
GGUF_OTHERS = (gguf_bytes(vocab=16, hidden=4, seed=1), gguf_bytes(version=2, alignment=64))
GGUF_HEADER_END = len(GGUF) - 4 * (V * D + D + V * D)  # F32 embedding, norm, head; 32-byte multiples, so no padding between

LENGTH_FIELDS = {
    SAFETENSORS[:4]: [(0, "<Q")],
    NPY[:4]: [(8, "<H")],
    b"GGUF": [(4, "<I"), (8, "<Q"), (16, "<Q")],
}


def _hidden(tmp_path: Path) -> Path:
    path = tmp_path / "hidden.npy"
    if not path.exists():
        write(path, npy_array(np.ones((2, D), np.float32)))
    return path


def _baseline_count(tmp_path: Path, blob: bytes) -> dict:
    folder = tmp_path / "baseline"
    write(folder / "model.safetensors", blob)
    write(folder / "config.json", config_json())
    return without_paths(assert_clean(invoke_guarded("count", folder, "--json"), allowed=(0,)))


@fuzz_settings(300)
@given(case=mutated(SAFETENSORS, SAFETENSORS_HEADER_END, SAFETENSORS_OTHERS))
def test_mutated_safetensors(tmp_path, case):
    blob, data_only = case
    folder = tmp_path / "m"
    write(folder / "model.safetensors", blob)
    write(folder / "config.json", config_json())
    hidden = _hidden(tmp_path)
    count = assert_clean(invoke_guarded("count", folder, "--json"))
    assert_clean(invoke_guarded("check-tying", "--full", folder, "--json"))
    assert_clean(invoke_guarded("doctor", folder, "--json"))
    assert_clean(invoke_guarded("topk", folder, hidden, "-k", "3", "--json"))
    if data_only:  # only tensor values changed: the header-only count is exactly the original's
        assert count is not None and without_paths(count) == _baseline_count(tmp_path, SAFETENSORS)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 2**63, 2**64, 10**15])
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["F32", "F16", "BF16", "I32", "F4", "BOOL", "F8_E4M3", "F64"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


@fuzz_settings(200)
@given(data=st.data())
def test_rewritten_safetensors_header(tmp_path, data):
    """Schema-level mutations: a field of an entry (or the entry itself) replaced, the length prefix kept honest."""
    header, payload = st_split(SAFETENSORS)
    name = data.draw(st.sampled_from([*header, "__metadata__", "lm_head.weight.extra"]))
    entry = dict(header.get(name) or {})
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "whole entry", "extra key"]))
    value = data.draw(json_values)
    if field == "whole entry":
        header[name] = value
    else:
        entry["surplus" if field == "extra key" else field] = value
        header[name] = entry
    folder = tmp_path / "m"
    write(folder / "model.safetensors", st_bytes(json.dumps(header), payload))
    write(folder / "config.json", config_json())
    for args in commands(folder, _hidden(tmp_path)):
        assert_clean(invoke_guarded(*args))


CONFIG_KEYS = [
    "model_type",
    "architectures",
    "vocab_size",
    "hidden_size",
    "tie_word_embeddings",
    "rms_norm_eps",
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "scale_decoder_outputs",
]


@fuzz_settings(120)
@given(
    changes=st.dictionaries(
        st.sampled_from(CONFIG_KEYS),
        json_values | st.sampled_from(["llama", "gemma2", "cohere", "granite", "t5", "gpt2", "opt", "mamba"]),
        max_size=5,
    )
)
def test_fuzzed_config_values(tmp_path, changes):
    folder = tmp_path / "m"
    write(folder / "model.safetensors", SAFETENSORS)
    write(folder / "config.json", config_json(**changes))
    for args in commands(folder, _hidden(tmp_path)):
        assert_clean(invoke_guarded(*args))


@fuzz_settings(200)
@given(case=mutated(NPY, NPY_HEADER_END, NPY_OTHERS))
def test_mutated_npy_hidden_states(tmp_path, case):
    blob, data_only = case
    folder = tmp_path / "m"
    if not folder.exists():
        write(folder / "model.safetensors", SAFETENSORS)
        write(folder / "config.json", config_json())
    hidden = write(tmp_path / "hidden.npy", blob)
    result = invoke_guarded("topk", folder, hidden, "-k", "3", "--json")
    out = assert_clean(result, allowed=(0, 2))
    if data_only:  # same shape, other values: predictions for all 4 positions, unless a value became NaN/Inf
        if out is None:
            assert "NaN or Inf" in result.stderr, result.stderr
        else:
            assert len(out["positions"]) == 4 and out["k"] == 3


@fuzz_settings(250)
@given(case=mutated(GGUF, GGUF_HEADER_END, GGUF_OTHERS))
def test_mutated_gguf(tmp_path, case):
    blob, data_only = case
    file = write(tmp_path / "model.gguf", blob)
    hidden = _hidden(tmp_path)
    count = assert_clean(invoke_guarded("count", file, "--json"))
    assert_clean(invoke_guarded("check-tying", "--full", file, "--json"))
    assert_clean(invoke_guarded("doctor", "--full", file, "--json"))
    assert_clean(invoke_guarded("topk", file, hidden, "-k", "3", "--json"))
    if data_only:
        baseline = write(tmp_path / "baseline" / "model.gguf", GGUF)
        expected = assert_clean(invoke_guarded("count", baseline, "--json"), allowed=(0,))
        assert count is not None and without_paths(count) == without_paths(expected)


SETTING_VALUES = st.sampled_from([None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128, -1, 2**40, "4", 4.0, True, [4], {}])
ENTRY_VALUES = st.one_of(
    st.sampled_from([False, True, None, "x", 3, [], {}]),
    st.fixed_dictionaries({"bits": SETTING_VALUES, "group_size": SETTING_VALUES}),
    st.fixed_dictionaries({"bits": SETTING_VALUES, "group_size": SETTING_VALUES, "mode": st.sampled_from(["affine", "mxfp4", "x", None])}),
)


@fuzz_settings(100)
@given(
    top=st.fixed_dictionaries(
        {"bits": SETTING_VALUES, "group_size": SETTING_VALUES, "mode": st.sampled_from(["affine", "nvfp4", 7, None])}
    ),
    entry=st.one_of(st.none(), ENTRY_VALUES),
    key=st.sampled_from(["quantization", "quantization_config"]),
)
def test_fuzzed_mlx_quantization_settings(tmp_path, top, entry, key):
    """5-bit values in groups of 32, 64 wide: no other MLX setting fits these shapes, so whatever the
    config says, a count that comes back is the dense one, and topk either reads the head or refuses."""

    def change(config: dict) -> None:
        del config["quantization"], config["quantization_config"]
        config[key] = {**top, **({} if entry is None else {"lm_head": entry})}

    folder = mlx_checkpoint(tmp_path / "m", bits=5, group=32, config=change)
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((2, MLX_D), np.float32)))
    count = assert_clean(invoke_guarded("count", folder, "--json"))
    if count is not None and count.get("quantization") and count["quantization"]["method"] == "mlx":
        assert count["total_params"] == 2 * V * MLX_D + MLX_D
    assert_clean(invoke_guarded("topk", folder, hidden, "-k", "3", "--json"))


@fuzz_settings(60)
@given(case=mutated(GGUF, GGUF_HEADER_END, GGUF_OTHERS))
def test_mutated_gguf_over_hf(tmp_path, case, fake_hub, hf_home, monkeypatch):
    """The same mutations, read from the fake hub by ranged requests: a clean error or the right answer."""
    from lmhead_cli.formats import remote

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    monkeypatch.setattr(remote, "BACKOFF_S", 0.0)
    blob, data_only = case
    name = f"fuzz/g{len(fake_hub.repos)}"
    folder = tmp_path / name.replace("/", "--")
    write(folder / "model.gguf", blob)
    fake_hub.add_repo(name, folder)
    url = f"hf://{name}"
    count = assert_clean(invoke_guarded("count", url, "--json"))
    assert_clean(invoke_guarded("check-tying", url, "--fetch-values", "--json"))
    assert_clean(invoke_guarded("topk", url, _hidden(tmp_path), "-k", "3", "--json"))
    if data_only:
        baseline = write(tmp_path / "baseline" / "model.gguf", GGUF)
        expected = assert_clean(invoke_guarded("count", baseline, "--json"), allowed=(0,))
        assert count is not None and without_paths(count) == without_paths(expected)
