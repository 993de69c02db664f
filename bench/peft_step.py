#!/usr/bin/env python3
"""bench/lora_step.cpp's step in PyTorch eager: transformers for the model, PEFT for the adapters.
One contender per process (peak RSS is its own); prints one JSON line. Benchmark-only: needs
pip-installed torch, transformers and peft.

  --task cls  the book's ch06 / appendix E classifier: transformers' GPT2Model (gpt2-small shape,
              random init, dropout 0, SDPA attention) and a new nn.Linear(768, 2) head with bias on
              the last position's hidden state; PEFT LoRA on c_attn, c_proj (attention and MLP),
              c_fc and the head
  --task lm   a causal LM from a model dir (Qwen3ForCausalLM; bf16 read as float32), loss over
              all positions; PEFT LoRA on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
  --mode full every parameter trains; --mode lora only PEFT's adapters (get_peft_model freezes the rest)

Step: zero_grad, forward, cross-entropy, backward, torch.optim.AdamW (lr 1e-4, weight decay 0.1)
over the trainable parameters. Step 0 warms up; the median of the next --steps is reported.

  python3 bench/peft_step.py --task cls --mode lora --batch 8 --length 120 --steps 3 --threads 2 [--ids FILE]
  python3 bench/peft_step.py --task lm --model DIR --mode lora --batch 4 --length 256 --steps 3 --threads 2
"""
import argparse
import json
import resource
import statistics
import time

import torch


def random_ids(n, vocab):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, vocab, (n,), generator=g).tolist()


class Classifier(torch.nn.Module):
    """The book's ch06 surgery on transformers' GPT-2 body: a new 2-class head on the last token."""

    def __init__(self, n_classes=2):
        super().__init__()
        from transformers import GPT2Config, GPT2Model
        cfg = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
        self.transformer = GPT2Model(cfg)
        self.head = torch.nn.Linear(768, n_classes)

    def forward(self, input_ids):
        h = self.transformer(input_ids=input_ids, use_cache=False).last_hidden_state
        return self.head(h[:, -1, :])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["cls", "lm"], default="cls")
    ap.add_argument("--model", help="--task lm: a model dir")
    ap.add_argument("--mode", choices=["full", "lora"], default="lora")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=120)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ids", help="B*T (cls) or B*(T+1) (lm) whitespace-separated ids; default random")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(123)
    B, T = a.batch, a.length
    t0 = time.perf_counter()
    if a.task == "cls":
        model = Classifier()
        targets = ["c_attn", "c_proj", "c_fc", "head"]
        vocab = 50257
    else:
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
        model.config.use_cache = False
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        vocab = model.config.vocab_size
    lora_modules = None
    if a.mode == "lora":
        import peft
        from peft import LoraConfig, get_peft_model
        lc = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=0.0, bias="none", target_modules=targets,
                        task_type="CAUSAL_LM" if a.task == "lm" else None)
        model = get_peft_model(model, lc)
        lora_modules = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    load_s = time.perf_counter() - t0
    per_row = T if a.task == "cls" else T + 1
    ids = [int(x) for x in open(a.ids).read().split()] if a.ids else random_ids(B * per_row, vocab)
    data = torch.tensor(ids, dtype=torch.long).view(B, per_row)
    if a.task == "cls":
        x, y = data, torch.tensor([b % 2 for b in range(B)])
    else:
        x, y = data[:, :T].contiguous(), data[:, 1:].contiguous()
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.1)
    times, fwd_t, bwd_t, opt_t, losses = [], [], [], [], []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        if a.task == "cls":
            loss = torch.nn.functional.cross_entropy(model(x), y)
        else:
            logits = model(input_ids=x, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        losses.append(loss.item())
        if s > 0:
            times.append(t3 - t0)
            fwd_t.append(t1 - t0)
            bwd_t.append(t2 - t1)
            opt_t.append(t3 - t2)
    out = {"impl": "peft" if a.mode == "lora" else "pytorch", "task": a.task, "mode": a.mode,
           "model": a.model or "gpt2-small", "threads": torch.get_num_threads(), "batch": B, "length": T,
           "trainable": sum(p.numel() for p in trainable), "parameters": sum(p.numel() for p in model.parameters()),
           "load_s": round(load_s, 3), "step_s": round(statistics.median(times), 3),
           "steps_s": [round(t, 3) for t in times], "forward_s": round(statistics.median(fwd_t), 3),
           "backward_s": round(statistics.median(bwd_t), 3), "optimizer_s": round(statistics.median(opt_t), 3),
           "loss0": round(losses[0], 5), "loss": round(losses[-1], 5), "torch": torch.__version__}
    if a.mode == "lora":
        out["peft"] = peft.__version__
        out["lora_modules"] = lora_modules
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
