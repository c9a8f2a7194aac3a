"""lmhead only reads: every input is byte-for-byte, mtime-for-mtime the same after every command.

Each test checksums (sha256), sizes and mtimes every file of the checkpoint
folder and the hidden-state file before and after running every command, and
checks no file appeared beside them. Python-level opens are also watched, so
a write mode is caught even when it would leave the bytes unchanged.
"""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli

from hostile import (
    D,
    checkpoint_dir,
    config_json,
    gguf_bytes,
    npy_array,
    npy_bytes,
    npy_object_array,
    sharded_checkpoint,
    snapshot,
    st_bytes,
    st_entry,
    valid_checkpoint,
    valid_safetensors,
    write,
)

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def watch_opens(mp: pytest.MonkeyPatch, root: Path, seen: list[tuple[str, str]]) -> None:
    """Record every (path, mode) opened under ``root`` through Python; a write mode fails the test at once."""
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def check(file, mode):
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file).startswith(str(root)):
            seen.append((os.fsdecode(file), str(mode)))
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(mode & WRITE_FLAGS)
            assert not writes, f"opened {file} with mode {mode!r}"

    def spy_open(file, mode="r", *args, **kwargs):
        check(file, mode)
        return real_open(file, mode, *args, **kwargs)

    def spy_io_open(file, mode="r", *args, **kwargs):
        check(file, mode)
        return real_io_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        check(path, flags)
        return real_os_open(path, flags, *args, **kwargs)

    mp.setattr(builtins, "open", spy_open)
    mp.setattr(io, "open", spy_io_open)
    mp.setattr(os, "open", spy_os_open)


def commands(ckpt: Path, hidden: Path, index: Path | None = None) -> list[list[object]]:
    out = [
        ["count", ckpt],
        ["count", ckpt, "--json"],
        ["check-tying", ckpt],
        ["check-tying", "--full", ckpt, "--json"],
        ["check-tying", "--full", ckpt, "--expect", "tied"],
        ["doctor", "--full", ckpt, "--explain"],
        ["doctor", ckpt, "--json"],
        ["topk", ckpt, hidden, "-k", "3"],
        ["topk", ckpt, hidden, "-k", "3", "--json", "--chunk-rows", "5", "--targets", "1,2"],
        ["diff", ckpt, ckpt],
        ["diff", ckpt, ckpt, "--json"],
    ]
    if index is not None:
        out += [["count", index], ["check-tying", "--full", index], ["doctor", index], ["topk", index, hidden]]
    return out


def run_all_unchanged(roots: list[Path], args_list: list[list[object]], allowed_exits: set[int]) -> list[tuple[str, str]]:
    """Run each command; after each, every file under ``roots`` is as it was. Returns what was opened."""
    before = snapshot(*roots)
    seen: list[tuple[str, str]] = []
    for args in args_list:
        with pytest.MonkeyPatch.context() as mp:
            watch_opens(mp, roots[0].parent, seen)
            result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code in allowed_exits, result.output + repr(result.exception)
        assert "Traceback" not in result.output and "internal error" not in result.output, result.output
        assert snapshot(*roots) == before, f"{args} changed its inputs"
    return seen


def test_single_file_checkpoint_is_left_untouched(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((3, D), np.float32)))
    seen = run_all_unchanged([ckpt, hidden], commands(ckpt, hidden), {0, 1})
    assert {Path(p).name for p, _ in seen} >= {"h.npy", "config.json", "model.safetensors"}  # the spy saw the reads


def test_tied_checkpoint_is_left_untouched(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m", tied=True)
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((3, D), np.float32)))
    run_all_unchanged([ckpt, hidden], commands(ckpt, hidden), {0, 1})


def test_sharded_checkpoint_is_left_untouched(tmp_path):
    ckpt = sharded_checkpoint(tmp_path / "m")
    hidden = write(tmp_path / "h.npz", b"")
    np.savez(hidden, h=np.ones((3, D), np.float32))
    run_all_unchanged([ckpt, hidden], commands(ckpt, hidden, ckpt / "model.safetensors.index.json"), {0, 1})


def test_single_safetensors_file_and_its_folder_are_left_untouched(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    hidden = write(tmp_path / "h.safetensors", b"")
    from safetensors.numpy import save_file

    save_file({"h": np.ones((2, 3, D), np.float32)}, hidden)
    run_all_unchanged([ckpt, hidden], commands(ckpt / "model.safetensors", hidden), {0, 1})


def test_gguf_file_and_its_folder_are_left_untouched(tmp_path):
    gguf = write(tmp_path / "m" / "model.gguf", gguf_bytes())
    hidden = write(tmp_path / "h.npy", npy_array(np.ones((3, D), np.float32)))
    run_all_unchanged([gguf.parent, hidden], commands(gguf, hidden) + commands(gguf.parent, hidden), {0, 1})


HOSTILE = {
    "truncated safetensors": lambda t: checkpoint_dir(t / "m", valid_safetensors()[:-10]),
    "lying header length": lambda t: checkpoint_dir(t / "m", st_bytes({"a": st_entry("F32", [2], 0, 8)}, b"\0" * 8, length=10**6)),
    "10^15-element tensor": lambda t: checkpoint_dir(t / "m", st_bytes({"a": st_entry("F32", [10**15], 0, 4 * 10**15)}, b"\0" * 8)),
    "malformed config": lambda t: checkpoint_dir(t / "m", valid_safetensors(), '{"vocab_size": '),
    "config disagreeing": lambda t: checkpoint_dir(t / "m", valid_safetensors(), config_json(vocab_size=7)),
    "index naming a missing shard": lambda t: sharded_checkpoint(t / "m", {"lm_head.weight": "gone.safetensors"}),
    "malformed index": lambda t: sharded_checkpoint(t / "m", index="{"),
    "truncated GGUF": lambda t: write(t / "m" / "model.gguf", gguf_bytes()[:-100]).parent,
    "GGUF of an unsupported version": lambda t: write(t / "m" / "model.gguf", gguf_bytes(version=9)).parent,
}

HOSTILE_HIDDEN = {
    "valid": npy_array(np.ones((3, D), np.float32)),
    "object array": None,  # built per test: its pickle names a canary file
    "corrupt header": npy_bytes("{'descr': '<f4', ", b"\0" * 8),
    "NaN": npy_array(np.full((2, D), np.nan, np.float32)),
    "10^15 elements": npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**15, D)}, b"\0" * 64),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_checkpoints_are_left_untouched(tmp_path, case):
    ckpt = HOSTILE[case](tmp_path)
    hidden = write(tmp_path / "h.npy", HOSTILE_HIDDEN["valid"])
    run_all_unchanged([ckpt, hidden], commands(ckpt, hidden), {0, 1, 2})


@pytest.mark.parametrize("case", list(HOSTILE_HIDDEN))
def test_hostile_hidden_states_are_left_untouched(tmp_path, case):
    ckpt = valid_checkpoint(tmp_path / "m")
    canary = tmp_path / "unpickled"
    data = npy_object_array(canary) if HOSTILE_HIDDEN[case] is None else HOSTILE_HIDDEN[case]
    hidden = write(tmp_path / "hidden" / "h.npy", data)
    run_all_unchanged([ckpt, hidden.parent], [["topk", ckpt, hidden], ["topk", ckpt, hidden, "--json"]], {0, 2})
    assert not canary.exists()
