#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures of LoRA finetuning (the book's appendix E).

Run by developers with pip-installed torch and safetensors, never by CI:
    python3 tests/tools/gen_lora_parity.py
The model is the book's ch04 GPTModel (imported from gen_gpt2_parity.py) with appendix E's
LoRALayer / LinearWithLoRA / replace_linear_with_lora (copied below, current version:
forward = (alpha / rank) * (x @ A @ B), A [in, rank] kaiming_uniform_(a=sqrt(5)), B [rank, out]).
Every nn.Linear is wrapped, as replace_linear_with_lora does on the whole model: W_query, W_key,
W_value, out_proj, ff.layers.0 and ff.layers.2 of every block, and the output head; the base
(embeddings, norms, every Linear's weight and bias) is frozen. B is not zero as in the book but
N(0, 0.1), so every gradient is non-trivial. float64 reference from the float32 initial weights,
plus the float32 PyTorch results, as gen_gpt2_parity.py.

Adapters in gptrain's layout: for a Linear named L (our names, as gen_gpt2_parity.py)
  L.lora_A  [S*R, in]   rows [sR, (s+1)R) are the book's A_s^T of segment s
  L.lora_B  [out, R]    the rows of segment s are the book's B_s^T
  forward adds scaling * (x A_s^T) B_s^T to the output columns of segment s, scaling = alpha / rank.
blocks.{i}.attn.qkv has S = 3 segments q|k|v of width C each (the book's separate W_query,
W_key, W_value, each with its own LoRALayer); every other Linear has S = 1.

Fixtures (tests/fixtures/lora_parity/<name>.safetensors, all tensors float32):
  lora_cls_book   the book's 2-class classifier: out_head = Linear(emb, 2) with bias, loss on the
                  last position's logits (right-padded texts), qkv bias as gpt2-small
  lora_lm_untied  a language model, untied head without bias (adapted too), no qkv bias,
                  next-token targets with -100 entries
Tensors:
  param.<our name>            base weights and adapters (L.lora_A, L.lora_B) in gptrain's layout
  in.tokens [B,T]; in.labels [B] (classifier) or in.targets [B,T] (LM), exact float32 integers
  ref.logits ([B,2] pooled, or [B,T,V]), ref.loss [1]       float64 reference
  ref.grad.<adapter>          gradient of the mean loss for every adapter tensor (the base is frozen)
  ref.after3.<adapter>        the adapters after 3 AdamW steps on the same batch
  ref.merged_logits           float64 logits of the plain GPTModel whose adapted weights are merged
                              in our layout, W + scaling * B_s A_s on each segment's output rows
                              (checked here to equal ref.logits to float64 rounding)
  torch32.logits, torch32.loss, torch32.grad.<adapter>      PyTorch float32
Metadata (JSON strings): config, lora {rank, alpha, b_std, b_seed, scaling ("rank": alpha/rank,
gptrain's --lora-scaling rank), scaling_value, b_init}, adapters [{name, in, out, segments, book}],
optimizer, trainable (the adapter tensor names), task, n_classes, pooling, B, T, error_k,
generator, torch.

The script also checks the book's figure: gpt2-small with a 2-class head and rank 16, every
Linear adapted, has 2,666,528 trainable parameters (counted on the meta device).
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_gpt2_parity import GPTModel, our_names  # noqa: E402
from hf_error_model import error_k  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "lora_parity")


# ----------------------------------------------------------------------------------------------
# The book's appendix E (appendix-E.ipynb / pkg/llms_from_scratch/appendix_e.py, current version)

class LoRALayer(nn.Module):
    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # similar to standard weight initialization
        self.B = nn.Parameter(torch.zeros(rank, out_dim))
        self.alpha = alpha
        self.rank = rank

    def forward(self, x):
        return (self.alpha / self.rank) * (x @ self.A @ self.B)


class LinearWithLoRA(nn.Module):
    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):
        return self.linear(x) + self.lora(x)

    # Not in the book: lets gen_gpt2_parity.our_names read the wrapped base weights.
    @property
    def weight(self):
        return self.linear.weight

    @property
    def bias(self):
        return self.linear.bias


def replace_linear_with_lora(model, rank, alpha):
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)


