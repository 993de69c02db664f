#!/usr/bin/env python3
"""The cost of LoRA, side by side: gptrain full finetune and LoRA (bench/lora_step.cpp) beside
PyTorch full finetune and PyTorch + PEFT LoRA (bench/peft_step.py), same shapes, same ids, same
threads, dropout 0, AdamW over the trainable parameters.

  cls  the book's ch06 / appendix E classifier: gpt2-small, 2 classes, loss on the last token,
       batch 8 x 120; LoRA rank 16, alpha 16 on every Linear and the head
  lm   a Qwen3-0.6B model dir (bf16, read as float32 on both sides), loss over all positions,
       batch 4 x 256 (instruction finetuning's shape); LoRA rank 16, alpha 16 on q, k, v, o, gate,
       up, down (all-linear; the tied LM head is not adapted)

Every contender runs in its own process (peak RSS is the process's VmHWM), one warm-up step and
--steps timed ones; rounds alternate the contenders (the order reversed every other round) so a
busy machine slows all alike. The step time reported is the median of every timed step of every
round. gptrain runs with GPTRAIN_PROFILE=1 (one clock read per op) for the per-op profile. A
process whose RSS passes --max-rss-gb (or what the machine has available, less 1.5 GB) is killed
and reported as not fitting.

    python3 bench/lora_compare.py [--sections cls,lm] [--rounds 2] [--steps 2] [--threads 2]
        [--model /work/full-models/qwen3-0.6b] [--bench build/bench/lora_step] [--work /tmp/gptrain-lora]
"""
import argparse
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import time

from bench_common import cpu_model  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent

CONTENDERS = ["gptrain-full", "gptrain-lora", "pytorch-full", "peft-lora"]


