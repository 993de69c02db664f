#!/usr/bin/env python3
"""Decode speed of `gptrain serve` against llama.cpp's `llama-server`, side by side, on the same
model (f32 and f16 weights) and the same CPU threads.

What it measures: for each weight type, both servers are started (each on its own free port) and
each is sent R rounds of one streaming request to the OpenAI-compatible POST /v1/completions

  {"model": ..., "prompt": "Every effort moves you", "max_tokens": N, "temperature": 0,
   "stream": true, "ignore_eos": true, "stream_options": {"include_usage": true}}

(the model being the id the server gives in GET /v1/models, unless --model-name says otherwise).

The server-sent events ("data: {...}" lines up to "data: [DONE]") are timed as they arrive:
  decode tokens/s     = (tokens - 1) / (t_last_token - t_first_token)
  time to first token = t_first_token - t_request_sent   (connection, prompt and first token)
where tokens is the usage's completion_tokens when the stream carries a usage, else the number of
token chunks. Within each round the contenders alternate (gptrain, then llama-server: ABAB over the
rounds) so the machine's noise hits both; one untimed warm-up request per server comes first. Greedy
decoding (temperature 0) of the same model should give the same text; the JSON says whether it did.
llama-server runs with one slot and prompt caching off (--no-cache-prompt, --cache-ram 0), so every
round evaluates the prompt afresh, as gptrain does.

Output: a Markdown table per weight type (round, tok/s of each, ratio gptrain/llama-server, time to
first token, medians), then one line of JSON with every raw figure.

Run:
  python3 bench/serve_vs_llama_server.py --gptrain build/gptrain --model-dir MODEL_DIR \\
      --llama-server LLAMA_BUILD/bin/llama-server --gguf-f32 model-f32.gguf --gguf-f16 model-f16.gguf \\
      [--threads 2] [--rounds 3] [--max-tokens 128] [--dtypes f32,f16] [--only llama|gptrain]

The GGUF files come from gptrain's own exporter:
  gptrain export-gguf --model MODEL_DIR --out model-f32.gguf --type f32   (and --type f16)
`--only llama` measures llama-server alone (e.g. before gptrain serve is built).

llama.cpp is not part of this project: fetch and build it beside the project (CPU only, e.g.
`cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
-DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF && cmake --build build --target llama-server`)
and pass its binary with --llama-server; never commit it or copy its code into the project.
Standard library only.
"""
import argparse
import http.client
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT = "Every effort moves you"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on its own port; its output goes to a log file."""

    def __init__(self, name, argv, port, log_dir):
        self.name, self.argv, self.port = name, argv, port
        self.log_path = os.path.join(log_dir, f"{name}-{port}.log")
        self.proc = None
        self.model_id = None

    def start(self, timeout_s):
        self.log = open(self.log_path, "wb")
        # Own session: a Ctrl-C in the terminal reaches only this script, which then stops the server.
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was healthy:\n"
                                   f"  {shlex.join(self.argv)}\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    self.model_id = self.served_model()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy after {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def served_model(self):
        """The id the server gives its model in GET /v1/models (None if it says nothing)."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request("GET", "/v1/models")
            r = c.getresponse()
            body = r.read()
            c.close()
            return json.loads(body)["data"][0]["id"] if r.status == 200 else None
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("  | " + line for line in lines[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


def stream_completion(port, model, max_tokens, timeout_s):
    """One streaming /v1/completions request; the arrival time of each token chunk."""
    body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    t_sent = time.perf_counter()
    c.request("POST", "/v1/completions", body=body,
              headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"POST /v1/completions on port {port}: HTTP {r.status}: {r.read()[:500]!r}")
    times, text, usage, finish, reported, done = [], [], None, None, None, False
    while True:
        line = r.readline()
        if not line:
            break
        now = time.perf_counter()
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        j = json.loads(data)
        if "error" in j:
            raise RuntimeError(f"server error on port {port}: {j['error']}")
        if j.get("usage"):
            usage = j["usage"]
        if j.get("timings"):  # llama-server's own figures, for reference
            reported = j["timings"].get("predicted_per_second")
        for ch in j.get("choices") or []:
            t = ch.get("text") or ""
            # A token chunk: text, or a chunk before the end (llama-server sends one per token, text
            # possibly empty while a UTF-8 character is incomplete); the closing chunk has neither.
            if t or ch.get("finish_reason") is None:
                times.append(now)
                text.append(t)
            if ch.get("finish_reason") is not None:
                finish = ch["finish_reason"]
    c.close()
    if not done:
        raise RuntimeError(f"stream on port {port} ended without data: [DONE]")
    if not times:
        raise RuntimeError(f"stream on port {port} carried no tokens")
    tokens = usage["completion_tokens"] if usage and "completion_tokens" in usage else len(times)
    span = times[-1] - times[0]
    return {
        "tokens": tokens, "chunks": len(times), "token_source": "usage" if usage else "chunks",
        "ttft_s": times[0] - t_sent, "decode_s": span,
        "tok_s": (tokens - 1) / span if span > 0 and tokens > 1 else None,
        "total_s": times[-1] - t_sent, "finish_reason": finish, "server_reported_tok_s": reported,
        "text": "".join(text),
    }


def fmt(x, spec=".1f"):
    return "—" if x is None else format(x, spec)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gptrain", default="build/gptrain", help="gptrain binary")
    ap.add_argument("--model-dir", help="gptrain model dir (the one the GGUFs were exported from)")
    ap.add_argument("--model-name", help="model name sent in the request [default: the id each server "
                                         "gives in GET /v1/models]")
    ap.add_argument("--llama-server", help="llama.cpp's llama-server binary")
    ap.add_argument("--gguf-f32", help="GGUF of the model with f32 weights (gptrain export-gguf --type f32)")
    ap.add_argument("--gguf-f16", help="GGUF of the model with f16 weights (gptrain export-gguf --type f16)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed requests per server before the rounds")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=1024, help="llama-server's -c")
    ap.add_argument("--dtypes", default="f32,f16")
    ap.add_argument("--only", choices=["llama", "gptrain"], help="measure one contender alone")
    ap.add_argument("--gptrain-args", default="", help="extra arguments for gptrain serve (one string)")
    ap.add_argument("--llama-args", default="", help="extra arguments for llama-server (one string)")
    ap.add_argument("--startup-timeout", type=float, default=180)
    ap.add_argument("--request-timeout", type=float, default=600)
    ap.add_argument("--log-dir", help="where the servers' logs go [default: a temporary dir]")
    a = ap.parse_args()

    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in ("f32", "f16"):
            ap.error(f"unknown dtype {d!r} (f32, f16)")
    use_g = a.only != "llama"
    use_l = a.only != "gptrain"
    if use_g and not a.model_dir:
        ap.error("--model-dir is needed for gptrain serve (or --only llama)")
    if use_l:
        if not a.llama_server:
            ap.error("--llama-server is needed (or --only gptrain)")
        for d in dtypes:
            if not getattr(a, f"gguf_{d}"):
                ap.error(f"--gguf-{d} is needed for llama-server")
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="serve-bench-")
    os.makedirs(log_dir, exist_ok=True)

    def gptrain_server(dtype):
        port = free_port()
        argv = [a.gptrain, "serve", "--model", a.model_dir, "--port", str(port), "--threads", str(a.threads)]
        if dtype == "f16":
            argv += ["--weights-dtype", "f16"]
        return Server(f"gptrain-{dtype}", argv + shlex.split(a.gptrain_args), port, log_dir)

    def llama_server(dtype):
        port = free_port()
        argv = [a.llama_server, "-m", getattr(a, f"gguf_{dtype}"), "-t", str(a.threads), "-tb", str(a.threads),
                "-c", str(a.ctx), "--port", str(port), "--host", "127.0.0.1",
                "-np", "1", "--no-cache-prompt", "--cache-ram", "0", "--no-webui"]
        return Server(f"llama-server-{dtype}", argv + shlex.split(a.llama_args), port, log_dir)

    def on_sigterm(*_):  # SIGTERM ends the run as Ctrl-C does, through the finally below
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with SIGINT ignored

    raw = {"prompt": PROMPT, "max_tokens": a.max_tokens, "threads": a.threads, "rounds": a.rounds,
           "warmup": a.warmup, "cpus": os.cpu_count(), "gptrain": a.gptrain if use_g else None,
           "model_dir": a.model_dir, "llama_server": a.llama_server if use_l else None, "ctx": a.ctx,
           "log_dir": log_dir, "results": {}}
    running = []
    try:
        for dtype in dtypes:
            contenders = []
            if use_g:
                contenders.append(("gptrain", gptrain_server(dtype)))
            if use_l:
                contenders.append(("llama", llama_server(dtype)))
            for _, s in contenders:
                print(f"[{dtype}] starting {shlex.join(s.argv)}", file=sys.stderr, flush=True)
                running.append(s)
                s.start(a.startup_timeout)
            res = {"gguf": getattr(a, f"gguf_{dtype}"), "gptrain": [], "llama": [], "warmup": {}}
            name = {who: a.model_name or s.model_id or "model" for who, s in contenders}
            res["model_name"] = name
            for who, s in contenders:
                res["warmup"][who] = [stream_completion(s.port, name[who], a.max_tokens, a.request_timeout)
                                      for _ in range(a.warmup)]
            for rnd in range(a.rounds):
                for who, s in contenders:
                    m = stream_completion(s.port, name[who], a.max_tokens, a.request_timeout)
                    m["round"] = rnd + 1
                    res[who].append(m)
                    print(f"[{dtype}] round {rnd + 1} {who}: {m['tokens']} tokens, {fmt(m['tok_s'])} tok/s, "
                          f"first token {m['ttft_s'] * 1e3:.1f} ms", file=sys.stderr, flush=True)
            for _, s in contenders:
                s.stop()
                running.remove(s)
            texts = {who: {m["text"] for m in res[who]} for who in ("gptrain", "llama") if res[who]}
            res["texts_equal"] = len(set().union(*texts.values())) == 1 if texts else None
            res["text"] = {who: sorted(t)[0] for who, t in texts.items()}
            for who in ("gptrain", "llama"):
                for m in res[who] + res["warmup"].get(who, []):
                    m.pop("text")
            raw["results"][dtype] = res
    except KeyboardInterrupt:
        print("interrupted; stopping the servers", file=sys.stderr)
        sys.exit(130)
    finally:
        for s in running:
            s.stop()

    for dtype, res in raw["results"].items():
        g, l = res["gptrain"], res["llama"]
        print(f"\n### {dtype} weights ({a.threads} threads, {a.max_tokens} new tokens, prompt \"{PROMPT}\")\n")
        print("| round | gptrain tok/s | llama-server tok/s | ratio | gptrain TTFT ms | llama-server TTFT ms |")
        print("|---|---|---|---|---|---|")
        rows = []
        for i in range(a.rounds):
            gm = g[i] if i < len(g) else {}
            lm = l[i] if i < len(l) else {}
            gt, lt = gm.get("tok_s"), lm.get("tok_s")
            ratio = gt / lt if gt and lt else None
            gf = gm["ttft_s"] * 1e3 if gm else None
            lf = lm["ttft_s"] * 1e3 if lm else None
            rows.append((gt, lt, ratio, gf, lf))
            print(f"| {i + 1} | {fmt(gt)} | {fmt(lt)} | {fmt(ratio, '.2f')} | {fmt(gf)} | {fmt(lf)} |")
        med = [median([r[k] for r in rows]) for k in range(5)]
        mg, ml = med[0], med[1]
        med_ratio = mg / ml if mg and ml else None
        print(f"| median | {fmt(mg)} | {fmt(ml)} | {fmt(med_ratio, '.2f')} | {fmt(med[3])} | {fmt(med[4])} |")
        res["median"] = {"gptrain_tok_s": mg, "llama_tok_s": ml, "ratio": med_ratio,
                         "gptrain_ttft_ms": med[3], "llama_ttft_ms": med[4]}
        if res["texts_equal"] is False:
            print("\nnote: the contenders' greedy texts differ (see the JSON)")
    print()
    print(json.dumps(raw))


if __name__ == "__main__":
    main()
