#!/usr/bin/env python3
"""A model of a data-parallel step on N machines (issue 16), for BENCHMARKS.md "Data-parallel".

step(N) = compute + exposed communication, where
  compute  = 6 P tokens_per_rank / achieved FLOP/s   (forward + backward of a dense transformer)
  comm     = 2 (N - 1) / N x gradient bytes / bus bandwidth + 2 (N - 1) x latency   (ring all-reduce)
  exposed  = comm                                  without overlap (gptrain today: one all-reduce
                                                   after the backward pass)
           = max(0, comm - 2/3 compute)            with bucketed overlap (the backward pass is about
                                                   2/3 of the compute and can hide the buckets
                                                   sent while it runs)
Efficiency = compute / step. Both compute and comm grow with P, so at a fixed per-rank batch their
ratio does not depend on the model size: what decides is tokens per rank x FLOP/s against bandwidth.
--check-* compares the model with figures measured on this machine (bench/allreduce_bench and the
step times of `mpirun -np 2 gptrain pretrain`).
"""
import argparse

MODELS = {"gpt2-small": 124.4e6, "gpt2-medium": 354.8e6, "gpt2-large": 774.0e6, "gpt2-xl": 1557.6e6}
LINKS = {  # bus bandwidth in bytes/s, latency in s
    "10 Gb/s Ethernet": (1.25e9 * 0.9, 20e-6),
    "100 Gb/s (IB / RoCE)": (12.5e9 * 0.9, 5e-6),
    "NVLink (H100 SXM, NCCL busbw)": (360e9, 10e-6),
}


def step(P, N, tokens, flops, busbw, latency, grad_bytes, overlap):
    compute = 6 * P * tokens / flops
    comm = 0.0 if N == 1 else 2 * (N - 1) / N * P * grad_bytes / busbw + 2 * (N - 1) * latency
    exposed = max(0.0, comm - 2 / 3 * compute) if overlap else comm
    return compute, comm, compute + exposed


def table(title, tokens, flops, grad_bytes, ranks):
    print(f"\n{title}: {tokens} tokens per rank per step, {flops / 1e12:.3g} TFLOP/s achieved per rank, "
          f"{grad_bytes}-byte gradients")
    print("| model | link | " + " | ".join(f"N={n}: step ms (eff. no overlap / overlap)" for n in ranks) + " |")
    print("|---|---|" + "---|" * len(ranks))
    for name, P in MODELS.items():
        for link, (bw, lat) in LINKS.items():
            cells = []
            for n in ranks:
                if link.startswith("NVLink") and n > 8:
                    cells.append("n/a (one 8-GPU node)")
                    continue
                c, m, s = step(P, n, tokens, flops, bw, lat, grad_bytes, False)
                _, _, so = step(P, n, tokens, flops, bw, lat, grad_bytes, True)
                cells.append(f"{s * 1e3:.0f} ({c / s:.0%} / {c / so:.0%})")
            print(f"| {name} | {link} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-busbw", type=float, help="measured bus bandwidth here (GB/s), large messages")
    ap.add_argument("--check-compute-s", type=float, help="measured compute of one rank's step here (s)")
    ap.add_argument("--check-grad-mb", type=float, default=4 * MODELS["gpt2-small"] / 1e6,
                    help="the gradient buffer exchanged per step (MB; the loop prints it)")
    ap.add_argument("--check-measured-s", type=float, help="the measured 2-rank step (s)")
    args = ap.parse_args()
    # GPUs: llm.c's gpt2 runs, 16 x 1024 tokens per GPU per step, bf16 at ~40% MFU of an H100's
    # 989 TFLOP/s dense; bf16 gradients (2 bytes).
    table("H100, bf16", 16 * 1024, 0.4 * 989e12, 2, [2, 8, 64, 512])
    # CPU nodes like this machine: the book's batch (2 x 256) per rank, ~0.1 TFLOP/s, fp32 gradients.
    table("CPU node (2 cores, as here)", 2 * 256, 0.1e12, 4, [2, 8, 64])
    if args.check_busbw and args.check_compute_s:
        # bus bandwidth counts 2 (N - 1) / N x bytes: for N = 2 the bytes themselves
        comm = args.check_grad_mb * 1e6 / (args.check_busbw * 1e9)
        predicted = args.check_compute_s + comm
        print(f"\nthis machine, 2 ranks: all-reduce of {args.check_grad_mb:.1f} MB at {args.check_busbw} GB/s = "
              f"{comm * 1e3:.0f} ms beside the compute {args.check_compute_s * 1e3:.0f} ms: predicted step "
              f"{predicted * 1e3:.0f} ms" + (f", measured {args.check_measured_s * 1e3:.0f} ms"
                                             if args.check_measured_s else ""))


if __name__ == "__main__":
    main()
