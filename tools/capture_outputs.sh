#!/usr/bin/env bash
# capture_outputs.sh BIN OUT BOOK_MODEL [DATA_DIR] — run a fixed set of deterministic gptrain
# commands with binary BIN and write their outputs under OUT (removed first when present), so that
# two binaries (before and after a refactor, or two runs of one) can be compared with
# tools/compare_outputs.sh. BOOK_MODEL is a gpt2-small-shaped model dir (the book run's final/,
# `gptrain pretrain --out-dir D` then D/final); DATA_DIR defaults to ../shared/data next to the
# checkout. About a minute on 2 cores.
#
# Layout of OUT (every file here is compared by compare.sh, except runs/):
#   <section>/<name>.stdout, <name>.stderr   output of each command, wall-time fields stripped
#   <section>/<name>.metrics.jsonl           a run's metrics.jsonl as written (tokens_per_s kept)
#   <section>/*.json                         test-responses.json, the answer outputs
#   inputs/                                  the generated inputs (long prompt, topics.csv, ...)
#   rc.txt                                   the exit status of every command, in order
#   weights.sha256                           sha256 of the final model weights / split CSVs of each run
#   runs/                                    run dirs and raw (unfiltered) logs; not compared
# Everything runs with --threads 1 and OMP_NUM_THREADS=1, from inside OUT with relative run-dir
# paths (and any remaining absolute OUT path is rewritten to <OUT>), so the logs do not depend on
# where OUT is.
# KEEP_CHECKPOINTS=1 keeps the runs' checkpoints/ dirs (deleted by default to save space).
set -uo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 BIN OUT BOOK_MODEL [DATA_DIR]" >&2
  exit 2
