"""``hf://`` GGUF repos: the header by ranged requests, the head's and norm's bytes for topk, nothing else.

The fake hub (tests/hubserver.py) serves the GGUF fixtures; the answers over hf:// must equal the
answers on the same files on disk. Expected byte counts come from gguf's own reader
(``gguf.GGUFReader``: where the header's last field ends, each tensor's ``n_bytes``) and the read plan
the reader states: the 24-byte prefix, then the header in doubling blocks from 16 KiB.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.cli import cli
from lmhead_cli.formats import remote

from conftest import ROOT, run, run_json, without_paths
from hostile import gguf_bytes

GGUF = ROOT / "tests" / "fixtures" / "gguf"
SPLIT = ROOT / "tests" / "fixtures" / "gguf_split"
TOKENIZERS = ROOT / "tests" / "fixtures" / "gguf_tokenizer"
FIXTURES = sorted(GGUF.glob("*.gguf"))
PREFIX = 24  # magic, version, tensor count, key/value count


@pytest.fixture
def hub(fake_hub, hf_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    monkeypatch.setattr(remote, "BACKOFF_S", 0.01)
    return fake_hub


def repo_of(hub, tmp_path: Path, *files: Path, name: str = "org/gguf") -> str:
    """A repo holding copies of ``files``; its hf:// url."""
    folder = tmp_path / name.replace("/", "--")
    folder.mkdir()
    for file in files:
        shutil.copyfile(file, folder / file.name)
    hub.add_repo(name, folder)
    return f"hf://{name}"


def header_end(file: Path) -> int:
    """Where the header's last field (key/value or tensor entry) ends, by gguf's own reader."""
    reader = gguf.GGUFReader(file)
    fields = [*reader.fields.values(), *(t.field for t in reader.tensors)]
    return max(f.offset + sum(int(p.nbytes) for p in f.parts) for f in fields)


def header_bytes(file: Path) -> int:
    """What the walk fetches: 24 bytes, then up to 16 KiB, then double that until the header is in."""
    size, end = file.stat().st_size, header_end(file)
    total = min(size, max(remote.GGUF_HEADER_BLOCK, PREFIX))
    while total < end:
        total = min(size, 2 * total)
    return total


def tensor_bytes(file: Path, *names: str) -> int:
    return sum(int(t.n_bytes) for t in gguf.GGUFReader(file).tensors if t.name in names)


def answer(*args: object) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--json"])
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("file", FIXTURES, ids=lambda f: f.stem)
def test_same_answers_over_hf_as_on_disk_from_the_header_alone(file, hub, tmp_path):
    url = repo_of(hub, tmp_path, file)
    for command in ("count", "check-tying", "doctor"):
        hub.reset_counts()
        code, remote_json = answer(command, url)
        assert hub.bytes_served("lfs") == header_bytes(file), command  # the header, not a byte of tensor data
        assert hub.bytes_served("json") == 0  # a GGUF carries its config and tokenizer: nothing else is downloaded
        local = answer(command, file)
        if command == "count" and "warnings" not in remote_json:  # count needs no values unless the tie hangs on them
            assert (code, without_paths(remote_json)) == (local[0], without_paths(local[1]))
        code, remote_json = answer(command, url, "--fetch-values")
        assert (code, without_paths(remote_json)) == (local[0], without_paths(local[1])), command
    assert header_bytes(file) < file.stat().st_size or file.stat().st_size <= remote.GGUF_HEADER_BLOCK


