#!/usr/bin/env python3
"""The same training step as bench/train_step.cpp in PyTorch eager (the book's GPTModel, ch04),
optionally torch.compile'd. Prints one JSON line. Developer tool: needs pip-installed torch.

  python3 bench/torch_train_step.py --batch 2 --context 256 --threads 2 [--compile]
"""
import argparse
import json
import resource
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from gen_gpt2_parity import GPTModel  # noqa: E402  the book's model, verbatim


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="gpt2-small")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drop", type=float, default=0.1)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--classes", type=int, default=0, help="> 0: the book's ch06 classifier on the last token")
    ap.add_argument("--last-block-only", action="store_true", help="ch06 freezing: last block, final norm, head")
    ap.add_argument("--tie", action="store_true", help="share the output head with tok_emb")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes = {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16)}
    emb, layers, heads = sizes[a.preset]
    cfg = {"vocab_size": 50257, "context_length": a.context, "emb_dim": emb, "n_heads": heads, "n_layers": layers,
           "drop_rate": a.drop, "qkv_bias": False}
    torch.manual_seed(123)
    cfg["tie_weights"] = a.tie
    model = GPTModel(cfg)
    if a.classes:
        model.out_head = torch.nn.Linear(emb, a.classes)
    if a.last_block_only:
        for p in model.parameters():
            p.requires_grad = False
        for mod in (model.trf_blocks[-1], model.final_norm, model.out_head):
            for p in mod.parameters():
                p.requires_grad = True
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=4e-4, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 50257, (a.batch, a.context), generator=g)
    y = (torch.randint(0, a.classes, (a.batch,), generator=g) if a.classes
         else torch.randint(0, 50257, (a.batch, a.context), generator=g))
    fwd = torch.compile(model) if a.compile else model
    times, fwd_t, bwd_t, opt_t = [], [], [], []
    loss = None
    for s in range(a.steps + 1 + (2 if a.compile else 0)):
        t0 = time.perf_counter()
        opt.zero_grad()
        logits = fwd(x)
        if a.classes:  # the book's calc_loss_batch for ch06: last token
            loss = torch.nn.functional.cross_entropy(logits[:, -1, :], y)
        else:
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= 1 + (2 if a.compile else 0):
            times.append(t3 - t0)
            fwd_t.append(t1 - t0)
            bwd_t.append(t2 - t1)
            opt_t.append(t3 - t2)
    C = emb
    matmul_params = layers * 12.0 * C * C + 50257.0 * C
    flops = 6.0 * a.batch * a.context * matmul_params + layers * 6.0 * a.batch * a.context * a.context * C
    med = statistics.median(times)
    task = ("classify-last-block" if a.last_block_only else "classify-all") if a.classes else "lm"
    print(json.dumps({"impl": "pytorch-compile" if a.compile else "pytorch-eager", "task": task, "torch": torch.__version__,
                      "preset": a.preset, "batch": a.batch, "context": a.context, "threads": torch.get_num_threads(),
                      "step_s": round(med, 4), "forward_s": round(statistics.median(fwd_t), 4),
                      "backward_s": round(statistics.median(bwd_t), 4), "optimizer_s": round(statistics.median(opt_t), 4),
                      "tokens_per_s": round(a.batch * a.context / med, 1), "gflops": round(flops / med / 1e9, 2),
                      "loss": round(loss.item(), 4),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