fi
BIN=$(realpath -e "$1") || { echo "capture: no binary $1" >&2; exit 2; }
[ -x "$BIN" ] || { echo "capture: $BIN is not executable" >&2; exit 2; }
OUT=$(realpath -m "$2")
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$OUT" in
  / | "$REPO" | "$REPO"/* | "$HOME" | /tmp) echo "capture: refusing to overwrite $OUT" >&2; exit 2 ;;
esac

BOOK=$(realpath -m "$3")
DATA=$(realpath -m "${4:-$REPO/../shared/data}")
for p in "$DATA/the-verdict.txt" "$DATA/gpt2_tokenizer" "$DATA/sms_spam/SMSSpamCollection" \
         "$DATA/instruction-data.json" "$DATA/tiny_models/tiny_gpt2_vocab21" \
         "$DATA/tiny_models/fake_gpt2_vocab50257" "$BOOK/model.safetensors"; do
  [ -e "$p" ] || { echo "capture: missing $p" >&2; exit 2; }
done

export OMP_NUM_THREADS=1 LC_ALL=C TZ=UTC
unset GPTRAIN_PROFILE GPTRAIN_DATA_DIR

rm -rf -- "$OUT"
mkdir -p "$OUT/runs/raw" "$OUT/inputs" || exit 2
cd "$OUT" || exit 2
: > rc.txt
: > weights.sha256
start=$SECONDS

# Remove what depends on wall time from a log (stdin -> stdout).
strip_timing() {
  sed -E \
    -e "s#${OUT//#/\\#}#<OUT>#g" \
    -e 's/^(\[progress\] step [0-9]+\/[0-9]+ \| loss [0-9.naif-]+) \| [0-9.naif-]+ tok\/s \| elapsed [^|]* \| ETA .*$/\1/' \
    -e 's/(new tokens) in [0-9.]+ s: [0-9.naif-]+ tokens\/s \(first token after [0-9.]+ ms\)/\1/' \
    -e 's/^(Training completed in) [0-9.]+ minutes\./\1 <T> minutes./' \
    -e 's/^(done: .* seen), [0-9.]+ s \([0-9.naif-]+ tokens\/s\);/\1;/' \
    -e 's/^(done: .* seen), [0-9.]+ s;/\1;/' \
    -e 's/(answered [0-9]+\/[0-9]+ entries: [0-9]+ tokens) in [^,]*, [0-9.naif-]+ tokens\/s, ETA .*$/\1/' \
    -e 's/^(wrote [0-9]+ responses to .*) in [0-9.]+ s \(([0-9]+ tokens), [0-9.naif-]+ tokens\/s;/\1 (\2;/' \
    -e 's/(bytes -> [0-9]+ tokens) in [0-9.]+ s \([0-9.]+ MB\/s, /\1 (/'
}

# [progress] lines come every 30 s of wall time when piped: keep only the first and the last
# (step N/N) of each log, which are always printed.
keep_fixed_progress() {
  awk '/^\[progress\] step / {
         split($3, a, "/");
         if (!seen_first) { seen_first = 1; print; next }
         if (a[1] == a[2]) print;
         next
       }
       { print }'
}

filter_log() {  # filter_log RAW DEST
  strip_timing < "$1" | keep_fixed_progress > "$2"
}

# run SECTION NAME [--stdin FILE] CMD ARGS...: run CMD, raw output to runs/raw/SECTION.NAME.*,
# filtered copies to SECTION/NAME.stdout and SECTION/NAME.stderr, exit status to rc.txt.
run() {
  local section=$1 name=$2 stdin=/dev/null
  shift 2
  if [ "${1:-}" = "--stdin" ]; then stdin=$2; shift 2; fi
  mkdir -p "$section"
  local raw="runs/raw/$section.$name"
  local t0=$SECONDS
  "$@" < "$stdin" > "$raw.stdout" 2> "$raw.stderr"
  local rc=$?
  echo "$section/$name $rc" >> rc.txt
  filter_log "$raw.stdout" "$section/$name.stdout"
  filter_log "$raw.stderr" "$section/$name.stderr"
  printf '  %-40s rc %d  (%ds)\n' "$section/$name" "$rc" $((SECONDS - t0)) >&2
  return $rc
}

keep() {  # keep SRC DEST: copy a run's output file as is (or note its absence)
  mkdir -p "$(dirname "$2")"
  if [ -f "$1" ]; then cp "$1" "$2"; else echo "MISSING $1" > "$2.missing"; fi
}

hash_files() {  # hash_files FILE...: sha256 lines (relative to OUT) into weights.sha256
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then sha256sum "$f" >> weights.sha256; else echo "MISSING  $f" >> weights.sha256; fi
  done
}

G=("$BIN" generate --threads 1 --print-ids --ignore-eos)
echo "capture: $BIN -> $OUT" >&2

# ---------------------------------------------------------------------------------------------
# a. generation from the book-trained gpt2-small-shaped model
P="Every effort moves you"
run generate book_greedy200 "${G[@]}" --model "$BOOK" --prompt "$P" --max-new-tokens 200
run generate book_topk25_t1_seed123 "${G[@]}" --model "$BOOK" --prompt "$P" --max-new-tokens 200 \
  --temperature 1.0 --top-k 25 --seed 123
run generate book_topp09_t08_seed7 "${G[@]}" --model "$BOOK" --prompt "$P" --max-new-tokens 200 \
  --temperature 0.8 --top-p 0.9 --seed 7
run generate book_t15_seed42 "${G[@]}" --model "$BOOK" --prompt "$P" --max-new-tokens 200 \
  --temperature 1.5 --seed 42
run generate book_greedy60_nokv "${G[@]}" --model "$BOOK" --prompt "$P" --max-new-tokens 60 --no-kv-cache
head -c 400 "$DATA/the-verdict.txt" > inputs/long_prompt.txt
run generate book_longprompt_greedy100 "${G[@]}" --model "$BOOK" --prompt "$(cat inputs/long_prompt.txt)" \
  --max-new-tokens 100

# ---------------------------------------------------------------------------------------------
# b. sliding window: a tiny model with context 32, 100 new tokens
run sliding tiny32_pretrain "$BIN" pretrain --data-dir "$DATA" --emb-dim 32 --n-layers 2 --n-heads 2 \
  --context-length 32 --batch-size 2 --max-steps 3 --sample-tokens 0 --threads 1 --out-dir runs/tiny32
keep runs/tiny32/metrics.jsonl sliding/tiny32_pretrain.metrics.jsonl
hash_files runs/tiny32/final/model.safetensors
T32=runs/tiny32/final
run sliding tiny32_greedy100_kv "${G[@]}" --model "$T32" --prompt "$P" --max-new-tokens 100
run sliding tiny32_greedy100_nokv "${G[@]}" --model "$T32" --prompt "$P" --max-new-tokens 100 --no-kv-cache
run sliding tiny32_t1_seed5_kv "${G[@]}" --model "$T32" --prompt "$P" --max-new-tokens 100 --temperature 1.0 --seed 5
run sliding tiny32_t1_seed5_nokv "${G[@]}" --model "$T32" --prompt "$P" --max-new-tokens 100 --temperature 1.0 \
  --seed 5 --no-kv-cache

# ---------------------------------------------------------------------------------------------
# c. Hugging Face tiny models
V21=$DATA/tiny_models/tiny_gpt2_vocab21
F50=$DATA/tiny_models/fake_gpt2_vocab50257
# with its own 21-token vocab.json/merges.txt (a prompt of its tokens: " lowest newer wider")
P21=" lowest newer wider"
run hf vocab21_own_greedy40 "${G[@]}" --model "$V21" --data-dir "$DATA" --prompt "$P21" --max-new-tokens 40
run hf vocab21_own_t1_seed9 "${G[@]}" --model "$V21" --data-dir "$DATA" --prompt "$P21" --max-new-tokens 40 \
  --temperature 1.0 --seed 9
# the same weights without the vocab files, so the data dir's GPT-2 tokenizer is used; the prompt's
# GPT-2 ids are all < 21 (16 10 17 12 18 11 19 9 20 0)
mkdir -p runs/vocab21_gpt2tok
cp "$V21/config.json" "$V21/model.safetensors" runs/vocab21_gpt2tok/
PD='1+2-3,4*5!'
run hf vocab21_gpt2tok_greedy40 "${G[@]}" --model runs/vocab21_gpt2tok --data-dir "$DATA" --prompt "$PD" \
  --max-new-tokens 40
run hf vocab21_gpt2tok_t1_seed9 "${G[@]}" --model runs/vocab21_gpt2tok --data-dir "$DATA" --prompt "$PD" \
  --max-new-tokens 40 --temperature 1.0 --seed 9
run hf fake50257_greedy40 "${G[@]}" --model "$F50" --data-dir "$DATA" --prompt "$P" --max-new-tokens 40
run hf fake50257_t1_seed3 "${G[@]}" --model "$F50" --data-dir "$DATA" --prompt "$P" --max-new-tokens 40 \
  --temperature 1.0 --seed 3

# ---------------------------------------------------------------------------------------------
# d. finetune-cls / classify: tests/cli/finetune_cls_test.sh sections 1 and 2
tiny=(--data-dir "$DATA" --init gpt2-small --emb-dim 16 --n-layers 1 --n-heads 2 --context-length 128 --threads 1)
run cls sms "$BIN" finetune-cls "${tiny[@]}" --max-steps 2 --eval-interval 1 --eval-iters 1 --out-dir runs/sms
keep runs/sms/metrics.jsonl cls/sms.metrics.jsonl
hash_files runs/sms/train.csv runs/sms/validation.csv runs/sms/test.csv runs/sms/final/model.safetensors
# the written splits passed back
run cls sms_passback "$BIN" finetune-cls "${tiny[@]}" --max-steps 1 --eval-iters 1 --out-dir runs/sms2 \
  --train runs/sms/train.csv --val runs/sms/validation.csv --test runs/sms/test.csv
keep runs/sms2/metrics.jsonl cls/sms_passback.metrics.jsonl
# a Hugging Face GPT-2 dir as --init
run cls hf_init "$BIN" finetune-cls --data-dir "$DATA" --threads 1 --init "$F50" --max-steps 2 --eval-iters 1 \
  --out-dir runs/hf --train runs/sms/train.csv --val runs/sms/validation.csv
keep runs/hf/metrics.jsonl cls/hf_init.metrics.jsonl
hash_files runs/hf/final/model.safetensors
run cls hf_classify "$BIN" classify --model runs/hf/final --threads 1 "Free entry to win"
# three classes from a CSV with named columns (generated exactly as the test script does)
{
  echo "id,topic,message"
  for i in $(seq 1 40); do
    echo "$i,food,\"apples, pears and bread $i\""
    echo "$((i + 100)),weather,rain and wind today $i"
    echo "$((i + 200)),sport,football match score $i"
  done
} > inputs/topics.csv
opts=("${tiny[@]}" --data inputs/topics.csv --text-column message --label-column topic --trainable all
      --lr 5e-3 --batch-size 4 --eval-interval 10 --eval-iters 2)
run cls topics "$BIN" finetune-cls "${opts[@]}" --epochs 3 --out-dir runs/topics
keep runs/topics/metrics.jsonl cls/topics.metrics.jsonl
keep runs/topics/final/config.json cls/topics.final-config.json
hash_files runs/topics/final/model.safetensors
run cls topics_classify_args "$BIN" classify --model runs/topics/final --data-dir "$DATA" --threads 1 \
  "apples, pears and bread" "football match score 3"
printf 'rain and wind today\n\nfootball match\napples, pears and bread 7\nsunny with rain and wind\n' > inputs/classify_in.txt
run cls topics_classify_input "$BIN" classify --model runs/topics/final --threads 1 --input inputs/classify_in.txt

# ---------------------------------------------------------------------------------------------
# e. finetune-instruct / answer / chat: tests/cli/instruct_test.sh sections 1 and 2
run instruct base_pretrain "$BIN" pretrain --data-dir "$DATA" --emb-dim 32 --n-layers 2 --n-heads 2 \
  --context-length 128 --batch-size 2 --max-steps 2 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir runs/base
keep runs/base/metrics.jsonl instruct/base_pretrain.metrics.jsonl
hash_files runs/base/final/model.safetensors
printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' \
  '{"instruction": "Translate to French.", "input": "Good night", "output": "Bonne nuit."}' \
  '{"instruction": "Give a synonym.", "input": "happy", "output": "Joyful."}' > inputs/test.jsonl
ft_args=("$BIN" finetune-instruct --data-dir "$DATA" --init runs/base/final --train-split 0.02
         --test-split 0.005 --test-data inputs/test.jsonl --batch-size 3 --epochs 2 --lr 1e-2 --eval-interval 3
         --eval-iters 1 --max-length 64 --sample-tokens 5 --answer-tokens 4 --threads 1)
run instruct ft "${ft_args[@]}" --out-dir runs/ft
keep runs/ft/metrics.jsonl instruct/ft.metrics.jsonl
keep runs/ft/test-responses.json instruct/ft.test-responses.json
hash_files runs/ft/final/model.safetensors
# stopped after 7 steps, then resumed
run instruct ft_resume_part1 "${ft_args[@]}" --out-dir runs/ft2 --max-steps 7
run instruct ft_resume_part2 "${ft_args[@]}" --out-dir runs/ft2 --resume
keep runs/ft2/metrics.jsonl instruct/ft_resumed.metrics.jsonl
keep runs/ft2/test-responses.json instruct/ft_resumed.test-responses.json
hash_files runs/ft2/final/model.safetensors
run instruct answer_test_3 "$BIN" answer --model runs/ft/final --data "$DATA/instruction-data.json" --split test \
  --max-new-tokens 3 --threads 1 --out runs/answer3.json
keep runs/answer3.json instruct/answer_test_3.json
run instruct answer_test_20 "$BIN" answer --model runs/ft/final --data "$DATA/instruction-data.json" --split test \
  --max-new-tokens 20 --threads 1 --out runs/answer20.json
keep runs/answer20.json instruct/answer_test_20.json
printf 'Name a fruit.\nAnd a vegetable?\n' > inputs/chat_in.txt
run instruct chat8 --stdin inputs/chat_in.txt "$BIN" chat --model runs/ft/final --max-new-tokens 8 --threads 1

# ---------------------------------------------------------------------------------------------
# f. info
run info gpt2-small "$BIN" info --init gpt2-small
run info gpt2-medium_ctx256 "$BIN" info --init gpt2-medium --context-length 256

# ---------------------------------------------------------------------------------------------
[ "${KEEP_CHECKPOINTS:-0}" = 1 ] || rm -rf runs/*/checkpoints
# anything left that looks like wall time in the compared logs?
left=$(grep -rlE 'tok/s|tokens/s|elapsed|ETA|[0-9] ms\)|MB/s' --include='*.stdout' --include='*.stderr' \
         --exclude-dir=runs . 2>/dev/null | sort)
[ -z "$left" ] || { echo "capture: warning: timing text may remain in:" >&2; echo "$left" >&2; }
n=$(find . -path ./runs -prune -o -type f -print | wc -l)
fails=$(awk '$2 != 0' rc.txt | wc -l)
echo "capture: done in $((SECONDS - start)) s: $n files in $OUT; $fails command(s) exited non-zero (see rc.txt)" >&2
exit 0
