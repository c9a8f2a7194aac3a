"""MLX (mlx-lm) checkpoints against mlx itself (``tests/fixtures/make_mlx.py``).

Each fixture was written by ``mlx_lm.convert -q`` from a transformers-made model; the counts are that
model's ``num_parameters()``, the head and embedding are ``mx.dequantize``'s values (in the scales'
dtype, as mlx returns them), and tying is what ``mlx_lm.utils.load_model`` made of the checkpoint.
Nothing here imports mlx.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner

from lmhead_cli.checkpoint.open import open_checkpoint
from lmhead_cli.cli import cli
from lmhead_cli.model.anatomy import locate_head

from conftest import ROOT, run_json

MLX = ROOT / "tests" / "fixtures" / "mlx"
CASES = sorted(p.name for p in MLX.iterdir() if (p / "reference.npz").is_file())
FLOAT_MODES = {"mxfp4", "nvfp4", "mxfp8"}  # uint8 scales, no biases
VOCAB, HIDDEN = 256, 128
DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def reference(case: str) -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = MLX / case
    ref = json.loads((folder / "reference.json").read_text())
    with np.load(folder / "reference.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in ("head", "embedding"):  # mx.dequantize's values, stored as the 16-bit patterns of their dtype
        arrays[key] = arrays[key].view(DTYPES[ref[f"{key}_dtype"]]).astype(np.float32)
    return folder, ref, arrays


def test_the_fixtures_cover_every_width_group_and_layout():
    refs = [reference(case)[1] for case in CASES]
    quantized = [m for ref in refs for m in ref["quantized"].values()]
    affine = [m for m in quantized if m["mode"] == "affine"]
    assert {m["bits"] for m in affine} == {2, 3, 4, 5, 6, 8}
    assert {m["group_size"] for m in affine} == {32, 64, 128}
    assert {m["mode"] for m in quantized} == {"affine"} | FLOAT_MODES
    assert {(r["tied"], r["head_quantized"], r["embedding_quantized"]) for r in refs} == {
        (True, True, True),
        (False, True, True),
        (False, True, False),
    }
    assert all(r["tool"].startswith("mlx ") for r in refs)
    mixed = json.loads((MLX / "mixed_3_6" / "config.json").read_text())["quantization"]
    assert any(isinstance(v, dict) and v["group_size"] is None for v in mixed.values())  # the recipe's "group_size": null


@pytest.mark.parametrize("case", CASES)
def test_count_is_the_source_models_num_parameters(case):
    folder, ref, _ = reference(case)
    data = run_json("count", folder)
    assert data["total_params"] == ref["num_parameters"]
    assert data["tied"] is ref["tied"]
    q = data["quantization"]
    head = ref["quantized"]["model.embed_tokens" if ref["tied"] else "lm_head"]
    float_mode = head["mode"] in FLOAT_MODES
    layout = "MLX microscaled float" if float_mode else "MLX affine"
    assert q["method"] == "mlx" and q["layouts"] == [layout] and q["source"] == "config.json quantization (mlx-lm)"
    assert q["head_quantized"] is ref["head_quantized"] and q["embedding_quantized"] is ref["embedding_quantized"]
    assert data["head_params"] == VOCAB * HIDDEN
    # packed bits plus, per group, an 8-bit scale (float modes) or a 16-bit scale and bias (affine)
    expected_bits = head["bits"] + (8 if float_mode else 2 * 16) / head["group_size"]
    assert data["head_bits_per_param"] == pytest.approx(expected_bits)


@pytest.mark.parametrize("case", CASES)
def test_head_and_embedding_are_mx_dequantize_exactly(case):
    _, _, arrays = reference(case)
    with open_checkpoint(MLX / case) as ckpt:
        anatomy = locate_head(ckpt)
        head = ckpt.read_rows(anatomy.head_matrix, 0, VOCAB)
        chunks = np.concatenate([ckpt.read_rows(anatomy.head_matrix, a, min(a + 37, VOCAB)) for a in range(0, VOCAB, 37)])
        embedding = ckpt.read_rows(anatomy.embedding, 0, VOCAB)
    assert head.dtype == np.float32 and head.shape == (VOCAB, HIDDEN)
    np.testing.assert_array_equal(head, arrays["head"])  # bf16 / f16 rounding included
    np.testing.assert_array_equal(embedding, arrays["embedding"])
    assert np.array_equal(head, chunks)


@pytest.mark.parametrize("case", CASES)
def test_topk_uses_the_dequantized_head(case, tmp_path):
    folder, _, arrays = reference(case)
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, arrays["hidden"])
    data = run_json("topk", folder, hidden, "--no-norm", "-k", "5", "--chunk-rows", "48")
    expected = np.argsort(-arrays["logits"], axis=1, kind="stable")[:, :5]
    for row, want in zip(data["positions"], expected, strict=True):
        assert [t["token_id"] for t in row["top"]] == want.tolist()
        assert np.allclose([t["logit"] for t in row["top"]], arrays["logits"][row["position"], want], atol=1e-4)
    assert data["warnings"] == []


@pytest.mark.parametrize("case", CASES)
def test_tying_is_what_mlx_lm_loads(case):
    folder, ref, _ = reference(case)
    data = run_json("check-tying", folder)
    assert data["tied"] is ref["tied"] and data["problems"] == []


def test_quantization_config_alone_is_read_the_same(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(MLX / "untied_5bit_g64", folder)
    config = json.loads((folder / "config.json").read_text())
    del config["quantization"]  # older mlx-lm releases and hand-edited repos keep only the copy
    (folder / "config.json").write_text(json.dumps(config))
    data = run_json("count", folder)
    assert data["total_params"] == reference("untied_5bit_g64")[1]["num_parameters"]
    assert data["quantization"]["source"] == "config.json quantization_config (mlx-lm)"


# ---------------------------------------------------------------- refused, in one line


def every_command_fails(folder: Path, tmp_path: Path, match: str) -> None:
    hidden = tmp_path / "h.npy"
    np.save(hidden, np.ones((2, HIDDEN), np.float32))
    lines = set()
    for args in (["count", folder], ["check-tying", folder], ["doctor", folder, "--json"], ["topk", folder, hidden]):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 2 and "Traceback" not in result.output and not result.stdout, result.output
        lines.add(result.stderr.splitlines()[0])
    assert len(lines) == 1, lines
    line = lines.pop()
    assert line.startswith("error: ") and match in line, line


def test_a_float_mode_model_without_its_config_is_refused_naming_mlx(tmp_path):
    folder = spoiled(tmp_path, "untied_mxfp8", config=_drop_quantization)
    every_command_fails(folder, tmp_path, "as MLX quantizes it (uint32 weight, uint8 scales: a float mode), but config.json has no")


def test_an_nvfp4_global_scale_is_refused_naming_it(tmp_path):
    folder = spoiled(tmp_path, "untied_nvfp4", tensors=lambda t: t.update({"lm_head.global_scale": np.ones(1, np.float32)}))
    every_command_fails(folder, tmp_path, "MLX nvfp4 with a global scale (mlx-lm's per-expert nvfp4) is not supported")


def spoiled(tmp_path: Path, case: str, config=None, tensors=None) -> Path:
    """A copy of an MLX fixture with its config and / or tensors changed."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "m"
    shutil.copytree(MLX / case, folder)
    if config is not None:
        data = json.loads((folder / "config.json").read_text())
        config(data)
        (folder / "config.json").write_text(json.dumps(data))
    if tensors is not None:
        stored = load_file(folder / "model.safetensors")
        tensors(stored)
        save_file(stored, folder / "model.safetensors", metadata={"format": "mlx"})
        (folder / "model.safetensors.index.json").unlink()
    return folder


