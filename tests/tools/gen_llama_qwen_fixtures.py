#!/usr/bin/env python3
"""Writes tiny random Llama 3 and Qwen3 model dirs with transformers, and their references, for
tests/model/llama_qwen_parity_test.cpp.

Developers run this with pip-installed torch, transformers and safetensors (never CI):

  python tests/tools/gen_llama_qwen_fixtures.py          # tests/fixtures/llama_qwen (committed)

Each sub-directory is a model dir as save_pretrained writes it (config.json, model.safetensors,
generation_config.json) plus reference.safetensors:
  in.tokens, in.targets      I64 [B,T]; targets hold -100 (ignored) entries
  ref.logits, ref.loss       the same model in float64 (from the weights as stored), the "exact" result
  torch32.logits             transformers in float32, for the record
  ref.grad.<name>            d(mean loss)/d(parameter) in float64, every parameter by its file name
  ref.after3.<name>          every parameter after 3 AdamW steps (torch.optim.AdamW, float64) on that batch
  gen.prompt, gen.greedy     I64: transformers' greedy generate() in float32 (12 new tokens, no eos)
with the AdamW settings and the smallest top-1/top-2 logit gap of the greedy steps in the metadata.
Variants:
  llama_gqa_scaled     LlamaForCausalLM: 4 query heads over 2 key/value heads, llama3 rope scaling,
                       untied head, float32 weights
  llama_bf16           the same model saved in bfloat16
  qwen3_tied           Qwen3ForCausalLM: query/key norms, head size 12 with width 32 (not width /
                       heads), tied head, float32
  qwen3_bf16           the same model saved in bfloat16
Weights are random (offline); norm weights are perturbed away from 1 so a mix-up of any shows.
"""
import argparse
import copy
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "llama_qwen")
B, T = 2, 9
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)


def llama_config():
    return LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=500000.0,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                       tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                       bos_token_id=1, eos_token_id=2, initializer_range=0.1)


def qwen3_config():
    return Qwen3Config(vocab_size=97, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=12, max_position_embeddings=64,
                       rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                       attention_bias=False, bos_token_id=1, eos_token_id=2, initializer_range=0.1)


def make(cls, config, seed):
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def stored_weights(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def greedy_margin(model64, prompt, new_tokens):
    """The smallest top-1 minus top-2 logit gap over greedy steps (float64): the fixture's greedy
    ids are robust to float32 rounding only if this is far above it."""
    ids = prompt.clone()
    margin = float("inf")
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model64(ids).logits[0, -1]
            top = torch.topk(logits, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    return margin, ids[:, prompt.shape[1]:]


def write(name, cls, config, seed, dtype):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    model = make(cls, config, seed)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    # The reference runs on the weights exactly as stored (bf16 values for the bf16 dirs).
    stored = stored_weights(os.path.join(out, "model.safetensors"))
    model32 = make(cls, config, seed).float()
    state = {k: v.float() for k, v in stored.items()}
    missing, unexpected = model32.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model32.tie_weights()
    model64 = copy.deepcopy(model32).double()
    untrained64 = copy.deepcopy(model64)

    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, config.vocab_size, (B, T), generator=g)
    targets = torch.randint(0, config.vocab_size, (B, T), generator=g)
    targets[0, 1] = targets[1, 4] = targets[1, 8] = -100
    with torch.no_grad():
        logits32 = model32(tokens).logits
    params = dict(model64.named_parameters())
    logits64 = model64(tokens).logits
    loss = torch.nn.functional.cross_entropy(logits64.reshape(-1, config.vocab_size), targets.reshape(-1),
                                             ignore_index=-100)
    loss.backward()
    # Names as in the file (a tied lm_head is the embedding and is not stored).
    file_names = set(stored.keys())
    ref = {"in.tokens": tokens.to(torch.int64), "in.targets": targets.to(torch.int64),
           "ref.logits": logits64.detach(), "ref.loss": loss.detach().reshape(1),
           "torch32.logits": logits32.float()}
    for pname, p in params.items():
        if pname in file_names:
            ref["ref.grad." + pname] = p.grad.detach().clone()
    opt = torch.optim.AdamW(model64.parameters(), **ADAMW)
    opt.step()
    for _ in range(2):
        opt.zero_grad()
        l = torch.nn.functional.cross_entropy(model64(tokens).logits.reshape(-1, config.vocab_size),
                                              targets.reshape(-1), ignore_index=-100)
        l.backward()
        opt.step()
    for pname, p in params.items():
        if pname in file_names:
            ref["ref.after3." + pname] = p.detach().clone()

    prompt = torch.tensor([[5, 17, 3, 60, 41]])
    with torch.no_grad():
        greedy = model32.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0,
                                  min_new_tokens=12)[:, prompt.shape[1]:]
    margin, greedy64 = greedy_margin(untrained64, prompt, 12)
    assert torch.equal(greedy, greedy64), "float32 greedy differs from float64 greedy: pick another seed"
    ref["gen.prompt"] = prompt.to(torch.int64)
    ref["gen.greedy"] = greedy.to(torch.int64)
    meta = {"B": str(B), "T": str(T), "adamw": json.dumps(ADAMW), "greedy_min_margin": repr(margin),
            "stored_dtype": str(dtype).replace("torch.", "")}
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "reference.safetensors"), metadata=meta)
    err = (logits32.double() - logits64.detach()).norm().item() / logits64.norm().item()
    print(f"{name}: loss {loss.item():.6f}, transformers f32 vs f64 logits rel {err:.2e}, greedy margin {margin:.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    write("llama_gqa_scaled", LlamaForCausalLM, llama_config(), 11, torch.float32)
    write("llama_bf16", LlamaForCausalLM, llama_config(), 11, torch.bfloat16)
    write("qwen3_tied", Qwen3ForCausalLM, qwen3_config(), 12, torch.float32)
    write("qwen3_bf16", Qwen3ForCausalLM, qwen3_config(), 12, torch.bfloat16)


if __name__ == "__main__":
    main()
