"""The compute floor for bench_topk at large T: one float32 numpy matmul of the head's shape, nothing else.

python floor_matmul.py V D T
"""

import sys

import numpy as np


def main() -> None:
    vocab, hidden, positions = (int(a) for a in sys.argv[1:4])
    w = np.full((vocab, hidden), 0.01, dtype=np.float32)  # (V, d)
    x = np.full((positions, hidden), 0.01, dtype=np.float32)  # (T, d)
    logits = x @ w.T  # (T, d) @ (d, V) -> (T, V)
    print(float(logits[0, 0]))


if __name__ == "__main__":
    main()
