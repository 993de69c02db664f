#!/usr/bin/env python3
"""Load on `gptrain serve`, on loopback: C concurrent streaming clients send N requests in all.

Starts `gptrain serve --model DIR --parallel P --max-queue Q --threads T --port 0`, then
  1. one client alone, R sequential streaming requests: its decode tokens/s (the baseline);
  2. C clients at once (threads, http.client), N streaming /v1/completions requests in all, each
     max_tokens M with its own seed (temperature 0.8, ignore_eos): every answer must be 200 with a
     well-formed stream ending in [DONE], or 503 with Retry-After (the queue was full; the client
     counts it and sends its next request); anything else is an error;
  3. the server's RSS (/proc/PID/status VmRSS) sampled every 0.25 s: after warm-up (the first 10 %
     of the requests) its range must stay flat (a leak would climb with the requests).
Prints one JSON line and a Markdown summary. Standard library only.

  python3 bench/serve_load.py --gptrain build/gptrain --model DIR [--clients 32] [--requests 1000]
         [--max-tokens 16] [--parallel 8] [--max-queue 16] [--threads 2]
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stream_once(port, seed, max_tokens, prompt="Every effort moves you"):
    """One streaming completion: (status, tokens, seconds first->last token)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed,
                       "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        retry = r.getheader("Retry-After")
        r.read()
        conn.close()
        return r.status, 0, 0.0, retry
    tokens, first, last, done = 0, None, None, False
    buffer = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event.decode()[6:]
            if data == "[DONE]":
                done = True
                continue
            j = json.loads(data)
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
            elif j["choices"] and j["choices"][0]["text"]:
                now = time.perf_counter()
                first = first or now
                last = now
    conn.close()
    if not done:
        return -1, tokens, 0.0, None
    return 200, tokens, (last - first) if first and last else 0.0, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gptrain", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-queue", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--single", type=int, default=5, help="sequential requests of the one-client baseline")
    a = ap.parse_args()
    cmd = [a.gptrain, "serve", "--model", a.model, "--port", "0", "--threads", str(a.threads), "--quiet",
           "--parallel", str(a.parallel), "--max-queue", str(a.max_queue)]
    if a.data_dir:
        cmd += ["--data-dir", a.data_dir]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = None
    for line in server.stdout:
        m = re.search(r"listening on http://[0-9.]+:([0-9]+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("serve did not start")
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
    try:
        stream_once(port, 0, a.max_tokens)  # warm-up
        single = []
        t0 = time.perf_counter()
        single_tokens = 0
        for i in range(a.single):
            status, tokens, seconds, _ = stream_once(port, 1000 + i, a.max_tokens * 4)
            single_tokens += tokens
            single.append((tokens - 1) / seconds if seconds > 0 else 0)
        single_wall = time.perf_counter() - t0
        single.sort()

        rss = []
        stop = threading.Event()
        lock = threading.Lock()
        counts = {"200": 0, "503": 0, "error": 0}
        errors = []
        done = [0]
        tokens_total = [0]
        next_request = [0]
        warm_at = [None]

        def sampler():
            while not stop.is_set():
                rss.append((done[0], rss_mb(server.pid)))
                time.sleep(0.25)

        def client():
            while True:
                with lock:
                    i = next_request[0]
                    if i >= a.requests:
                        return
                    next_request[0] += 1
                try:
                    status, tokens, _, retry = stream_once(port, i, a.max_tokens)
                except Exception as e:  # connection refused, reset, bad JSON
                    status, tokens, retry = "error", 0, None
                    errors.append(repr(e))
                with lock:
                    if status == 200 and tokens == a.max_tokens:
                        counts["200"] += 1
                    elif status == 503 and retry is not None:
                        counts["503"] += 1
                    else:
                        counts["error"] += 1
                        errors.append(f"status {status}, {tokens} tokens")
                    tokens_total[0] += tokens
                    done[0] += 1
                    if warm_at[0] is None and done[0] >= a.requests // 10:
                        warm_at[0] = len(rss)
                if status == 503:
                    time.sleep(float(retry or 1))  # as Retry-After asks, then the next request

        sampling = threading.Thread(target=sampler)
        sampling.start()
        t0 = time.perf_counter()
        workers = [threading.Thread(target=client) for _ in range(a.clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
        stop.set()
        sampling.join()
        alive = server.poll() is None
        after = [r for _, r in rss[warm_at[0] or 0:]]
        result = {
            "clients": a.clients, "requests": a.requests, "max_tokens": a.max_tokens, "parallel": a.parallel,
            "max_queue": a.max_queue, "threads": a.threads, "counts": counts, "errors": errors[:5],
            "server_alive": alive, "wall_s": round(wall, 2), "tokens": tokens_total[0],
            "aggregate_tokens_per_s": round(tokens_total[0] / wall, 1),
            "single_client_decode_tokens_per_s": round(single[len(single) // 2], 1),
            "single_client_tokens_per_s_wall": round(single_tokens / single_wall, 1),
            "rss_mb_after_warmup": {"min": round(min(after), 1), "max": round(max(after), 1),
                                    "first": round(after[0], 1), "last": round(after[-1], 1)} if after else None,
        }
        print(json.dumps(result))
        print(f"\n| clients | requests | 200 | 503 | errors | aggregate tokens/s | one client tokens/s | gain | RSS after warm-up (MB) |")
        print("|---|---|---|---|---|---|---|---|---|")
        gain = result["aggregate_tokens_per_s"] / max(result["single_client_decode_tokens_per_s"], 1e-9)
        r = result["rss_mb_after_warmup"]
        print(f"| {a.clients} | {a.requests} | {counts['200']} | {counts['503']} | {counts['error']} | "
              f"{result['aggregate_tokens_per_s']} | {result['single_client_decode_tokens_per_s']} | {gain:.2f}x | "
              f"{r['first']} -> {r['last']} (range {r['min']}-{r['max']}) |")
        sys.exit(0 if counts["error"] == 0 and alive else 1)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