@pytest.mark.parametrize(
    "file", [GGUF / "qwen3_f32.gguf", GGUF / "llama_tied_f32.gguf", GGUF / "synthetic_q6_k.gguf"], ids=lambda f: f.stem
)
def test_topk_reads_the_header_the_norm_and_the_head(file, hub, tmp_path):
    url = repo_of(hub, tmp_path, file)
    d = run_json("count", file)["hidden_size"]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.random.default_rng(0).normal(size=(3, d)).astype(np.float32))
    local = answer("topk", file, hidden, "-k", "3")
    hub.reset_counts()
    remote_json = answer("topk", url, hidden, "-k", "3")
    assert without_paths(remote_json[1]) == without_paths(local[1])
    names = {t.name for t in gguf.GGUFReader(file).tensors}
    head = "output.weight" if "output.weight" in names else "token_embd.weight"
    assert hub.bytes_served("lfs") == header_bytes(file) + tensor_bytes(file, "output_norm.weight", head)


@pytest.mark.parametrize("name", ["bpe_llama3.gguf", "spm_gemma2.gguf"])
def test_the_files_own_tokenizer_works_remotely(name, hub, tmp_path):
    """topk --text over hf://: the targets are transformers' encoding of the text (expected.json), from
    the header's tokenizer arrays, with no more bytes fetched than the header, the norm and the head."""
    file = TOKENIZERS / name
    url = repo_of(hub, tmp_path, file)
    expected = json.loads((TOKENIZERS / "expected.json").read_text())
    text = "The quick brown fox jumps over the lazy dog. It's 2024, and we're testing tokenizers: they'll split words."
    ids = expected["files"][name]["with_special_tokens"][expected["strings"].index(text)]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.random.default_rng(1).normal(size=(len(ids), run_json("count", file)["hidden_size"])).astype(np.float32))
    hub.reset_counts()
    data = answer("topk", url, hidden, "-k", "2", "--text", text)[1]
    assert [p["target"]["token_id"] for p in data["positions"] if "target" in p] == ids[1:]
    names = {t.name for t in gguf.GGUFReader(file).tensors}
    head = "output.weight" if "output.weight" in names else "token_embd.weight"
    targets = len(set(ids[1:]))  # each target token's logit is read again from its own head row, once, exactly
    rows = int(next(t.shape[1] for t in gguf.GGUFReader(file).tensors if t.name == head))
    row_bytes = tensor_bytes(file, head) // rows
    assert hub.bytes_served("lfs") == header_bytes(file) + tensor_bytes(file, "output_norm.weight", head) + targets * row_bytes


def test_a_file_is_named_in_the_url_when_a_repo_holds_several(hub, tmp_path):
    a, b = GGUF / "qwen3_f32.gguf", GGUF / "gemma_f32.gguf"
    url = repo_of(hub, tmp_path, a, b, GGUF / "synthetic_q4_0.gguf")
    result = run("count", url, ok=False)
    assert (
        result.exit_code == 2 and "holds 3 GGUF models (gemma_f32.gguf, qwen3_f32.gguf, synthetic_q4_0.gguf); which one?" in result.stderr
    )
    assert f"hint: name the file: {url}/gemma_f32.gguf" in result.stderr
    for file in (a, b):
        data = run_json("count", f"{url}/{file.name}")
        assert data["checkpoint"] == f"{url}/{file.name}"
        assert without_paths(data) == without_paths(run_json("count", file))
    result = run("count", f"{url}/nothing.gguf", ok=False)
    assert result.exit_code == 2 and "the repo has no file 'nothing.gguf'; its GGUF files: gemma_f32.gguf" in result.stderr


