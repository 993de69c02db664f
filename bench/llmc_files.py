#!/usr/bin/env python3
# Writes random GPT-2 124M weights and a token file in llm.c's formats, for timing its CPU trainer.
import numpy as np, os, sys
rng = np.random.default_rng(0)
V, Vp, maxT, L, NH, C = 50257, 50304, 1024, 12, 12, 768
header = np.zeros(256, dtype=np.int32)
header[:8] = [20240326, 3, maxT, V, L, NH, C, Vp]
shapes = [(Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C), (L, C), (L, C),
          (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
with open("gpt2_124M.bin", "wb") as f:
    f.write(header.tobytes())
    for s in shapes:
        f.write((rng.standard_normal(s, dtype=np.float32) * 0.02).tobytes())
os.makedirs("dev/data/tinyshakespeare", exist_ok=True)
for name, n in [("train", 200000), ("val", 20000)]:
    h = np.zeros(256, dtype=np.int32)
    h[:3] = [20240520, 1, n]
    with open(f"dev/data/tinyshakespeare/tiny_shakespeare_{name}.bin", "wb") as f:
        f.write(h.tobytes())
        f.write(rng.integers(0, V, n, dtype=np.uint16).tobytes())
