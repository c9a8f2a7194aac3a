"""``hf://org/name[@revision]``: checkpoints read from a (fake) hub over HTTP range requests.

The fake hub (tests/hubserver.py) serves every fixture checkpoint; the answers over
hf:// must equal the answers on the same files locally, and the server's byte
counts show that each command read only what it needs: headers and JSON for
``count``/``check-tying``/``doctor``, the final norm and the head rows for ``topk``.
Expected byte counts come from the files themselves (the 8-byte header length each
safetensors file starts with, tensor sizes from the safetensors library).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hubserver import VALID_TOKEN, Fault

from lmhead_cli.cli import cli

from conftest import ROOT, approx_json, run, run_json, without_paths

FIXTURE_ROOTS = [ROOT / "tests" / "fixtures" / d for d in ("reference", "wrapped", "projected", "quant")] + [ROOT / "sample_weights"]
FIXTURES = sorted(p for root in FIXTURE_ROOTS for p in root.iterdir() if p.is_dir() and any(p.glob("*.safetensors")))
SAMPLES = ROOT / "sample_weights"


def repo_id(folder: Path) -> str:
    return f"{folder.parent.name}/{folder.name}"


@pytest.fixture
def hub(fake_hub, hf_home, monkeypatch):
    """The fake hub serving the sample checkpoints, huggingface_hub pointed at it through HF_ENDPOINT."""
    from lmhead_cli.formats import remote

    for folder in SAMPLES.iterdir():
        if folder.is_dir():
            fake_hub.add_repo(repo_id(folder), folder)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    monkeypatch.setattr(remote, "BACKOFF_S", 0.01)
    return fake_hub


def header_bytes(folder: Path) -> int:
    """8 + header length of every safetensors file the checkpoint reads."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = {folder / f for f in json.loads(index.read_text())["weight_map"].values()}
    elif (folder / "model.safetensors").is_file():
        files = {folder / "model.safetensors"}
    else:
        files = set(folder.glob("*.safetensors"))
    return sum(8 + int.from_bytes(f.read_bytes()[:8], "little") for f in files)


def json_bytes(folder: Path) -> int:
    return sum(
        (folder / f).stat().st_size
        for f in ("config.json", "tokenizer.json", "quantize_config.json", "model.safetensors.index.json")
        if (folder / f).is_file()
    )


def tensor_bytes(folder: Path, *names: str) -> int:
    """Bytes the named tensors occupy, from each file's own header (data_offsets)."""
    total = 0
    for file in folder.glob("*.safetensors"):
        raw = file.read_bytes()
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        total += sum(header[n]["data_offsets"][1] - header[n]["data_offsets"][0] for n in names if n in header)
    return total


def answer(*args: object) -> tuple[int, dict]:
    """Exit status and JSON of a command that may find problems (exit 1)."""
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--json"])
    assert result.exit_code in (0, 1), result.output + repr(result.exception)
    return result.exit_code, json.loads(result.stdout)


def extra_bytes_ok(hub, folder: Path) -> bool:
    """Header-only: 8 + header per file; a quantized layout also reads its small state tensors (bitsandbytes
    quant_state, compressed-tensors weight_shape) to learn the dense shape: a few bytes more."""
    extra = hub.bytes_served("lfs") - header_bytes(folder)
    return extra == 0 or (folder.parent.name == "quant" and 0 < extra < 4096)


EVIDENCE = ("config_present", "config_flag", "config_directs", "head_stored", "embedding", "head", "shape_relation", "shares_storage")


