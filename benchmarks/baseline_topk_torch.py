"""Baseline for bench_topk: the PyTorch script one writes for a logit-lens top-k.

    python baseline_topk_torch.py CKPT_DIR HIDDEN.npy [K]

Loads ``lm_head.weight`` and ``model.norm.weight`` with safetensors
(framework="pt"), widens to float32, applies the Llama RMSNorm, multiplies,
and takes softmax + topk over the whole vocabulary. Prints JSON
``{"ids": [[...]], "probs": [[...]]}`` (one row per position).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open


def main() -> None:
    ckpt, hidden_path = Path(sys.argv[1]), sys.argv[2]
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    eps = json.loads((ckpt / "config.json").read_text())["rms_norm_eps"]
    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
        head = f.get_tensor("lm_head.weight").float()  # (V, d)
        norm = f.get_tensor("model.norm.weight").float()  # (d,)
    h = torch.from_numpy(np.load(hidden_path)).float()  # (T, d)
    x = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * norm
    logits = x @ head.T  # (T, V)
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, k, dim=-1)
    print(json.dumps({"ids": top.indices.tolist(), "probs": top.values.tolist()}))


if __name__ == "__main__":
    main()
