"""Robustness: odd paths, odd files and odd options each exit 0/1/2 promptly, with one line where they fail.

Every path the user names is a regular file read under a size cap; values the math cannot use
are bad input; every error, click's included, reads ``error: <path>: <reason>``; the JSON is
strict UTF-8. Cases that need a real limit (an address-space cap, a non-root user) run the CLI
in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save as save_safetensors

from lmhead_cli.cli import cli

from conftest import ROOT
from hostile import D, V, checkpoint_dir, config_json, gguf_bytes, npy_array, npz_bomb, sharded_checkpoint, valid_checkpoint, write


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_input_error(result, path: Path | str, match: str) -> str:
    """Exit 2, ``error: <path>: <reason>`` on one line (a hint may follow), no traceback."""
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith(f"error: {path}: "), result.stderr
    assert "internal error" not in lines[0], result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert re.search(match, lines[0]), lines[0]
    assert not result.stdout, result.stdout
    return lines[0]


class Blocked(BaseException):
    pass


@pytest.fixture
def no_hang():
    """Fail (rather than hang the suite) when a command blocks for 20 s."""

    def blocked(signum, frame):
        raise Blocked("lmhead blocked on its input")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def hidden(tmp_path: Path, shape: tuple[int, ...] = (3, D)) -> Path:
    return write(tmp_path / "hidden.npy", npy_array(np.ones(shape, np.float32)))


def cli_process(*args: object, limit_as: int | None = None, timeout: float = 60, drop_privileges: bool = False):
    """The CLI in a fresh process: under an address-space limit, or as root without the power to ignore permissions."""
    setup = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit_as}, {limit_as}))" if limit_as else ""
    script = textwrap.dedent(
        f"""
        import sys
        {setup}
        sys.path.insert(0, {str(ROOT)!r})
        from lmhead_cli.cli import cli
        cli(sys.argv[1:], prog_name="lmhead")
        """
    )
    command = [sys.executable, "-c", script, *map(str, args)]
    if drop_privileges and os.geteuid() == 0:
        # root reads every file: drop the capabilities that let it, so permissions apply as to anyone
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


# ---------------------------------------------------------------- 1. only regular files, never blocking


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_tokenizer_that_is_a_pipe_is_refused_without_opening_it(tmp_path, no_hang):
    ckpt = valid_checkpoint(tmp_path / "m")
    pipe = _fifo(tmp_path / "tokenizer.json")
    for args in (["count", ckpt], ["doctor", ckpt], ["topk", ckpt, hidden(tmp_path)]):
        assert_input_error(invoke(*args, "--tokenizer", pipe), pipe, r"tokenizer is a pipe \(FIFO\), not a regular file$")


def test_tokenizer_linked_to_dev_zero_is_refused(tmp_path, no_hang):
    ckpt = valid_checkpoint(tmp_path / "m")
    link = tmp_path / "tokenizer.json"
    link.symlink_to("/dev/zero")
    for args in (["count", ckpt], ["doctor", ckpt], ["topk", ckpt, hidden(tmp_path)]):
        assert_input_error(invoke(*args, "--tokenizer", link), link, r"tokenizer is a device, not a regular file$")


def test_tokenizer_beside_the_checkpoint_that_is_a_pipe_is_an_error(tmp_path, no_hang):
    ckpt = valid_checkpoint(tmp_path / "m")
    pipe = _fifo(ckpt / "tokenizer.json")
    assert_input_error(invoke("count", ckpt), pipe, r"tokenizer is a pipe")


def test_huge_tokenizer_is_refused_before_reading(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    big = tmp_path / "tokenizer.json"
    with open(big, "wb") as f:
        f.truncate(2**30 + 1)  # sparse
    match = r"tokenizer is 1,073,741,825 bytes; lmhead reads tokenizer files up to"
    assert_input_error(invoke("count", ckpt, "--tokenizer", big), big, match)


def test_targets_file_that_is_a_pipe_is_refused(tmp_path, no_hang):
    ckpt = valid_checkpoint(tmp_path / "m")
    pipe = _fifo(tmp_path / "targets.npy")
    assert_input_error(invoke("topk", ckpt, hidden(tmp_path), "--targets", pipe), pipe, r"target ids file is a pipe")


@pytest.mark.parametrize("kind", ["pipe", "dev-zero", "directory"])
def test_hidden_states_that_are_not_regular_files(tmp_path, no_hang, kind):
    ckpt = valid_checkpoint(tmp_path / "m")
    path = tmp_path / "h.npy"
    if kind == "pipe":
        _fifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    expected = {"pipe": r"is a pipe \(FIFO\)", "dev-zero": r"is a device", "directory": r"is a directory"}[kind]
    assert_input_error(invoke("topk", ckpt, path), path, expected + ", not a regular file$")


@pytest.mark.parametrize("kind", ["pipe", "directory", "dangling link"])
def test_config_that_is_not_a_regular_file_is_an_error(tmp_path, no_hang, kind):
    folder = valid_checkpoint(tmp_path / "m")
    config = folder / "config.json"
    config.unlink()
    if kind == "pipe":
        _fifo(config)
    elif kind == "directory":
        config.mkdir()
    else:
        config.symlink_to(tmp_path / "gone.json")
    expected = {"pipe": r"config is a pipe", "directory": r"config is a directory", "dangling link": r"config: no such file"}[kind]
    for args in (["count", folder], ["check-tying", folder], ["doctor", folder], ["topk", folder, hidden(tmp_path)]):
        assert_input_error(invoke(*args), config, expected)


def test_npz_inflating_to_4_gib_fails_before_inflating(tmp_path):
    """4 MB on disk, 4 GiB declared and inflated: refused from the declared shape, under a 1 GiB address space."""
    ckpt = valid_checkpoint(tmp_path / "m")
    bomb = write(tmp_path / "h.npz", npz_bomb((2**27, D), 2**32 + 128))
    assert bomb.stat().st_size < 5 * 2**20
    wrong_width = write(tmp_path / "w.npz", npz_bomb((2**30,), 2**32 + 128))
    cases = [
        (bomb, r"shape \[134217728, 8\] is 4,294,967,296 bytes as float32; lmhead reads hidden states up to 2,147,483,648 bytes"),
        (wrong_width, r"last dimension is 1073741824, but the model's hidden size is 8"),
    ]
    for path, match in cases:
        start = time.monotonic()
        proc = cli_process("topk", ckpt, path, limit_as=2**30)
        assert time.monotonic() - start < 20
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"error: {path}: ") and re.search(match, proc.stderr), proc.stderr


def test_npz_member_is_read_only_up_to_its_declared_shape(tmp_path):
    """The member's .npy header claims 3 states; reading stops there whatever the stream would inflate to."""
    ckpt = valid_checkpoint(tmp_path / "m")
    small = write(tmp_path / "h.npz", npz_bomb((3, D), 3 * D * 4 + 128))
    result = invoke("topk", ckpt, small, "--json")
    assert result.exit_code == 0, result.output
    assert [row["position"] for row in json.loads(result.stdout)["positions"]] == [0, 1, 2]