# ----------------------------------------------------------------------------------------------
# The float error of an adapter, added to hf_error_model.error_k

def lora_error_terms(adapted):
    """The error model's k for LoRA adapters, to add to error_k / error_k_config: each adapted
    Linear (in features, rank) adds the reductions x A^T (sqrt(in)) and (x A^T) B^T (sqrt(rank)),
    and the scaling and the add to the base output (1 u each); merging instead rounds B A (sqrt(rank)),
    its scaling and W + delta, which the same terms cover. Parallel adapters (q, k, v) are summed
    as if in series, which is the same safety margin as hf_error_model's linear sum."""
    return sum(math.sqrt(i) + math.sqrt(r) + 2 for i, r in adapted)


# ----------------------------------------------------------------------------------------------
# Our names for the adapters

def adapters(model, cfg):
    """[(our Linear name, [book LinearWithLoRA per segment], [book module path per segment])]."""
    out = []
    for i, blk in enumerate(model.trf_blocks):
        p, b = f"blocks.{i}.", f"trf_blocks.{i}."
        out += [(p + "attn.qkv", [blk.att.W_query, blk.att.W_key, blk.att.W_value],
                 [b + "att.W_query", b + "att.W_key", b + "att.W_value"]),
                (p + "attn.proj", [blk.att.out_proj], [b + "att.out_proj"]),
                (p + "mlp.fc", [blk.ff.layers[0]], [b + "ff.layers.0"]),
                (p + "mlp.proj", [blk.ff.layers[2]], [b + "ff.layers.2"])]
    out.append(("head", [model.out_head], ["out_head"]))
    for _, mods, _ in out:
        assert all(isinstance(m, LinearWithLoRA) for m in mods)
    return out


def adapter_tensors(model, cfg, field=lambda p: p):
    """{L.lora_A: [S R, in], L.lora_B: [out, R]} in our layout; field picks the parameter or its grad."""
    out = {}
    for name, mods, _ in adapters(model, cfg):
        out[name + ".lora_A"] = torch.cat([field(m.lora.A).t() for m in mods], 0)
        out[name + ".lora_B"] = torch.cat([field(m.lora.B).t() for m in mods], 0)
    return out


def base_tensors(model, cfg, classifier):
    pairs = our_names(model, cfg)
    if classifier:
        pairs += [("head.bias", lambda: model.out_head.bias)]
    return {n: f() for n, f in pairs}


def merged_weight(w, lora_a, lora_b, segments, scaling):
    """W + scaling * B_s A_s on the output rows of each segment, in our layout."""
    w = w.clone()
    r = lora_a.shape[0] // segments
    width = w.shape[0] // segments
    for s in range(segments):
        w[s * width:(s + 1) * width] += scaling * (lora_b[s * width:(s + 1) * width] @ lora_a[s * r:(s + 1) * r])
    return w


