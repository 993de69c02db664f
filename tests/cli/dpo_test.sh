#!/usr/bin/env bash
# End-to-end tests of gptrain finetune-dpo on a tiny model (the real runs are in BENCHMARKS.md):
#   1. pretrain and finetune-instruct make a tiny instruction model; with --lr 0 every logged loss
#      is ln 2 exactly and every reward 0, whichever the reference: a frozen copy,
#      --precompute-reference, or LoRA's base without the adapters;
#   2. a learning run: the loss falls below ln 2 and the margin grows; the precomputed reference
#      gives the frozen copy's metrics and final weights bit for bit; the plots and final/ exist;
#      runs stopped and resumed (frozen, and precomputed with its table read back) equal one go;
#   3. clear errors naming the entry: a missing chosen or rejected, an empty response, a pair whose
#      prompt fills --max-length; a classifier dir, a model dir with no prompt format; bad options.
# Usage: dpo_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" instruction-data.json instruction-data-with-preference.json \
  gpt2_tokenizer/encoder.json tokenizers/llama3/tokenizer.json sms_spam/SMSSpamCollection
export OMP_NUM_THREADS=1
ln2=0.6931471805599453

# 1. a tiny instruction model, then DPO with --lr 0 and each kind of reference
"$gptrain" pretrain --data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 128 --batch-size 2 \
  --max-steps 2 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir "$work/base" > "$work/base.log" 2>&1 ||
  fail "pretrain exited $?"
"$gptrain" finetune-instruct --data-dir "$data" --init "$work/base/final" --train-split 0.02 --batch-size 4 \
  --max-steps 3 --lr 1e-3 --eval-interval 10 --eval-iters 1 --max-length 64 --sample-tokens 0 --no-answer-test \
  --threads 1 --out-dir "$work/sft" > "$work/sft.log" 2>&1 || fail "finetune-instruct exited $?"
# 22 training pairs (--train-split 0.02) in batches of 2: 11 steps; 55 validation pairs
dpo=(finetune-dpo --data-dir "$data" --init "$work/sft/final" --train-split 0.02 --batch-size 2 --eval-interval 2
     --eval-iters 2 --sample-tokens 3 --threads 1)
# every loss of metrics.jsonl (evaluations and the steps' own) and every reward
values() { grep -o "\"$2\":[^,}]*" "$1/metrics.jsonl" | cut -d: -f2 | sort -u | tr '\n' ' '; }
for mode in frozen precompute lora; do
  extra=()
  [ $mode = precompute ] && extra=(--precompute-reference)
  [ $mode = lora ] && extra=(--lora-rank 4)
  "$gptrain" "${dpo[@]}" --lr 0 --max-steps 5 "${extra[@]}" --out-dir "$work/lr0-$mode" > "$work/lr0-$mode.log" 2>&1 ||
    fail "finetune-dpo --lr 0 ($mode) exited $?"
  expect_in "$work/lr0-$mode.log" "Before training: Train loss $ln2, Val loss $ln2, Train reward margin 0, Val reward margin 0"
  expect_in "$work/lr0-$mode.log" "Ep 1 (Step 000004): Train loss 0.693, Val loss 0.693, Train reward margins 0.000, Val reward margins 0.000"
  for key in train_loss val_loss; do
    [ "$(values "$work/lr0-$mode" $key)" = "$ln2 " ] || fail "$mode --lr 0: $key is not ln 2 throughout: $(values "$work/lr0-$mode" $key)"
  done
  # the first step's own loss is ln 2; later steps' too (the policy does not move)
  [ "$(values "$work/lr0-$mode" step_loss | tr ' ' '\n' | grep -v -e '^$' -e '^NaN$' -e '^null$')" = "$ln2" ] ||
    fail "$mode --lr 0: step losses $(values "$work/lr0-$mode" step_loss)"
  for key in train_chosen_reward train_rejected_reward val_chosen_reward val_rejected_reward; do
    [ "$(values "$work/lr0-$mode" $key)" = "0.0 " ] || fail "$mode --lr 0: $key is not 0 throughout: $(values "$work/lr0-$mode" $key)"
  done
done
expect_in "$work/lr0-frozen.log" "reference: a frozen copy of"
expect_in "$work/lr0-precompute.log" "reference: log-probabilities of the run's"
expect_in "$work/lr0-lora.log" "reference: the base model without the LoRA adapters"
expect_in "$work/lr0-frozen.log" "data: 1100 pairs in .*: train 22, val 968, test 110"

# 2. learning: a large learning rate, so the margin grows within 11 steps
for mode in frozen precompute; do
  extra=()
  [ $mode = precompute ] && extra=(--precompute-reference)
  [ $mode = frozen ] && extra=(--answer-test --answer-tokens 2)
  "$gptrain" "${dpo[@]}" --lr 1e-3 "${extra[@]}" --out-dir "$work/dpo-$mode" > "$work/dpo-$mode.log" 2>&1 ||
    fail "finetune-dpo ($mode) exited $?"
done
[ "$(grep -c '"model_response": ' "$work/dpo-frozen/test-responses.json")" -eq 110 ] ||
  fail "test-responses.json: expected the 110 test entries"