def test_hidden_states_bigger_than_the_cap_are_refused_from_the_header(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    from hostile import npy_bytes

    big = tmp_path / "h.npy"
    write(big, npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (2**27, D)}))
    with open(big, "r+b") as f:
        f.truncate(big.stat().st_size + 2**32)  # sparse: the data is all there
    assert_input_error(invoke("topk", ckpt, big), big, r"is 4,294,967,296 bytes as float32; lmhead reads hidden states up to")


# ---------------------------------------------------------------- 2. values the math cannot use


BAD_VALUES = {
    "eps NaN": ({"rms_norm_eps": float("nan")}, "llama", r"config rms_norm_eps=nan is not a valid epsilon \(must be ≥ 0\)"),
    "eps 1e400": ('"rms_norm_eps": 1e400', "llama", r"config rms_norm_eps=inf is not a valid epsilon \(must be finite\)"),
    "eps 10**400": ('"rms_norm_eps": 1' + "0" * 400, "llama", r"config rms_norm_eps=10000000…\(401 digits\) is not a valid epsilon"),
    "eps negative": ({"rms_norm_eps": -1e-6}, "llama", r"config rms_norm_eps=-1e-06 is not a valid epsilon \(must be ≥ 0\)"),
    "eps a string": ({"rms_norm_eps": "1e-6"}, "llama", r'config rms_norm_eps="1e-6" is not a valid epsilon \(not a number\)'),
    "eps a list": ({"rms_norm_eps": [1e-6]}, "llama", r"config rms_norm_eps=\[1e-06\] is not a valid epsilon \(not a number\)"),
    "softcap a string": (
        {"final_logit_softcapping": "30"},
        "gemma2",
        r'final_logit_softcapping="30" is not a valid softcap \(not a number',
    ),
    "softcap NaN": ({"final_logit_softcapping": float("nan")}, "gemma2", r"config final_logit_softcapping=nan is not a valid softcap"),
    "softcap inf": ('"final_logit_softcapping": 1e400', "gemma2", r"final_logit_softcapping=inf is not a valid softcap \(must be finite\)"),
    "softcap negative": ({"final_logit_softcapping": -30.0}, "gemma2", r"softcap \(must be positive\)"),
    "logit_scale NaN": ({"logit_scale": float("nan")}, "cohere", r"config logit_scale=nan is not a valid scale \(must be finite\)"),
    "logit_scale -inf": ('"logit_scale": -1e400', "cohere", r"config logit_scale=-inf is not a valid scale \(must be finite\)"),
    "logit_scale negative": ({"logit_scale": -0.5}, "cohere", r"logit_scale=-0.5 is not a valid scale \(must be positive"),
    "logits_scaling tiny": ({"logits_scaling": 1e-300}, "granite", r"logits_scaling=1e-300 is not a valid divide \(is too small"),
    "logits_scaling 10**400": ('"logits_scaling": 1' + "0" * 400, "granite", r"logits_scaling=10000000…\(401 digits\) is not a valid"),
    # transformers applies a config's value unless it is None: 0 divides by zero (softcap, Granite) or zeroes every logit
    # (Cohere). Only llama.cpp reads 0 as "off" (GGUF metadata).
    "softcap 0": ({"final_logit_softcapping": 0.0}, "gemma2", r"final_logit_softcapping=0.0 is not a valid softcap \(is too small"),
    "logit_scale 0": ({"logit_scale": 0}, "cohere", r"config logit_scale=0 is not a valid scale \(is too small"),
    "logits_scaling 0": ({"logits_scaling": 0.0}, "granite", r"logits_scaling=0.0 is not a valid divide \(is too small"),
}