@pytest.mark.parametrize("folder", FIXTURES, ids=repo_id)
def test_same_answers_over_hf_as_on_disk(folder, hub):
    """count, check-tying and doctor: the local JSON; without --fetch-values only headers and JSON are read."""
    url = f"hf://{hub.add_repo(repo_id(folder), folder).repo_id}"
    hub.reset_counts()
    _, remote = answer("count", url)
    assert extra_bytes_ok(hub, folder)  # 8 + header per file, not a byte of data
    assert hub.bytes_served("json") == json_bytes(folder)  # config, index and tokenizer, once; then cached
    assert remote["checkpoint"] == url and all(f.startswith(url + "/") for f in remote["files"])
    local = answer("count", folder)
    unread = "warnings" in remote  # the tie hangs on the head's values, which were not read: labelled a guess
    if unread:
        assert "values are not read over hf:// without --fetch-values: counted as untied" in remote["warnings"][0]
        assert remote["tied"] is False
        remote = answer("count", url, "--fetch-values")[1]
    assert without_paths(remote) == approx_json(without_paths(local[1]))

    local = answer("check-tying", folder)
    hub.reset_counts()
    _, remote = answer("check-tying", url)
    assert extra_bytes_ok(hub, folder) and hub.bytes_served("json") == 0
    evidence = EVIDENCE if unread else (*EVIDENCE, "tie_source", "tied")
    assert {k: remote[k] for k in evidence} == {k: local[1][k] for k in evidence}
    fetched = answer("check-tying", url, "--fetch-values")
    assert (fetched[0], without_paths(fetched[1])) == (local[0], approx_json(without_paths(local[1])))

    local = answer("doctor", folder)
    hub.reset_counts()
    _, remote = answer("doctor", url)
    assert extra_bytes_ok(hub, folder) and hub.bytes_served("json") == 0
    for key in ("vocabulary", "head") if unread else ("counts", "vocabulary", "head", "explain"):
        assert without_paths(remote[key]) == approx_json(without_paths(local[1][key])), key
    assert {k: remote["tying"][k] for k in evidence} == {k: local[1]["tying"][k] for k in evidence}
    fetched = answer("doctor", url, "--fetch-values")
    assert (fetched[0], without_paths(fetched[1])) == (local[0], approx_json(without_paths(local[1])))


@pytest.mark.parametrize("folder", FIXTURES, ids=repo_id)
def test_topk_over_hf_equals_local(folder, hub, tmp_path):
    hub.add_repo(repo_id(folder), folder)
    d = run_json("count", folder)["hidden_size"]
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.random.default_rng(0).normal(size=(3, d)).astype(np.float32))
    local = answer("topk", folder, hidden, "-k", "3")
    remote = answer("topk", f"hf://{repo_id(folder)}", hidden, "-k", "3")
    if any("--fetch-values" in w for w in remote[1]["warnings"]):  # the stored head is used; it may be the embedding's copy
        np.testing.assert_array_equal(_logits(remote[1]), _logits(local[1]))
        remote = answer("topk", f"hf://{repo_id(folder)}", hidden, "-k", "3", "--fetch-values")
    assert (remote[0], without_paths(remote[1])) == (local[0], approx_json(without_paths(local[1])))


def _logits(data: dict) -> list:
    return [[(t["token_id"], t["logit"]) for t in p["top"]] for p in data["positions"]]


@pytest.mark.parametrize(
    ("sample", "tensors"),
    [
        ("llama-bf16", ["model.norm.weight", "lm_head.weight"]),
        ("qwen2-sharded", ["model.norm.weight", "lm_head.weight"]),
        ("gpt2-tied", ["transformer.ln_f.weight", "transformer.ln_f.bias", "transformer.wte.weight"]),
    ],
)
def test_topk_reads_only_the_norm_and_the_head(sample, tensors, hub, tmp_path):
    folder = SAMPLES / sample
    hub.reset_counts()
    run_json("topk", f"hf://sample_weights/{sample}", folder / "hidden.npy", "-k", "2")
    expected = header_bytes(folder) + tensor_bytes(folder, *tensors)
    assert hub.bytes_served("lfs") == expected
    # in chunks: one ranged request per chunk of 100 rows, the same bytes in all
    rows = run_json("count", folder)["vocab_size"]
    row_bytes = tensor_bytes(folder, tensors[-1]) // rows
    hub.reset_counts()
    run_json("topk", f"hf://sample_weights/{sample}", folder / "hidden.npy", "--chunk-rows", "100", "--include-padded")
    assert hub.bytes_served("lfs") == expected
    files = 2 if (folder / "model.safetensors.index.json").is_file() else 1
    ranged = hub.requests("lfs")
    n_chunks = (rows + 99) // 100
    assert len(ranged) == 2 * files + len(tensors) - 1 + n_chunks
    assert [r.body_bytes for r in ranged[-n_chunks:]] == [min(100, rows - i) * row_bytes for i in range(0, rows, 100)]