def load_ours(model, cfg, params):
    """Sets a plain (unadapted) GPTModel's parameters from our names."""
    c = cfg["emb_dim"]
    with torch.no_grad():
        model.tok_emb.weight.copy_(params["tok_emb.weight"])
        model.pos_emb.weight.copy_(params["pos_emb.weight"])
        for i, blk in enumerate(model.trf_blocks):
            p = f"blocks.{i}."
            blk.norm1.scale.copy_(params[p + "ln1.weight"]), blk.norm1.shift.copy_(params[p + "ln1.bias"])
            blk.norm2.scale.copy_(params[p + "ln2.weight"]), blk.norm2.shift.copy_(params[p + "ln2.bias"])
            for s, lin in enumerate([blk.att.W_query, blk.att.W_key, blk.att.W_value]):
                lin.weight.copy_(params[p + "attn.qkv.weight"][s * c:(s + 1) * c])
                if cfg["qkv_bias"]:
                    lin.bias.copy_(params[p + "attn.qkv.bias"][s * c:(s + 1) * c])
            for lin, n in [(blk.att.out_proj, "attn.proj"), (blk.ff.layers[0], "mlp.fc"),
                           (blk.ff.layers[2], "mlp.proj")]:
                lin.weight.copy_(params[p + n + ".weight"])
                lin.bias.copy_(params[p + n + ".bias"])
        model.final_norm.scale.copy_(params["ln_f.weight"])
        model.final_norm.shift.copy_(params["ln_f.bias"])
        model.out_head.weight.copy_(params["head.weight"])
        if model.out_head.bias is not None:
            model.out_head.bias.copy_(params["head.bias"])


# ----------------------------------------------------------------------------------------------
# The fixtures

def build(cfg, n_classes, lora, dtype=torch.float32):
    """The book's sequence: GPTModel under seed 123, (classifier) out_head = Linear(emb, n) under
    seed 123 again, freeze every parameter, replace_linear_with_lora (A drawn from the global RNG as
    it stands), then B ~ N(0, b_std) from its own generator (not the book: there B = 0)."""
    torch.manual_seed(123)
    model = GPTModel(cfg)
    if n_classes:
        torch.manual_seed(123)
        model.out_head = nn.Linear(cfg["emb_dim"], n_classes)
    for p in model.parameters():
        p.requires_grad = False
    replace_linear_with_lora(model, rank=lora["rank"], alpha=lora["alpha"])
    if "b_std" in lora:
        g = torch.Generator().manual_seed(lora["b_seed"])
        for m in model.modules():
            if isinstance(m, LoRALayer):
                m.B.data.normal_(0.0, lora["b_std"], generator=g)
    return model.to(dtype)


def forward_loss(model, tokens, y, classifier):
    out = model(tokens)
    if classifier:
        logits = out[:, -1, :]  # the book: model(input_batch)[:, -1, :]
        return logits, nn.functional.cross_entropy(logits, y)
    return out, nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())


def run(cfg, n_classes, lora, opt, dtype, tokens, y):
    classifier = bool(n_classes)
    model = build(cfg, n_classes, lora, dtype)
    model.train()  # drop_rate 0: train mode equals eval mode
    logits, loss = forward_loss(model, tokens, y, classifier)
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 2 * sum(len(m) for _, m, _ in adapters(model, cfg))
    base = {n: t.detach().clone() for n, t in base_tensors(model, cfg, classifier).items()}
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1), "base": base,
           "adapters": {n: t.detach().clone() for n, t in adapter_tensors(model, cfg).items()},
           "grads": {n: t.detach().clone() for n, t in adapter_tensors(model, cfg, lambda p: p.grad).items()},
           "segments": {n: len(mods) for n, mods, _ in adapters(model, cfg)},
           "book": {n: paths for n, _, paths in adapters(model, cfg)}}
    # The book's optimizer call passes model.parameters(); the frozen ones have no grad and stay put.
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"],
                                  betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    optimizer.step()
    for _ in range(2):
        optimizer.zero_grad()
        forward_loss(model, tokens, y, classifier)[1].backward()
        optimizer.step()
    out["after3"] = {n: t.detach().clone() for n, t in adapter_tensors(model, cfg).items()}
    assert all(torch.equal(t, base[n]) for n, t in base_tensors(model, cfg, classifier).items())
    return out