def _mode(mode: str):
    def change(config: dict) -> None:
        for key in ("quantization", "quantization_config"):
            config[key]["mode"] = mode

    return change


def _drop_quantization(config: dict) -> None:
    del config["quantization"], config["quantization_config"]


def _head_bits(bits: int):
    def change(config: dict) -> None:
        for key in ("quantization", "quantization_config"):
            config[key]["lm_head"] = {"group_size": 64, "bits": bits}

    return change


def _head_groups(rows: slice, cols: slice, repeat: int = 1):
    def change(t: dict) -> None:
        for part in ("scales", "biases"):
            t[f"lm_head.{part}"] = t[f"lm_head.{part}"][rows, cols].repeat(repeat, 1).copy()

    return change


def _retype(name: str, change):
    return lambda t: t.update({name: change(t[name])})


SPOILED = {
    "a mode mlx does not have": (dict(config=_mode("fp3")), "mlx-lm quantization mode 'fp3' is not supported"),
    "nvfp4 mode over affine tensors": (dict(config=_mode("nvfp4")), "MLX nvfp4 stores no biases, but this module has them"),
    "mxfp8 mode over affine tensors": (dict(config=_mode("mxfp8")), "MLX mxfp8 stores no biases, but this module has them"),
    "no quantization in config.json": (
        dict(config=_drop_quantization),
        'is stored as MLX quantizes it (uint32 weight, scales, biases), but config.json has no "quantization"',
    ),
    "config's bits do not fit the words": (dict(config=_head_bits(8)), "do not fit the config's 8 bits in groups of 64"),
    "biases missing": (dict(tensors=lambda t: t.pop("lm_head.biases")), "lm_head"),
    "scales for fewer rows": (
        dict(
            tensors=lambda t: t.update(
                {"lm_head.scales": t["lm_head.scales"][:100].copy(), "lm_head.biases": t["lm_head.biases"][:100].copy()}
            )
        ),
        "does not match lm_head.weight's 256 rows",
    ),
    "groups that fit no width": (
        dict(
            tensors=lambda t: t.update(
                {"lm_head.scales": t["lm_head.scales"][:, :1].repeat(3, 1), "lm_head.biases": t["lm_head.biases"][:, :1].repeat(3, 1)}
            )
        ),
        "fit no MLX affine setting (2/3/4/5/6/8 bits, groups of 32/64/128)",
    ),
    "weight not uint32": (dict(tensors=_retype("lm_head.weight", lambda a: a.view(np.int32))), "lm_head.weight"),
    "biases of another dtype": (
        dict(tensors=_retype("lm_head.biases", lambda a: a.astype(np.float32))),
        "does not match",
    ),
}