QUANT = ROOT / "tests" / "fixtures" / "quant"
QUANTIZED_HEADS = sorted(p.name for p in QUANT.iterdir() if p.is_dir() and p.name != "mxfp4")  # mxfp4's head is dense
NOT_READ = ("lm_head.input_scale", "lm_head.weight_format")  # activation scale, format flag: no part of the weight's values


def stored_names(folder: Path) -> list[str]:
    names = []
    for file in folder.glob("*.safetensors"):
        raw = file.read_bytes()
        names += [n for n in json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")]) if n != "__metadata__"]
    return names


def is_state(name: str) -> bool:
    """Read when the checkpoint is opened, for every module: the dense shape is in them (bitsandbytes, compressed-tensors)."""
    return ".quant_state." in name or name.endswith(".weight_shape")


def head_parts(folder: Path) -> list[str]:
    """The stored tensors of the quantized head read for its values (the data, its scales, zero points, maps)."""
    return [n for n in stored_names(folder) if n.startswith("lm_head") and n not in NOT_READ and not is_state(n)]


@pytest.mark.parametrize("case", QUANTIZED_HEADS)
def test_a_quantized_head_is_dequantized_over_hf_from_its_own_bytes(case, hub, monkeypatch, tmp_path):
    """topk and check-tying --fetch-values over hf:// dequantize the head from ranged reads of its stored tensors:
    the local answers, and the bytes are the headers, the norm (or the embedding) and each of the head's tensors
    once (in one chunk; in 7 chunks, GPTQ's and AWQ's input-major words by windows of columns)."""
    from lmhead_cli.formats import remote

    folder = QUANT / case
    hub.add_repo(f"quant/{case}", folder)
    hidden = tmp_path / "h.npy"
    with np.load(folder / "reference.npz") as npz:
        np.save(hidden, npz["hidden"])
    url = f"hf://quant/{case}"
    states = [n for n in stored_names(folder) if is_state(n)]
    one_pass = header_bytes(folder) + tensor_bytes(folder, *states, "model.norm.weight", *head_parts(folder))
    local = answer("topk", folder, hidden, "-k", "4")
    hub.reset_counts()
    assert without_paths(answer("topk", url, hidden, "-k", "4")[1]) == approx_json(without_paths(local[1]))
    assert hub.bytes_served("lfs") == one_pass
    local = answer("check-tying", folder, "--full")
    hub.reset_counts()
    fetched = answer("check-tying", url, "--fetch-values", "--full")
    assert (fetched[0], without_paths(fetched[1])) == (local[0], approx_json(without_paths(local[1])))
    assert fetched[1]["comparison"]["rows_compared"] == 320
    values = tensor_bytes(folder, "model.embed_tokens.weight", *head_parts(folder))
    assert hub.bytes_served("lfs") == header_bytes(folder) + tensor_bytes(folder, *states) + values  # each byte once
    said = re.search(r"reading up to ([\d,]+) bytes", run("check-tying", url, "--fetch-values").stderr)
    every = tensor_bytes(folder, "model.embed_tokens.weight", *(n for n in stored_names(folder) if n.startswith("lm_head")))
    assert said is not None and values <= int(said[1].replace(",", "")) <= every  # "up to": the scales and maps too
    local = answer("topk", folder, hidden, "-k", "4", "--chunk-rows", "48")
    monkeypatch.setattr(remote, "COLUMN_GAP_BYTES", 0)  # each row's span alone, as for a real head's rows of 100s of KiB
    monkeypatch.setattr(remote, "COLUMN_WINDOW_BYTES", 3072)  # column windows of 2 chunks of 48 rows, as a real head's 32 MiB
    hub.reset_counts()
    assert without_paths(answer("topk", url, hidden, "-k", "4", "--chunk-rows", "48")[1]) == approx_json(without_paths(local[1]))
    if case in ("gptq", "gptq_act_order", "awq"):  # column ranges fetched as windows: every byte once
        assert hub.bytes_served("lfs") == one_pass
        # header (2), norm, then qweight's rows once per window of 96 outputs (4 windows), qzeros and scales whole
        # (they fit a window), g_idx whole: GPTQ's qweight [8, 320] 8 rows, AWQ's [64, 40] 64 rows
        assert len(hub.requests("lfs")) == 2 + 1 + (1 + 4 * 8 + 1 + 1 if case != "awq" else 4 * 64 + 1 + 1)
    else:  # row ranges: a block scale two chunks share (FP8 block, nested absmax) is fetched by both
        assert one_pass <= hub.bytes_served("lfs") <= one_pass + 8 * -(-320 // 48)


def test_fetch_values_says_how_many_bytes_first(hub):
    result = run("check-tying", "hf://sample_weights/llama-bf16", "--fetch-values")
    value_bytes = tensor_bytes(SAMPLES / "llama-bf16", "model.embed_tokens.weight", "lm_head.weight")
    assert f"note: --fetch-values: reading up to {value_bytes:,} bytes of embedding and head values" in result.stderr
    hub.reset_counts()
    run("check-tying", "hf://sample_weights/llama-bf16", "--fetch-values")
    assert hub.bytes_served("lfs") == header_bytes(SAMPLES / "llama-bf16") + value_bytes  # each row fetched once
    result = run("check-tying", "hf://sample_weights/llama-bf16")
    assert "values not compared (they are read only with --fetch-values: 131,072 bytes)" in result.stdout
    result = run("doctor", "hf://sample_weights/llama-bf16", "--full", ok=False)
    assert result.exit_code == 2
    assert "error: hf://sample_weights/llama-bf16: --full compares every value, and hf:// reads values only when asked" in result.stderr
    assert "hint: add --fetch-values" in result.stderr


def test_remote_flag_and_revisions(hub, tmp_path):
    repo = hub.add_repo("org/model", SAMPLES / "gpt2-tied", revisions={"v2": SAMPLES / "llama-bf16"})
    assert run_json("count", "org/model", "--remote")["architecture"] == "gpt2"
    assert run_json("count", "hf://org/model@v2")["architecture"] == "llama"
    assert run_json("count", "org/model", "--remote", "--revision", "v2")["architecture"] == "llama"
    assert run_json("count", f"hf://org/model@{repo.commits['v2']}")["architecture"] == "llama"
    result = run("count", "hf://org/model@v2", "--revision", "main", ok=False)
    assert result.exit_code == 2 and "give one" in result.stderr
    result = run("count", "hf://org/model@nope", ok=False)
    assert result.exit_code == 2 and "no such revision" in result.stderr


def test_redirects_and_range_requests(hub):
    hub.reset_counts()
    run_json("count", "hf://sample_weights/llama-bf16")
    hub_side = [r for r in hub.requests("json") if "model.safetensors" in r.path]
    assert hub_side and all(r.status == 302 for r in hub_side)  # resolve -> the storage host
    cdn = hub.requests("lfs")
    assert [(r.range, r.status) for r in cdn] == [("bytes=0-7", 206), (f"bytes=8-{header_bytes(SAMPLES / 'llama-bf16') - 1}", 206)]


# ---------------------------------------------------------------- failures


def test_missing_repo_is_one_line(hub):
    result = run("count", "hf://org/absent", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: hf://org/absent: no repo org/absent on {hub.endpoint}, or it is private" in result.stderr
    assert "hf auth login" in result.stderr and "huggingface-cli" not in result.stderr


def test_gated_repo_says_how_to_authenticate(hub, monkeypatch):
    hub.add_repo("org/gated", SAMPLES / "llama-bf16", gated=True)
    result = run("count", "hf://org/gated", ok=False)
    assert result.exit_code == 2
    assert "org/gated is a gated repo: reading its files needs an authenticated account" in result.stderr
    assert f"accept its conditions at {hub.endpoint}/org/gated" in result.stderr
    assert "hf auth login" in result.stderr and "huggingface-cli" not in result.stderr and "HF_TOKEN" in result.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_value")
    result = run("count", "hf://org/gated", ok=False)
    assert "the token in use has not been granted access" in result.stderr
    assert "hf_wrong_secret_value" not in result.output + result.stderr
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert run_json("count", "hf://org/gated")["architecture"] == "llama"
    assert run_json("topk", "hf://org/gated", SAMPLES / "llama-bf16" / "hidden.npy")["positions"]


def test_private_repo(hub, monkeypatch):
    hub.add_repo("org/private", SAMPLES / "gpt2-tied", private=True)
    result = run("count", "hf://org/private", ok=False)
    assert result.exit_code == 2 and "or it is private" in result.stderr
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert run_json("count", "hf://org/private")["architecture"] == "gpt2"


def test_a_dropped_connection_is_retried(hub, tmp_path):
    hub.faults["model.safetensors"] = Fault(drop=True, times=2)
    data = run_json("topk", "hf://sample_weights/llama-bf16", SAMPLES / "llama-bf16" / "hidden.npy", "-k", "2")
    assert without_paths(data) == approx_json(
        without_paths(run_json("topk", SAMPLES / "llama-bf16", SAMPLES / "llama-bf16" / "hidden.npy", "-k", "2"))
    )
    assert hub.faults["model.safetensors"].times == 0  # both drops happened


def test_a_connection_that_keeps_dropping_is_one_line(hub):
    hub.faults["model.safetensors"] = Fault(drop=True)
    result = run("count", "hf://sample_weights/llama-bf16", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: hf://sample_weights/llama-bf16/model.safetensors: reading bytes 0–7 failed after 5 tries" in result.stderr
    assert "of 8 bytes" in result.stderr


def test_more_bytes_than_asked_are_not_used(hub):
    hub.faults["model.safetensors"] = Fault(extra=1000)
    remote = run_json("topk", "hf://sample_weights/llama-bf16", SAMPLES / "llama-bf16" / "hidden.npy", "-k", "2")
    local = run_json("topk", SAMPLES / "llama-bf16", SAMPLES / "llama-bf16" / "hidden.npy", "-k", "2")
    assert without_paths(remote) == approx_json(without_paths(local))


def test_a_server_ignoring_ranges_is_refused(hub):
    hub.faults["model.safetensors"] = Fault(ignore_range=True)
    result = run("count", "hf://sample_weights/llama-bf16", ok=False)
    assert result.exit_code == 2 and "it ignores range requests" in result.stderr


def test_server_errors_are_retried_then_reported(hub):
    hub.faults["model.safetensors"] = Fault(status=503, times=1)
    assert run_json("count", "hf://sample_weights/llama-bf16")["architecture"] == "llama"
    hub.faults["model.safetensors"] = Fault(status=503)
    result = run("count", "hf://sample_weights/llama-bf16", ok=False)
    assert result.exit_code == 2 and "failed after 5 tries: the server answered 503" in result.stderr


def test_a_missing_shard_on_the_hub_is_named(hub, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (SAMPLES / "qwen2-sharded").iterdir():
        if f.name != "model-00002-of-00002.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    hub.add_repo("org/broken", broken)
    result = run("count", "hf://org/broken", ok=False)
    assert result.exit_code == 2 and "names shard 'model-00002-of-00002.safetensors', which the repo does not have" in result.stderr


def test_a_repo_without_safetensors_or_gguf(hub, tmp_path):
    folder = tmp_path / "torch"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
    hub.add_repo("org/torch", folder)
    result = run("count", "hf://org/torch", ok=False)
    assert result.exit_code == 2 and "no safetensors or GGUF weights in the repo; it has pytorch_model.bin" in result.stderr
    assert "(hf download org/torch)" in result.stderr


def test_bad_urls(hub):
    for url, reason in (("hf://not-a-repo", "not a Hugging Face repo id"), ("hf://org/name@", "empty revision")):
        result = run("count", url, ok=False)
        assert result.exit_code == 2 and reason in result.stderr
    assert hub.requests() == []


def test_offline_refuses_hf_urls_and_bare_ids_never_go_online(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset_counts()
    result = run("count", "hf://sample_weights/llama-bf16", ok=False)
    assert result.exit_code == 2 and "HF_HUB_OFFLINE is set" in result.stderr
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = run("count", "sample_weights/llama-bf16-absent", ok=False)  # a repo id, not in the cache
    assert result.exit_code == 2 and "not in the local Hugging Face cache" in result.stderr
    assert hub.requests() == []


# ---------------------------------------------------------------- as a person runs it


def _lmhead(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lmhead_cli", *map(str, args)], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_environment_variables_in_a_fresh_process(fake_hub, tmp_path):
    """HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE as huggingface_hub reads them at import."""
    fake_hub.add_repo("org/gated", SAMPLES / "qwen2-sharded", gated=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=fake_hub.endpoint, HF_HOME=str(tmp_path / "home"))
    denied = _lmhead("count", "hf://org/gated", env=env)
    assert denied.returncode == 2 and "is a gated repo" in denied.stderr
    done = _lmhead("count", "hf://org/gated", "--json", env={**env, "HF_TOKEN": VALID_TOKEN})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["vocab_size"] == 450 and VALID_TOKEN not in done.stdout + done.stderr
    assert (tmp_path / "home" / "hub" / "models--org--gated" / "blobs").is_dir()  # config and index cached as huggingface_hub caches
    offline = _lmhead("count", "hf://org/gated", env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set" in offline.stderr


def test_topk_progress_shows_bytes_fetched(fake_hub, tmp_path):
    """Under a pseudo-terminal: the bar on stderr counts the bytes fetched."""
    import pty

    fake_hub.add_repo("org/llama", SAMPLES / "llama-bf16")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=fake_hub.endpoint, HF_HOME=str(tmp_path / "home"), COLUMNS="120", TERM="xterm")
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmhead_cli", "topk", "hf://org/llama", str(SAMPLES / "llama-bf16" / "hidden.npy"), "-k", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=child,
        stdin=subprocess.DEVNULL,
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, out
    os.close(main)
    assert b"fetched" in out and b"projecting" in out, out


def test_a_file_gone_from_the_hub_is_one_line(hub):
    hub.faults["model.safetensors"] = Fault(status=404)
    result = run("count", "hf://sample_weights/llama-bf16", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: hf://sample_weights/llama-bf16/model.safetensors: the hub answered 404: no such file at this revision" in result.stderr


def test_an_unreachable_endpoint_is_one_line(hf_home, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = run("count", "hf://org/model", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: hf://org/model: cannot reach http://127.0.0.1:{port}: ConnectError" in result.stderr


def test_the_token_stays_on_the_hub(hub, monkeypatch):
    """Files redirect to the storage host (another origin): the token goes to the hub only."""
    hub.add_repo("org/gated", SAMPLES / "llama-bf16", gated=True)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    hub.reset_counts()
    run_json("topk", "hf://org/gated", SAMPLES / "llama-bf16" / "hidden.npy")
    assert hub.requests("lfs") and not any(r.authorized for r in hub.requests("lfs"))
    assert all(r.authorized for r in hub.requests("api") + hub.requests("json"))


@pytest.mark.parametrize(
    "header, reason",
    [
        ({"__metadata__": {"format": 1}}, "__metadata__ must map names to strings"),
        ({f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(200_001)}, "lists about 200,001 tensors"),
    ],
    ids=["metadata-not-strings", "too-many-tensors"],
)
def test_a_header_is_held_to_the_local_rules_over_hf(header, reason, hub, tmp_path):
    """One validator: what a local file is refused for, the same file on the hub is refused for too (the
    remote reader once skipped the __metadata__ check and the tensor-count cap)."""
    from hostile import st_bytes

    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(st_bytes(header, b""))
    local = run("count", folder, ok=False)
    hub.add_repo("org/odd", folder)
    remote = run("count", "hf://org/odd", ok=False)
    assert local.exit_code == remote.exit_code == 2
    assert reason in local.stderr and reason in remote.stderr


def test_doctor_over_hf_is_not_verified_when_the_tie_hangs_on_unread_values(hub, tmp_path):
    from builders import llama_config, llama_tensors, write_checkpoint

    folder = write_checkpoint(tmp_path / "tied-config", llama_tensors(), llama_config(tied=True))  # a head of its own is stored
    url = f"hf://{hub.add_repo('org/tied-config', folder).repo_id}"
    result = CliRunner().invoke(cli, ["doctor", url])
    assert result.exit_code == 0, result.output
    verdict = result.stdout.splitlines()[1]
    assert "not verified" in verdict and "healthy" not in verdict, result.stdout
    assert "without --fetch-values" in result.stdout
    _, data = answer("doctor", url)
    assert sum("without --fetch-values" in w for w in data["warnings"]) == 1  # once, not once per layer that knows it
    fetched = CliRunner().invoke(cli, ["doctor", url, "--fetch-values"])
    assert fetched.exit_code == 1 and "problem found" in fetched.stdout  # values read: the tied config's own head is a problem