def test_a_vision_projector_beside_the_model_is_not_a_second_model(hub, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copyfile(GGUF / "gemma_f32.gguf", folder / "mmproj-model-f16.gguf")
    url = repo_of(hub, tmp_path, GGUF / "qwen3_f32.gguf", folder / "mmproj-model-f16.gguf")
    assert run_json("count", url)["architecture"] == "qwen3"


def test_a_split_set_is_read_part_by_part(hub, tmp_path):
    parts = sorted(SPLIT.glob("*.gguf"))
    url = repo_of(hub, tmp_path, *parts)
    single = GGUF / "qwen3_f32.gguf"
    hub.reset_counts()
    data = run_json("count", url)
    assert data["checkpoint"] == f"{url}/{parts[0].name}" and len(data["files"]) == 3
    assert hub.bytes_served("lfs") == sum(header_bytes(p) for p in parts)
    assert without_paths({**data, "files": None}) == without_paths({**run_json("count", single), "files": None})
    for named in parts:  # any part names the set
        assert run_json("count", f"{url}/{named.name}")["effective_params"] == data["effective_params"]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.random.default_rng(2).normal(size=(2, data["hidden_size"])).astype(np.float32))
    hub.reset_counts()
    remote_json = answer("topk", url, hidden, "-k", "3")[1]
    assert remote_json["positions"] == answer("topk", single, hidden, "-k", "3")[1]["positions"]
    norm_part = next(p for p in parts if "output_norm.weight" in {t.name for t in gguf.GGUFReader(p).tensors})
    head = tensor_bytes(parts[0], "output.weight") + tensor_bytes(norm_part, "output_norm.weight")
    assert hub.bytes_served("lfs") == sum(header_bytes(p) for p in parts) + head


def test_a_split_set_on_disk(tmp_path):
    parts = sorted(SPLIT.glob("*.gguf"))
    single = run_json("count", GGUF / "qwen3_f32.gguf")
    for target in (SPLIT, parts[1]):
        data = run_json("count", target)
        assert data["effective_params"] == single["effective_params"] and len(data["files"]) == 3


# ---------------------------------------------------------------- hostile files over hf://


def one_line_error(result, match: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not result.stdout
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: hf://") and all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert match in lines[0], lines[0]
    return lines[0]


GOOD = gguf_bytes()
HOSTILE = {
    "truncated in the header": (GOOD[:200], "file ends early: the GGUF header needs bytes up to"),
    "shorter than the prefix": (GOOD[:10], "the file has 10 bytes, but bytes up to 24 were needed (truncated?)"),
    "truncated in the data": (GOOD[:-8], f"runs to byte {len(GOOD):,}, but the file has {len(GOOD) - 8:,} bytes (truncated?)"),
    "bad magic": (gguf_bytes(magic=b"GGUX"), "not a GGUF file (no GGUF magic)"),
    "unsupported version": (gguf_bytes(version=7), "GGUF version 7 is not supported"),
    "unknown tensor type": (gguf_bytes(tensor_type=1000), "has unknown type 1000"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_ggufs_over_hf_are_one_line(case, hub, tmp_path):
    blob, match = HOSTILE[case]
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(blob)
    url = repo_of(hub, tmp_path, folder / "model.gguf")
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.ones((2, 8), np.float32))
    for args in (["count", url], ["check-tying", url, "--fetch-values"], ["doctor", url, "--json"], ["topk", url, hidden]):
        one_line_error(CliRunner().invoke(cli, [str(a) for a in args]), match)


def test_a_split_set_with_a_missing_or_wrong_part_is_refused(hub, tmp_path):
    parts = sorted(SPLIT.glob("*.gguf"))
    url = repo_of(hub, tmp_path, parts[0], parts[2], name="org/missing")
    one_line_error(run("count", url, ok=False), "split GGUF: part 'qwen3_f32-00002-of-00003.gguf' of 3 is missing")
    folder = tmp_path / "swapped"
    folder.mkdir()
    for part in parts:
        shutil.copyfile(part, folder / part.name)
    shutil.copyfile(parts[2], folder / parts[1].name)  # part 3's bytes under part 2's name
    hub.add_repo("org/swapped", folder)
    one_line_error(run("count", "hf://org/swapped", ok=False), "is named part 2 of 3 of a split GGUF, but its header says split.no=2")
    single = tmp_path / "alone"
    single.mkdir()
    shutil.copyfile(parts[0], single / "model.gguf")  # renamed: nothing says where the other parts are
    hub.add_repo("org/alone", single)
    one_line_error(run("count", "hf://org/alone", ok=False), "holds part 1 of a 3-part split GGUF")
