#!/usr/bin/env python3
"""One command for the CPU speed comparison of BENCHMARKS.md: gptrain against PyTorch eager (and
torch.compile where it works) on the same threads, side by side in one run, with ratios.

  python3 bench/compare.py [--build build] [--threads 2] [--steps 3] [--sections step,cls,scaling]
                           [--llmc DIR]

Sections:
  step     training step of gpt2-small at the book's batch 2 x context 256 and at context 1024
  compile  the same with torch.compile (slow to warm up; off unless asked)
  cls      the book's classification step (batch 8 x 120, last block + final norm + head trained)
  scaling  step time and peak memory for context 64..1024, gpt2-small and gpt2-medium
  blas     gptrain with OpenBLAS (--build) against gptrain with BLIS (--blis-build DIR, configured
           with -DGPTRAIN_BLAS=blis): the step and each library's sgemm rate
  baseline gptrain (--build) against another gptrain build (--baseline-build DIR, e.g. an earlier
           commit built beside it) on the same steps, alternating the two binaries, to measure one
           change: step time and peak memory
  decode   generation: `gptrain generate` (one sequence, KV cache, 200 new tokens) of --build
           against --baseline-build, alternating, with the same ids checked; then the engine's
           batching (bench/decode_bench: 8 sequences batched, in lockstep one pass each, one after
           another); needs --model DIR (a gpt2-small model dir, e.g. the book run's final/)
  llmc     llm.c's CPU trainer (train_gpt2.c), built beside the project by the user and passed as
           --llmc DIR (the directory holding train_gpt2 with B and T compiled in, gpt2_124M.bin and
           its data files); llm.c ties the output head, so gptrain runs --tie for that row
Every run is a fresh process; the peak memory is each process's max RSS (the Python interpreter
and torch's libraries included for PyTorch, which is what a user pays).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:] or ["failed"]}
    line = [l for l in out.stdout.splitlines() if l.startswith("{")][0]
    return json.loads(line)


def ours(build, args):
    return run_json([os.path.join(build, "bench", "train_step")] + args)


def torch_eager(args, compile_=False):
    return run_json([sys.executable, os.path.join(HERE, "torch_train_step.py")] + args + (["--compile"] if compile_ else []))


def row(label, a, b):
    if "error" in a or "error" in b:
        return f"| {label} | {a.get('step_s', a.get('error'))} | {b.get('step_s', b.get('error'))} | | | |"
    return (f"| {label} | {a['step_s']:.3f} | {b['step_s']:.3f} | **{b['step_s'] / a['step_s']:.2f}x** | "
            f"{a.get('peak_rss_mb', '?')} | {b.get('peak_rss_mb', '?')} |")


def llmc_step_seconds(llmc_dir):
    out = subprocess.run(["./train_gpt2"], cwd=llmc_dir, capture_output=True, text=True)
    times = [float(t) / 1000 for _, t in re.findall(r"step (\d+): train loss [0-9.]+ \(took ([0-9.]+) ms\)", out.stdout)]
    return statistics.median(times[1:]) if len(times) > 1 else None


def generate_tokens_per_s(build, model, threads):
    cmd = [os.path.join(build, "gptrain"), "generate", "--model", model, "--prompt", "Every effort moves you",
           "--max-new-tokens", "200", "--ignore-eos", "--print-ids", "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None, None
    rate = float(re.search(r"([0-9.]+) tokens/s", out.stderr).group(1))
    ids = re.search(r"generated ids: (.*)", out.stderr).group(1)
    return rate, ids


def decode_section(a):
    if a.baseline_build:
        print(f"## generation, one sequence (gptrain generate, 200 new tokens, greedy): {a.build} against "
              f"{a.baseline_build}\n| round | this tokens/s | baseline tokens/s | this/baseline | same ids |\n|---|---|---|---|---|")
        for r in range(a.rounds):
            n, n_ids = generate_tokens_per_s(a.build, a.model, a.threads)
            b, b_ids = generate_tokens_per_s(a.baseline_build, a.model, a.threads)
            if n is None or b is None:
                print(f"| {r + 1} | {n} | {b} | | |")
                continue
            print(f"| {r + 1} | {n:.2f} | {b:.2f} | {n / b:.3f} | {n_ids == b_ids} |", flush=True)
    print("## the engine's batching (bench/decode_bench: 8 sequences, prompts of 20-27 tokens, 100 new tokens each)\n"
          "| round | mode | tokens/s | time s | same tokens as one after another |\n|---|---|---|---|---|")
    out = subprocess.run([os.path.join(a.build, "bench", "decode_bench"), "--model", a.model, "--threads",
                          str(a.threads), "--rounds", str(a.rounds)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        j = json.loads(line)
        print(f"| {j['round']} | {j['mode']} | {j['tokens_per_s']:.2f} | {j['seconds']:.2f} | {j['same_tokens']} |",
              flush=True)
    if out.returncode != 0:
        print("decode_bench failed:", out.stderr.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--sections", default="step,cls")
    ap.add_argument("--llmc", help="directory of a built llm.c train_gpt2 (see the docstring)")
    ap.add_argument("--presets", default="gpt2-small,gpt2-medium", help="models of the scaling section")
    ap.add_argument("--blis-build", help="a build dir configured with -DGPTRAIN_BLAS=blis (section blas)")
    ap.add_argument("--baseline-build", help="another gptrain build dir (section baseline)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two builds (sections baseline, decode)")
    ap.add_argument("--contexts", default="256,1024", help="contexts of the baseline section")
    ap.add_argument("--model", help="a model dir for the decode section")
    ap.add_argument("--llmc-batch", type=int, default=2)
    ap.add_argument("--llmc-context", type=int, default=256)
    a = ap.parse_args()
    sections = set(a.sections.split(","))
    common = ["--threads", str(a.threads), "--steps", str(a.steps)]
    header = "| config | gptrain s/step | PyTorch s/step | speedup | gptrain peak MB | PyTorch peak MB |\n|---|---|---|---|---|---|"
    if "step" in sections:
        print("## training step, gpt2-small (dropout 0.1, AdamW)\n" + header)
        for T in (256, 1024):
            cfg = ["--batch", "2", "--context", str(T)]
            g = ours(a.build, cfg + common + ["--sgemm"])
            t = torch_eager(cfg + common)
            print(row(f"B=2, T={T}", g, t), flush=True)
            if "sgemm_gflops" in g:
                print(f"|   gptrain {g['gflops']:.1f} GFLOP/s = {100 * g['gflops'] / g['sgemm_gflops']:.0f}% of the "
                      f"measured sgemm rate ({g['sgemm_gflops']:.1f}); fwd {g['forward_s']:.2f} bwd {g['backward_s']:.2f} "
                      f"opt {g['optimizer_s']:.2f} s | | | | | |", flush=True)
    if "compile" in sections:
        print("## torch.compile\n" + header)
        cfg = ["--batch", "2", "--context", "256"]
        print(row("B=2, T=256, compiled", ours(a.build, cfg + common), torch_eager(cfg + common, True)), flush=True)
    if "cls" in sections:
        print("## classification step (book ch06: batch 8 x 120, 2 classes, last token)\n" + header)
        for frozen in (True, False):
            cfg = ["--batch", "8", "--context", "120", "--classes", "2", "--drop", "0"] + (["--last-block-only"] if frozen else [])
            print(row("last block + ln_f + head" if frozen else "all parameters", ours(a.build, cfg + common),
                      torch_eager(cfg + common)), flush=True)
    if "scaling" in sections:
        print("## scaling with context (batch 2)\n| model | T | gptrain s/step | PyTorch s/step | speedup | gptrain peak MB | PyTorch peak MB |\n|---|---|---|---|---|---|---|")
        for preset in a.presets.split(","):
            for T in (64, 128, 256, 512, 1024):
                cfg = ["--preset", preset, "--batch", "2", "--context", str(T)]
                g, t = ours(a.build, cfg + common), torch_eager(cfg + common)
                print(row(f"{preset} | {T}", g, t), flush=True)
    if "blas" in sections:
        if not a.blis_build:
            print("blas: pass --blis-build DIR")
        else:
            print("## BLAS: OpenBLAS against BLIS (gpt2-small step, batch 2)\n| T | OpenBLAS s/step | BLIS s/step | "
                  "OpenBLAS/BLIS time | OpenBLAS sgemm GFLOP/s | BLIS sgemm GFLOP/s |\n|---|---|---|---|---|---|")
            for T in (256, 1024):
                cfg = ["--batch", "2", "--context", str(T), "--sgemm"] + common
                o, b = ours(a.build, cfg), ours(a.blis_build, cfg)
                if "error" in o or "error" in b:
                    print(f"| {T} | {o.get('step_s', o.get('error'))} | {b.get('step_s', b.get('error'))} | | | |")
                    continue
                print(f"| {T} | {o['step_s']:.3f} | {b['step_s']:.3f} | {o['step_s'] / b['step_s']:.2f} | "
                      f"{o['sgemm_gflops']:.1f} | {b['sgemm_gflops']:.1f} |", flush=True)
    if "baseline" in sections:
        if not a.baseline_build:
            print("baseline: pass --baseline-build DIR")
        else:
            print(f"## gptrain ({a.build}) against gptrain ({a.baseline_build}), gpt2-small step, batch 2\n"
                  "| T | round | this s/step | baseline s/step | baseline/this time | this peak MB | baseline peak MB |\n"
                  "|---|---|---|---|---|---|---|")
            for T in [int(t) for t in a.contexts.split(",")]:
                cfg = ["--batch", "2", "--context", str(T)] + common
                for r in range(a.rounds):
                    n, b = ours(a.build, cfg), ours(a.baseline_build, cfg)
                    if "error" in n or "error" in b:
                        print(f"| {T} | {r + 1} | {n.get('step_s', n.get('error'))} | {b.get('step_s', b.get('error'))} | | | |")
                        continue
                    print(f"| {T} | {r + 1} | {n['step_s']:.3f} | {b['step_s']:.3f} | {b['step_s'] / n['step_s']:.3f} | "
                          f"{n.get('peak_rss_mb', '?')} | {b.get('peak_rss_mb', '?')} |", flush=True)
    if "decode" in sections:
        if not a.model:
            print("decode: pass --model DIR")
        else:
            decode_section(a)
    if "llmc" in sections or a.llmc:
        if not a.llmc:
            print("llm.c: pass --llmc DIR")
        else:
            s = llmc_step_seconds(a.llmc)
            cfg = ["--batch", str(a.llmc_batch), "--context", str(a.llmc_context), "--tie", "--drop", "0"]
            g = ours(a.build, cfg + common)
            print("## llm.c CPU trainer (tied head, no dropout, AdamW)\n| config | gptrain s/step | llm.c s/step | speedup |\n|---|---|---|---|")
            print(f"| B={a.llmc_batch}, T={a.llmc_context} | {g['step_s']:.3f} | {s:.3f} | **{s / g['step_s']:.2f}x** |")


if __name__ == "__main__":
    main()