def merged_reference(cfg, n_classes, lora, ref, tokens):
    """float64: every adapted weight merged in our layout, run through the plain GPTModel."""
    scaling = lora["alpha"] / lora["rank"]
    params = dict(ref["base"])
    merged = {}
    for name, segments in ref["segments"].items():
        merged[name + ".weight"] = merged_weight(params[name + ".weight"], ref["adapters"][name + ".lora_A"],
                                                 ref["adapters"][name + ".lora_B"], segments, scaling)
    params.update(merged)
    plain = GPTModel(cfg)
    if n_classes:
        plain.out_head = nn.Linear(cfg["emb_dim"], n_classes)
    plain = plain.double()
    load_ours(plain, cfg, params)
    with torch.no_grad():
        out = plain(tokens)
    return (out[:, -1, :] if n_classes else out), merged


def make(name, cfg, n_classes, lora, opt, B, T, seed):
    classifier = bool(n_classes)
    g = torch.Generator().manual_seed(seed)
    if classifier:  # right-padded texts as the book's SpamDataset, the last id playing 50256's part
        pad = cfg["vocab_size"] - 1
        tokens = torch.full((B, T), pad, dtype=torch.long)
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T
        for b in range(B):
            tokens[b, : lengths[b]] = torch.randint(0, pad, (int(lengths[b]),), generator=g)
        y = torch.randint(0, n_classes, (B,), generator=g)
        y[0], y[1] = 0, 1  # both classes present
    else:
        tokens = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
        y = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
        y[torch.rand(B, T, generator=g) < 0.25] = -100
    ref = run(cfg, n_classes, lora, opt, torch.float64, tokens, y)
    t32 = run(cfg, n_classes, lora, opt, torch.float32, tokens, y)
    for part in ("base", "adapters"):  # the float64 run starts from the float32 values
        assert all(torch.equal(t32[part][n].double(), ref[part][n]) for n in ref[part])
    merged_logits, _ = merged_reference(cfg, n_classes, lora, ref, tokens)

    # Checks: merging changes nothing beyond float64 rounding, PyTorch float32 is within the error
    # model, every gradient row is non-zero and the three steps move every adapter.
    adapted = [(ref["adapters"][n + ".lora_A"].shape[1], lora["rank"]) for n, s in ref["segments"].items()
               for _ in range(s)]
    k = error_k(cfg["emb_dim"], cfg["n_heads"], cfg["n_layers"], T) + lora_error_terms(adapted)
    norm = ref["logits"].norm().item()
    merge_err = (merged_logits - ref["logits"]).norm().item() / norm
    t32_err = (t32["logits"].double() - ref["logits"]).norm().item() / norm
    base_only = merged_reference(cfg, n_classes, dict(lora, alpha=0.0), ref, tokens)[0]
    effect = (base_only - ref["logits"]).norm().item() / norm
    assert merge_err <= k * 2.0 ** -53, merge_err
    assert t32_err <= k * 2.0 ** -24, (t32_err, k * 2.0 ** -24)
    for n, gr in ref["grads"].items():
        assert gr.norm(dim=1).min().item() > 0, f"{n}: a zero gradient row"
        moved = ref["after3"][n] - ref["adapters"][n]
        assert bool((moved != 0).all()) and moved.pow(2).mean().sqrt().item() > opt["lr"], f"{n} did not move"
    grad_err = max((t32["grads"][n].double() - gr).norm().item() / gr.norm().item() for n, gr in ref["grads"].items())

    tensors = {"param." + n: v.float().contiguous() for n, v in t32["base"].items()}
    tensors.update({"param." + n: v.float().contiguous() for n, v in t32["adapters"].items()})
    tensors["in.tokens"] = tokens.float()
    tensors["in.labels" if classifier else "in.targets"] = y.float()
    tensors["ref.logits"] = ref["logits"].float()
    tensors["ref.loss"] = ref["loss"].float()
    tensors["ref.merged_logits"] = merged_logits.float()
    tensors["torch32.logits"] = t32["logits"].float()
    tensors["torch32.loss"] = t32["loss"].float()
    for n in ref["grads"]:
        tensors["ref.grad." + n] = ref["grads"][n].float().contiguous()
        tensors["torch32.grad." + n] = t32["grads"][n].float().contiguous()
        tensors["ref.after3." + n] = ref["after3"][n].float().contiguous()
    adapter_meta = [{"name": n, "in": ref["adapters"][n + ".lora_A"].shape[1],
                     "out": ref["adapters"][n + ".lora_B"].shape[0], "segments": s, "book": ref["book"][n]}
                    for n, s in ref["segments"].items()]
    lora_meta = dict(lora, scaling="rank", scaling_value=lora["alpha"] / lora["rank"],
                     b_init=f"N(0, {lora['b_std']}) from torch.Generator().manual_seed({lora['b_seed']}), "
                            "in module order; the book initialises B to zero")
    meta = {"config": json.dumps(cfg), "lora": json.dumps(lora_meta), "adapters": json.dumps(adapter_meta),
            "optimizer": json.dumps(opt), "trainable": json.dumps(list(ref["grads"])),
            "task": "classifier" if classifier else "lm", "n_classes": str(n_classes),
            "pooling": "last" if classifier else "none", "B": str(B), "T": str(T), "error_k": repr(k),
            "generator": "tests/tools/gen_lora_parity.py", "torch": torch.__version__}
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    os.chmod(path, 0o644)
    print(f"{name}: loss ref {ref['loss'].item():.10f} torch32 {t32['loss'].item():.10f}; "
          f"||merged-ref||/||ref|| {merge_err:.2e}; ||torch32-ref||/||ref|| {t32_err:.2e} <= k*u {k * 2.0 ** -24:.2e}; "
          f"max grad rel err {grad_err:.2e}; adapter effect ||base-ref||/||ref|| {effect:.2f}; "
          f"{len(ref['grads'])} adapter tensors, {os.path.getsize(path) / 1024:.0f} KiB")


