"""Checkpoints and hidden states from strangers: each broken input gets one line on stderr and exit 2.

Every hostile file is built byte by byte in ``hostile.py``. A case names the
file the message must point at and a phrase of the reason; every command that
reads the input must fail the same clean way: ``error: <path>: <reason>``
(a ``hint:`` line may follow), exit status 2, no traceback.
"""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save as save_safetensors

from lmhead_cli.cli import cli

from hostile import (
    MLX_D,
    PNG_1X1,
    QUANT_LAYOUTS,
    SHARDS,
    D,
    V,
    checkpoint_dir,
    config_json,
    gguf_bytes,
    mlx_checkpoint,
    npy_array,
    npy_bytes,
    npy_object_array,
    pickle_payload,
    quantized_checkpoint,
    sharded_checkpoint,
    st_bytes,
    st_entry,
    st_split,
    valid_checkpoint,
    valid_safetensors,
    write,
)


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_input_error(result, path: Path | str, match: str) -> str:
    """Exit 2, ``error: <path>: <reason>`` on one line (a hint may follow), no traceback; returns the line."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert "internal error" not in lines[0], result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert re.search(match, lines[0]), lines[0]
    assert not result.stdout, result.stdout
    return lines[0]


def hidden_file(tmp_path: Path, shape: tuple[int, ...] = (3, D)) -> Path:
    return write(tmp_path / "hidden.npy", npy_array(np.ones(shape, np.float32)))


def every_command(ckpt: Path, hidden: Path) -> list[list[object]]:
    return [
        ["count", ckpt],
        ["count", ckpt, "--json", "--explain"],
        ["check-tying", "--full", ckpt],
        ["doctor", "--full", ckpt],
        ["doctor", ckpt, "--json"],
        ["topk", ckpt, hidden, "-k", "3", "--explain"],
        ["diff", ckpt, ckpt],
    ]


def assert_every_command_fails(tmp_path: Path, ckpt: Path, path: Path | str, match: str) -> str:
    messages = {assert_input_error(invoke(*args), path, match) for args in every_command(ckpt, hidden_file(tmp_path))}
    assert len(messages) == 1, messages  # the same line whichever command met the file
    return messages.pop()


# ---------------------------------------------------------------- safetensors

BLOB = valid_safetensors()
HEADER, DATA = st_split(BLOB)
EMB = "model.embed_tokens.weight"


# The safetensors library's parser words these refusals (and may reword them in any release):
# tests check lmhead's part, a one-line "not a valid safetensors file: <reason>", not the library's reason.
PARSER_REFUSED = r"not a valid safetensors file: \S"

SAFETENSORS_CASES: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", r"file is empty$"),
    "shorter than 8 bytes": (b"\x01\x02\x03", r"file is 3 bytes, shorter than the 8-byte header length"),
    "header length larger than the file": (
        st_bytes(HEADER, DATA, length=5000),
        r"header length 5,000 runs past the end of the [\d,]+-byte file",
    ),
    "absurd header length, capped before reading": (
        st_bytes(HEADER, DATA, length=2**62),
        r"header length 4,611,686,018,427,387,904 exceeds the 100,000,000-byte limit",
    ),
    "header is not JSON": (st_bytes("{not json", b""), r"not a valid safetensors file: header is not valid JSON \(line 1, column 2"),
    "header is a JSON list": (st_bytes([1, 2], b""), r"header is a JSON list, not an object of tensor name -> entry"),
    "header entry without a shape": (st_bytes({EMB: {"dtype": "F32", "data_offsets": [0, 4]}}, b"\0" * 4), r"has no 'shape'"),
    "offsets are strings": (
        st_bytes({EMB: {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, b"\0" * 4),
        r"has data_offsets \['0', '4'\]; expected \[begin, end\]",
    ),
    "negative dimension": (st_bytes({EMB: st_entry("F32", [-1], 0, 0)}), r"has shape \[-1\]; dimensions must be non-negative integers"),
    "offsets outside the file": (
        st_bytes({EMB: st_entry("F32", [2, 2], 0, 16)}, b"\0" * 8),
        r"tensor data runs to byte \d+, but the file has \d+ bytes",
    ),
    "overlapping ranges": (
        st_bytes({"a": st_entry("F32", [2], 0, 8), "b": st_entry("F32", [2], 4, 12)}, b"\0" * 12),
        r"tensor 'b' \(data bytes 4–12\) overlaps the tensor before it",
    ),
    "out-of-order ranges with a gap": (
        st_bytes({"b": st_entry("F32", [2], 16, 24), "a": st_entry("F32", [2], 0, 8)}, b"\0" * 24),
        r"tensor 'b' \(data bytes 16–24\) leaves a gap of 8 bytes before it",
    ),
    "byte length is not shape x dtype": (st_bytes({EMB: st_entry("F32", [3], 0, 8)}, b"\0" * 8), r"12 bytes, but its data_offsets span 8"),
    "unknown dtype": (st_bytes({EMB: st_entry("F128", [2], 0, 8)}, b"\0" * 8), r"has unknown dtype 'F128'"),
    "truncated data": (BLOB[:-10], rf"tensor data runs to byte {len(BLOB):,}, but the file has {len(BLOB) - 10:,} bytes \(truncated\?\)"),
    "bytes after the data": (BLOB + b"\0" * 7, r"7 unexpected bytes after the last tensor's data"),
    "10^15-element tensor": (
        st_bytes({EMB: st_entry("F32", [10**15, 8], 0, 32 * 10**15)}, b"\0" * 64),
        r"tensor data runs to byte 32,000,000,000,000,\d{3}, but the file has \d+ bytes",
    ),
    "shape overflows 64 bits": (st_bytes({EMB: st_entry("F32", [2**40, 2**40], 0, 0)}), r"is 4,835,703,278,458,516,698,824,704 bytes"),
    "head matrix of 10^15 empty rows": (
        st_bytes({EMB: st_entry("F32", [10**15, 0], 0, 0), "lm_head.weight": st_entry("F32", [10**15, 0], 0, 0)}),
        r"has shape \[1000000000000000, 0\]; a head matrix cannot be empty",
    ),
}


@pytest.mark.parametrize("case", list(SAFETENSORS_CASES))
def test_broken_safetensors_in_a_folder(tmp_path, case):
    blob, match = SAFETENSORS_CASES[case]
    folder = checkpoint_dir(tmp_path / "m", blob)
    path = folder if "head matrix" in case else folder / "model.safetensors"  # the last is read fine: the anatomy refuses it
    assert_every_command_fails(tmp_path, folder, path, match)


@pytest.mark.parametrize("case", ["empty file", "truncated data", "header is not JSON", "unknown dtype"])
def test_broken_safetensors_named_directly(tmp_path, case):
    blob, match = SAFETENSORS_CASES[case]
    file = write(tmp_path / "weights.safetensors", blob)
    assert_every_command_fails(tmp_path, file, file, r"empty file" if case == "empty file" else match)


def test_safetensors_without_the_suffix_is_sniffed_then_refused(tmp_path):
    file = write(tmp_path / "weights", BLOB[:-10])
    assert_every_command_fails(tmp_path, file, file, r"truncated")


def test_header_claiming_1e15_elements_errors_without_allocating(tmp_path):
    """Under a 1 GiB address-space limit, so any attempt to allocate for the claim would fail as out of memory."""
    folder = checkpoint_dir(tmp_path / "m", SAFETENSORS_CASES["10^15-element tensor"][0])
    huge_npy = write(tmp_path / "huge.npy", npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**15, D)}, b"\0" * 64))
    medium_npy = write(tmp_path / "medium.npy", npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**8, D)}, b"\0" * 64))
    good = valid_checkpoint(tmp_path / "good")
    script = textwrap.dedent(
        """
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
        from lmhead_cli.cli import cli
        cli(sys.argv[1:], prog_name="lmhead")
        """
    )
    runs = [
        (["count", folder], folder / "model.safetensors", r"tensor data runs to byte 32,000,000,000,000,"),
        (["check-tying", "--full", folder], folder / "model.safetensors", r"tensor data runs to byte 32,000,000,000,000,"),
        (["topk", good, huge_npy], huge_npy, r"header claims shape \[1000000000000000, 8\] of float32 \(32,000,000,000,000,000 bytes\)"),
        (
            ["topk", good, medium_npy],
            medium_npy,
            r"header claims shape \[100000000, 8\] of float32 \(3,200,000,000 bytes\), but only 64 bytes",
        ),
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for args, path, match in runs:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=60, env=env)
        assert time.monotonic() - start < 30
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "out of memory" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"error: {path}: "), proc.stderr
        assert re.search(match, proc.stderr), proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    folder = checkpoint_dir(tmp_path / "m", BLOB[:-10])
    result = invoke("--debug", "count", folder)
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "CheckpointError"
    assert "truncated" in str(result.exception)


# ---------------------------------------------------------------- sharded


def test_sharded_checkpoint_is_fine(tmp_path):
    folder = sharded_checkpoint(tmp_path / "m")
    for args in every_command(folder, hidden_file(tmp_path)):
        result = invoke(*args)
        assert result.exit_code == 0, result.output


SHARDED_CASES: dict[str, tuple[dict, str | None, str]] = {
    "index names a missing shard": (
        {"lm_head.weight": "model-00003-of-00003.safetensors"},
        None,
        r"names shard 'model-00003-of-00003.safetensors', which is missing",
    ),
    "tensor in the index but not in its shard": (
        {"ghost.weight": SHARDS[0]},
        None,
        rf"lists tensor 'ghost.weight' in {SHARDS[0]}, but that shard does not hold it",
    ),
    "tensor listed in the wrong shard": (
        {"lm_head.weight": SHARDS[0]},
        None,
        rf"lists tensor 'lm_head.weight' in {SHARDS[0]}, but that shard does not hold it",
    ),
    "index is not JSON": ({}, '{"weight_map": {', r"index is not valid JSON \(line 1, column 17"),
    "index is a list": ({}, "[]", r"index has no 'weight_map'"),
    "weight_map values are not file names": ({}, '{"weight_map": {"lm_head.weight": 1}}', r"index has no 'weight_map'"),
    "empty weight_map": ({}, '{"weight_map": {}}', r"'weight_map' is empty"),
    "shard outside the folder": (
        {"lm_head.weight": "../../../etc/passwd"},
        None,
        r"shard '../../../etc/passwd' lies outside the checkpoint folder",
    ),
    "shard name with a NUL byte": (
        {"lm_head.weight": "a\0b.safetensors"},
        None,
        r"shard name 'a\\x00b.safetensors' is not a valid file name",
    ),
}


@pytest.mark.parametrize("case", list(SHARDED_CASES))
@pytest.mark.parametrize("point_at", ["folder", "index"])
def test_broken_index(tmp_path, case, point_at):
    changes, index, match = SHARDED_CASES[case]
    folder = sharded_checkpoint(tmp_path / "m", changes, index=index)
    index_path = folder / "model.safetensors.index.json"
    ckpt = folder if point_at == "folder" else index_path
    if "does not hold it" not in match:
        assert_every_command_fails(tmp_path, ckpt, index_path, match)
        return
    # An index entry no shard backs: every command but doctor stops with the error; doctor reads
    # the rest, reports it among its problems and fails the checkpoint (exit 1).
    commands = [args for args in every_command(ckpt, hidden_file(tmp_path)) if args[0] != "doctor"]
    assert {assert_input_error(invoke(*args), index_path, match) for args in commands}
    report = invoke("doctor", ckpt, "--json")
    assert report.exit_code == 1 and "Traceback" not in report.output
    assert any(re.search(match, p) for p in json.loads(report.stdout)["problems"])


def test_truncated_shard_is_named(tmp_path):
    folder = sharded_checkpoint(tmp_path / "m")
    shard = folder / SHARDS[1]
    shard.write_bytes(shard.read_bytes()[:-4])
    assert_every_command_fails(tmp_path, folder, shard, r"truncated")


# ---------------------------------------------------------------- GGUF (built with struct.pack)


def test_gguf_with_wrong_magic(tmp_path):
    file = write(tmp_path / "model.gguf", gguf_bytes(magic=b"GGUX"))
    assert_every_command_fails(tmp_path, file, file, r"(?i)magic|unrecognised content in a \.gguf file")


def test_valid_gguf_is_read(tmp_path):
    file = write(tmp_path / "model.gguf", gguf_bytes())
    data = json.loads(invoke("count", file, "--json").stdout)
    assert data["vocab_size"] == V and data["hidden_size"] == D


@pytest.mark.parametrize("cut", [6, 20, 60, 200])
def test_gguf_with_truncated_header(tmp_path, cut):
    file = write(tmp_path / "model.gguf", gguf_bytes()[:cut])
    assert_every_command_fails(tmp_path, file, file, r"(?i)truncat|ends|short|end of file|EOF")


@pytest.mark.parametrize("version", [0, 1, 4, 2**31])
def test_gguf_with_unsupported_version(tmp_path, version):
    file = write(tmp_path / "model.gguf", gguf_bytes(version=version))
    assert_every_command_fails(tmp_path, file, file, rf"(?i)version.*{version}|{version}.*version")


def test_gguf_with_unknown_tensor_type(tmp_path):
    file = write(tmp_path / "model.gguf", gguf_bytes(tensor_type=1000))
    assert_every_command_fails(tmp_path, file, file, r"(?i)type.*1000|1000.*type")


# ---------------------------------------------------------------- paths that are not checkpoints


def _folder(t: Path, *files: tuple[str, bytes | str]) -> tuple[Path, Path]:
    (t / "e").mkdir()
    for name, data in files:
        write(t / "e" / name, data)
    return t / "e", t / "e"


def _folder_with_pipe(t: Path) -> tuple[Path, Path]:
    (t / "e").mkdir()
    os.mkfifo(t / "e" / "model.safetensors")  # opening a pipe blocks until a writer comes: never open one
    return t / "e", t / "e"


def _folder_with_folder(t: Path) -> tuple[Path, Path]:
    (t / "e" / "x.safetensors").mkdir(parents=True)
    return t / "e", t / "e"


def _pipe(t: Path) -> tuple[Path, Path]:
    os.mkfifo(t / "model.safetensors")
    return t / "model.safetensors", t / "model.safetensors"


def _file(name: str, data: bytes | str) -> Callable[[Path], tuple[Path, Path]]:
    return lambda t: (write(t / name, data),) * 2


NOT_CHECKPOINTS: dict[str, tuple[Callable[[Path], tuple[Path, Path]], str]] = {
    "empty folder": (_folder, r"no weights found"),
    "folder with a README and a config": (lambda t: _folder(t, ("README.md", "# hi"), ("config.json", config_json())), r"no weights found"),
    "folder whose only .safetensors is a folder": (_folder_with_folder, r"no weights found"),
    "folder whose only .safetensors is a pipe": (_folder_with_pipe, r"no weights found"),
    "a pipe": (_pipe, r"not a regular file or directory"),
    "path that does not exist": (lambda t: (t / "missing",) * 2, r"no such file or directory"),
    "text file": (_file("notes.txt", "hello\n"), r"not a checkpoint lmhead can read \(unrecognised content in a \.txt file\)"),
    "image": (_file("cat.png", PNG_1X1), r"unrecognised content in a \.png file"),
    "image named .safetensors": (_file("cat.safetensors", PNG_1X1), r"exceeds the 100,000,000-byte limit"),
    "empty file without a suffix": (_file("weights", b""), r"empty file"),
}


class Blocked(BaseException):
    """Raised from SIGALRM when a command blocks (as opening a pipe would)."""


def _blocked(signum, frame):
    raise Blocked("lmhead blocked on its input")


@pytest.mark.parametrize("case", list(NOT_CHECKPOINTS))
def test_not_a_checkpoint(tmp_path, case):
    build, match = NOT_CHECKPOINTS[case]
    ckpt, path = build(tmp_path)
    previous = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(20)
    try:
        assert_every_command_fails(tmp_path, ckpt, path, match)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    "config, match",
    [
        ('{"model_type": "llama",', r"config is not valid JSON \(line 1, column 24"),
        (b"\xc3\x28{}", r"config is not UTF-8 text"),
        ("[1, 2]", r"config is not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, r"config is nested too deeply"),
    ],
    ids=["malformed", "not utf-8", "not an object", "too deep"],
)
def test_broken_config(tmp_path, config, match):
    folder = checkpoint_dir(tmp_path / "m", BLOB, config)
    assert_every_command_fails(tmp_path, folder, folder / "config.json", match)


def test_huge_config_is_refused_before_reading(tmp_path):
    folder = valid_checkpoint(tmp_path / "m")
    with open(folder / "config.json", "r+b") as f:
        f.truncate(2**30)  # sparse: a gigabyte that takes no disk
    assert_every_command_fails(tmp_path, folder, folder / "config.json", r"config is 1,073,741,824 bytes; lmhead reads config files up to")


@pytest.mark.parametrize(
    "changes, note",
    [
        ({"vocab_size": V + 100}, f"config vocab_size {V + 100} differs from the {V} rows of lm_head.weight"),
        ({"hidden_size": 2 * D}, f"config hidden_size {2 * D} differs from the {D} columns of lm_head.weight"),
    ],
    ids=["vocab", "hidden"],
)
def test_config_disagreeing_with_the_tensors_is_reported(tmp_path, changes, note):
    folder = checkpoint_dir(tmp_path / "m", BLOB, config_json(**changes))
    text = invoke("count", folder)
    assert text.exit_code == 0, text.output
    assert f"note: {note}" in text.stdout
    data = json.loads(invoke("count", folder, "--json").stdout)
    assert note in data["notes"]
    assert data["vocab_size"] == V and data["hidden_size"] == D  # the tensors win; the config is what disagrees
    doctor = invoke("doctor", folder, "--json")
    assert doctor.exit_code == 1, doctor.output  # a problem, not bad input
    assert any(p.startswith(note.split(" differs")[0]) for p in json.loads(doctor.stdout)["problems"])


@pytest.mark.parametrize(
    "changes",
    [
        {"architectures": 5},
        {"architectures": [{"name": "LlamaForCausalLM"}]},
        {"model_type": ["llama"]},
        {"vocab_size": True, "hidden_size": "8"},
        {"tie_word_embeddings": "yes"},
    ],
    ids=["architectures int", "architectures of dicts", "model_type list", "sizes of wrong types", "tying of a wrong type"],
)
def test_config_values_of_the_wrong_type_do_not_crash(tmp_path, changes):
    folder = checkpoint_dir(tmp_path / "m", BLOB, config_json(**changes))
    for args in every_command(folder, hidden_file(tmp_path)):
        result = invoke(*args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    assert "differs" not in invoke("count", folder).stdout  # True is not a vocabulary size


# ---------------------------------------------------------------- tensors the head cannot use


def _with(**changes: np.ndarray) -> bytes:
    from hostile import llama_tensors

    return save_safetensors({**llama_tensors(), **changes})


@pytest.mark.parametrize(
    "tensors, match",
    [
        ({"model.norm.weight": np.ones(3, np.float32)}, r"model\.norm\.weight has shape \[3\], but the final norm needs \[8\]"),
        ({"lm_head.bias": np.ones(5, np.float32)}, r"lm_head\.bias has shape \[5\], but the head bias needs \[32\]"),
        ({"lm_head.weight": np.ones((V, D), np.int32)}, r"lm_head\.weight: dtype I32 is not a floating-point type"),
        ({"model.norm.weight": np.ones(D, np.int32)}, r"model\.norm\.weight: dtype I32 is not a floating-point type"),
    ],
    ids=["norm shape", "bias shape", "integer head", "integer norm"],
)
def test_head_parts_that_cannot_be_used(tmp_path, tensors, match):
    folder = checkpoint_dir(tmp_path / "m", _with(**tensors))
    path = folder / "model.safetensors" if "dtype" in match else folder
    assert_input_error(invoke("topk", folder, hidden_file(tmp_path)), path, match)


def test_names_with_escape_sequences_cannot_drive_the_terminal(tmp_path):
    evil = "\x1b[2J\x1b[31mevil\nmodel.embed_tokens.weight"
    folder = checkpoint_dir(tmp_path / "m", save_safetensors({evil: np.ones((V, D), np.int32)}), "{}")
    line = assert_input_error(invoke("topk", folder, hidden_file(tmp_path)), folder / "model.safetensors", r"dtype I32")
    assert "\x1b" not in line and "\\x1b[2J\\x1b[31mevil\\nmodel.embed_tokens.weight" in line
    assert len(invoke("topk", folder, hidden_file(tmp_path)).stderr.splitlines()) == 1


# ---------------------------------------------------------------- hidden states


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


HIDDEN_CASES: dict[str, tuple[str, bytes, list[str], str]] = {
    "wrong last dimension": (
        "h.npy",
        npy_array(np.ones((3, D + 1), np.float32)),
        [],
        rf"last dimension is {D + 1}, but the model's hidden size is {D}",
    ),
    "rank 4": ("h.npy", npy_array(np.ones((1, 1, 3, D), np.float32)), [], r"shape \[1, 1, 3, 8\] has 4 dimensions; expected"),
    "rank 2 with --layers": ("h.npy", npy_array(np.ones((3, D), np.float32)), ["--layers"], r"has 2 dimensions; expected \(L, T, d\)"),
    "a scalar": ("h.npy", npy_array(np.array(1.0, np.float32)), [], r"last dimension is a scalar.*\(shape \[\]\)"),
    "NaN and Inf": (
        "h.npy",
        npy_array(np.array([[1.0] * D, [np.nan] * D, [1.0] * (D - 1) + [np.inf]], np.float32)),
        [],
        r"NaN or Inf in 2 state\(s\): position 1; position 2$",
    ),
    "float64 beyond float32": ("h.npy", npy_array(np.full((2, D), 1e300)), [], r"NaN or Inf in 2 state\(s\)"),
    "integer array": ("h.npy", npy_array(np.ones((3, D), np.int32)), [], r"dtype int32 is not a floating-point type"),
    "structured array": (
        "h.npy",
        npy_bytes({"descr": [("a", "<f4")], "fortran_order": False, "shape": (3, D)}, b"\0" * 96),
        [],
        r"is not a floating-point type",
    ),
    "corrupt .npy header": (
        "h.npy",
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, ", b"\0" * 96),
        [],
        r"not a valid \.npy file: corrupt header",
    ),
    ".npy header that is not a dict": ("h.npy", npy_bytes("[1, 2]"), [], r"corrupt header \(Header is not a dictionary"),
    "text named .npy": ("h.npy", b"0.1 0.2 0.3\n", [], r"not a \.npy file \(no \\x93NUMPY magic at the start\)"),
    "truncated .npy data": (
        "h.npy",
        npy_array(np.ones((3, D), np.float32))[:-5],
        [],
        r"header claims shape \[3, 8\] of float32 \(96 bytes\), but only 91 bytes follow",
    ),
    ".npy claiming 10^15 elements": (
        "h.npy",
        npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**15, D)}, b"\0" * 64),
        [],
        r"header claims shape \[1000000000000000, 8\]",
    ),
    ".npz claiming 10^15 elements": (
        "h.npz",
        _npz({"h.npy": npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**15, D)}, b"\0" * 64)}),
        [],
        r"header claims shape \[1000000000000000, 8\]",
    ),
    ".npz member that is not .npy": ("h.npz", _npz({"notes.txt": b"hello"}), [], r"not a \.npy file"),
    ".npz that is not a zip": ("h.npz", b"PK\x03\x04 not really", [], r"not a valid \.npz file"),
    ".safetensors hidden states, truncated": (
        "h.safetensors",
        save_safetensors({"h": np.ones((3, D), np.float32)})[:-4],
        [],
        r"not a valid safetensors file",
    ),
    "unsupported suffix": ("h.txt", b"1 2 3", [], r"unsupported hidden-state file type \.txt"),
}


@pytest.mark.parametrize("case", list(HIDDEN_CASES))
def test_broken_hidden_states(tmp_path, case):
    name, data, extra, match = HIDDEN_CASES[case]
    hidden = write(tmp_path / name, data)
    ckpt = valid_checkpoint(tmp_path / "m")
    assert_input_error(invoke("topk", ckpt, hidden, *extra), hidden, match)
    assert_input_error(invoke("topk", ckpt, hidden, "--json", *extra), hidden, match)


def test_hidden_states_that_do_not_exist(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    assert_input_error(invoke("topk", ckpt, tmp_path / "nope.npy"), tmp_path / "nope.npy", r"no such file or directory$")
    assert_input_error(invoke("topk", ckpt, tmp_path), tmp_path, r"is a directory, not a regular file$")


# ---------------------------------------------------------------- no pickle is ever loaded


PICKLE_CASES: dict[str, tuple[str, Callable[[Path], bytes], str]] = {
    "object-dtype .npy": ("h.npy", npy_object_array, r"holds Python objects \(a pickle\); refused, never unpickled"),
    "a pickle named .npy": ("h.npy", pickle_payload, r"holds Python objects \(a pickle\); refused, never unpickled"),
    "object-dtype member of an .npz": ("h.npz", lambda c: _npz({"h.npy": npy_object_array(c)}), r"holds Python objects \(a pickle\)"),
    "a pickle named .pt": ("h.pt", pickle_payload, r"cannot load with weights_only=True"),
}


@pytest.mark.parametrize("case", list(PICKLE_CASES))
def test_pickled_hidden_states_are_refused_never_unpickled(tmp_path, case):
    name, build, match = PICKLE_CASES[case]
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    canary = tmp_path / "unpickled"
    hidden = write(tmp_path / name, build(canary))
    assert_input_error(invoke("topk", valid_checkpoint(tmp_path / "m"), hidden), hidden, match)
    assert not canary.exists()


def test_pickled_checkpoint_is_refused_never_unpickled(tmp_path):
    pytest.importorskip("torch")
    canary = tmp_path / "unpickled"
    folder = tmp_path / "m"
    write(folder / "pytorch_model.bin", pickle_payload(canary))
    write(folder / "config.json", config_json())
    assert_every_command_fails(tmp_path, folder, folder / "pytorch_model.bin", r"cannot load with weights_only=True")
    assert not canary.exists()


def test_safetensors_and_numpy_inputs_never_reach_pickle(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    ckpt = valid_checkpoint(tmp_path / "m")
    states = np.ones((3, D), np.float32)
    inputs = [
        write(tmp_path / "h.npy", npy_array(states)),
        write(tmp_path / "h.npz", _npz({"h.npy": npy_array(states)})),
        write(tmp_path / "h.safetensors", save_safetensors({"h": states})),
    ]
    for hidden in inputs:
        for args in every_command(ckpt, hidden):
            result = invoke(*args)
            assert result.exit_code == 0, result.output + repr(result.exception)


# ---------------------------------------------------------------- no descriptor outlives a command


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors through /proc")
def test_commands_release_every_file_they_open(tmp_path):
    """In-process callers (tests, notebooks, services) run many commands: none may keep a file open, even on error."""
    truncated_shard = sharded_checkpoint(tmp_path / "truncated")
    (truncated_shard / SHARDS[1]).write_bytes((truncated_shard / SHARDS[1]).read_bytes()[:-4])
    checkpoints = [
        valid_checkpoint(tmp_path / "single"),
        sharded_checkpoint(tmp_path / "sharded"),
        write(tmp_path / "model.gguf", gguf_bytes()),
        truncated_shard,
        sharded_checkpoint(tmp_path / "ghost", {"ghost.weight": SHARDS[0]}),
        checkpoint_dir(tmp_path / "bad-config", BLOB, "{"),
        checkpoint_dir(tmp_path / "bad-norm", _with(**{"model.norm.weight": np.ones(3, np.float32)})),
    ]
    hidden = hidden_file(tmp_path)
    gc.collect()  # earlier tests' results (and their tracebacks) may still hold views of maps
    before = len(os.listdir("/proc/self/fd"))
    for ckpt in checkpoints:
        for args in every_command(ckpt, hidden):
            assert invoke(*args).exit_code in (0, 1, 2)
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_negative_eps_in_config_is_an_error_naming_the_config(tmp_path):
    from builders import llama_config, llama_tensors, write_checkpoint

    folder = write_checkpoint(tmp_path / "m", llama_tensors(), llama_config(rms_norm_eps=-1.0))
    result = CliRunner().invoke(cli, ["count", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {folder / 'config.json'}: config rms_norm_eps=-1.0 is not a valid epsilon")


def test_an_untied_head_of_another_width_is_a_problem(tmp_path):
    from builders import llama_config, llama_tensors, write_checkpoint

    t = llama_tensors()
    t["lm_head.weight"] = np.ones((64, 17), np.float32)
    result = CliRunner().invoke(cli, ["check-tying", str(write_checkpoint(tmp_path / "m", t, llama_config())), "--json"])
    assert result.exit_code == 1
    assert "disagree on the hidden size" in json.loads(result.stdout)["problems"][0]


def test_control_characters_in_tensor_names_never_reach_the_terminal(tmp_path):
    from safetensors.numpy import save_file

    save_file(
        {"model.embed_tokens.weight": np.ones((8, 4), np.float32), "x.lm_head.weight\x1b[2J": np.ones((8, 4), np.float32)},
        tmp_path / "m.safetensors",
    )
    for command in (["count"], ["check-tying"], ["doctor"]):
        result = CliRunner().invoke(cli, [*command, str(tmp_path / "m.safetensors")])
        assert "\x1b" not in result.stdout, command


# ---------------------------------------------------------------- quantized modules: broken packs, shapes, missing parts


def _i32(shape: tuple[int, ...], dtype: str = "I32") -> tuple[str, list[int], bytes]:
    return dtype, list(shape), bytes(4 * int(np.prod(shape)))


@pytest.mark.parametrize("layout", QUANT_LAYOUTS)
def test_valid_quantized_heads_are_counted_and_read(tmp_path, layout):
    folder = quantized_checkpoint(tmp_path / "m", layout)
    data = json.loads(invoke("count", folder, "--json").stdout)
    assert data["head_params"] == V * D and data["quantization"]["head_quantized"] is (layout != "mxfp4")
    result = invoke("topk", folder, hidden_file(tmp_path), "-k", "3", "--json")
    assert result.exit_code == 0, result.output


QUANT_BREAKAGE = [
    ("gptq", {"drop": ("lm_head.scales",)}, r"lm_head is GPTQ-quantized but lm_head\.scales is missing"),
    ("gptq", {"drop": ("lm_head.qzeros",)}, r"lm_head\.qzeros is missing"),
    ("gptq", {"change": {"lm_head.qweight": _i32((1, 16))}}, r"lm_head\.scales: shape \[1, 32\] does not match lm_head\.qweight's 16"),
    ("gptq", {"change": {"lm_head.g_idx": _i32((5,))}}, r"lm_head\.g_idx: 5 entries do not match"),
    ("awq", {"drop": ("lm_head.scales",)}, r"lm_head is AWQ-quantized but lm_head\.scales is missing"),
    ("awq", {"change": {"lm_head.qweight": _i32((D, 2))}}, r"stores 2-bit values, but the quantization config says 4 bits"),
    ("bnb_nf4", {"drop": ("lm_head.weight.absmax",)}, r"lm_head\.weight\.absmax is missing"),
    ("bnb_nf4", {"change": {"lm_head.weight": ("U8", [64, 1], bytes(64))}}, r"64 bytes hold 128 4-bit values, but quant_state's shape"),
    ("bnb_nf4", {"change": {"lm_head.weight.quant_state.bitsandbytes__nf4": ("U8", [3], b"{no")}}, r"quant_state is not JSON text"),
    ("bnb_nf4", {"drop": ("lm_head.weight",)}, r"lm_head\.weight is missing"),
    ("bnb_int8", {"change": {"lm_head.SCB": ("F32", [16], bytes(64))}}, r"16 row scales for 32 rows"),
    ("bnb_int8", {"drop": ("lm_head.weight",)}, r"lm_head\.weight is missing"),
    ("bnb_int8", {"drop": ("lm_head.SCB",)}, r"lm_head\.weight is stored as I8 without its scale lm_head\.SCB"),
    ("fp8_block", {"drop": ("lm_head.weight_scale_inv",)}, r"lm_head\.weight is stored as F8_E4M3 without its scale"),
    ("fp8_block", {"change": {"lm_head.weight_scale_inv": ("F32", [2, 1], bytes(8))}}, r"needs \[1, 1\]"),
    ("ct_int4", {"change": {"lm_head.weight_shape": ("I64", [2], np.array([V, 16], np.int64).tobytes())}}, r"does not pack weight_shape"),
    ("ct_int4", {"change": {"lm_head.weight_packed": _i32((16, 1))}}, r"does not pack weight_shape \[32, 8\]"),
    ("ct_int4", {"drop": ("lm_head.weight_scale",)}, r"lm_head\.weight_scale is missing"),
    ("ct_int4", {"drop": ("lm_head.weight_shape",)}, r"lm_head\.weight_shape is missing"),
    ("ct_fp8", {"drop": ("lm_head.weight_scale",)}, r"stored as F8_E4M3 without its scale"),
    ("ct_fp8", {"change": {"lm_head.weight_scale": ("F32", [16, 1], bytes(64))}}, r"lm_head\.weight_scale: shape \[16, 1\]"),
    ("torchao", {"drop": ("lm_head._weight_scale",)}, r"lm_head\._weight_scale is missing"),
    ("torchao", {"change": {"lm_head._weight_scale": ("F32", [5, 1], bytes(20))}}, r"does not tile \[32, 8\]"),
    ("mxfp4", {"drop": ("model.layers.0.mlp.experts.down_proj_scales",)}, r"down_proj_scales is missing"),
    (
        "mxfp4",
        {"change": {"model.layers.0.mlp.experts.down_proj_scales": ("U8", [2, D, 2], bytes(2 * D * 2))}},
        r"does not match blocks",
    ),
]


@pytest.mark.parametrize("layout, spoil, match", QUANT_BREAKAGE, ids=[f"{c[0]}-{c[2][:24]}" for c in QUANT_BREAKAGE])
def test_broken_quantized_modules_are_refused(tmp_path, layout, spoil, match):
    folder = quantized_checkpoint(tmp_path / "m", layout, **spoil)
    hidden = hidden_file(tmp_path)
    for args in every_command(folder, hidden):
        assert_input_error(invoke(*args), folder / "model.safetensors", match)


def test_torchao_float8_without_its_metadata_is_counted_but_never_read_unrounded(tmp_path):
    """The Float8Tensor metadata says which dtype torchao rounds the product to; without it the values
    would be a guess, so only the count (which needs no values) goes ahead."""
    folder = quantized_checkpoint(tmp_path / "m", "torchao", drop=("metadata",))
    assert invoke("count", folder).exit_code == 0
    for args in (["topk", folder, hidden_file(tmp_path)], ["check-tying", folder], ["doctor", folder]):
        assert_input_error(invoke(*args), folder, r"lm_head is torchao float8 without its tensor metadata")


def test_an_unreadable_quantized_head_is_refused_never_replaced(tmp_path):
    folder = quantized_checkpoint(tmp_path / "m", "gptq", config={"checkpoint_format": "marlin"})
    assert invoke("count", folder).exit_code == 0  # counting needs no values
    reason = r"^lm_head is GPTQ-quantized; lmhead cannot dequantize it yet$"
    for args in (["topk", folder, hidden_file(tmp_path)], ["check-tying", folder], ["doctor", folder]):
        line = assert_input_error(invoke(*args), folder, ".")
        assert re.search(reason, line.split(": ", 2)[2]), line


def test_unrecognised_head_tensors_are_never_a_random_head(tmp_path):
    from hostile import quantized_head, st_raw

    tensors, _ = quantized_head("torchao")
    tensors["lm_head.weight:qdata"] = tensors.pop("lm_head._weight_qdata")  # an older torchao naming lmhead does not group
    folder = checkpoint_dir(tmp_path / "m", st_raw(tensors), config_json())
    result = invoke("topk", folder, hidden_file(tmp_path))
    assert_input_error(result, folder / "model.safetensors", r"lm_head\.\S+ looks like part of a quantized module")


def test_nvfp4_head_without_weight_shape_is_counted_and_read(tmp_path):
    from hostile import _entry, quantized_head, st_raw

    tensors, _ = quantized_head("ct_int4")
    tensors["lm_head.weight_packed"] = _entry(np.zeros((V, D // 2), np.uint8))
    tensors["lm_head.weight_scale"] = ("F8_E4M3", [V, 1], bytes(V))
    tensors["lm_head.weight_global_scale"] = _entry(np.ones(1, np.float32))
    qc = {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized"}
    folder = checkpoint_dir(tmp_path / "m", st_raw(tensors), json.dumps({**json.loads(config_json()), "quantization_config": qc}))
    data = json.loads(invoke("count", folder, "--json").stdout)
    assert data["head_params"] == V * D and data["quantization"]["head_layout"] == "compressed-tensors FP4"
    result = invoke("topk", folder, hidden_file(tmp_path), "--json")  # the real tool's layouts: tests/quant/test_real_tools.py
    assert result.exit_code == 0, result.output
    assert all(top["logit"] == 0.0 for pos in json.loads(result.stdout)["positions"] for top in pos["top"])


def test_an_unknown_method_is_a_warning_that_counts_are_as_stored(tmp_path):
    config = json.dumps({**json.loads(config_json()), "quantization_config": {"quant_method": "newquant"}})
    folder = checkpoint_dir(tmp_path / "m", valid_safetensors(), config)
    data = json.loads(invoke("count", folder, "--json").stdout)
    assert "'newquant' is unknown to lmhead" in data["quantization"]["note"]
    assert any("'newquant' is unknown to lmhead: its tensors are counted as stored" in w for w in data["warnings"])
    result = invoke("count", folder)
    assert "warning: quantization method 'newquant' is unknown to lmhead" in result.stderr


# ---------------------------------------------------------------- MLX (mlx-lm) layouts


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_valid_mlx_checkpoints_are_counted_and_read(tmp_path, bits):
    folder = mlx_checkpoint(tmp_path / "m", bits=bits)
    data = json.loads(invoke("count", folder, "--json").stdout)
    assert data["total_params"] == 2 * V * MLX_D + MLX_D  # dense-equivalent: embedding, head, norm
    assert data["quantization"]["head_quantized"] and data["quantization"]["embedding_quantized"]
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((2, MLX_D), np.float32)))
    assert invoke("topk", folder, hidden, "-k", "3", "--json").exit_code == 0


def _u32(shape: tuple[int, ...]) -> tuple[str, list[int], bytes]:
    return "U32", list(shape), bytes(4 * int(np.prod(shape)))


def _set_mode(mode: object):
    def change(config: dict) -> None:
        config["quantization"]["mode"] = config["quantization_config"]["mode"] = mode

    return change


def _no_quantization(config: dict) -> None:
    del config["quantization"], config["quantization_config"]


MLX_BREAKAGE = [
    ({"drop": ("lm_head.biases",)}, r"lm_head is MLX affine-quantized but lm_head\.biases is missing"),
    ({"change": {"lm_head.weight": _u32((V, 3))}}, r"lm_head\.weight: 3 words and 2 groups per row fit no MLX affine setting"),
    ({"change": {"lm_head.weight": ("I32", [V, 10], bytes(4 * V * 10))}}, r"lm_head\.weight"),
    ({"change": {"lm_head.scales": ("F16", [V - 1, 2], bytes(2 * (V - 1) * 2))}}, r"does not match"),
    (
        {"change": {"lm_head.biases": ("F32", [V, 2], bytes(4 * V * 2))}},
        r"lm_head\.biases: F32 \[32, 2\] does not match lm_head\.scales F16",
    ),
    ({"config": _set_mode("nvfp4")}, r"MLX nvfp4 stores no biases, but this module has them"),
    ({"config": _set_mode("fp6")}, r"mlx-lm quantization mode 'fp6' is not supported"),
    ({"config": _no_quantization}, r"stored as MLX quantizes it \(uint32 weight, scales, biases\), but config\.json has no"),
]


@pytest.mark.parametrize("spoil, match", MLX_BREAKAGE, ids=[c[1][:32] for c in MLX_BREAKAGE])
def test_broken_mlx_checkpoints_are_refused(tmp_path, spoil, match):
    folder = mlx_checkpoint(tmp_path / "m", **spoil)
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((3, MLX_D), np.float32)))
    for args in every_command(folder, hidden):
        assert_input_error(invoke(*args), folder / "model.safetensors", match)
