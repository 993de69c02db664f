#!/usr/bin/env python3
"""gptrain's DPO step (build/bench/dpo_step) beside the book's PyTorch code (bench/dpo_torch_step.py)
on one model dir and the same batches, alternating the two for --rounds rounds (order reversed
every other round), each in its own process; prints every run and the median step times, their
ratio, and the largest difference of the two sides' per-step losses.
    python3 bench/dpo_compare.py --model DIR [--data FILE] [--rounds 2] [--steps 4] [--threads 2]
"""
import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                   "instruction-data-with-preference.json"))
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "bench", "dpo_step"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    common = ["--model", a.model, "--data", a.data, "--steps", str(a.steps), "--pairs", str(a.pairs),
              "--threads", str(a.threads)]
    sides = {"gptrain": [a.binary] + common,
             "pytorch": ["python3", os.path.join(HERE, "dpo_torch_step.py")] + common}
    results = {k: [] for k in sides}
    for r in range(a.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            res = run(sides[name])
            results[name].append(res)
            print(f"round {r + 1} {name}: step {res['step_s']:.3f} s (steps {[round(x, 3) for x in res['steps']]}), "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB")
    med = {k: statistics.median(x["step_s"] for x in v) for k, v in results.items()}
    tokens = results["gptrain"][0]["tokens"]
    assert tokens == results["pytorch"][0]["tokens"], (tokens, results["pytorch"][0]["tokens"])
    diff = max(abs(x - y) for x, y in zip(results["gptrain"][0]["losses"], results["pytorch"][0]["losses"]))
    per = sum(tokens[1:]) / len(tokens[1:])
    print(f"median step: gptrain {med['gptrain']:.3f} s, PyTorch {med['pytorch']:.3f} s: "
          f"{med['pytorch'] / med['gptrain']:.2f}x; {per:.0f} tokens per step (chosen batch), "
          f"largest per-step loss difference {diff:.2e}")


if __name__ == "__main__":
    main()
