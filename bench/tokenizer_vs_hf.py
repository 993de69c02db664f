#!/usr/bin/env python3
"""Tokenizer throughput, gptrain against Hugging Face tokenizers, in one run on the same text: every
corpus/*.txt of the data dir and the-verdict.txt, concatenated (sorted, as bench/tokenizer_bench
does), through the data dir's tokenizer.json files (Llama 3, Llama 3.2 Vision, Qwen3). Needs
`pip install tokenizers` (a benchmark-only dependency) and a built tokenizer_bench.

    python3 bench/tokenizer_vs_hf.py [--bench build/bench/tokenizer_bench] [--rounds 5]

Both single-threaded: tokenizers' `Tokenizer.encode(text, add_special_tokens=False)` on the whole
text with RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false (one text is encoded on one thread
anyway), and `encode_batch` of the text's lines (also one thread), against gptrain's
Tokenizer::encode ("cold": a freshly loaded tokenizer, its cache of merged pieces empty; "warm":
the same text again). The ids must be equal (the script checks the count; the tests check the ids).
Rounds alternate between the two so that a busy machine slows both alike; medians are reported.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from bench_common import corpus, cpu_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = {"llama3": "tokenizers/llama3/tokenizer.json",
         "llama3_vision": "tokenizers/llama3/llama-3.2-90b-vision/tokenizer.json",
         "qwen3": "tokenizers/qwen/tokenizer.json"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--bench", default=str(ROOT / "build" / "bench" / "tokenizer_bench"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokenizers", default=",".join(FILES), help="which of " + ",".join(FILES))
    args = parser.parse_args()
    data_dir = pathlib.Path(args.data_dir)
    raw = corpus(data_dir)
    text = raw.decode("utf-8")
    lines = text.splitlines(keepends=True)
    mb = len(raw) / 1e6
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(raw)
        path = f.name
    results = {}
    try:
        for name in args.tokenizers.split(","):
            json_path = data_dir / FILES[name]
            t0 = time.perf_counter()
            tok = Tokenizer.from_file(str(json_path))
            hf_load = time.perf_counter() - t0
            tok.encode_special_tokens = False
            tok.encode("warm up", add_special_tokens=False)
            times = {"hf": [], "hf_batch": [], "cold": [], "warm": []}
            loads = []
            tokens = None
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                tokens = len(tok.encode(text, add_special_tokens=False).ids)
                times["hf"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                batch_tokens = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
                times["hf_batch"].append(time.perf_counter() - t0)
                out = subprocess.run([args.bench, "--data-dir", str(data_dir), "--input", path, "--tokenizer",
                                      str(json_path), "--allow-special", "--threads", "2", "--repeat", "3"],
                                     capture_output=True, text=True, check=True).stdout
                for line in out.splitlines():
                    row = json.loads(line)
                    if row["mode"] == "load":
                        loads.append(row["median_s"])
                        continue
                    if row["tokens"] != tokens:
                        sys.exit(f"{name}: gptrain gave {row['tokens']} tokens, tokenizers {tokens}")
                    if row["mode"] in times:
                        times[row["mode"]].append(row["median_s"])
            results[name] = {"tokens": tokens, "batch_tokens": batch_tokens, "hf_load": hf_load,
                             "load": statistics.median(loads),
                             **{k: mb / statistics.median(v) for k, v in times.items()}}
    finally:
        os.unlink(path)

    print(f"text: {len(raw):,} bytes (corpus/*.txt + the-verdict.txt); {cpu_model()}, {os.cpu_count()} cores; "
          f"tokenizers {tokenizers.__version__}; {time.strftime('%Y-%m-%d')}; median of {args.rounds} rounds")
    print(f"{'':16}{'tokens':>10}{'tokenizers':>12}{'batch':>8}{'gptrain cold':>14}{'warm':>8}"
          f"{'cold/tok':>10}{'load tok/gptrain':>18}")
    for name, r in results.items():
        print(f"{name:16}{r['tokens']:10,}{r['hf']:10.2f}  {r['hf_batch']:8.2f}{r['cold']:12.1f}  {r['warm']:8.1f}"
              f"{r['cold'] / r['hf']:9.1f}x{r['hf_load']:10.2f} s/{r['load']:.2f} s")
    print("(MB/s; batch: encode_batch of the lines, whose token count differs slightly: lines are encoded apart)")


if __name__ == "__main__":
    main()
