#!/usr/bin/env bash
# gptrain serve and gptrain judge end to end (issue 17), on models the test trains: a tiny base
# (pretrain, context 512) and a tiny "judge" finetuned to answer every instruction with "50".
#   1. the book's client: ollama_evaluate.py's payload to /api/chat, its stream read as it reads
#      it (tests/serve/clients.py), and the notebook's form; the openai package where installed;
#   2. greedy output equals the CLI: /api/chat = `gptrain answer`, /v1/completions and
#      /api/generate raw = `gptrain generate --no-echo`, streamed or not;
#   3. bad requests: malformed JSON, wrong types, unknown model, negative temperature, a huge body
#      or max_tokens, a prompt longer than the context, malformed HTTP, a client gone mid-stream
#      (its sequence cancelled): each a 4xx JSON error or a clean stop, and the server keeps
#      serving; with --api-key, a missing or wrong key is 401; a full queue is 503 + Retry-After;
#   4. `gptrain judge` of eval-example-data.json's first entries against `gptrain serve` of the
#      judge model, printed as the book prints, per-entry scores in a JSON file; both APIs.
# Usage: serve_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt eval-example-data.json gpt2_tokenizer/encoder.json
clients="python3 $(cd "$(dirname "$0")/../serve" && pwd)/clients.py"
export OMP_NUM_THREADS=1

# The models
"$gptrain" pretrain --data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 512 --batch-size 2 \
  --max-steps 4 --eval-interval 2 --eval-iters 1 --sample-tokens 0 --threads 1 --out-dir "$work/base" \
  > "$work/base.log" 2>&1 || fail "pretrain exited $?"
python3 - "$work/judge-data.json" <<'PY'
import json, random, sys
random.seed(1)
words = "score the model response input output correct scale best number integer only task request write answer".split()
entries = [{"instruction": " ".join(random.choice(words) for _ in range(random.randint(5, 60))), "input": "", "output": "50"}
           for _ in range(48)]
json.dump(entries, open(sys.argv[1], "w"), indent=1)
PY
"$gptrain" finetune-instruct "$work/judge-data.json" --data-dir "$data" --init "$work/base/final" --train-split 0.9 \
  --test-split 0.05 --batch-size 4 --lr 1e-2 --epochs 14 --eval-interval 100 --eval-iters 1 --max-length 512 \
  --sample-tokens 0 --no-answer-test --threads 1 --out-dir "$work/judge" > "$work/judge.log" 2>&1 ||
  fail "finetune-instruct exited $?"

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
start_server() {  # start_server LOG ARGS...: sets url to the server's base URL
  local log=$1
  shift
  "$gptrain" serve --port 0 --threads 1 --data-dir "$data" "$@" > "$log" 2>&1 &
  pids+=($!)
  url=""
  for _ in $(seq 1 200); do
    url=$(sed -n 's|.*listening on \(http://[0-9.]*:[0-9]*\).*|\1|p' "$log")
    [ -n "$url" ] && return 0
    sleep 0.05
  done
  fail "serve did not start: $(tail -3 "$log")"
  return 1
}
expect_status() {  # expect_status WANT PATTERN ARGS...: clients.py post ARGS gives status WANT and PATTERN
  local want=$1 pattern=$2
  shift 2
  local out
  out=$($clients post "$url" "$@")
  [ "${out%% *}" = "$want" ] && echo "$out" | grep -q -- "$pattern" ||
    fail "POST $1 $(echo "$2" | cut -c1-60): expected $want and '$pattern', got: $(echo "$out" | cut -c1-200)"
}

