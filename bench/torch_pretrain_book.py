#!/usr/bin/env python3
"""The book's chapter 5 pretraining run in PyTorch (ch05.ipynb §5.2: train_model_simple on
the-verdict.txt, context 256, batch 2, AdamW lr 4e-4 wd 0.1, 10 epochs, eval every 5 steps over 5
batches, greedy 50-token sample after each epoch), timed, for the side-by-side entry in
BENCHMARKS.md. Developer tool: pip-installed torch and tiktoken; tokenizer built offline from the
data dir's GPT-2 files.

  python3 bench/torch_pretrain_book.py --data-dir ../shared/data --threads 2
"""
import argparse
import json
import os
import sys
import time

import tiktoken
import torch
from tiktoken.load import load_tiktoken_bpe

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from gen_gpt2_parity import GPTModel  # noqa: E402  the book's model


def gpt2_encoding(data_dir):
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    ranks = load_tiktoken_bpe(os.path.join(data_dir, "gpt2_tokenizer", "r50k_base.tiktoken"))
    return tiktoken.Encoding(name="gpt2", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


class Windows(torch.utils.data.Dataset):
    def __init__(self, ids, max_length, stride):
        self.x, self.y = [], []
        for i in range(0, len(ids) - max_length, stride):
            self.x.append(torch.tensor(ids[i:i + max_length]))
            self.y.append(torch.tensor(ids[i + 1:i + max_length + 1]))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def loss_loader(loader, model, num_batches):
    if len(loader) == 0:
        return float("nan")
    n = min(num_batches, len(loader))
    total = 0.0
    for i, (x, y) in enumerate(loader):
        if i >= n:
            break
        total += torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    return total / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=123, help="torch.manual_seed (the book: 123)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    enc = gpt2_encoding(a.data_dir)
    text = open(os.path.join(a.data_dir, "the-verdict.txt"), encoding="utf-8").read()
    split = int(0.90 * len(text))
    cfg = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
           "drop_rate": 0.1, "qkv_bias": False}
    torch.manual_seed(a.seed)
    train = torch.utils.data.DataLoader(Windows(enc.encode(text[:split], allowed_special={"<|endoftext|>"}), 256, 256),
                                        batch_size=2, shuffle=True, drop_last=True)
    val = torch.utils.data.DataLoader(Windows(enc.encode(text[split:], allowed_special={"<|endoftext|>"}), 256, 256),
                                      batch_size=2, shuffle=False, drop_last=False)
    torch.manual_seed(a.seed)
    model = GPTModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    start = time.perf_counter()
    tokens_seen, step = 0, -1
    train_loss = val_loss = None
    for epoch in range(a.epochs):
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            opt.step()
            tokens_seen += x.numel()
            step += 1
            if step % 5 == 0:
                model.eval()
                with torch.no_grad():
                    train_loss, val_loss = loss_loader(train, model, 5), loss_loader(val, model, 5)
                model.train()
                print(f"Ep {epoch + 1} (Step {step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}",
                      flush=True)
        model.eval()
        ids = torch.tensor(enc.encode("Every effort moves you")).unsqueeze(0)
        with torch.no_grad():
            for _ in range(50):
                ids = torch.cat([ids, model(ids[:, -256:])[:, -1, :].argmax(-1, keepdim=True)], dim=1)
        print(enc.decode(ids.squeeze(0).tolist()).replace("\n", " "), flush=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "steps": step + 1, "wall_s": round(seconds, 1), "train_tokens": tokens_seen,
                      "tokens_per_s": round(tokens_seen / seconds, 1), "final_train_loss": round(train_loss, 3),
                      "final_val_loss": round(val_loss, 3)}))


if __name__ == "__main__":
    main()
