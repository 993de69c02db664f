#!/usr/bin/env python3
"""Greedy token ids from transformers (optionally with a PEFT adapter) for given prompt ids: the
reference side of tools/check_gguf_llamacpp.sh's adapter checks. A developer tool, never run by CI.

    python3 tests/tools/hf_greedy.py MODEL_DIR [--adapter ADAPTER_DIR] --ids "1 2 3" --n 16

Prints "generated ids: ..." (argmax per step, lowest id on a tie, no stop at eos), computed in
float64 so that its own rounding cannot decide a near tie.
"""
import argparse

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--adapter")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float64)
    if args.adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    ids = torch.tensor([[int(t) for t in args.ids.split()]])
    out = []
    margins = []
    with torch.no_grad():
        for _ in range(args.n):
            logits = model(ids).logits[0, -1]
            top = torch.topk(logits, 2)
            margins.append((top.values[0] - top.values[1]).item())
            best = int(torch.argmax(logits))
            out.append(best)
            ids = torch.cat([ids, torch.tensor([[best]])], dim=1)
    print("generated ids: " + " ".join(str(t) for t in out))
    print(f"smallest top-1 - top-2 logit margin: {min(margins):.3g}")


if __name__ == "__main__":
    main()