# 1-2. the judge model: the book's client, and the same text as `gptrain answer`
start_server "$work/judge-serve.log" --model "$work/judge/final" --model-name judge,llama3 || exit 1
judge_url=$url
prompt="Given the input \`Below is an instruction.\` and correct output \`yes\`, score the model response \`no\`."
book=$($clients book "$url" "$prompt") || fail "the book's client failed: $book"
notebook=$($clients book-notebook "$url" "$prompt") || fail "the notebook's client failed"
python3 -c "import json; json.dump([{'instruction': '''$prompt''', 'input': ''}], open('$work/one.json', 'w'))"
"$gptrain" answer --model "$work/judge/final" --data "$work/one.json" --out "$work/one-out.json" --threads 1 \
  > "$work/answer.log" 2>&1 || fail "answer exited $?"
python3 - "$book" "$notebook" "$work/one-out.json" <<'PY' || fail "the book's client against gptrain answer"
import json, sys
book, notebook = json.loads(sys.argv[1])["text"], json.loads(sys.argv[2])["text"]
answer = json.load(open(sys.argv[3]))[0]["model_response"]
extracted = book.replace("### Response:", "").strip()  # the book's extraction, as `answer` applies it
assert extracted == answer, (book, answer)
assert notebook == book, (notebook, book)
assert answer == "50", answer
print(f"book client: {book!r} = gptrain answer's {answer!r}")
PY
out=$($clients openai "$url" llama3 "$prompt")
case $? in
  0) echo "openai package: $out"; echo "$out" | grep -q '"text": "50"' || fail "openai stream: $out" ;;
  77) echo "SKIP (not a failure): $out" ;;
  *) fail "openai client: $out" ;;
esac
$clients post "$url" /v1/chat/completions '{"model":"judge","messages":[{"role":"user","content":"x"}],"temperature":0}' |
  grep -q '^200 .*"content":"50".*"finish_reason":"stop".*"usage"' || fail "a non-streamed chat completion"

# 2. the base model: raw completions against gptrain generate
start_server "$work/base-serve.log" --model "$work/base/final" --parallel 2 --max-queue 1 || exit 1
base_url=$url
"$gptrain" generate --model "$work/base/final" --data-dir "$data" --prompt "Every effort moves you" --max-new-tokens 12 \
  --ignore-eos --no-echo --threads 1 > "$work/gen.txt" 2> "$work/gen.err" || fail "generate exited $?"
for body in '{"prompt":"Every effort moves you","max_tokens":12,"temperature":0,"ignore_eos":true}' \
            '{"prompt":"Every effort moves you","max_tokens":12,"temperature":0,"ignore_eos":true,"stream":true}'; do
  out=$($clients post "$url" /v1/completions "$body")
  python3 - "$work/gen.txt" "$out" <<'PY' || fail "/v1/completions against gptrain generate: $out"
import json, sys
want = open(sys.argv[1]).read().rstrip("\n")
status, body = sys.argv[2].split(" ", 1)
assert status == "200", sys.argv[2]
if body.startswith("data: "):
    events = [e for e in body.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), events
    events = [e[6:] for e in events]
    assert events[-1] == "[DONE]", events[-1]
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length", chunks[-1]
else:
    j = json.loads(body)
    text = j["choices"][0]["text"]
    assert j["usage"]["completion_tokens"] == 12, j["usage"]
assert text == want, (text, want)
print(f"/v1/completions {'streamed' if body.startswith('data') else 'whole'}: {text!r} = gptrain generate's")
PY
done
out=$($clients post "$url" /api/generate '{"prompt":"Every effort moves you","raw":true,"ignore_eos":true,"options":{"num_predict":12,"temperature":0}}')
python3 - "$work/gen.txt" "$out" <<'PY' || fail "/api/generate against gptrain generate: $out"
import json, sys
want = open(sys.argv[1]).read().rstrip("\n")
status, body = sys.argv[2].split(" ", 1)
lines = [json.loads(l) for l in body.replace("} {", "}\n{").splitlines() if l.strip()]
assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "length" and lines[-1]["eval_count"] == 12, lines[-1]
assert "".join(l["response"] for l in lines) == want
print("/api/generate (JSON lines): the same text")
PY

