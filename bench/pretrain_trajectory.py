#!/usr/bin/env python3
"""Deterministic side-by-side of the book's pretraining loop: the same initial weights (the book's
GPTModel built by torch with --seed, written as a model dir that gptrain loads), the windows in
corpus order (no shuffle), the same steps. Prints both per-step training losses and where they part.

With --drop-rate 0 nothing random is left, so the two loss sequences differ only by float rounding:
they must agree closely for many steps. With dropout on, the masks differ (torch's RNG against
ours) and the sequences agree only in distribution.

  python3 bench/pretrain_trajectory.py --steps 40 --drop-rate 0 --threads 1

Developer tool: pip-installed torch, safetensors and tiktoken; gptrain's binary from build/.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
sys.path.insert(0, HERE)
from gen_gpt2_parity import GPTModel  # noqa: E402  the book's model
from torch_pretrain_book import Windows, gpt2_encoding  # noqa: E402


def export_model_dir(model, cfg, out):
    """The torch model as an HF-layout model dir with gptrain's config block (untied head, no qkv bias)."""
    os.makedirs(out, exist_ok=True)
    t = {"transformer.wte.weight": model.tok_emb.weight, "transformer.wpe.weight": model.pos_emb.weight,
         "transformer.ln_f.weight": model.final_norm.scale, "transformer.ln_f.bias": model.final_norm.shift,
         "lm_head.weight": model.out_head.weight}
    for i, b in enumerate(model.trf_blocks):
        p = f"transformer.h.{i}."
        a = b.att
        qkv = torch.cat([a.W_query.weight, a.W_key.weight, a.W_value.weight], 0)
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = b.norm1.scale, b.norm1.shift
        t[p + "attn.c_attn.weight"] = qkv.t()
        t[p + "attn.c_attn.bias"] = torch.zeros(qkv.shape[0])
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = a.out_proj.weight.t(), a.out_proj.bias
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = b.norm2.scale, b.norm2.shift
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = b.ff.layers[0].weight.t(), b.ff.layers[0].bias
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = b.ff.layers[2].weight.t(), b.ff.layers[2].bias
    save_file({k: v.detach().contiguous().clone() for k, v in t.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
              "vocab_size": cfg["vocab_size"], "n_positions": cfg["context_length"], "n_embd": cfg["emb_dim"],
              "n_layer": cfg["n_layers"], "n_head": cfg["n_heads"], "n_inner": None, "layer_norm_epsilon": 1e-5,
              "tie_word_embeddings": False, "bos_token_id": 50256, "eos_token_id": 50256,
              "gptrain": {"drop_rate": cfg["drop_rate"], "head": "lm", "qkv_bias": False}}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def torch_losses(model, loader, steps, lr, wd):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    model.train()
    losses, step = [], 0
    while step < steps:
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step == steps:
                break
    return losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--gptrain", default=os.path.join(HERE, "..", "build", "gptrain"))
    ap.add_argument("--work", default="/tmp/pretrain_trajectory")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--drop-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=123, help="seed of the dropout masks (each side's own RNG)")
    ap.add_argument("--init-seed", type=int, default=123, help="torch.manual_seed of the initial weights")
    ap.add_argument("--threads", type=int, default=1, help="threads for each side (both run at once)")
    ap.add_argument("--emb-dim", type=int, default=768)
    ap.add_argument("--n-layers", type=int, default=12)
    ap.add_argument("--n-heads", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = {"vocab_size": 50257, "context_length": 256, "emb_dim": a.emb_dim, "n_heads": a.n_heads,
           "n_layers": a.n_layers, "drop_rate": a.drop_rate, "qkv_bias": False}
    torch.manual_seed(a.init_seed)
    model = GPTModel(cfg)
    model_dir = os.path.join(a.work, "init")
    export_model_dir(model, cfg, model_dir)

    out_dir = os.path.join(a.work, "gptrain-run")
    cmd = [a.gptrain, "pretrain", "--init", model_dir, "--data-dir", a.data_dir, "--out-dir", out_dir, "--overwrite",
           "--no-shuffle", "--drop-rate", str(a.drop_rate), "--max-steps", str(a.steps), "--eval-interval", "1",
           "--eval-iters", "1", "--sample-tokens", "0", "--threads", str(a.threads), "--seed", str(a.seed)]
    log = open(os.path.join(a.work, "gptrain.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    enc = gpt2_encoding(a.data_dir)
    text = open(os.path.join(a.data_dir, "the-verdict.txt"), encoding="utf-8").read()
    split = int(0.90 * len(text))
    loader = torch.utils.data.DataLoader(Windows(enc.encode(text[:split], allowed_special={"<|endoftext|>"}), 256, 256),
                                         batch_size=2, shuffle=False, drop_last=True)
    torch.manual_seed(a.seed)
    start = time.perf_counter()
    ours_torch = torch_losses(model, loader, a.steps, 4e-4, 0.1)
    t_torch = time.perf_counter() - start
    if proc.wait() != 0:
        sys.exit(f"gptrain failed; see {log.name}")
    rows = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    ours = {r["step"]: r["step_loss"] for r in rows if "step_loss" in r}
    print(f"drop rate {a.drop_rate}, {a.steps} steps, windows in order; torch {t_torch:.0f} s")
    print(f"{'step':>4} {'gptrain':>10} {'torch':>10} {'rel diff':>9}")
    worst = 0.0
    for s, lt in enumerate(ours_torch):
        lg = ours.get(s)
        if lg is None:
            continue
        rel = abs(lg - lt) / abs(lt)
        worst = max(worst, rel)
        print(f"{s:4d} {lg:10.5f} {lt:10.5f} {rel:9.2e}")
    print(f"largest relative difference {worst:.2e}")
    tail = min(9, len(ours_torch))
    mean_g = sum(ours[s] for s in range(a.steps - tail, a.steps)) / tail
    mean_t = sum(ours_torch[a.steps - tail:]) / tail
    print(f"mean step loss of the last {tail} steps: gptrain {mean_g:.4f}, torch {mean_t:.4f}")


if __name__ == "__main__":
    main()