def mem_available_gb():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def rss_gb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def run_json(cmd, env, limit_gb):
    """Runs cmd, killing it when its RSS passes limit_gb; returns its last stdout line as JSON."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    killed = False
    import threading
    out = {}

    def reader():
        out["stdout"], out["stderr"] = p.communicate()
    th = threading.Thread(target=reader)
    th.start()
    while th.is_alive():
        peak = max(peak, rss_gb(p.pid))
        if peak > limit_gb and not killed:
            p.kill()
            killed = True
        th.join(0.2)
    wall = time.perf_counter() - t0
    if killed:
        return {"error": f"killed at {peak:.1f} GB RSS (limit {limit_gb:.1f} GB)", "wall_s": round(wall, 1)}
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}: {(out['stderr'] or out['stdout'])[-400:]}", "wall_s": round(wall, 1)}
    r = json.loads(out["stdout"].strip().splitlines()[-1])
    r["wall_s"] = round(wall, 1)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", default="cls,lm")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per process (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--model", default="/work/full-models/qwen3-0.6b", help="lm: the model dir")
    ap.add_argument("--lm-shape", default="4x256")
    ap.add_argument("--cls-shape", default="8x120")
    ap.add_argument("--bench", default=str(ROOT / "build" / "bench" / "lora_step"))
    ap.add_argument("--work", default="/tmp/gptrain-lora")
    ap.add_argument("--max-rss-gb", type=float, default=18.0)
    a = ap.parse_args()
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": cpu_model(), "threads": a.threads, "date": time.strftime("%Y-%m-%d %H:%M"),
               "load_at_start": os.getloadavg(), "sections": {}}
    env_g = dict(os.environ, GPTRAIN_PROFILE="1")
    env_t = dict(os.environ)
    contenders = a.contenders.split(",")
    for section in a.sections.split(","):
        B, T = map(int, (a.cls_shape if section == "cls" else a.lm_shape).split("x"))
        if section == "cls":
            vocab, per_row = 50257, T
            common = ["--task", "cls"]
        else:
            vocab = json.loads((pathlib.Path(a.model) / "config.json").read_text())["vocab_size"]
            per_row = T + 1
            common = ["--task", "lm", "--model", a.model]
        r = random.Random(1)
        ids = work / f"{section}.ids"
        ids.write_text(" ".join(str(r.randrange(vocab)) for _ in range(B * per_row)))
        common += ["--batch", str(B), "--length", str(T), "--steps", str(a.steps), "--threads", str(a.threads),
                   "--ids", str(ids), "--rank", str(a.rank), "--alpha", str(a.alpha)]
        cmds = {
            "gptrain-full": ([a.bench] + common + ["--mode", "full"], env_g),
            "gptrain-lora": ([a.bench] + common + ["--mode", "lora"], env_g),
            "pytorch-full": ([sys.executable, str(HERE / "peft_step.py")] + common + ["--mode", "full"], env_t),
            "peft-lora": ([sys.executable, str(HERE / "peft_step.py")] + common + ["--mode", "lora"], env_t),
        }
        runs = {c: [] for c in contenders}
        for rnd in range(a.rounds):
            order = contenders if rnd % 2 == 0 else contenders[::-1]
            for c in order:
                if runs[c] and "error" in runs[c][-1] and "killed" in runs[c][-1]["error"]:
                    continue  # did not fit: do not try again
                limit = min(a.max_rss_gb, mem_available_gb() - 1.5)
                cmd, env = cmds[c]
                res = run_json(cmd, env, limit)
                res["round"] = rnd + 1
                res["load_avg"] = round(os.getloadavg()[0], 2)
                runs[c].append(res)
                brief = {k: v for k, v in res.items() if k != "profile"}
                print(f"{section} round {rnd + 1} {c}: {json.dumps(brief)}", flush=True)
        summary = {}
        for c, rs in runs.items():
            ok = [x for x in rs if "step_s" in x]
            if not ok:
                summary[c] = {"error": rs[-1].get("error") if rs else "not run"}
                continue
            each = [t for x in ok for t in x["steps_s"]]
            s = {"step_s": round(statistics.median(each), 3), "each": each,
                 "round_medians": [x["step_s"] for x in ok],
                 "forward_s": round(statistics.median(x["forward_s"] for x in ok), 3),
                 "backward_s": round(statistics.median(x["backward_s"] for x in ok), 3),
                 "optimizer_s": round(statistics.median(x["optimizer_s"] for x in ok), 3),
                 "peak_rss_mb": max(x["peak_rss_mb"] for x in ok), "trainable": ok[0]["trainable"],
                 "parameters": ok[0]["parameters"], "loss0": ok[0]["loss0"], "loss": ok[-1]["loss"],
                 "load_s": statistics.median(x["load_s"] for x in ok)}
            if "profile" in ok[-1]:
                s["profile"] = ok[-1]["profile"]
            for k in ("what", "lora_modules", "peft", "torch"):
                if k in ok[0]:
                    s[k] = ok[0][k]
            summary[c] = s
        ratios = {}

        def ratio(name, num, den, key):
            if key in summary.get(num, {}) and key in summary.get(den, {}):
                ratios[name] = round(summary[num][key] / summary[den][key], 3)
        ratio("gptrain lora/full step", "gptrain-lora", "gptrain-full", "step_s")
        ratio("gptrain lora/full rss", "gptrain-lora", "gptrain-full", "peak_rss_mb")
        ratio("peft/gptrain lora step (speedup)", "peft-lora", "gptrain-lora", "step_s")
        ratio("gptrain/peft lora rss", "gptrain-lora", "peft-lora", "peak_rss_mb")
        ratio("pytorch/gptrain full step (speedup)", "pytorch-full", "gptrain-full", "step_s")
        ratio("gptrain/pytorch full rss", "gptrain-full", "pytorch-full", "peak_rss_mb")
        ratio("peft lora/pytorch full step", "peft-lora", "pytorch-full", "step_s")
        summary["ratios"] = ratios
        results["sections"][section] = {"batch": B, "length": T, "runs": runs, "summary": summary}
        print(f"{section} summary:")
        for c in contenders:
            s = summary[c]
            if "step_s" in s:
                print(f"  {c:14} step {s['step_s']:8.3f} s (rounds {s['round_medians']}) fwd {s['forward_s']:.3f} "
                      f"bwd {s['backward_s']:.3f} adamw {s['optimizer_s']:.3f}  peak RSS {s['peak_rss_mb']:6.0f} MB  "
                      f"trainable {s['trainable']:,}  loss0 {s['loss0']}")
            else:
                print(f"  {c:14} {s['error']}")
        print(f"  ratios: {json.dumps(ratios)}", flush=True)
        if "profile" in summary.get("gptrain-lora", {}):
            step_ms = 1e3 * summary["gptrain-lora"]["round_medians"][-1]
            print("  gptrain-lora profile (last round, ms per step):")
            for e in summary["gptrain-lora"]["profile"]:
                print(f"    {e['op']:<28} {e['calls']:>6} calls {e['ms_per_step']:>9.1f} ms {100 * e['ms_per_step'] / step_ms:5.1f}%")
    results["load_at_end"] = os.getloadavg()
    out = work / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
