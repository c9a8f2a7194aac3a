"""Hostile inputs for lmhead, built byte by byte (``struct.pack`` and ``json``).

Checkpoints come from strangers: every builder here writes one specific kind of
broken file, so a test can name exactly what is wrong with it. Valid files are
written the same way (or with ``safetensors.numpy``) to be mutated by the fuzz
tests. Nothing here imports lmhead.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save as save_safetensors

V, D = 32, 8  # vocabulary rows and hidden size of every small valid checkpoint

CONFIG = {"model_type": "llama", "vocab_size": V, "hidden_size": D, "tie_word_embeddings": False, "rms_norm_eps": 1e-5}


# ---------------------------------------------------------------- safetensors


def st_entry(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def st_bytes(header: dict | list | str | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file: u64 little-endian header length, the header, the data.

    ``header`` is JSON-encoded unless given as text or bytes; ``length`` overrides
    the stored header length (to lie about it).
    """
    if isinstance(header, (dict, list)):
        raw = json.dumps(header).encode()
    elif isinstance(header, str):
        raw = header.encode()
    else:
        raw = header
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def st_split(blob: bytes) -> tuple[dict, bytes]:
    """(header, data) of a valid safetensors blob."""
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def llama_tensors(vocab: int = V, hidden: int = D, tied: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Llama-style names: embedding (V, d), one block, final norm (d,), head (V, d) unless tied."""
    rng = np.random.default_rng(seed)
    t = {
        "model.embed_tokens.weight": rng.normal(size=(vocab, hidden)),
        "model.layers.0.input_layernorm.weight": 1 + 0.1 * rng.normal(size=hidden),
        "model.layers.0.self_attn.q_proj.weight": rng.normal(size=(hidden, hidden)),
        "model.norm.weight": 1 + 0.2 * rng.normal(size=hidden),
    }
    if not tied:
        t["lm_head.weight"] = rng.normal(size=(vocab, hidden))
    return {k: v.astype(np.float32) for k, v in t.items()}


def valid_safetensors(vocab: int = V, hidden: int = D, tied: bool = False, dtype=np.float32, seed: int = 0) -> bytes:
    tensors = {k: v.astype(dtype) for k, v in llama_tensors(vocab, hidden, tied, seed).items()}
    return save_safetensors(tensors, metadata={"format": "pt"})


# ---------------------------------------------------------------- quantized heads (names and shapes as each tool writes them)


def st_raw(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict | None = None) -> bytes:
    """A safetensors file from raw (dtype, shape, bytes) entries: dtypes numpy lacks (F8_E4M3) included."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = st_entry(dtype, shape, len(data), len(data) + len(raw))
        data += raw
    return st_bytes(header, data)


def _entry(array: np.ndarray) -> tuple[str, list[int], bytes]:
    names = {"float32": "F32", "float16": "F16", "int32": "I32", "int64": "I64", "int8": "I8", "uint8": "U8"}
    return names[array.dtype.name], list(array.shape), array.tobytes()


def quantized_head(layout: str) -> tuple[dict[str, tuple[str, list[int], bytes]], dict]:
    """Valid (entries, quantization_config) for a V x D head stored in ``layout``; embedding and norm dense."""
    rng = np.random.default_rng(14)
    dense = {k: _entry(v) for k, v in llama_tensors().items() if k != "lm_head.weight"}
    codes = rng.integers(0, 2**31, size=64, dtype=np.int64).astype(np.uint32).view(np.int32)
    f16 = lambda *shape: (0.01 + rng.random(shape)).astype(np.float16)  # noqa: E731
    f8 = lambda *shape: ("F8_E4M3", list(shape), (rng.integers(0, 0x7E, size=shape, dtype=np.uint8)).tobytes())  # noqa: E731
    if layout == "gptq":  # qweight [D/8, V], qzeros [G, V/8], scales [G, V], g_idx [D]
        head = {"qweight": _entry(codes[:V].reshape(1, V)), "qzeros": _entry(codes[:4].reshape(1, 4)), "scales": _entry(f16(1, V))}
        head["g_idx"] = _entry(np.zeros(D, np.int32))
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {"quant_method": "gptq", "bits": 4, "group_size": 8}
    if layout == "awq":  # qweight [D, V/8], qzeros [G, V/8], scales [G, V]
        head = {"qweight": _entry(codes[: D * 4].reshape(D, 4)), "qzeros": _entry(codes[:4].reshape(1, 4)), "scales": _entry(f16(1, V))}
        qc = {"quant_method": "awq", "bits": 4, "group_size": 8, "version": "gemm"}
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, qc
    if layout == "bnb_nf4":  # weight U8 [V*D/2, 1] + absmax per 64 + quant_map + quant_state JSON
        state = json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [V, D]}).encode()
        head = {
            "weight": _entry(rng.integers(0, 256, size=(V * D // 2, 1), dtype=np.uint8)),
            "weight.absmax": _entry(np.ones(V * D // 64, np.float32)),
            "weight.quant_map": _entry(np.linspace(-1, 1, 16, dtype=np.float32)),
            "weight.quant_state.bitsandbytes__nf4": _entry(np.frombuffer(state, np.uint8).copy()),
        }
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {"quant_method": "bitsandbytes", "load_in_4bit": True}
    if layout == "bnb_int8":  # weight I8 [V, D], SCB F32 [V]
        head = {"weight": _entry(rng.integers(-127, 128, size=(V, D), dtype=np.int8)), "SCB": _entry(np.ones(V, np.float32))}
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {"quant_method": "bitsandbytes", "load_in_8bit": True}
    if layout == "fp8_block":  # weight F8_E4M3 [V, D], weight_scale_inv F32 [ceil(V/128), ceil(D/128)]
        head = {"weight": f8(V, D), "weight_scale_inv": _entry(np.ones((1, 1), np.float32))}
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {"quant_method": "fp8", "weight_block_size": [128, 128]}
    if layout == "ct_int4":  # weight_packed I32 [V, D/8], weight_scale [V, 1], weight_shape I64 [2]
        head = {
            "weight_packed": _entry(codes[:V].reshape(V, 1)),
            "weight_scale": _entry(f16(V, 1)),
            "weight_shape": _entry(np.array([V, D], np.int64)),
        }
        qc = {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "channel"}}},
        }
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, qc
    if layout == "ct_fp8":  # weight F8_E4M3 [V, D], weight_scale [V, 1]
        head = {"weight": f8(V, D), "weight_scale": _entry(np.ones((V, 1), np.float32))}
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {
            "quant_method": "compressed-tensors",
            "format": "float-quantized",
        }
    if layout == "torchao":  # _weight_qdata F8_E4M3 [V, D], _weight_scale F32 [V, 1]
        head = {"_weight_qdata": f8(V, D), "_weight_scale": _entry(np.ones((V, 1), np.float32))}
        return {**dense, **{f"lm_head.{k}": v for k, v in head.items()}}, {"quant_method": "torchao"}
    if layout == "mxfp4":  # expert blocks U8 [E, out, D/32, 16] + scales U8 [E, out, D/32]; head dense
        experts = {
            "model.layers.0.mlp.experts.down_proj_blocks": _entry(np.zeros((2, D, 1, 16), np.uint8)),
            "model.layers.0.mlp.experts.down_proj_scales": _entry(np.full((2, D, 1), 127, np.uint8)),
        }
        return {**dense, "lm_head.weight": _entry(llama_tensors()["lm_head.weight"]), **experts}, {"quant_method": "mxfp4"}
    raise ValueError(layout)


MLX_D = 64  # mlx groups hold 32, 64 or 128 values: an MLX model needs rows wider than D


def mlx_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """(rows, n) integers below 2**bits -> (rows, n * bits / 32) uint32: each row one little-endian bit stream."""
    stream = ((values[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(values.shape[0], -1)  # (rows, n * bits)
    return np.packbits(stream, axis=1, bitorder="little").view("<u4")


def mlx_checkpoint(
    folder: Path, bits: int = 5, group: int = 32, drop: tuple[str, ...] = (), change: dict | None = None, config=None
) -> Path:
    """An mlx-lm-style folder: embedding and head V x MLX_D quantized (uint32 weight, f16 scales and biases),
    the norm dense, ``"quantization"`` and its ``quantization_config`` copy in config.json; ``config`` may
    edit the config dict in place."""
    rng = np.random.default_rng(24)
    tensors: dict[str, tuple[str, list[int], bytes]] = {"model.norm.weight": _entry(np.ones(MLX_D, np.float16))}
    for module in ("model.embed_tokens", "lm_head"):
        codes = rng.integers(0, 2**bits, size=(V, MLX_D), dtype=np.uint32)
        tensors[f"{module}.weight"] = ("U32", [V, MLX_D * bits // 32], mlx_pack(codes, bits).tobytes())
        tensors[f"{module}.scales"] = _entry((0.01 + 0.01 * rng.random((V, MLX_D // group))).astype(np.float16))
        tensors[f"{module}.biases"] = _entry((-0.1 * rng.random((V, MLX_D // group))).astype(np.float16))
    tensors = {k: v for k, v in tensors.items() if k not in drop}
    tensors.update(change or {})
    quantization = {"group_size": group, "bits": bits, "mode": "affine"}
    settings = {**CONFIG, "hidden_size": MLX_D, "quantization": quantization, "quantization_config": dict(quantization)}
    if config is not None:
        config(settings)
    return checkpoint_dir(folder, st_raw(tensors, {"format": "mlx"}), json.dumps(settings))


QUANT_LAYOUTS = ("gptq", "awq", "bnb_nf4", "bnb_int8", "fp8_block", "ct_int4", "ct_fp8", "torchao", "mxfp4")


def quantized_checkpoint(
    folder: Path, layout: str, drop: tuple[str, ...] = (), change: dict | None = None, config: dict | None = None
) -> Path:
    """A model folder with a ``layout``-quantized head; ``drop`` removes tensors, ``change`` replaces entries."""
    tensors, qc = quantized_head(layout)
    tensors = {k: v for k, v in tensors.items() if k not in drop}
    tensors.update(change or {})
    metadata = {"format": "pt", "lm_head.weight": TORCHAO_HEAD_METADATA} if layout == "torchao" and "metadata" not in drop else None
    return checkpoint_dir(folder, st_raw(tensors, metadata), json.dumps({**CONFIG, "quantization_config": {**qc, **(config or {})}}))


# What transformers writes in the safetensors __metadata__ for a torchao Float8Tensor (tests/fixtures/quant/torchao_fp8)
TORCHAO_HEAD_METADATA = json.dumps(
    {
        "_type": "Float8Tensor",
        "_data": {"block_size": [1, D], "dtype": {"_type": "torch.dtype", "_data": "bfloat16"}},
        "_tensor_data_names": ["qdata", "scale"],
    }
)


def config_json(**changes) -> str:
    return json.dumps({**CONFIG, **changes})


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def checkpoint_dir(folder: Path, weights: bytes, config: str | bytes | None = None, name: str = "model.safetensors") -> Path:
    """A model folder holding ``weights`` (valid or not) and a config.json."""
    write(folder / name, weights)
    write(folder / "config.json", config_json() if config is None else config)
    return folder


def valid_checkpoint(folder: Path, tied: bool = False) -> Path:
    return checkpoint_dir(folder, valid_safetensors(tied=tied), config_json(tie_word_embeddings=tied))


SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def sharded_checkpoint(folder: Path, weight_map_changes: dict | None = None, index: str | None = None) -> Path:
    """Two shards (embedding + block | norm + head) and their index, which the caller may spoil."""
    tensors = llama_tensors()
    first = ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight"]
    groups = [first, [n for n in tensors if n not in first]]
    weight_map = {}
    for shard, names in zip(SHARDS, groups, strict=True):
        write(folder / shard, save_safetensors({n: tensors[n] for n in names}, metadata={"format": "pt"}))
        weight_map.update({n: shard for n in names})
    weight_map.update(weight_map_changes or {})
    if index is None:
        index = json.dumps({"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map})
    write(folder / "model.safetensors.index.json", index)
    write(folder / "config.json", config_json())
    return folder


# ---------------------------------------------------------------- .npy


NPY_MAGIC = b"\x93NUMPY"


def npy_bytes(header: dict | str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file: magic, version, u16 header length, header text padded to 64 bytes, data."""
    text = header if isinstance(header, str) else repr(header)
    prefix = len(NPY_MAGIC) + 2 + 2
    pad = (-(prefix + len(text) + 1)) % 64
    text = text + " " * pad + "\n"
    return NPY_MAGIC + bytes(version) + struct.pack("<H", len(text)) + text.encode("latin1") + data


def npy_array(array: np.ndarray) -> bytes:
    return npy_bytes({"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}, array.tobytes())


class _CreatesFile:
    """Unpickling this runs ``open(path, "w")``: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_payload(canary: Path) -> bytes:
    """Pickle bytes whose loading creates ``canary``."""
    return pickle.dumps(_CreatesFile(canary), protocol=2)


def npy_object_array(canary: Path) -> bytes:
    """An object-dtype .npy whose data is a pickle that creates ``canary`` when loaded."""
    return npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)}, pickle_payload(canary))


# ---------------------------------------------------------------- GGUF

GGUF_UINT32, GGUF_FLOAT32, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64 = 4, 6, 8, 9, 10
GGML_F32 = 0


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_kv(key: str, vtype: int, value) -> bytes:
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STRING:
        return out + gguf_string(value)
    if vtype == GGUF_UINT32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_UINT64:
        return out + struct.pack("<Q", value)
    if vtype == GGUF_FLOAT32:
        return out + struct.pack("<f", value)
    if vtype == GGUF_ARRAY:  # value: (element type, list) -- strings only here
        etype, items = value
        assert etype == GGUF_STRING
        return out + struct.pack("<IQ", etype, len(items)) + b"".join(gguf_string(s) for s in items)
    raise ValueError(vtype)


def gguf_bytes(
    vocab: int = V,
    hidden: int = D,
    version: int = 3,
    magic: bytes = b"GGUF",
    tensor_type: int = GGML_F32,
    alignment: int = 32,
    seed: int = 0,
    tokens: list[str] | None = None,
) -> bytes:
    """A small llama GGUF: token_embd, output_norm and output as F32 (dims stored fastest first)."""
    tensors = llama_tensors(vocab, hidden, seed=seed)
    stored = {
        "token_embd.weight": tensors["model.embed_tokens.weight"],
        "output_norm.weight": tensors["model.norm.weight"],
        "output.weight": tensors["lm_head.weight"],
    }
    kvs = [
        gguf_kv("general.architecture", GGUF_STRING, "llama"),
        gguf_kv("general.alignment", GGUF_UINT32, alignment),
        gguf_kv("llama.embedding_length", GGUF_UINT32, hidden),
        gguf_kv("llama.block_count", GGUF_UINT32, 0),
        gguf_kv("llama.context_length", GGUF_UINT32, 64),
        gguf_kv("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, 1e-5),
        gguf_kv("tokenizer.ggml.model", GGUF_STRING, "llama"),
        gguf_kv("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, [f"tok{i}" for i in range(vocab)] if tokens is None else tokens)),
    ]
    infos, data = [], b""
    for name, array in stored.items():
        data += b"\0" * (-len(data) % alignment)
        dims = array.shape[::-1]  # GGUF lists ne[0] (the contiguous axis) first
        infos.append(
            gguf_string(name)
            + struct.pack("<I", len(dims))
            + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<IQ", tensor_type, len(data))
        )
        data += array.astype(np.float32).tobytes()
    head = magic + struct.pack("<IQQ", version, len(stored), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % alignment)
    return head + data


def npz_bomb(shape: tuple[int, ...], inflated: int, dtype: str = "<f4") -> bytes:
    """An ``.npz`` whose one member (``h.npy``) declares ``shape`` and inflates to ``inflated`` bytes of zeros.

    The deflate stream is built from one compressed MiB of zeros repeated (each block ends with a full
    flush, so the blocks are identical): a 4 GiB member costs ~4 MB and no time to build. The CRC is
    not computed (zero): a reader that refuses the member before inflating it never gets to check it.
    """
    import io
    import zipfile
    import zlib

    header = npy_bytes({"descr": dtype, "fortran_order": False, "shape": shape})
    mib = 1 << 20
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = [squeeze.compress(header) + squeeze.flush(zlib.Z_FULL_FLUSH)]
    block = squeeze.compress(bytes(mib)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    stream += [block] * ((inflated - len(header)) // mib)
    stream.append(squeeze.compress(bytes((inflated - len(header)) % mib)) + squeeze.flush())
    deflated = b"".join(stream)

    class Prepared:  # stands in for zipfile's compressor: the stream is already deflated
        def compress(self, data: bytes) -> bytes:
            return b""

        def flush(self) -> bytes:
            return deflated

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("h.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as w:
            w._compressor = Prepared()  # type: ignore[attr-defined]
            w._file_size = inflated  # type: ignore[attr-defined]
            if inflated <= 2**26:  # small enough to checksum: a valid member
                w._crc = zlib.crc32(bytes(inflated - len(header)), zlib.crc32(header))  # type: ignore[attr-defined]
    return buf.getvalue()


# ---------------------------------------------------------------- other kinds of files

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000000000200015e2f0a3b0000000049454e44ae426082"
)


# ---------------------------------------------------------------- read-only evidence


def snapshot(*roots: Path) -> dict[str, tuple[str, int, int]]:
    """sha256, size and mtime (ns) of every file under ``roots`` (files or folders)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
        for f in files:
            st = os.stat(f)
            out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
        if root.is_dir():
            out[f"{root}/"] = ("dir", len(list(root.iterdir())), os.stat(root).st_mtime_ns)
    return out