def _config_with(model_type: str, change: dict | str) -> str:
    base = json.loads(config_json(model_type=model_type))
    if isinstance(change, dict):
        return json.dumps({**base, **change})  # NaN written as the literal NaN, which Python's json reads
    return json.dumps(base)[:-1] + ", " + change + "}"


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_values_the_math_cannot_use_are_bad_input(tmp_path, case):
    change, model_type, match = BAD_VALUES[case]
    folder = checkpoint_dir(tmp_path / "m", _weights(), _config_with(model_type, change))
    config = folder / "config.json"
    assert_input_error(invoke("topk", folder, hidden(tmp_path)), config, match)
    assert_input_error(invoke("topk", folder, hidden(tmp_path), "--json"), config, match)
    doctor = invoke("doctor", folder, "--json")
    assert doctor.exit_code == 1, doctor.output + repr(doctor.exception)  # a problem found, not "healthy"
    report = json.loads(doctor.stdout)
    assert report["healthy"] is False
    assert any(re.search(match, p) for p in report["problems"]), report["problems"]
    text = invoke("doctor", folder)
    assert text.exit_code == 1 and "healthy" not in text.stdout.splitlines()[1], text.stdout
    assert_input_error(invoke("count", folder), config, match)


@pytest.mark.parametrize("case", ["eps 10**400", "eps a string"])
def test_doctor_prints_the_unusable_epsilon_as_the_file_has_it(tmp_path, case):
    change, model_type, _ = BAD_VALUES[case]
    folder = checkpoint_dir(tmp_path / "m", _weights(), _config_with(model_type, change))
    line = next(x for x in invoke("doctor", folder).stdout.splitlines() if x.startswith("final norm"))
    shown = "10000000…(401 digits)" if "400" in case else '"1e-6"'
    assert f"(config rms_norm_eps={shown} is unusable; 1e-06 in its place)" in line, line  # never "absent", never a made-up value