@pytest.mark.parametrize("case", list(SPOILED))
def test_broken_mlx_checkpoints_are_refused_never_guessed(case, tmp_path):
    changes, match = SPOILED[case]
    every_command_fails(spoiled(tmp_path, "untied_5bit_g64", **changes), tmp_path, match)


@pytest.mark.parametrize("case", ["tied_4bit_g64", "untied_3bit_g128"])
def test_mlx_over_hf_answers_as_on_disk_from_its_own_bytes(case, fake_hub, hf_home, monkeypatch, tmp_path):
    from lmhead_cli.formats import remote

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    monkeypatch.setattr(remote, "BACKOFF_S", 0.01)
    folder, ref, arrays = reference(case)
    fake_hub.add_repo(f"mlx-community/{case}", folder)
    url = f"hf://mlx-community/{case}"
    raw = (folder / "model.safetensors").read_bytes()
    header = 8 + int.from_bytes(raw[:8], "little")
    fake_hub.reset_counts()
    data = run_json("count", url)
    assert fake_hub.bytes_served("lfs") == header  # the safetensors header alone
    assert data["total_params"] == ref["num_parameters"] and data["quantization"]["method"] == "mlx"
    hidden = tmp_path / "hidden.npy"
    np.save(hidden, arrays["hidden"])
    local = run_json("topk", folder, hidden, "--no-norm", "-k", "5")
    remote_json = run_json("topk", url, hidden, "--no-norm", "-k", "5", "--fetch-values")
    assert remote_json["positions"] == local["positions"]
