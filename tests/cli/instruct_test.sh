#!/usr/bin/env bash
# End-to-end tests of instruction finetuning on a tiny model (the real run is in BENCHMARKS.md):
#   1. gptrain pretrain makes a tiny base model; finetune-instruct on the book's instruction data
#      (a small split, JSONL test entries) lowers the loss, prints the epoch sample, reports the
#      entries cut by --max-length, and writes final/ and test-responses.json; a run stopped and
#      resumed evaluates exactly as one run in one go;
#   2. gptrain answer writes the 110 test entries of the book's split with model_response, in the
#      book's JSON form; gptrain chat answers piped lines;
#   3. clear errors for malformed JSON, missing fields and bad options; --data is the positional DATA.
# Usage: instruct_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" instruction-data.json gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1

# 1. a base model from gptrain pretrain, then finetune it
"$gptrain" pretrain --data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 128 --batch-size 2 \
  --max-steps 2 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir "$work/base" > "$work/base.log" 2>&1 ||
  fail "pretrain exited $?"
printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' \
  '{"instruction": "Translate to French.", "input": "Good night", "output": "Bonne nuit."}' \
  '{"instruction": "Give a synonym.", "input": "happy", "output": "Joyful."}' > "$work/test.jsonl"
# (a large learning rate, so the loss falls visibly in 18 steps)
# train = the first int(1100 * 0.02) = 22 entries, val = the last 1078; the test part of the split
# is replaced by the JSONL file (and its 5 entries train too)
ft_args=("$gptrain" finetune-instruct --data-dir "$data" --init "$work/base/final" --train-split 0.02
         --test-split 0.005 --test-data "$work/test.jsonl" --batch-size 3 --epochs 2 --lr 1e-2 --eval-interval 3
         --eval-iters 1 --max-length 64 --sample-tokens 5 --answer-tokens 4 --threads 1)
"${ft_args[@]}" --out-dir "$work/ft" > "$work/ft.log" 2>&1 || fail "finetune-instruct exited $?"
grep -q "train 27, val 1073, test 3 (from --test-data)" "$work/ft.log" || fail "split counts"
grep -Eq "train: 27 entries, longest [0-9]+ tokens; [1-9][0-9]* longer than --max-length 64 are truncated" "$work/ft.log" ||
  fail "no truncation count in the output"
