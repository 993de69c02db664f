#!/usr/bin/env python3
"""Tokenizer throughput, gptrain against tiktoken, in one run on the same text: every
corpus/*.txt of the data dir and the-verdict.txt, concatenated (sorted, as bench/tokenizer_bench
does). Needs `pip install tiktoken` (a benchmark-only dependency) and a built tokenizer_bench.

    python3 bench/tokenizer_vs_tiktoken.py [--bench build/bench/tokenizer_bench] [--threads 2]

Single thread: tiktoken's encode_ordinary on the whole text against gptrain's encode ("cold":
each run on a freshly loaded tokenizer, so its cache of merged rare words starts empty; "warm":
the same text again). N threads: tiktoken's encode_ordinary_batch(num_threads=N) over the text cut
into 64 chunks at line ends, against gptrain's encode_parallel (which cuts the text itself).
Rounds alternate between the two so that a busy machine slows both alike; medians are reported.
tiktoken is built offline from r50k_base.tiktoken: the same "gpt2" encoding, no download.
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

import tiktoken
import tiktoken.load
from bench_common import corpus, cpu_model  # noqa: E402

PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--bench", default=str(ROOT / "build" / "bench" / "tokenizer_bench"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data_dir = pathlib.Path(args.data_dir)
    raw = corpus(data_dir)
    text = raw.decode("utf-8")
    mb = len(raw) / 1e6
    ranks = tiktoken.load.load_tiktoken_bpe(str(data_dir / "gpt2_tokenizer" / "r50k_base.tiktoken"))
    enc = tiktoken.Encoding(name="gpt2", pat_str=PAT, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    lines = text.splitlines(keepends=True)
    step = max(1, len(lines) // 64)
    chunks = ["".join(lines[i:i + step]) for i in range(0, len(lines), step)]
    enc.encode_ordinary("warm up")

    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(raw)
        path = f.name
    times = {"tiktoken 1": [], f"tiktoken {args.threads}": []}
    ours = {"cold": [], "warm": [], "parallel": []}
    tokens = None
    try:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            tokens = len(enc.encode_ordinary(text))
            times["tiktoken 1"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            enc.encode_ordinary_batch(chunks, num_threads=args.threads)
            times[f"tiktoken {args.threads}"].append(time.perf_counter() - t0)
            out = subprocess.run([args.bench, "--data-dir", str(data_dir), "--input", path, "--threads",
                                  str(args.threads), "--repeat", "3"], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                row = json.loads(line)
                if row["tokens"] != tokens:
                    sys.exit(f"gptrain gave {row['tokens']} tokens, tiktoken {tokens}")
                ours[row["mode"]].append(row["median_s"])
    finally:
        os.unlink(path)

    rate = {k: mb / statistics.median(v) for k, v in {**times, **ours}.items()}
    tik1, tikn = rate["tiktoken 1"], rate[f"tiktoken {args.threads}"]
    print(f"text: {len(raw):,} bytes, {tokens:,} tokens (corpus/*.txt + the-verdict.txt); "
          f"{cpu_model()}, {os.cpu_count()} cores; tiktoken {tiktoken.__version__}; {time.strftime('%Y-%m-%d')}")
    print(f"{'':34}{'MB/s':>8}{'vs tiktoken':>13}")
    print(f"{'tiktoken encode_ordinary, 1 thread':34}{tik1:8.1f}")
    print(f"{'gptrain encode, 1 thread, cold':34}{rate['cold']:8.1f}{rate['cold'] / tik1:12.1f}x")
    print(f"{'gptrain encode, 1 thread, warm':34}{rate['warm']:8.1f}{rate['warm'] / tik1:12.1f}x")
    print(f"{f'tiktoken batch, {args.threads} threads':34}{tikn:8.1f}")
    print(f"{f'gptrain parallel, {args.threads} threads':34}{rate['parallel']:8.1f}{rate['parallel'] / tikn:12.1f}x")


if __name__ == "__main__":
    main()