def test_a_config_number_too_long_for_python_is_bad_input(tmp_path):
    folder = checkpoint_dir(tmp_path / "m", _weights(), _config_with("llama", '"rms_norm_eps": 1' + "0" * 5000))
    assert_input_error(invoke("count", folder), folder / "config.json", r"config holds a number lmhead cannot read")


def _weights() -> bytes:
    from hostile import valid_safetensors

    return valid_safetensors()


def test_gguf_with_a_nan_epsilon_is_bad_input(tmp_path):
    import struct

    blob = gguf_bytes()
    eps = struct.pack("<f", 1e-5)
    assert blob.count(eps) == 1
    file = write(tmp_path / "model.gguf", blob.replace(eps, struct.pack("<f", float("nan"))))
    match = r"GGUF metadata llama\.attention\.layer_norm_rms_epsilon=nan is not a valid epsilon"
    assert_input_error(invoke("topk", file, hidden(tmp_path)), file, match)
    assert invoke("doctor", file).exit_code == 1


@pytest.mark.parametrize("ids", ["1,2,9223372036854775808", "1,2,99999999999999999999999", "1,2,-9223372036854775809"])
def test_target_ids_beyond_64_bits_are_bad_input(tmp_path, ids):
    ckpt = valid_checkpoint(tmp_path / "m")
    match = r"id -?\d+ is (negative|larger than any vocabulary)"
    assert_input_error(invoke("topk", ckpt, hidden(tmp_path), "--targets", ids), "--targets", match)


