"""Small checkpoints written for a test: Llama-style names, numpy + safetensors only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def llama_tensors(
    vocab: int = 64, hidden: int = 16, layers: int = 2, seed: int = 0, tied: bool = False, dtype=np.float32
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = {"model.embed_tokens.weight": rng.normal(size=(vocab, hidden))}
    for i in range(layers):
        t[f"model.layers.{i}.input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=hidden)
        t[f"model.layers.{i}.self_attn.q_proj.weight"] = rng.normal(size=(hidden, hidden))
        t[f"model.layers.{i}.mlp.down_proj.weight"] = rng.normal(size=(hidden, 2 * hidden))
    t["model.norm.weight"] = 1 + 0.2 * rng.normal(size=hidden)
    if not tied:
        t["lm_head.weight"] = rng.normal(size=(vocab, hidden))
    return {k: v.astype(dtype) for k, v in t.items()}


def llama_config(vocab: int = 64, hidden: int = 16, layers: int = 2, tied: bool | None = False, **extra) -> dict:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "rms_norm_eps": 1e-5,
    }
    if tied is not None:
        config["tie_word_embeddings"] = tied
    config.update(extra)
    return config


def write_checkpoint(folder: Path, tensors: dict[str, np.ndarray], config: dict | None, shards: list[list[str]] | None = None) -> Path:
    """A Hugging Face folder: model.safetensors, or shards + index when ``shards`` groups the names."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if shards is None:
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
        return folder
    weight_map = {}
    total = 0
    for i, names in enumerate(shards, start=1):
        shard = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, folder / shard, metadata={"format": "pt"})
        weight_map.update({n: shard for n in names})
        total += sum(tensors[n].nbytes for n in names)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return folder
