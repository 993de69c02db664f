#!/usr/bin/env python3
"""Full-size Qwen3-0.6B- and Llama-3.2-1B-shaped models, gptrain beside transformers on the CPU.

Random models (transformers' own initialisation, seed 0) are written by save_pretrained in bf16,
as the Hub ships them; both sides read that dir and compute in float32. Per model:
  logits  one forward of 128 random ids: relative error ||ours - theirs|| / ||theirs|| against the
          bound 2*k*u of tests/tools/hf_error_model.py (each float32 implementation within k*u of
          the exact result); load time (reading the dir to a float32 model) and peak RSS
  train   full finetune, AdamW, batch 1 x 512 of the same random ids, same threads: median step time, peak
          RSS, and the loss of the last step (equal within float32 error: the same steps at full size)
  decode  greedy, KV cache, 16 prompt ids, 64 new tokens: tokens/s (and the same ids)
Every job runs in its own process (peak RSS is the process's VmHWM); rounds alternate between the
two sides so a busy machine slows both alike; medians are reported. Needs pip-installed torch and
transformers (benchmark-only) and a built build/bench/model_dir_bench.

    python3 bench/llama_qwen_full.py [--models qwen3-0.6b,llama-3.2-1b] [--jobs logits,train,decode]
        [--threads 2] [--rounds 2] [--work /tmp/gptrain-full]
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time
from bench_common import cpu_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))


def configs():
    from transformers import LlamaConfig, Qwen3Config
    return {
        "qwen3-0.6b": Qwen3Config(
            vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False,
            bos_token_id=151643, eos_token_id=151645),
        "llama-3.2-1b": LlamaConfig(
            vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
            num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
            rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, attention_bias=False,
            mlp_bias=False, bos_token_id=128000, eos_token_id=128001,
            rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192}),
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_model(name, path):
    import torch
    from transformers import AutoModelForCausalLM
    if (path / "config.json").exists():
        return
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(configs()[name], dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(path)
    print(f"wrote {path} ({sum(p.numel() for p in model.parameters()):,} parameters, bf16)", flush=True)


def random_ids(n, vocab, seed):
    import random
    r = random.Random(seed)
    return [r.randrange(vocab) for _ in range(n)]


# --- the transformers side, one job per process --------------------------------------------------

def torch_job(args):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    out = {"impl": "transformers", "mode": args.job, "model": args.model, "threads": args.threads,
           "load_s": round(load_s, 3)}
    V = model.config.vocab_size
    if args.job == "logits":
        ids = [int(x) for x in open(args.ids).read().split()]
        model.eval()
        with torch.no_grad():
            t = time.perf_counter()
            logits = model(torch.tensor([ids])).logits[0].float()
            out["forward_s"] = round(time.perf_counter() - t, 3)
        logits.numpy().tofile(args.out)
        out["tokens"] = len(ids)
    elif args.job == "train":
        B, T = args.batch, args.context
        data = torch.tensor([int(x) for x in open(args.ids).read().split()]).view(B, T + 1)
        x, y = data[:, :T].contiguous(), data[:, 1:].contiguous()
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)
        times = []
        for s in range(args.steps + 1):
            t = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            logits = model(x).logits
            loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
            loss.backward()
            opt.step()
            if s > 0:
                times.append(time.perf_counter() - t)
        step = statistics.median(times)
        out.update({"batch": B, "context": T, "step_s": round(step, 3), "tokens_per_s": round(B * T / step, 1),
                    "loss": round(loss.item(), 4)})
    else:
        p = torch.tensor([[int(x) for x in open(args.ids).read().split()]])
        model.eval()
        with torch.no_grad():
            t = time.perf_counter()
            g = model.generate(p, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False, use_cache=True,
                               pad_token_id=0)
            s = time.perf_counter() - t
        new = g[0, p.shape[1]:].tolist()
        out.update({"prompt_tokens": p.shape[1], "new_tokens": len(new), "decode_s": round(s, 3),
                    "tokens_per_s": round(len(new) / s, 2), "ids": " ".join(map(str, new))})
    out["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(out))


# --- the driver ----------------------------------------------------------------------------------

def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": f"exit {r.returncode}: {(r.stderr or r.stdout)[-400:]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "torch-job":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--job")
        ap.add_argument("--model")
        ap.add_argument("--threads", type=int, default=2)
        ap.add_argument("--ids")
        ap.add_argument("--out")
        ap.add_argument("--batch", type=int, default=1)
        ap.add_argument("--context", type=int, default=512)
        ap.add_argument("--steps", type=int, default=2)
        ap.add_argument("--prompt", type=int, default=16)
        ap.add_argument("--new", type=int, default=64)
        return torch_job(ap.parse_args())
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="qwen3-0.6b,llama-3.2-1b")
    ap.add_argument("--jobs", default="logits,train,decode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per process (after one warm-up)")
    ap.add_argument("--work", default="/tmp/gptrain-full")
    ap.add_argument("--bench", default=str(ROOT / "build" / "bench" / "model_dir_bench"))
    a = ap.parse_args()
    import numpy as np
    from hf_error_model import UNIT_ROUNDOFF, error_k_config
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, __file__, "torch-job"]
    results = {"machine": cpu_model(), "threads": a.threads, "date": time.strftime("%Y-%m-%d"), "models": {}}
    for name in a.models.split(","):
        path = work / name
        make_model(name, path)
        cfg = configs()[name]
        res = results["models"][name] = {}
        jobs = a.jobs.split(",")
        if "logits" in jobs:
            T = 128
            ids_file = work / f"{name}.ids"
            ids_file.write_text(" ".join(map(str, random_ids(T, cfg.vocab_size, 3))))
            ours = run_json([a.bench, "--model", str(path), "--threads", str(a.threads), "--logits", str(ids_file),
                             str(work / f"{name}.ours.f32")])
            theirs = run_json(me + ["--job", "logits", "--model", str(path), "--threads", str(a.threads), "--ids",
                                    str(ids_file), "--out", str(work / f"{name}.theirs.f32")])
            g = np.fromfile(work / f"{name}.ours.f32", dtype=np.float32).astype(np.float64)
            t = np.fromfile(work / f"{name}.theirs.f32", dtype=np.float32).astype(np.float64)
            rel = float(np.linalg.norm(g - t) / np.linalg.norm(t))
            bound = 2 * error_k_config(cfg, T) * UNIT_ROUNDOFF
            res["logits"] = {"gptrain": ours, "transformers": theirs, "rel_err": rel, "bound": bound,
                             "within": rel <= bound}
            print(f"{name} logits: rel err {rel:.3e} (bound {bound:.3e}); load {ours.get('load_s')} s vs "
                  f"{theirs.get('load_s')} s; peak RSS {ours.get('peak_rss_mb')} MB vs {theirs.get('peak_rss_mb')} MB",
                  flush=True)
        train_file = work / f"{name}.train-ids"  # both sides train on these
        train_file.write_text(" ".join(map(str, random_ids(1 * (512 + 1), cfg.vocab_size, 1))))
        prompt_file = work / f"{name}.prompt"
        prompt_file.write_text(" ".join(map(str, random_ids(16, cfg.vocab_size, 2))))
        for job, ours_args, theirs_args in (
                ("train", ["--train", "1", "512", str(a.steps), "--train-ids", str(train_file)],
                 ["--batch", "1", "--context", "512", "--steps", str(a.steps), "--ids", str(train_file)]),
                ("decode", ["--decode", str(prompt_file), "64"], ["--ids", str(prompt_file), "--new", "64"])):
            if job not in jobs:
                continue
            runs = {"gptrain": [], "transformers": []}
            for r in range(a.rounds):
                runs["gptrain"].append(run_json([a.bench, "--model", str(path), "--threads", str(a.threads)] + ours_args))
                runs["transformers"].append(run_json(me + ["--job", job, "--model", str(path), "--threads",
                                                           str(a.threads)] + theirs_args))
                print(f"{name} {job} round {r + 1}: {json.dumps(runs['gptrain'][-1])[:300]}\n"
                      f"    {json.dumps(runs['transformers'][-1])[:300]}", flush=True)
            key = "step_s" if job == "train" else "tokens_per_s"
            summary = {}
            for impl, rs in runs.items():
                ok = [x for x in rs if key in x]
                if ok:
                    summary[impl] = {key: statistics.median(x[key] for x in ok),
                                     "peak_rss_mb": max(x["peak_rss_mb"] for x in ok),
                                     "each": [x[key] for x in ok]}
                else:
                    summary[impl] = {"error": rs[-1].get("error")}
            if job == "decode" and all("ids" in x for x in runs["gptrain"] + runs["transformers"]):
                summary["same_ids"] = runs["gptrain"][0]["ids"] == runs["transformers"][0]["ids"]
            if all(key in summary[i] for i in runs):
                g, t = summary["gptrain"][key], summary["transformers"][key]
                summary["speedup"] = t / g if job == "train" else g / t
            res[job] = summary
            print(f"{name} {job}: {json.dumps(summary)}", flush=True)
    out = work / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
