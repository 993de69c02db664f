#!/usr/bin/env python3
"""PyTorch's float32 ops (TF32 off) at the shapes of bench/cuda_ops.cpp, printed in its format, for
a side-by-side comparison on one card (scripts/gpu-check.sh runs both):
    python3 bench/cuda_ops_torch.py [B T C NH V]
Attention is scaled_dot_product_attention with is_causal (PyTorch picks its backend for f32; in
bf16 it is its flash attention);
AdamW is torch.optim.AdamW(fused=True) over one flat tensor of GPT-2 small's size."""
import sys
import time

import torch
import torch.nn.functional as F


def time_op(name, flops, iters, fn):
    fn()
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) * 1e3 / iters
    if flops > 0:
        print(f"{name:<28} {ms:10.3f} ms {flops / (ms * 1e6):10.1f} GFLOP/s")
    else:
        print(f"{name:<28} {ms:10.3f} ms")


def main():
    B, T, C, NH, V = (int(a) for a in (sys.argv[1:] + ["8", "1024", "768", "12", "50257"][len(sys.argv) - 1:]))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda"
    N, HS = B * T, C // NH
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: B {B} T {T} C {C} NH {NH} V {V} (float32)")
    g = torch.Generator(device=dev).manual_seed(0)
    rnd = lambda *s, scale=1.0: (torch.rand(*s, device=dev, generator=g) * 2 - 1) * scale
    x, w_qkv, b_qkv = rnd(N, C), rnd(3 * C, C, scale=0.02), rnd(3 * C, scale=0.02)
    w_fc, dfc = rnd(4 * C, C, scale=0.02), rnd(N, 4 * C)
    time_op("matmul_forward qkv", 2.0 * N * C * 3 * C, 10, lambda: F.linear(x, w_qkv, b_qkv))
    time_op("matmul_forward fc", 2.0 * N * C * 4 * C, 10, lambda: F.linear(x, w_fc))
    time_op("matmul_backward fc", 4.0 * N * C * 4 * C, 10, lambda: (dfc @ w_fc, dfc.t() @ x))
    q, k, v = (rnd(B, NH, T, HS).requires_grad_() for _ in range(3))
    att_flops = 4.0 * B * NH * (T * (T + 1) / 2.0) * HS
    time_op("attention_forward", att_flops, 3, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    dout = rnd(B, NH, T, HS)
    time_op("attention_backward", 2.5 * att_flops, 3, lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    # bf16: SDPA's flash attention, the line bench/cuda_ops.cpp's bf16 attention compares with.
    qh, kh, vh = (t.detach().to(torch.bfloat16).requires_grad_() for t in (q, k, v))
    time_op("attention_forward bf16", att_flops, 5, lambda: F.scaled_dot_product_attention(qh, kh, vh, is_causal=True))
    outh = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True)
    douth = dout.to(torch.bfloat16)
    time_op("attention_backward bf16", 2.5 * att_flops, 5,
            lambda: torch.autograd.grad(outh, (qh, kh, vh), douth, retain_graph=True))
    ln_w, ln_b = rnd(C), rnd(C)
    time_op("layernorm_forward", 0, 20, lambda: F.layer_norm(x, (C,), ln_w, ln_b))
    xr, wr, br = x.clone().requires_grad_(), ln_w.clone().requires_grad_(), ln_b.clone().requires_grad_()
    y = F.layer_norm(xr, (C,), wr, br)
    dy = rnd(N, C)
    time_op("layernorm_backward", 0, 20, lambda: torch.autograd.grad(y, (xr, wr, br), dy, retain_graph=True))
    fc = rnd(N, 4 * C)
    time_op("gelu_forward", 0, 20, lambda: F.gelu(fc, approximate="tanh"))
    logits = rnd(N, V, scale=4.0).requires_grad_()
    targets = (torch.arange(N, device=dev) * 7919) % V
    time_op("cross_entropy_forward", 0, 5, lambda: F.cross_entropy(logits, targets))
    loss = F.cross_entropy(logits, targets)
    time_op("cross_entropy_backward", 0, 5, lambda: torch.autograd.grad(loss, logits, retain_graph=True))
    del logits, loss
    P = 124439808
    p = torch.nn.Parameter(rnd(P))
    p.grad = rnd(P)
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    time_op("adamw_step 124M", 0, 10, opt.step)
    time_op("sum_squares 124M", 0, 10, lambda: p.grad.pow(2).sum().item())


if __name__ == "__main__":
    main()
