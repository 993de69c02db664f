#!/usr/bin/env bash
# End-to-end tests of `gptrain pretrain` on a tiny model over the book's text:
#   1. same seed, same threads: the identical loss sequence, bit for bit, in two runs;
#   2. SIGINT mid-run writes a checkpoint and exits 130; --resume finishes with the loss sequence
#      of an uninterrupted run, bit for bit;
#   3. SIGKILL in the middle of a checkpoint write leaves the previous checkpoint loadable and
#      --resume uses it, again reproducing the uninterrupted run exactly;
#   4. clear errors, and nothing lost, for bad inputs and bad run directories;
#   5. hardening (issue 19): one process per run dir (a second one is refused by name, a killed one
#      releases the dir); a refused data file leaves no run.json behind (F9); under the cosine
#      schedule a resume keeps --epochs and --max-steps (F1); loop options out of range are
#      refused and options without effect are named (F17); the data files are recorded with size
#      and sha256 and a resume on changed data is refused unless --allow-changed-data; --data is
#      the positional FILES.
# Usage: pretrain_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt gpt2_tokenizer/encoder.json

tiny=(--data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 32 --batch-size 2
      --max-steps 60 --eval-interval 1 --eval-iters 1 --sample-tokens 5 --threads 2 --save-interval 10)
# the per-step record without the wall-clock throughput
losses() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1/metrics.jsonl"; }

# 1. determinism
"$gptrain" pretrain "${tiny[@]}" --out-dir "$work/a" > "$work/a.log" 2>&1 || fail "run a exited $?"
"$gptrain" pretrain "${tiny[@]}" --out-dir "$work/a2" > "$work/a2.log" 2>&1 || fail "run a2 exited $?"
[ "$(wc -l < "$work/a/metrics.jsonl")" -eq 60 ] || fail "expected 60 records in metrics.jsonl"
cmp -s <(losses "$work/a") <(losses "$work/a2") || fail "two runs with the same seed differ"
for f in run.json loss.svg final/config.json final/model.safetensors final/vocab.json final/merges.txt; do
  [ -s "$work/a/$f" ] || fail "missing output $f"
done
grep -q "Ep 1 (Step 000000): Train loss" "$work/a.log" || fail "no book-style evaluation line"
# F3: a checkpoint is a complete model dir: it carries the run's vocabulary
for f in vocab.json merges.txt; do
  [ -s "$(ls -d "$work/a/checkpoints"/step_* | sort | tail -1)/$f" ] || fail "the checkpoint has no $f"
done
# F14: run.json records the binary's version
grep -q "\"gptrain_version\": \"$("$gptrain" --version | cut -d' ' -f2)\"" "$work/a/run.json" ||
  fail "run.json's gptrain_version is not the binary's"

# 2. SIGINT, then resume
"$gptrain" pretrain "${tiny[@]}" --out-dir "$work/b" > "$work/b.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/b/metrics.jsonl" ] && [ "$(wc -l < "$work/b/metrics.jsonl")" -ge 15 ] && break
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || fail "SIGINT: exit code $rc, expected 130"
grep -q "continue with --resume" "$work/b.log" || fail "SIGINT: no resume hint"
ls "$work/b/checkpoints" | grep -q step_ || fail "SIGINT: no checkpoint written"
"$gptrain" pretrain "${tiny[@]}" --out-dir "$work/b" --resume >> "$work/b.log" 2>&1 || fail "resume after SIGINT exited $?"
cmp -s <(losses "$work/a") <(losses "$work/b") || fail "interrupted + resumed run differs from the uninterrupted one"

# 3. SIGKILL during the checkpoint of step 20, then resume from step 10
GPTRAIN_TEST_KILL_IN_CHECKPOINT=20 "$gptrain" pretrain "${tiny[@]}" --out-dir "$work/c" > "$work/c.log" 2>&1
rc=$?
[ "$rc" -eq 137 ] || fail "SIGKILL injection: exit code $rc, expected 137"
[ -f "$work/c/checkpoints/step_00000010/DONE" ] || fail "SIGKILL: the previous checkpoint is gone"
[ -d "$work/c/checkpoints/.tmp-step_00000020" ] || fail "SIGKILL: expected a partial checkpoint to be left behind"
[ -e "$work/c/checkpoints/step_00000020" ] && fail "SIGKILL: a half-written checkpoint got the final name"
"$gptrain" pretrain "${tiny[@]}" --out-dir "$work/c" --resume > "$work/c2.log" 2>&1 || fail "resume after SIGKILL exited $?"
grep -q "resuming from .*step_00000010" "$work/c2.log" || fail "SIGKILL: resume did not use step 10"
cmp -s <(losses "$work/a") <(losses "$work/c") || fail "run resumed after SIGKILL differs from the uninterrupted one"

