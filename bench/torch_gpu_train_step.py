#!/usr/bin/env python3
"""PyTorch's training step on a GPU, the peer of `bench/train_step --device cuda` (issue 20): the
same shapes, Hugging Face transformers' models (GPT-2 with SDPA attention; Qwen3 for the
qwen3-0.6b shape), AdamW, random tokens, dropout off (llm.c has none). Modes:

  f32           float32 throughout, TF32 off: the arithmetic of gptrain's f32 mode
  tf32          float32 with TF32 tensor-core matmuls
  bf16          bf16 autocast, SDPA flash attention, fused AdamW (eager)
  bf16-compile  the same under torch.compile: PyTorch's best

Prints one JSON line per mode with tokens/s and MFU (the FLOPs of bench/train_step.cpp over the
card's dense peak for the mode's arithmetic). Developer tool: needs torch and transformers.

  python3 bench/torch_gpu_train_step.py --preset gpt2-small --batch 16 --context 1024 --modes f32,bf16-compile
"""
import argparse
import json
import statistics
import sys
import time

import torch

# Dense peak TFLOPS of an H100 SXM / H200 (the same SMs and clocks): NVIDIA's data sheets,
# without sparsity.
PEAK_TFLOPS = {"f32": 66.9, "tf32": 494.7, "bf16": 989.4, "bf16-compile": 989.4}

PRESETS = {  # emb, layers, heads, kv heads, head dim, mlp width, family
    "gpt2-small": (768, 12, 12, 12, 64, 3072, "gpt2"),
    "gpt2-medium": (1024, 24, 16, 16, 64, 4096, "gpt2"),
    "qwen3-0.6b": (1024, 28, 16, 8, 128, 3072, "qwen3"),
}


def model_flops(preset, B, T, vocab):
    """bench/train_step.cpp's count: 6 per matmul weight per token plus causal attention."""
    C, L, NH, NKV, HS, M, family = PRESETS[preset]
    qkv = (NH + 2 * NKV) * HS * C
    block = qkv + NH * HS * C + (3 if family == "qwen3" else 2) * M * C
    return 6.0 * B * T * (L * block + vocab * C) + L * 6.0 * B * T * T * NH * HS


def build(preset, T):
    import transformers

    C, L, NH, NKV, HS, M, family = PRESETS[preset]
    if family == "gpt2":
        cfg = transformers.GPT2Config(n_embd=C, n_layer=L, n_head=NH, n_positions=T, n_inner=M, vocab_size=50257,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa"), 50257
    cfg = transformers.Qwen3Config(hidden_size=C, num_hidden_layers=L, num_attention_heads=NH, num_key_value_heads=NKV,
                                   head_dim=HS, intermediate_size=M, vocab_size=151936, max_position_embeddings=T,
                                   tie_word_embeddings=True, attention_dropout=0.0)
    return transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa"), 151936


def run(mode, preset, B, T, steps):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    torch.manual_seed(0)
    model, vocab = build(preset, T)
    model = model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1, fused=mode.startswith("bf16"))
    x = torch.randint(0, vocab, (B, T), device="cuda")
    step_model = torch.compile(model) if mode == "bf16-compile" else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode.startswith("bf16")):
            loss = step_model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        return loss

    for _ in range(3 if mode == "bf16-compile" else 1):  # warm-up (compilation, autotuning, allocator)
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    flops = model_flops(preset, B, T, vocab)
    return {"impl": "torch", "mode": mode, "preset": preset, "batch": B, "context": T, "step_s": round(med, 5),
            "tokens_per_s": round(B * T / med, 1), "tflops": round(flops / med / 1e12, 2),
            "mfu": round(flops / med / 1e12 / PEAK_TFLOPS[mode], 4), "loss": round(float(loss), 4),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="gpt2-small", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--modes", default="f32,tf32,bf16,bf16-compile")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch")
    failed = False
    for mode in a.modes.split(","):
        if mode not in PEAK_TFLOPS:
            raise SystemExit(f"unknown mode {mode}: one of {', '.join(PEAK_TFLOPS)}")
        try:
            print(json.dumps(run(mode, a.preset, a.batch, a.context, a.steps)), flush=True)
        except Exception as e:  # one mode failing (e.g. out of memory) must not hide the others
            failed = True
            print(json.dumps({"impl": "torch", "mode": mode, "preset": a.preset, "error": repr(e)[:300]}), flush=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