# --weights-dtype f16 / bf16: the server's greedy text equals generate's with the same weights
for dt in f16 bf16; do
  "$gptrain" generate --model "$work/base/final" --data-dir "$data" --prompt "Every effort moves you" --max-new-tokens 12 \
    --ignore-eos --no-echo --threads 1 --weights-dtype $dt > "$work/gen-$dt.txt" 2> /dev/null || fail "generate $dt exited $?"
  start_server "$work/serve-$dt.log" --model "$work/base/final" --weights-dtype $dt || exit 1
  out=$($clients post "$url" /v1/completions '{"prompt":"Every effort moves you","max_tokens":12,"temperature":0,"ignore_eos":true}')
  python3 -c "import json, sys; t = json.loads(sys.argv[1].split(' ', 1)[1])['choices'][0]['text']; w = open(sys.argv[2]).read().rstrip('\n'); assert t == w, (t, w)" \
    "$out" "$work/gen-$dt.txt" || fail "--weights-dtype $dt: serve against generate: $out"
  expect_in "$work/serve-$dt.log" "$dt weights"
done
# --device cuda on the host-emulated device (kernels/emulated_device.h): the CPU's text, bit for bit
GPTRAIN_TEST_EMULATE_CUDA=1 start_server "$work/serve-device.log" --model "$work/base/final" --weights-dtype bf16 \
  --device cuda || exit 1
out=$($clients post "$url" /v1/completions '{"prompt":"Every effort moves you","max_tokens":12,"temperature":0,"ignore_eos":true}')
python3 -c "import json, sys; t = json.loads(sys.argv[1].split(' ', 1)[1])['choices'][0]['text']; w = open(sys.argv[2]).read().rstrip('\n'); assert t == w, (t, w)" \
  "$out" "$work/gen-bf16.txt" || fail "--device cuda: serve against generate on the CPU: $out"
expect_in "$work/serve-device.log" "GPTRAIN_TEST_EMULATE_CUDA"
url=$base_url

# 3. bad requests: 4xx JSON errors, and the server keeps serving
expect_status 400 '"type":"invalid_request_error"' /v1/chat/completions '{"messages": [ {"role": "user"'
expect_status 400 "must be a number" /v1/chat/completions '{"messages":[{"role":"user","content":"a"}],"temperature":"hot"}'
expect_status 400 "must be a string" /v1/chat/completions '{"messages":[{"role":"user","content":5}]}'
expect_status 400 "messages" /v1/chat/completions '{"messages":"hello"}'
expect_status 400 "the last message must be the user" /v1/chat/completions '{"messages":[{"role":"assistant","content":"a"}]}'
expect_status 404 "model_not_found" /v1/chat/completions '{"model":"gpt-9","messages":[{"role":"user","content":"a"}]}'
expect_status 404 '"error":"model' /api/chat '{"model":"gpt-9","messages":[{"role":"user","content":"a"}]}'
expect_status 400 "temperature' must be in" /v1/completions '{"prompt":"a","temperature":-1}'
expect_status 400 "options.temperature' must be in" /api/generate '{"prompt":"a","options":{"temperature":-0.5}}'
expect_status 400 "max_tokens' must be in" /v1/completions '{"prompt":"a","max_tokens":100000000}'
expect_status 400 "max_tokens' must be an integer" /v1/completions '{"prompt":"a","max_tokens":1.5}'
expect_status 400 "context_length_exceeded" /v1/completions "{\"prompt\":\"$(printf 'word %.0s' $(seq 1 600))\"}"
expect_status 413 "larger than the server's limit" /v1/completions "@big:2000000"
expect_status 400 "body must be a JSON object" /api/chat '[1,2]'
expect_status 400 "not JSON" /v1/completions '{"prompt":"a","max_tokens":1e999}'  # found by the fuzzer
expect_status 404 "no such endpoint" /v1/nothing '{}'
raw=$($clients raw "$url" 'GARBAGE\r\n\r\n')
case "$raw" in "HTTP/1.1 4"*|closed) ;; *) fail "malformed HTTP: $raw" ;; esac
out=$($clients disconnect "$url") || fail "a client gone mid-stream: $out"
echo "client gone mid-stream: $out"
# a full queue: 2 places and 1 waiting; 8 long requests at once, the rest are turned away with 503
queued=()
for i in $(seq 1 8); do
  $clients post "$url" /v1/completions '{"prompt":"a","max_tokens":200,"ignore_eos":true,"temperature":0}' > "$work/q$i.txt" &
  queued+=($!)
