#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures for the GPT-2 model, loss, gradients and AdamW.

Run by developers with pip-installed torch and safetensors, never by CI:
    python3 tests/tools/gen_gpt2_parity.py
The model below is the book's ch04 GPTModel (rasbt/LLMs-from-scratch, MultiHeadAttention with
separate W_query/W_key/W_value, LayerNorm with biased variance, tanh GELU), initialised by PyTorch
with torch.manual_seed(123). The reference is computed in float64 from the float32 initial weights
(so it is the exact result up to 1e-16); the float32 PyTorch results are stored as well so the C++
test can report how close we are to PyTorch itself.

Each fixture (tests/fixtures/gpt2_parity/<name>.safetensors, all tensors float32) holds:
  param.<our name>          initial weights, in gptrain's layout (qkv fused as [3C, C] rows q|k|v)
  in.tokens, in.targets     [B, T] ids (targets contain -100), stored as exact float32 integers
  ref.logits, ref.loss      float64 reference, rounded to float32
  ref.grad.<name>           float64 gradients of the mean loss
  ref.after3.<name>         parameters after 3 AdamW steps on the same batch (float64)
  torch32.logits, torch32.loss, torch32.grad.<name>   PyTorch float32 results
and its config and optimizer settings as JSON in the safetensors metadata.
"""
import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi, dtype=x.dtype)) *
                                         (x + 0.044715 * torch.pow(x, 3))))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, _ = x.shape
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]), GELU(),
                                    nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]))

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["context_length"], cfg["drop_rate"],
                                      cfg["n_heads"], cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1, self.norm2 = LayerNorm(cfg["emb_dim"]), LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_weights"):
            self.out_head.weight = self.tok_emb.weight

    def forward(self, in_idx):
        _, seq_len = in_idx.shape
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_head(self.final_norm(x))


def our_names(model, cfg):
    """(our parameter name, function returning that tensor from the torch model) pairs."""
    m = model
    pairs = [("tok_emb.weight", lambda: m.tok_emb.weight), ("pos_emb.weight", lambda: m.pos_emb.weight)]
    for i in range(cfg["n_layers"]):
        blk = lambda i=i: m.trf_blocks[i]
        p = f"blocks.{i}."
        pairs += [
            (p + "ln1.weight", lambda blk=blk: blk().norm1.scale), (p + "ln1.bias", lambda blk=blk: blk().norm1.shift),
            (p + "attn.qkv.weight", lambda blk=blk: torch.cat([blk().att.W_query.weight, blk().att.W_key.weight,
                                                               blk().att.W_value.weight], 0)),
        ]
        if cfg["qkv_bias"]:
            pairs.append((p + "attn.qkv.bias", lambda blk=blk: torch.cat([blk().att.W_query.bias, blk().att.W_key.bias,
                                                                           blk().att.W_value.bias], 0)))
        pairs += [
            (p + "attn.proj.weight", lambda blk=blk: blk().att.out_proj.weight),
            (p + "attn.proj.bias", lambda blk=blk: blk().att.out_proj.bias),
            (p + "ln2.weight", lambda blk=blk: blk().norm2.scale), (p + "ln2.bias", lambda blk=blk: blk().norm2.shift),
            (p + "mlp.fc.weight", lambda blk=blk: blk().ff.layers[0].weight),
            (p + "mlp.fc.bias", lambda blk=blk: blk().ff.layers[0].bias),
            (p + "mlp.proj.weight", lambda blk=blk: blk().ff.layers[2].weight),
            (p + "mlp.proj.bias", lambda blk=blk: blk().ff.layers[2].bias),
        ]
    pairs += [("ln_f.weight", lambda: m.final_norm.scale), ("ln_f.bias", lambda: m.final_norm.shift)]
    if not cfg.get("tie_weights"):
        pairs.append(("head.weight", lambda: m.out_head.weight))
    return pairs


def grad_of(model, name, cfg):
    """Gradient of one of our (possibly fused) parameters."""
    saved = {}
    for n, p in model.named_parameters():
        saved[n] = p.grad
    # Temporarily swap .data for .grad to reuse the name mapping.
    originals = {n: p.data for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.data = saved[n] if saved[n] is not None else torch.zeros_like(p.data)
    value = dict(our_names(model, cfg))[name]().detach().clone()
    for n, p in model.named_parameters():
        p.data = originals[n]
    return value


def run(cfg, dtype, tokens, targets, opt):
    torch.manual_seed(123)
    model = GPTModel(cfg)  # float32 init, the book's distributions
    model = model.to(dtype)
    model.train()  # drop_rate is 0: train mode equals eval mode
    logits = model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    initial = {n: f().detach().clone() for n, f in our_names(model, cfg)}
    grads = {n: grad_of(model, n, cfg) for n, _ in our_names(model, cfg)}
    out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1), "grads": grads, "initial": initial}
    # three AdamW steps on the same batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"],
                                  betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    optimizer.step()
    for _ in range(2):
        optimizer.zero_grad()
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
    out["after3"] = {n: f().detach().clone() for n, f in our_names(model, cfg)}
    return out


def make(name, cfg, B, T, opt, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
    targets = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
    targets[torch.rand(B, T, generator=g) < 0.25] = -100  # some ignored targets
    targets[-1, :] = -100  # and one sequence with no graded target at all
    targets[-1, 0] = 3
    ref = run(cfg, torch.float64, tokens, targets, opt)
    t32 = run(cfg, torch.float32, tokens, targets, opt)
    tensors = {}
    for n, v in t32["initial"].items():
        tensors["param." + n] = v.float().contiguous()
    tensors["in.tokens"] = tokens.float()
    tensors["in.targets"] = targets.float()
    tensors["ref.logits"] = ref["logits"].float()
    tensors["ref.loss"] = ref["loss"].float()
    tensors["torch32.logits"] = t32["logits"].float()
    tensors["torch32.loss"] = t32["loss"].float()
    for n in ref["grads"]:
        tensors["ref.grad." + n] = ref["grads"][n].float().contiguous()
        tensors["torch32.grad." + n] = t32["grads"][n].float().contiguous()
        tensors["ref.after3." + n] = ref["after3"][n].float().contiguous()
    meta = {"config": json.dumps(cfg), "optimizer": json.dumps(opt), "B": str(B), "T": str(T),
            "generator": "tests/tools/gen_gpt2_parity.py", "torch": torch.__version__}
    out_dir = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpt2_parity")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: loss ref {ref['loss'].item():.10f} torch32 {t32['loss'].item():.10f}, "
          f"{os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    opt = {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    make("gpt2_tiny", {"vocab_size": 61, "context_length": 32, "emb_dim": 64, "n_heads": 4, "n_layers": 2,
                       "drop_rate": 0.0, "qkv_bias": False, "tie_weights": False}, B=3, T=13, opt=opt, seed=1)
    make("gpt2_tiny_qkvbias_tied", {"vocab_size": 37, "context_length": 16, "emb_dim": 32, "n_heads": 2,
                                    "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True, "tie_weights": True},
         B=2, T=16, opt=opt, seed=2)