def test_uint64_target_file_beyond_int64_is_bad_input(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    targets = write(tmp_path / "t.npy", npy_array(np.array([1, 2, 2**63 + 5], dtype=np.uint64)))
    assert_input_error(
        invoke("topk", ckpt, hidden(tmp_path), "--targets", targets), targets, r"id 9223372036854775813 is larger than any vocabulary"
    )
    fine = write(tmp_path / "ok.npy", npy_array(np.array([1, 2, 3], dtype=np.uint64)))
    result = invoke("topk", ckpt, hidden(tmp_path), "--targets", fine, "--json")
    assert result.exit_code == 0, result.output
    assert [row["target"]["token_id"] for row in json.loads(result.stdout)["positions"]] == [1, 2, 3]


def test_json_is_utf8_even_for_a_lone_surrogate_in_the_config(tmp_path):
    folder = checkpoint_dir(tmp_path / "m", _weights(), config_json()[:-1] + ', "model_type": "llama\\udcff"}')
    out = subprocess.run(
        [sys.executable, "-m", "lmhead_cli", "count", str(folder), "--json", "--explain"],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": "utf-8:surrogateescape"},
    )
    assert out.returncode == 0, out.stderr
    assert b"\xff" not in out.stdout
    text = out.stdout.decode("utf-8")  # strict: raises on any byte that is not UTF-8
    assert json.loads(text)["architecture"] == "llama\udcff"


def test_json_never_holds_nan_or_infinity(tmp_path):
    """A head row of huge values overflows float32 logits to inf: the JSON says null, never a bare Infinity."""
    from hostile import llama_tensors

    t = llama_tensors()
    t["lm_head.weight"][3] = 3e38
    folder = checkpoint_dir(tmp_path / "m", save_safetensors(t), config_json())
    result = invoke("topk", folder, hidden(tmp_path), "--json", "--targets", "3,3,3")
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        assert "NaN" not in result.stdout and "Infinity" not in result.stdout
        json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


# ---------------------------------------------------------------- 3. every error names a path


@pytest.mark.parametrize(
    "args, path, match",
    [
        (["count"], "CKPT", r"missing argument$"),
        (["topk", "CKPT_DIR"], "HIDDEN", r"missing argument$"),
        (["topk", "CKPT_DIR", "H", "-k", "0"], "-k", r"0 is not in the range x>=1$"),
        (["count", "CKPT_DIR", "--frobnicate"], "--frobnicate", r"no such option( \(did you mean --\w+\?\))?$"),
        (["check-tying", "CKPT_DIR", "--expect", "maybe"], "--expect", r"'maybe' is not one of 'tied', 'untied'$"),
        (["topk", "CKPT_DIR", "H", "--chunk-rows", "x"], "--chunk-rows", r"'x' is not a valid integer range$"),
        (["topk", "CKPT_DIR", "H", "--targets", "1", "--text", "a"], "--targets", r"give --targets or --text, not both$"),
        (["topk", "CKPT_DIR", "H", "--last-normed"], "--last-normed", r"goes with --layers$"),
        (["topk", "CKPT_DIR", "H", "--positions", "7"], "--positions", r"7 is outside the 3 positions in the file$"),
        (["topk", "CKPT_DIR", "H", "--positions", "a"], "--positions", r"'a' is not an integer or a start:stop range$"),
        (["topk", "CKPT_DIR", "H", "--targets", "1,x"], "--targets", r"'1,x' is not a comma-separated list of ids"),
        (["topk", "CKPT_DIR", "H", "--targets", "1"], "--targets", r"gives 1 target ids for 3 positions"),
        (["topk", "CKPT_DIR", "H", "--text", "a b c d e f g"], "--text", r"needs a tokenizer\.json|encodes to"),
        (["frobnicate"], "cli", r"no such command 'frobnicate'$"),  # "cli": CliRunner's program name
    ],
)
def test_argument_errors_are_one_line_naming_the_parameter(tmp_path, args, path, match):
    ckpt = valid_checkpoint(tmp_path / "m")
    h = hidden(tmp_path)
    args = [ckpt if a == "CKPT_DIR" else h if a == "H" else a for a in args]
    line = assert_input_error(invoke(*args), path, match)
    assert "Usage:" not in line


def test_text_that_does_not_fit_names_the_option(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(V)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ckpt = valid_checkpoint(tmp_path / "m")
    tok.save(str(ckpt / "tokenizer.json"))
    assert_input_error(invoke("topk", ckpt, hidden(tmp_path), "--text", "w1 w2 w3 w4 w5 w6"), "--text", r"encodes to 6 tokens")


def test_an_unreadable_checkpoint_or_hidden_file_is_one_line(tmp_path):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot apply")
    ckpt = valid_checkpoint(tmp_path / "m")
    h = hidden(tmp_path)
    (ckpt / "model.safetensors").chmod(0)
    h.chmod(0)
    good = valid_checkpoint(tmp_path / "good")
    for args, path in ((["count", ckpt], ckpt / "model.safetensors"), (["topk", good, h], h)):
        proc = cli_process(*args, drop_privileges=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"error: {path}: cannot read: Permission denied"), proc.stderr
        assert "Usage" not in proc.stderr


def test_checkpoint_inside_a_folder_without_search_permission(tmp_path):
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot apply")
    outer = tmp_path / "locked"
    ckpt = valid_checkpoint(outer / "m")
    outer.chmod(0o600)  # readable, not searchable
    try:
        proc = cli_process("count", ckpt, drop_privileges=True)
    finally:
        outer.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {ckpt}: cannot read: Permission denied"), proc.stderr


def test_index_naming_a_shard_over_255_bytes(tmp_path):
    name = "x" * 300 + ".safetensors"
    folder = sharded_checkpoint(tmp_path / "m", {"lm_head.weight": name})
    index = folder / "model.safetensors.index.json"
    assert_input_error(invoke("count", folder), index, rf"shard '{name}': file name too long$")


def test_shard_linked_to_itself(tmp_path):
    folder = sharded_checkpoint(tmp_path / "m")
    shard = folder / "model-00002-of-00002.safetensors"
    shard.unlink()
    shard.symlink_to(shard.name)
    index = folder / "model.safetensors.index.json"
    for args in (["count", folder], ["doctor", folder]):
        assert_input_error(invoke(*args), index, r"shard 'model-00002-of-00002.safetensors': too many levels of symbolic links")


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2"])
def test_fp8_hidden_states_safetensors_are_read(tmp_path, dtype):
    import ml_dtypes

    np_dtype = {"F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}[dtype]
    values = np.array([[0.5, -1, 2, 0.25, 1, 1, -0.5, 3]] * 3, dtype=np_dtype)
    h = write(tmp_path / "h.safetensors", save_safetensors({"h": values}))
    fp32 = write(tmp_path / "h32.npy", npy_array(values.astype(np.float32)))
    ckpt = valid_checkpoint(tmp_path / "m")
    a, b = invoke("topk", ckpt, h, "--json"), invoke("topk", ckpt, fp32, "--json")
    assert a.exit_code == 0, a.output
    assert json.loads(a.stdout)["positions"] == json.loads(b.stdout)["positions"]


def test_fp4_hidden_states_are_refused_cleanly(tmp_path):
    import struct

    header = json.dumps({"h": {"dtype": "F4", "shape": [3, D], "data_offsets": [0, 12]}}).encode()
    h = write(tmp_path / "h.safetensors", struct.pack("<Q", len(header)) + header + bytes(12))
    assert_input_error(invoke("topk", valid_checkpoint(tmp_path / "m"), h), h, r"dtype F4 .*hidden states are floats")


def test_layers_with_zero_layers_is_bad_input(tmp_path):
    ckpt = valid_checkpoint(tmp_path / "m")
    h = write(tmp_path / "h.npy", npy_array(np.ones((0, 3, D), np.float32)))
    assert_input_error(invoke("topk", ckpt, h, "--layers", "--last-normed"), h, r"holds no states: its layer axis is empty$")
    empty = write(tmp_path / "e.npy", npy_array(np.ones((0, D), np.float32)))
    assert_input_error(invoke("topk", ckpt, empty), empty, r"holds no states: its position axis is empty$")


def test_gguf_with_no_tokens_is_bad_input(tmp_path):
    file = write(tmp_path / "model.gguf", gguf_bytes(tokens=[]))
    h = hidden(tmp_path)
    for args in (["topk", file, h], ["count", file], ["doctor", file]):
        assert_input_error(invoke(*args), file, r"tokenizer\.ggml\.tokens holds no tokens$")


@pytest.mark.parametrize("char, shown", [("\x07", "\\x07"), ("\x08", "\\x08"), ("\r", "\\r"), ("\x0b", "\\x0b"), ("\x0c", "\\x0c")])
def test_control_characters_rich_would_drop_are_shown(tmp_path, char, shown):
    name = f"x.lm_head{char}extra.weight"
    file = write(
        tmp_path / "m.safetensors",
        save_safetensors({"model.embed_tokens.weight": np.ones((8, 4), np.float32), name: np.ones((8, 4), np.float32)}),
    )
    for command in ("count", "check-tying", "doctor"):
        result = invoke(command, file)
        assert result.exit_code in (0, 1), result.output
        assert char not in result.stdout, command
        if command == "count":  # lists other head candidates by name
            assert f"x.lm_head{shown}extra.weight" in result.stdout, result.stdout


# ---------------------------------------------------------------- 4. no SIGBUS: a file that shrinks while it is read

TRUNCATING = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    import lmhead_cli.checkpoint.compare as compare
    compare.COMPARE_CHUNK_BYTES = 4096  # many chunks (read two at a time, in two threads): the file shrinks between them
    from lmhead_cli.checkpoint.checkpoint import Checkpoint
    target, args = sys.argv[1], sys.argv[2:]
    calls = [0]

    def shrinking(read):
        def wrapped(self, *a, **k):
            calls[0] += 1
            if calls[0] == int(os.environ.get("TRUNCATE_AT_CALL", "2")):  # after the first chunk: another process truncates it
                os.truncate(target, min(t.offset for t in self.tensors.values() if t.offset is not None) + 16)
            return read(self, *a, **k)
        return wrapped

    Checkpoint.read_rows = shrinking(Checkpoint.read_rows)
    Checkpoint.stored_rows = shrinking(Checkpoint.stored_rows)
    from lmhead_cli.cli import cli
    cli(args, prog_name="lmhead")
    """
)


@pytest.mark.parametrize("command", [["topk", "--chunk-rows", "64"], ["check-tying", "--full"], ["doctor", "--full"]])
def test_a_file_that_shrinks_while_read_is_an_error_not_a_sigbus(tmp_path, command):
    from builders import llama_config, llama_tensors, write_checkpoint

    t = llama_tensors(vocab=1024, hidden=64)
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()  # equal: the comparison reads every chunk
    folder = write_checkpoint(tmp_path / "m", t, llama_config(vocab=1024, hidden=64))
    weights = folder / "model.safetensors"
    h = write(tmp_path / "h.npy", npy_array(np.ones((3, 64), np.float32)))
    args = [command[0], folder, *([h] if command[0] == "topk" else []), *command[1:]]
    script = TRUNCATING.format(root=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script, str(weights), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # SIGBUS would be -7 (135 from a shell)
    assert proc.stderr.splitlines()[0] == f"error: {weights}: file changed while being read", proc.stderr


@pytest.mark.parametrize(("case", "shard"), [("gptq", "model.safetensors"), ("bnb_nf4", "model-00001-of-00002.safetensors")])
@pytest.mark.parametrize("command", [["topk", "--chunk-rows", "48"], ["check-tying", "--full"]])
def test_a_quantized_head_whose_file_shrinks_while_read_is_the_same_error(tmp_path, case, shard, command):
    """GPTQ (column ranges of input-major words) and bitsandbytes NF4 (byte ranges of flat codes): the parts are read
    by positioned reads like every other tensor, so a file cut short after the head's first chunk is one line, exit 2."""
    folder = tmp_path / case
    shutil.copytree(ROOT / "tests" / "fixtures" / "quant" / case, folder)
    weights = folder / shard
    h = write(tmp_path / "h.npy", npy_array(np.ones((3, 64), np.float32)))
    args = [command[0], folder, *([h] if command[0] == "topk" else []), *command[1:]]
    script = TRUNCATING.format(root=str(ROOT))
    at = "3" if command[0] == "topk" else "2"  # topk: the norm, the head's first chunk, then cut; check-tying: the embedding, then cut
    env = {**os.environ, "TRUNCATE_AT_CALL": at}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(weights), *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # SIGBUS would be -7
    assert proc.stderr.splitlines()[0] == f"error: {weights}: file changed while being read", proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_gguf_that_shrinks_while_read_is_the_same_error(tmp_path):
    gguf = write(tmp_path / "model.gguf", gguf_bytes(vocab=1024, hidden=64))
    h = write(tmp_path / "h.npy", npy_array(np.ones((3, 64), np.float32)))
    script = TRUNCATING.format(root=str(ROOT))
    args = ["topk", gguf, h, "--chunk-rows", "64"]
    proc = subprocess.run([sys.executable, "-c", script, str(gguf), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.splitlines()[0] == f"error: {gguf}: file changed while being read", proc.stderr


# ---------------------------------------------------------------- 5. header-only means header-only

GIB = 2**30


def _sparse(path: Path, head: bytes, size: int) -> Path:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)  # a hole: 3.2 GB that take no disk
    return path


def sparse_safetensors(folder: Path) -> Path:
    """A tied llama of 3.2 GB (an embedding of 400,000 × 2,000 F32 and a norm), all zeros, sparse."""
    import struct

    emb = 400_000 * 2_000 * 4
    header = {
        "model.embed_tokens.weight": {"dtype": "F32", "shape": [400_000, 2_000], "data_offsets": [0, emb]},
        "model.norm.weight": {"dtype": "F32", "shape": [2_000], "data_offsets": [emb, emb + 8_000]},
    }
    raw = json.dumps(header).encode()
    folder.mkdir()
    _sparse(folder / "model.safetensors", struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + emb + 8_000)
    (folder / "config.json").write_text(config_json(vocab_size=400_000, hidden_size=2_000, tie_word_embeddings=True))
    return folder


def sparse_gguf(path: Path) -> Path:
    """A llama GGUF of 3.2 GB: token_embd (400,000 × 2,000 F32) and output_norm, no output.weight (tied), sparse."""
    import struct

    from hostile import GGUF_FLOAT32, GGUF_STRING, GGUF_UINT32, gguf_kv, gguf_string

    kvs = [
        gguf_kv("general.architecture", GGUF_STRING, "llama"),
        gguf_kv("llama.embedding_length", GGUF_UINT32, 2_000),
        gguf_kv("llama.block_count", GGUF_UINT32, 0),
        gguf_kv("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, 1e-5),
    ]
    emb = 400_000 * 2_000 * 4
    infos = [
        gguf_string("token_embd.weight") + struct.pack("<I2QIQ", 2, 2_000, 400_000, 0, 0),
        gguf_string("output_norm.weight") + struct.pack("<I1QIQ", 1, 2_000, 0, emb),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % 32)
    return _sparse(path, head, len(head) + emb + 8_000)


@pytest.mark.parametrize("kind", ["safetensors", "gguf"])
def test_header_only_commands_work_under_a_2_gib_address_space_on_3_gb_files(tmp_path, kind):
    ckpt = sparse_safetensors(tmp_path / "m") if kind == "safetensors" else sparse_gguf(tmp_path / "model.gguf")
    size = sum(p.stat().st_size for p in ([ckpt] if ckpt.is_file() else ckpt.iterdir()))
    assert size > 3 * 10**9
    for command in (["count"], ["count", "--json"], ["check-tying"], ["doctor"]):
        proc = cli_process(*command, ckpt, limit_as=2 * GIB)
        assert proc.returncode in (0, 1), (command, proc.stderr)  # doctor may find problems (no tokenizer); never "out of memory"
        assert "error" not in proc.stderr, proc.stderr
    counted = json.loads(cli_process("count", "--json", ckpt, limit_as=2 * GIB).stdout)
    assert counted["total_params"] == 400_000 * 2_000 + 2_000


def test_a_100_mb_header_of_a_million_tensors_is_refused_promptly_in_bounded_memory(tmp_path):
    """Measured before: 21-55 s and 1.2 GB resident; now refused from a count of the raw header, before parsing."""
    import struct

    n = 1_340_000
    body = ",".join(f'"l.{i}.w":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}' for i in range(n))
    raw = ("{" + body + "}").encode()
    assert 90e6 < len(raw) < 100e6
    file = _sparse(tmp_path / "m.safetensors", struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + 4 * n)
    del raw, body
    start = time.monotonic()
    proc = cli_process("count", file, limit_as=GIB)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {file}: not a valid safetensors file: header lists about 1,340,000 tensors"), proc.stderr


@pytest.mark.parametrize("extra", [[], ["--json"], ["--layers"]])
def test_finite_states_whose_logits_overflow_are_bad_input(tmp_path, extra):
    """States of ~3e38 are finite (they pass the NaN/Inf check) but their logits overflow float32: before, topk printed
    `inf`/`nan` ranks with exit 0 and numpy's RuntimeWarnings on stderr; now one error line, exit 2."""
    sample = ROOT / "sample_weights" / "gpt2-tied"
    h = np.full((3, 64), 3e38, np.float32)
    h[0, ::2] = -3e38
    path = tmp_path / "huge.npy"
    np.save(path, h[None] if extra == ["--layers"] else h)
    proc = subprocess.run(
        [sys.executable, "-m", "lmhead_cli", "topk", str(sample), str(path), "--no-norm", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"error: {path}: logits are not finite in float32 at "), proc.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), proc.stderr


# ---------------------------------------------------------------- interrupted


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", ["count", "topk"])
def test_ctrl_c_exits_130_printing_nothing_partial(monkeypatch, command):
    import lmhead_cli.cli
    import lmhead_cli.logits.request

    monkeypatch.setattr(lmhead_cli.cli, "census", _interrupt)
    monkeypatch.setattr(lmhead_cli.logits.request, "predict", _interrupt)
    sample = ROOT / "sample_weights" / "gpt2-tied"
    args = ["count", sample] if command == "count" else ["topk", sample, sample / "hidden.npy"]
    for extra in ([], ["--json"]):
        result = invoke(*args, *extra)
        assert result.exit_code == 130, result.output  # 128 + SIGINT, as a shell reports it; not 1 ("problems found")
        assert result.stdout == "" and "Traceback" not in result.stderr