def check_book_count():
    """appendix E: gpt2-small (qkv bias, as the OpenAI weights) with out_head = Linear(768, 2),
    frozen, replace_linear_with_lora(rank=16, alpha=16): 124,441,346 parameters, 2,666,528 trainable."""
    cfg = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
           "drop_rate": 0.0, "qkv_bias": True}
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = build(cfg, 2, {"rank": 16, "alpha": 16})
    total = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_block = sum(p.numel() for p in model.trf_blocks[0].parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.out_head.parameters() if p.requires_grad)
    print(f"gpt2-small + 2-class head, rank 16: base {total:,} parameters (frozen), LoRA trainable "
          f"{trainable:,} = {per_block:,} per block x 12 + {head:,} head")
    assert total == 124_441_346, total
    assert trainable == 2_666_528, trainable
    # The same count from our layout: qkv A [3r, C], B [3C, r]; proj, fc, mlp.proj, head [r, in] and [out, r].
    c, r = 768, 16
    block = (3 * r * c + 3 * c * r) + (r * c + c * r) + (r * c + 4 * c * r) + (r * 4 * c + c * r)
    ours = 12 * block + (r * c + 2 * r)
    assert ours == trainable, ours


if __name__ == "__main__":
    torch.set_num_threads(1)
    check_book_count()
    # appendix E's optimizer settings (the current notebook: AdamW(lr=8e-4, weight_decay=0.1))
    opt = {"lr": 8e-4, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    lora = {"rank": 4, "alpha": 8, "b_std": 0.1}
    make("lora_cls_book", {"vocab_size": 61, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
                           "drop_rate": 0.0, "qkv_bias": True},
         n_classes=2, lora=dict(lora, b_seed=21), opt=opt, B=4, T=12, seed=21)
    make("lora_lm_untied", {"vocab_size": 53, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
                            "drop_rate": 0.0, "qkv_bias": False, "tie_weights": False},
         n_classes=0, lora=dict(lora, b_seed=22), opt=opt, B=3, T=16, seed=22)
