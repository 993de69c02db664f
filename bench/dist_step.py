#!/usr/bin/env python3
"""The book's pretraining step (gpt2-small shape, context 256, 2 sequences per step) on this
machine's 2 cores, two ways side by side in one run: 1 process x 2 threads (--batch-size 2)
against `mpirun -np 2` x 1 thread (--batch-size 1 per rank: the same 2 sequences per step).
Rounds alternate the two; each run trains --steps steps and the per-step times come from
metrics.jsonl (tokens of the step / its own tokens_per_s, evaluations excluded). Also prints the
gradient exchange line of the 2-rank runs (MB, ms per step).

  python3 bench/dist_step.py --gptrain build/gptrain --rounds 2 --steps 6
"""
import argparse, json, os, re, statistics, subprocess, tempfile

def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout

def step_seconds(out_dir):
    times = []
    for line in open(os.path.join(out_dir, "metrics.jsonl")):
        r = json.loads(line)
        if r.get("kind") or r["step"] == 0 or not r.get("tokens_per_s"):
            continue  # step 0 warms up (first touch of gradients and moments)
        times.append(512 / r["tokens_per_s"])
    return times

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gptrain", default="build/gptrain")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_plm="isolated",
               OMP_NUM_THREADS="1")
    common = ["pretrain", "--max-steps", str(a.steps), "--eval-interval", "1", "--eval-iters", "1",
              "--sample-tokens", "0", "--overwrite"] + (["--data-dir", a.data_dir] if a.data_dir else [])
    results = {"1 rank x 2 threads": [], "2 ranks x 1 thread": []}
    exchange = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for name in order:
                out = os.path.join(tmp, name.replace(" ", "_"))
                if name.startswith("1 rank"):
                    e = dict(env, OMP_NUM_THREADS="2")
                    run([a.gptrain] + common + ["--batch-size", "2", "--threads", "2", "--out-dir", out], e)
                else:
                    text = run([a.mpirun, "--oversubscribe", "--bind-to", "none", "-np", "2", a.gptrain] + common +
                               ["--batch-size", "1", "--threads", "1", "--out-dir", out], env)
                    exchange += re.findall(r"gradient exchange.*", text)
                    exchange += re.findall(r"peak memory per rank.*", text)
                t = step_seconds(out)
                results[name] += t
                print(f"round {r + 1} {name}: " + ", ".join(f"{x:.3f}" for x in t) + " s/step", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in med.items():
        print(f"{k}: median {v:.3f} s/step over {len(results[k])} steps")
    print(f"ratio (2 ranks / 1 rank): {med['2 ranks x 1 thread'] / med['1 rank x 2 threads']:.3f}")
    for line in exchange:
        print(line)

if __name__ == "__main__":
    main()