# 4. errors: each must fail (exit 1) with a message naming the problem
: > "$work/empty.txt"
printf 'A short text.' > "$work/short.txt"
touch "$work/file"
expect_error "no such file" pretrain "${tiny[@]}" --out-dir "$work/e1" "$work/missing.txt"
expect_error "empty" pretrain "${tiny[@]}" --out-dir "$work/e2" "$work/empty.txt"
expect_error "needs at least 33 tokens.*smaller --context-length" pretrain "${tiny[@]}" --out-dir "$work/e3" "$work/short.txt"
expect_error "cannot create" pretrain "${tiny[@]}" --out-dir "$work/file/run"
expect_error "is not empty.*--resume.*--overwrite" pretrain "${tiny[@]}" --out-dir "$work/a"
mkdir -p "$work/e4"
expect_error "no complete checkpoint" pretrain "${tiny[@]}" --out-dir "$work/e4" --resume
expect_error "--seed: checkpoint 123, now 7" pretrain "${tiny[@]}" --out-dir "$work/a" --resume --seed 7
# the batch order is part of what a resumed run must keep
expect_error "--no-shuffle: checkpoint false, now true" pretrain "${tiny[@]}" --out-dir "$work/a" --resume --no-shuffle
# a checkpoint written before an option existed resumes with that option at its default
cp -r "$work/a" "$work/old"
newest=$(ls -d "$work/old/checkpoints"/step_* | sort | tail -1)
sed -i '/"no-shuffle"/d' "$newest/trainer_state.json"
grep -q no-shuffle "$newest/trainer_state.json" && fail "could not strip no-shuffle from the checkpoint"
"$gptrain" pretrain "${tiny[@]/60/62}" --out-dir "$work/old" --resume > "$work/old.log" 2>&1 ||
  fail "resume from a checkpoint without the no-shuffle record exited $?"
expect_error "--no-shuffle: checkpoint false, now true" pretrain "${tiny[@]}" --out-dir "$work/old" --resume --no-shuffle
# nothing was lost: the finished run is untouched by the refused commands
cmp -s <(losses "$work/a") <(losses "$work/a2") || fail "a refused command changed a previous run"

# 5. hardening (issue 19)
base=(--data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 32 --batch-size 2 --eval-iters 1
      --sample-tokens 0 --threads 1)
# F9: the refused runs above wrote nothing, so a retry in the same dir needs no --overwrite
for d in e1 e2 e3; do [ ! -e "$work/$d/run.json" ] || fail "a refused run left $d/run.json behind"; done
"$gptrain" pretrain "${base[@]}" --max-steps 1 --out-dir "$work/e3" > "$work/e3-retry.log" 2>&1 ||
  fail "the retry in a refused run's dir exited $?"
# one process per run dir: while a run holds it, a second one (here resuming) is refused, naming the holder
"$gptrain" pretrain "${base[@]}" --epochs 1000 --save-interval 5 --out-dir "$work/busy" > "$work/busy.log" 2>&1 &
busy=$!
for _ in $(seq 300); do ls "$work/busy/checkpoints"/step_*/DONE > /dev/null 2>&1 && break; sleep 0.1; done
expect_timeout=60 expect_error "--out-dir .*busy is in use by process $busy: .*gptrain pretrain" pretrain "${base[@]}" --epochs 1000 \
  --save-interval 5 --out-dir "$work/busy" --resume
kill -0 $busy 2> /dev/null || fail "the first run died when the second started"
# a crash releases the dir: after kill -9 the run resumes
kill -9 $busy
wait $busy 2> /dev/null
"$gptrain" pretrain "${base[@]}" --epochs 1000 --max-steps 1 --save-interval 5 --out-dir "$work/busy" --resume \
  > "$work/busy-resume.log" 2>&1 || fail "resume after a killed run exited $?: $(tail -1 "$work/busy-resume.log")"
# F1: under the cosine schedule --epochs and --max-steps set its length: a resume keeps them
"$gptrain" pretrain "${base[@]}" --max-steps 4 --lr-schedule cosine --out-dir "$work/cos" > "$work/cos.log" 2>&1 ||
  fail "cosine run exited $?"
expect_error "--max-steps: checkpoint 4, now 8" pretrain "${base[@]}" --max-steps 8 --lr-schedule cosine \
  --out-dir "$work/cos" --resume
expect_error "with --lr-schedule cosine, --epochs and --max-steps fix the schedule's length" pretrain "${base[@]}" \
  --epochs 2 --max-steps 4 --lr-schedule cosine --out-dir "$work/cos" --resume
# F2: a model dir's config.json fixes the shape: the shape options are refused, not recorded and ignored
expect_error "--emb-dim, --n-layers, --n-heads, --qkv-bias, --tie-weights shape a preset; --init .*final is a model dir" \
  pretrain "${base[@]}" --init "$work/a/final" --qkv-bias --tie-weights --max-steps 1 --out-dir "$work/e8"
