#!/usr/bin/env python3
"""The book's DPO step in PyTorch (ch07/04 dpo-from-scratch: compute_dpo_loss_batch with a frozen
reference_model under no_grad, the mean log-probabilities, beta 0.1, AdamW lr 5e-6 wd 0.01) on a
gptrain model dir loaded by transformers (GPT2LMHeadModel, dropout 0, its default attention), for
bench/dpo_compare.py beside build/bench/dpo_step: the same batches (the first --steps + 1 batches
of --pairs pairs in file order, the book's PreferenceDataset and collate via
tests/tools/gen_dpo_fixtures.py). Step 0 warms up; prints one JSON line like dpo_step's.
    python3 bench/dpo_torch_step.py --model DIR --data FILE [--pairs 8] [--steps 4] [--threads 2]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from gen_dpo_fixtures import (compute_dpo_loss, compute_logprobs, custom_collate_fn,  # noqa: E402
                              gpt2_encoding, preference_dataset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import GPT2LMHeadModel
    kw = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, torch_dtype=torch.float32)
    policy = GPT2LMHeadModel.from_pretrained(a.model, **kw)
    reference = GPT2LMHeadModel.from_pretrained(a.model, **kw)
    reference.eval()
    policy.train()
    data = json.load(open(a.data, encoding="utf-8"))[: a.pairs * (a.steps + 1)]
    encoded = preference_dataset(data, gpt2_encoding(a.data_dir))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=5e-6, weight_decay=0.01)
    times, losses, tokens = [], [], []
    for s in range(a.steps + 1):
        batch = custom_collate_fn(encoded[s * a.pairs:(s + 1) * a.pairs])
        t = time.perf_counter()
        optimizer.zero_grad()
        pc = compute_logprobs(policy(batch["chosen"]).logits, batch["chosen"], batch["chosen_mask"])
        pr = compute_logprobs(policy(batch["rejected"]).logits, batch["rejected"], batch["rejected_mask"])
        with torch.no_grad():
            rc = compute_logprobs(reference(batch["chosen"]).logits, batch["chosen"], batch["chosen_mask"])
            rr = compute_logprobs(reference(batch["rejected"]).logits, batch["rejected"], batch["rejected_mask"])
        loss, _, _ = compute_dpo_loss(pc, pr, rc, rr, beta=0.1)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t)
        losses.append(loss.item())
        tokens.append(batch["chosen"].numel())
    timed = sorted(times[1:])
    print(json.dumps({"step_s": timed[len(timed) // 2], "steps": times, "tokens": tokens, "losses": losses,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
