"""Baseline for bench_tying: what one writes with PyTorch to ask "are embedding and head equal?".

    python baseline_tying_torch.py CKPT_DIR

Loads both tensors whole with safetensors (framework="pt") and calls torch.equal.
"""

import sys
from pathlib import Path

import torch
from safetensors import safe_open

EMBEDDING = "model.embed_tokens.weight"
HEAD = "lm_head.weight"


def main() -> None:
    path = Path(sys.argv[1]) / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        embedding = f.get_tensor(EMBEDDING)
        head = f.get_tensor(HEAD)
    print(f"equal: {torch.equal(embedding, head)}")


if __name__ == "__main__":
    main()