[ ! -e "$work/e8/run.json" ] || fail "the refused --init run left run.json behind"
# F5: --train-split is checked for a token shard too (it was a "cannot create std::vector" crash), and the
# shard's split runs from views of the mapping
"$gptrain" tokenize --data-dir "$data" --data "$data/the-verdict.txt" --format u16 --output "$work/verdict.u16" \
  > /dev/null 2>&1 || fail "tokenize to a shard exited $?"
expect_error "--train-split must be between 0 and 1 (exclusive), got 1.5" pretrain "${base[@]}" --max-steps 1 \
  --train-split 1.5 --out-dir "$work/e9" "$work/verdict.u16"
"$gptrain" pretrain "${base[@]}" --max-steps 2 --out-dir "$work/shard" "$work/verdict.u16" > "$work/shard.log" 2>&1 ||
  fail "pretrain on a shard exited $?: $(tail -1 "$work/shard.log")"
# F11: a failed flush of the checkpoints dir (after the rename) is an error, not a "complete" checkpoint
# (the sanitizer build's runtime must not insist on coming first in the library list)
if [ -n "${GPTRAIN_TEST_FSYNC_SHIM:-}" ]; then
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$GPTRAIN_TEST_FSYNC_SHIM" \
    GPTRAIN_TEST_FAIL_FSYNC_OF=checkpoints "$gptrain" pretrain "${base[@]}" --max-steps 2 --out-dir "$work/fsync" \
    > "$work/fsync.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || fail "a failed fsync of the checkpoints dir: exit code $rc, expected 1"
  expect_in "$work/fsync.log" "cannot flush directory .*fsync/checkpoints: Input/output error"
fi
# F17: loop options out of range, and options that do nothing
expect_error "--save-interval must be 0 (after every epoch) or positive, got -1" pretrain "${base[@]}" --max-steps 1 \
  --save-interval -1 --out-dir "$work/e5"
expect_error "--keep-last must be at least 1, got 0" pretrain "${base[@]}" --max-steps 1 --keep-last 0 --out-dir "$work/e6"
expect_error "--max-steps must be 0 (no limit) or positive, got -1" pretrain "${base[@]}" --max-steps -1 --out-dir "$work/e7"
"$gptrain" pretrain "${base[@]}" --max-steps 1 --min-lr 1e-5 --initial-lr 1e-5 --out-dir "$work/w" > "$work/w.log" 2>&1 ||
  fail "run with ineffective options exited $?"
expect_in "$work/w.log" "warning: --min-lr 1e-05 has no effect without --lr-schedule cosine"
expect_in "$work/w.log" "warning: --initial-lr 1e-05 has no effect without --warmup-steps"
# the run's data files are recorded by size and sha256; a resume on changed data is refused, naming the file,
# unless --allow-changed-data (then it warns); --data is the positional FILES
head -c 8000 "$data/the-verdict.txt" > "$work/text.txt"
"$gptrain" pretrain "${base[@]}" --max-steps 2 --save-interval 1 --out-dir "$work/fp" --data "$work/text.txt" \
  > "$work/fp.log" 2>&1 || fail "pretrain --data exited $?: $(tail -1 "$work/fp.log")"
sha=$(sha256sum "$work/text.txt" | cut -d' ' -f1)
for f in "$work/fp/run.json" "$(ls -d "$work/fp/checkpoints"/step_* | sort | tail -1)/trainer_state.json"; do
  expect_in "$f" "\"sha256\": \"$sha\""
  expect_in "$f" '"size": 8000'
done
expect_usage_error "excludes" pretrain "${base[@]}" --max-steps 1 --out-dir "$work/e10" "$work/text.txt" \
  --data "$work/text.txt"
printf 'x' >> "$work/text.txt"
"$gptrain" pretrain "${base[@]}" --max-steps 3 --save-interval 1 --out-dir "$work/fp" --data "$work/text.txt" --resume \
  > "$work/fp-changed.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "a resume on changed data: exit code $rc, expected 1"
expect_in "$work/fp-changed.log" "the data changed since the checkpoint .*step_00000002"
expect_in "$work/fp-changed.log" "text.txt: checkpoint 8000 bytes, sha256 ${sha:0:16}; now 8001 bytes"
expect_in "$work/fp-changed.log" "or pass --allow-changed-data"
"$gptrain" pretrain "${base[@]}" --max-steps 3 --save-interval 1 --out-dir "$work/fp" --data "$work/text.txt" --resume \
  --allow-changed-data > "$work/fp2.log" 2>&1 || fail "resume with --allow-changed-data exited $?: $(tail -1 "$work/fp2.log")"
expect_in "$work/fp2.log" "warning: --allow-changed-data: the data changed since the checkpoint"
expect_in "$work/fp/run.json" "\"sha256\": \"$(sha256sum "$work/text.txt" | cut -d' ' -f1)\""

finish "pretrain end-to-end"