done
wait "${queued[@]}"
busy=$(grep -l '^503 .*server_overloaded' "$work"/q*.txt | wc -l)
served=$(grep -l '^200 ' "$work"/q*.txt | wc -l)
[ "$busy" -ge 1 ] && [ "$((busy + served))" -eq 8 ] || fail "a full queue: $served served, $busy busy: $(cat "$work"/q*.txt | cut -c1-80)"
echo "a full queue: $served served, $busy turned away with 503"
expect_status 200 '"text"' /v1/completions '{"prompt":"still serving","max_tokens":2}'

# the API key
start_server "$work/key-serve.log" --model "$work/base/final" --api-key s3cret || exit 1
expect_status 401 "invalid_api_key" /v1/completions '{"prompt":"a","max_tokens":1}'
expect_status 401 "invalid_api_key" /v1/completions '{"prompt":"a","max_tokens":1}' wrong
expect_status 200 '"text"' /v1/completions '{"prompt":"a","max_tokens":1}' s3cret
python3 -c "import urllib.request; assert urllib.request.urlopen('$url/health').status == 200; assert b'gptrain chat' in urllib.request.urlopen('$url/').read()" ||
  fail "with --api-key, /health and the page must stay public"

# 4. gptrain judge against gptrain serve (the judge model answers 50 to everything)
python3 -c "import json; d = json.load(open('$data/eval-example-data.json')); json.dump(d[:4], open('$work/eval4.json', 'w'))"
"$gptrain" judge --data "$work/eval4.json" --key "model 1 response" --endpoint "$judge_url" --out "$work/scores.json" \
  > "$work/judge-run.log" 2>&1 || fail "judge exited $?: $(tail -3 "$work/judge-run.log")"
expect_in "$work/judge-run.log" "^Number of scores: 4 of 4$"
expect_in "$work/judge-run.log" "^Average score: 50.00$"
python3 -c "import json; s = json.load(open('$work/scores.json')); assert [e['score'] for e in s['scores']] == [50] * 4, s" ||
  fail "judge: the per-entry scores"
"$gptrain" judge --data "$work/eval4.json" --key "model 2 response" --endpoint "$judge_url" --api openai \
  --judge-model judge --out "$work/scores2.json" > "$work/judge-run2.log" 2>&1 || fail "judge --api openai exited $?"
expect_in "$work/judge-run2.log" "^Average score: 50.00$"
"$gptrain" judge --data "$work/eval4.json" --key "model 1 response" --endpoint "http://127.0.0.1:9" --retries 1 \
  --out "$work/none.json" > "$work/judge-down.log" 2>&1 && fail "judge against no server exited 0"
expect_in "$work/judge-down.log" "retrying in"
expect_in "$work/judge-down.log" "after 2 attempts"
"$gptrain" judge --data "$work/eval4.json" --key "model 3 response" --endpoint "$judge_url" > "$work/judge-key.log" 2>&1 &&
  fail "judge with a missing --key field exited 0"
expect_in "$work/judge-key.log" "has no field 'model 3 response'"
head -2 "$work/judge-run.log"
tail -3 "$work/judge-run.log"

for p in "${pids[@]}"; do kill -INT "$p"; done
for p in "${pids[@]}"; do wait "$p" || fail "serve exited $? on SIGINT"; done
pids=()
expect_in "$work/base-serve.log" "gptrain serve: stopped after"
finish "serve and judge end-to-end"