grep -q "batches: train 9 of 3 per epoch" "$work/ft.log" || fail "batches per epoch"
grep -q "Ep 1 sample (first validation entry): Below is an instruction" "$work/ft.log" || fail "no epoch sample"
first=$(head -1 "$work/ft/metrics.jsonl" | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
last=$(tail -1 "$work/ft/metrics.jsonl" | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "val loss did not fall: $first -> $last"
echo "val loss $first -> $last"
for f in run.json loss.svg final/config.json final/model.safetensors final/vocab.json final/merges.txt; do
  [ -s "$work/ft/$f" ] || fail "missing output $f"
done
[ "$(grep -c '"model_response": ' "$work/ft/test-responses.json")" -eq 3 ] || fail "test-responses.json: expected 3"

# stopped after 7 steps (a checkpoint), then resumed: the same evaluations as the run in one go
losses() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1/metrics.jsonl"; }
"${ft_args[@]}" --out-dir "$work/ft2" --max-steps 7 > "$work/ft2.log" 2>&1 || fail "finetune-instruct --max-steps 7 exited $?"
"${ft_args[@]}" --out-dir "$work/ft2" --resume > "$work/ft2b.log" 2>&1 || fail "finetune-instruct --resume exited $?"
grep -q "resuming from .*step_00000007" "$work/ft2b.log" || fail "resume did not start from step 7"
cmp -s <(losses "$work/ft") <(losses "$work/ft2") || fail "the resumed run differs from the run in one go"

# Ctrl-C while the test entries are answered (after the loop, final/ written) ends the job at once
# with 130, not after answering them all with 0 (review F10)
"$gptrain" finetune-instruct --data-dir "$data" --init "$work/base/final" --train-split 0.02 --batch-size 3 \
  --max-steps 1 --eval-interval 10 --eval-iters 1 --max-length 64 --sample-tokens 0 --answer-tokens 256 --threads 1 \
  --out-dir "$work/ft3" > "$work/ft3.log" 2>&1 &
ft3=$!
for _ in $(seq 600); do grep -q "answering the" "$work/ft3.log" && break; sleep 0.05; done
kill -INT $ft3
wait $ft3
rc=$?
[ $rc -eq 130 ] || fail "Ctrl-C while answering: exit $rc, expected 130"
[ -s "$work/ft3/final/model.safetensors" ] || fail "Ctrl-C while answering: final/ missing"
[ ! -e "$work/ft3/test-responses.json" ] || fail "Ctrl-C while answering: the answering went on to the end"

# 2. answer: the book's test split (data[935:1045]), written as json.dump(indent=4)
"$gptrain" answer --model "$work/ft/final" --data "$data/instruction-data.json" --split test --max-new-tokens 3 \
  --threads 1 --out "$work/responses.json" > "$work/answer.log" 2>&1 || fail "answer exited $?"
[ "$(grep -c '"model_response": ' "$work/responses.json")" -eq 110 ] || fail "answer: expected 110 responses"
head -3 "$work/responses.json" | cmp -s - <(printf '[\n    {\n        "instruction": "Rewrite the sentence using a simile.",\n') ||
  fail "answer: not the book's JSON form"
[ "$(tail -c 1 "$work/responses.json")" = "]" ] || fail "answer: the file must end without a newline, as json.dump"
grep -q "wrote 110 responses" "$work/answer.log" || fail "answer: no summary"
printf 'Name a fruit.\nAnd a vegetable?\n' | "$gptrain" chat --model "$work/ft/final" --max-new-tokens 3 --threads 1 \
  > "$work/chat.log" 2>&1 || fail "chat on a pipe exited $?"
[ "$(wc -l < "$work/chat.log")" -ge 4 ] || fail "chat: expected a banner and two answers"

# 3. errors: each must fail (exit 1) with a message naming the problem
printf '[\n  {"instruction": "A", "input": "", "output": "x"},\n]\n' > "$work/trailing.json"
printf '[{"instruction": "A", "input": "", "output": "x"},\n {"instruction": "B", "input": ""}]\n' > "$work/missing.json"
printf '{"instruction": "A", "input": "", "output": "x"}\n{"instruction": "B" "input": ""}\n' > "$work/bad.jsonl"
ft=(finetune-instruct --data-dir "$data" --init "$work/base/final" --threads 1 --no-answer-test)
expect_error "trailing.json:3:1: invalid JSON" "${ft[@]}" --out-dir "$work/e1" "$work/trailing.json"
expect_error 'missing.json:2: entry 1 (counting from 0) has no "output" field' "${ft[@]}" --out-dir "$work/e2" "$work/missing.json"
# the column where the parser stopped: the end of the string "input" that lacks a comma before it
expect_error "bad.jsonl:2:27: invalid JSON" "${ft[@]}" --out-dir "$work/e3" "$work/bad.jsonl"
expect_error "not a model directory" finetune-instruct --data-dir "$data" --init "$work/nothing" --out-dir "$work/e4"
expect_error "is not empty.*--resume.*--overwrite" "${ft[@]}" --out-dir "$work/ft"
printf '[{"instruction": "A", "input": ""},\n {"instruction": "B"}]\n' > "$work/noinput.json"
expect_error 'noinput.json:2: entry 1 (counting from 0) has no "input" field' answer --model "$work/ft/final" \
  --data "$work/noinput.json" --out "$work/x.json"
expect_error "fewer than one batch" "${ft[@]}" --out-dir "$work/e5" --train-split 0.005 --batch-size 8
# a refused data file leaves no run.json behind, so the retry needs no --overwrite (review F9)
for d in e1 e2 e3 e5; do [ ! -e "$work/$d/run.json" ] || fail "a refused run left $d/run.json behind"; done
# --data is the positional DATA (as in finetune-cls and answer); giving both is a usage error; run.json
# records the file's sha256
"$gptrain" finetune-instruct --data-dir "$data" --init "$work/base/final" --threads 1 --no-answer-test --data "$work/test.jsonl" \
  --train-split 0.67 --test-split 0 --batch-size 2 --max-steps 1 --eval-iters 1 --sample-tokens 0 --out-dir "$work/d" \
  > "$work/d.log" 2>&1 || fail "finetune-instruct --data exited $?"
expect_in "$work/d.log" "data: 3 entries in .*test.jsonl: train 2, val 1"
expect_in "$work/d/run.json" "\"sha256\": \"$(sha256sum "$work/test.jsonl" | cut -d' ' -f1)\""
expect_error "trailing.json:3:1: invalid JSON" "${ft[@]}" --out-dir "$work/e6" --data "$work/trailing.json"
expect_usage_error "excludes" "${ft[@]}" --out-dir "$work/e7" --data "$work/test.jsonl" "$work/test.jsonl"

finish "instruct end-to-end" 8
