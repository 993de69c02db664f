#!/usr/bin/env python3
"""Generation speed, gptrain against Hugging Face transformers on the CPU, in one run: the same
gpt2-small-shaped model (random weights: transformers' GPT2LMHeadModel(GPT2Config()) with a fixed
seed, saved with save_pretrained, which `gptrain generate --model` reads as it is), the same
prompt, greedy, the same number of new tokens (end-of-text does not stop either side), the same
threads; with the KV cache and without it. Rounds alternate between the four runs so that a busy
machine slows all alike; medians are reported. Needs pip-installed torch and transformers
(benchmark-only dependencies; everything runs offline) and a built gptrain.

    python3 bench/generate_vs_transformers.py [--gptrain build/gptrain] [--threads 2] [--new-tokens 200]

tokens/s = new tokens / wall time of the generation call (prefill included, model loading
excluded): gptrain's own figure from its stats line (the time of generate()), transformers' the
time of model.generate(). The script also checks that both sides generate the same greedy ids.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from bench_common import cpu_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_gptrain(args, model_dir, kv_cache):
    cmd = [args.gptrain, "generate", "--model", str(model_dir), "--prompt", args.prompt, "--max-new-tokens",
           str(args.new_tokens), "--ignore-eos", "--threads", str(args.threads), "--print-ids", "--no-echo"]
    if not kv_cache:
        cmd.append("--no-kv-cache")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"gptrain failed ({p.returncode}):\n{p.stderr}")
    stats = re.search(r"(\d+) prompt tokens, (\d+) new tokens in ([0-9.]+) s: ([0-9.]+) tokens/s", p.stderr)
    ids = [int(x) for x in re.search(r"generated ids: ([0-9 ]*)", p.stderr).group(1).split()]
    return float(stats.group(4)), int(stats.group(1)), ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gptrain", default=str(ROOT / "build" / "gptrain"))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt", default="Every effort moves you")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--model-dir", default="", help="reuse/keep the model dir here (default: a temporary one)")
    ap.add_argument("--cache-only", action="store_true", help="skip the (slow) runs without the KV cache")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, GenerationConfig

    torch.set_num_threads(args.threads)
    tmp = None
    model_dir = pathlib.Path(args.model_dir) if args.model_dir else pathlib.Path(tmp := tempfile.mkdtemp(prefix="gen_bench_"))
    vocab = pathlib.Path(args.data_dir) / "gpt2_tokenizer"
    if not (model_dir / "model.safetensors").exists():
        torch.manual_seed(args.seed)
        GPT2LMHeadModel(GPT2Config()).eval().save_pretrained(model_dir, safe_serialization=True)
        shutil.copy(vocab / "encoder.json", model_dir / "vocab.json")
        shutil.copy(vocab / "vocab.bpe", model_dir / "merges.txt")
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    # The prompt's ids from gptrain's tokenizer (token-for-token equal to tiktoken's "gpt2").
    tok = subprocess.run([args.gptrain, "tokenize", "-", "--vocab", str(model_dir / "vocab.json"), "--merges",
                          str(model_dir / "merges.txt"), "--allow-special", "--quiet"],
                         input=args.prompt, capture_output=True, text=True, check=True)
    input_ids = torch.tensor([[int(x) for x in tok.stdout.split()]])
    attention_mask = torch.ones_like(input_ids)

    def run_hf(use_cache):
        config = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=False, use_cache=use_cache,
                                  eos_token_id=None, pad_token_id=50256)
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(input_ids, attention_mask=attention_mask, generation_config=config)
            seconds = time.perf_counter() - start
        new = out[0, input_ids.shape[1]:].tolist()
        assert len(new) == args.new_tokens, len(new)
        return args.new_tokens / seconds, new

    with torch.inference_mode():  # warm-up: transformers' first call sets things up
        model.generate(input_ids, attention_mask=attention_mask,
                       generation_config=GenerationConfig(max_new_tokens=2, do_sample=False, eos_token_id=None,
                                                          pad_token_id=50256))
    load = []
    results = {k: [] for k in ("gptrain_cache", "hf_cache", "gptrain_nocache", "hf_nocache")}
    ids = {}
    for r in range(args.rounds):
        load.append(os.getloadavg()[0])
        for key, fn in (("gptrain_cache", lambda: run_gptrain(args, model_dir, True)[::2]),
                        ("hf_cache", lambda: run_hf(True)),
                        ("gptrain_nocache", lambda: run_gptrain(args, model_dir, False)[::2]),
                        ("hf_nocache", lambda: run_hf(False))):
            if args.cache_only and key.endswith("nocache"):
                continue
            tps, got = fn()
            results[key].append(tps)
            ids.setdefault(key, got)
            print(f"round {r + 1} {key:16} {tps:8.2f} tokens/s", file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])

    results = {k: v for k, v in results.items() if v}
    med = {k: statistics.median(v) for k, v in results.items()}
    # Ratios within each round (adjacent runs share the machine's load at that time), then their median.
    per_round = {mode: [round(g / h, 2) for g, h in zip(results[f"gptrain_{mode}"], results[f"hf_{mode}"])]
                 for mode in ("cache", "nocache") if f"hf_{mode}" in results}
    agree = {k: ids[k] == ids["hf_cache"] for k in ids}
    first_diff = next((i for i, (a, b) in enumerate(zip(ids["gptrain_cache"], ids["hf_cache"])) if a != b), None)
    summary = {
        "machine": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "date": time.strftime("%Y-%m-%d"), "prompt": args.prompt, "prompt_tokens": int(input_ids.shape[1]),
        "new_tokens": args.new_tokens, "rounds": args.rounds, "load_average": [round(x, 2) for x in load],
        "tokens_per_s_median": {k: round(v, 2) for k, v in med.items()},
        "tokens_per_s_all": {k: [round(x, 2) for x in v] for k, v in results.items()},
        "ratio_of_medians_gptrain_over_hf": {m: round(med[f"gptrain_{m}"] / med[f"hf_{m}"], 2) for m in per_round},
        "ratio_per_round": per_round,
        "median_ratio_per_round": {m: round(statistics.median(v), 2) for m, v in per_round.items()},
        "same_ids_as_hf_cache": agree, "first_differing_token": first_diff,
    }
    if "nocache" in per_round:
        summary["cache_speedup"] = {"gptrain": round(med["gptrain_cache"] / med["gptrain_nocache"], 2),
                                    "hf": round(med["hf_cache"] / med["hf_nocache"], 2)}
    print(json.dumps(summary, indent=1))
    print("\n| | gptrain tokens/s | transformers tokens/s | ratio (per-round median) |\n|---|---|---|---|")
    for m, name in (("cache", "KV cache"), ("nocache", "no cache")):
        if m in per_round:
            print(f"| {name} | {med[f'gptrain_{m}']:.2f} | {med[f'hf_{m}']:.2f} | "
                  f"{statistics.median(per_round[m]):.2f}x |")
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