last_loss=$(tail -1 "$work/dpo-frozen/metrics.jsonl" | grep -o '"train_loss":[^,]*' | cut -d: -f2)
awk -v l="$last_loss" -v z="$ln2" 'BEGIN { exit !(l < z - 0.001) }' || fail "the train loss did not fall below ln 2: $last_loss"
margin=$(tail -1 "$work/dpo-frozen/metrics.jsonl" | sed -E 's/.*"train_chosen_reward":([^,]*).*"train_rejected_reward":([^,}]*).*/\1 \2/')
awk -v m="$margin" 'BEGIN { split(m, r, " "); exit !(r[1] - r[2] > 0.1) }' || fail "the train margin did not grow: $margin"
echo "train loss $ln2 -> $last_loss; last chosen / rejected reward $margin"
for f in run.json metrics.jsonl loss.svg rewards.svg reward-margins.svg final/config.json final/model.safetensors \
         final/vocab.json; do
  [ -s "$work/dpo-frozen/$f" ] || fail "missing output $f"
done
expect_in "$work/dpo-frozen.log" "Ep 1 sample (validation entry 2): Below is an instruction"
metrics() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1/metrics.jsonl"; }
cmp -s <(metrics "$work/dpo-frozen") <(metrics "$work/dpo-precompute") ||
  fail "the precomputed reference's metrics differ from the frozen copy's"
cmp -s "$work/dpo-frozen/final/model.safetensors" "$work/dpo-precompute/final/model.safetensors" ||
  fail "the precomputed reference's final weights differ from the frozen copy's"
[ -s "$work/dpo-precompute/reference-logprobs.json" ] || fail "no reference-logprobs.json"
for mode in frozen precompute; do
  extra=()
  [ $mode = precompute ] && extra=(--precompute-reference)
  "$gptrain" "${dpo[@]}" --lr 1e-3 "${extra[@]}" --max-steps 5 --out-dir "$work/resume-$mode" > "$work/resume-$mode.log" 2>&1 ||
    fail "finetune-dpo --max-steps 5 ($mode) exited $?"
  "$gptrain" "${dpo[@]}" --lr 1e-3 "${extra[@]}" --resume --out-dir "$work/resume-$mode" > "$work/resume-$mode-b.log" 2>&1 ||
    fail "finetune-dpo --resume ($mode) exited $?"
  expect_in "$work/resume-$mode-b.log" "resuming from .*step_00000005"
  cmp -s <(metrics "$work/dpo-$mode") <(metrics "$work/resume-$mode") || fail "$mode: the resumed run differs from one go"
  cmp -s "$work/dpo-$mode/final/model.safetensors" "$work/resume-$mode/final/model.safetensors" ||
    fail "$mode: the resumed run's weights differ from one go"
done
# the resumed run read the batches it had and computed the rest (the evaluation after the last step)
expect_in "$work/resume-precompute-b.log" "read from .*reference-logprobs.json"

# 3. bad input
ok='{"instruction": "Say hi.", "input": "", "chosen": "Hello!", "rejected": "Go away."}'
printf '[%s,\n%s]\n' "$ok" '{"instruction": "Say bye.", "input": "", "rejected": "Leave."}' > "$work/no-chosen.json"
expect_error 'no-chosen.json:2: entry 1 (counting from 0) has no "chosen" field' "${dpo[@]}" "$work/no-chosen.json" \
  --out-dir "$work/e1"
printf '[%s,\n%s]\n' "$ok" '{"instruction": "Say bye.", "input": "", "chosen": "Bye."}' > "$work/no-rejected.json"
expect_error 'entry 1 (counting from 0) has no "rejected" field' "${dpo[@]}" --data "$work/no-rejected.json" \
  --out-dir "$work/e2"
printf '[%s,\n%s]\n' "$ok" '{"instruction": "Say bye.", "input": "", "chosen": "Bye.", "rejected": ""}' > "$work/empty.json"
expect_error 'empty.json:2: entry 1 (counting from 0): "rejected" is an empty response' "${dpo[@]}" "$work/empty.json" \
  --out-dir "$work/e3"
expect_error 'entry 0 (counting from 0): the "chosen" sequence keeps no response token' "${dpo[@]}" \
  --max-length 8 --out-dir "$work/e4"
"$gptrain" finetune-cls --data-dir "$data" --init gpt2-small --emb-dim 16 --n-layers 1 --n-heads 2 --context-length 128 \
  --max-steps 1 --eval-iters 1 --threads 1 --out-dir "$work/cls" > "$work/cls.log" 2>&1 || fail "finetune-cls exited $?"
expect_error "a classifier (2 classes); DPO tunes a language model" finetune-dpo --data-dir "$data" \
  --init "$work/cls/final" --out-dir "$work/e5"
"$gptrain" pretrain --data-dir "$data" --init llama-tiny --emb-dim 32 --n-layers 1 --n-heads 2 --n-kv-heads 1 \
  --head-dim 16 --mlp-dim 64 --context-length 32 --batch-size 2 --max-steps 1 --eval-interval 10 --sample-tokens 0 \
  --threads 1 --out-dir "$work/llama" > "$work/llama.log" 2>&1 || fail "pretrain llama-tiny exited $?"
expect_error "a llama model dir with no prompt format .* not an instruction model" finetune-dpo \
  --data-dir "$data" --init "$work/llama/final" --out-dir "$work/e6"
expect_error "--init .*nowhere: not a model directory" finetune-dpo --data-dir "$data" --init "$work/nowhere" \
  --out-dir "$work/e7"
expect_error "--beta must be positive" "${dpo[@]}" --beta 0 --out-dir "$work/e8"
expect_error "--lr must not be negative" "${dpo[@]}" --lr -1 --out-dir "$work/e9"
expect_usage_error "logprob" "${dpo[@]}" --logprob median --out-dir "$work/e10"
expect_error "--reference with --lora-rank" "${dpo[@]}" --lora-rank 2 --reference "$work/sft/final" --out-dir "$work/e11"
# an error before training leaves no run dir behind to need --overwrite
[ ! -e "$work/e3/run.json" ] || fail "a refused data file left run.json behind"

finish dpo_test.sh 8
