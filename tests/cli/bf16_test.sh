#!/usr/bin/env bash
# End-to-end tests of the bf16 mode (--dtype bf16, issue 20; docs/DESIGN.md "bf16 mode"): float32
# weights stay the model, the passes read their bf16 copy (written by AdamW's seeded stochastic
# rounding) and keep bf16 activations and gradients, on the cpu-bf16 backend here.
#   1. pretrain --dtype bf16 trains (finite losses; the saved model is float32 and not the f32 run's), run.json records the dtype, a resume may not change it;
#   2. determinism: an interrupted and resumed bf16 run equals the uninterrupted one bit for bit
#      (model, optimizer state, metrics): the copy is rebuilt from the weights, the seed and the step;
#   3. with GPTRAIN_TEST_EMULATE_CUDA=1 (kernels/emulated_device.h) every training job in bf16 on
#      --device cuda equals the CPU's bit for bit, a run resumed across devices too: pretrain,
#      finetune-cls, finetune-instruct with LoRA, finetune-dpo (its reference in bf16 as well);
#   4. inference with --dtype bf16 (generate, answer, chat): the emulated device's tokens are the CPU's.
# Usage: bf16_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt instruction-data.json sms_spam/SMSSpamCollection \
  instruction-data-with-preference.json gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1

run() {  # run NAME ARGS...: gptrain ARGS > NAME.log, failing the check on a non-zero exit
  local name=$1
  shift
  "$gptrain" "$@" > "$work/$name.log" 2>&1 || fail "$name: gptrain $1 exited $?: $(tail -2 "$work/$name.log")"
}
same() {  # same WHAT FILE_A FILE_B
  cmp -s "$2" "$3" || fail "$1: $2 and $3 differ"
}
metrics() { sed 's/"tokens_per_s":[^,}]*//' "$1/metrics.jsonl"; }
# The losses a run printed ("Train loss 10.885, Val loss 10.630" lines), one per line.
losses() { grep -o "loss [0-9.]*" "$1" | awk '{print $2}'; }

tiny=(pretrain --data-dir "$data" --emb-dim 16 --n-layers 2 --n-heads 2 --context-length 128 --batch-size 2
      --threads 1 --drop-rate 0.1 --eval-interval 2 --eval-iters 2 --sample-tokens 4 --save-interval 3 --keep-last 5)

# 1. it trains, and records what it is
run f32 "${tiny[@]}" --max-steps 6 --out-dir "$work/f32"
run b "${tiny[@]}" --max-steps 6 --dtype bf16 --out-dir "$work/b"
expect_in "$work/b/run.json" '"dtype": "bf16"'
head -c 4096 "$work/b/final/model.safetensors" | grep -aq '"dtype":"F32"' || fail "the bf16 run's model is not float32"
head -c 4096 "$work/b/final/model.safetensors" | grep -aq '"BF16"' && fail "the bf16 run saved bf16 tensors"
cmp -s "$work/f32/final/model.safetensors" "$work/b/final/model.safetensors" && fail "--dtype bf16 trained the f32 run"
# Every loss it printed is a finite number (how far bf16 is from f32 is bounded op by op in
# tests/kernels/bf16_backend_test.cpp, not here).
[ "$(losses "$work/b.log" | wc -l)" -ge 4 ] || fail "the bf16 run printed too few losses"
losses "$work/b.log" | awk '$1 != $1 + 0 || $1 == "nan" || $1 == "inf" { bad = 1 } END { exit bad }' ||
  fail "a bf16 loss is not a finite number: $(losses "$work/b.log" | tr '\n' ' ')"
run b3 "${tiny[@]}" --max-steps 3 --dtype bf16 --out-dir "$work/b3"
expect_error "\-\-dtype: checkpoint \"bf16\", now not given" "${tiny[@]}" --max-steps 6 --resume --out-dir "$work/b3"

# 2. deterministic, and a resume continues exactly
run b3b "${tiny[@]}" --max-steps 6 --dtype bf16 --resume --out-dir "$work/b3"
expect_in "$work/b3b.log" "resuming from"
same "bf16 resume: model" "$work/b/final/model.safetensors" "$work/b3/final/model.safetensors"
same "bf16 resume: optimizer" "$work/b/checkpoints/step_00000006/optimizer.safetensors" \
  "$work/b3/checkpoints/step_00000006/optimizer.safetensors"
cmp -s <(metrics "$work/b") <(metrics "$work/b3") || fail "the resumed bf16 run's metrics differ"

# 3. the emulated device in bf16 against the CPU's bf16, bit for bit
export GPTRAIN_TEST_EMULATE_CUDA=1
run bg "${tiny[@]}" --max-steps 6 --dtype bf16 --device cuda --out-dir "$work/bg"
same "bf16 pretrain on the device" "$work/b/final/model.safetensors" "$work/bg/final/model.safetensors"
for f in model.safetensors optimizer.safetensors; do
  same "bf16 checkpoint on the device" "$work/b/checkpoints/step_00000003/$f" "$work/bg/checkpoints/step_00000003/$f"
done
cmp -s <(metrics "$work/b") <(metrics "$work/bg") || fail "bf16 pretrain metrics differ on the device"
run bx "${tiny[@]}" --max-steps 3 --dtype bf16 --device cuda --out-dir "$work/bx"
run bxb "${tiny[@]}" --max-steps 6 --dtype bf16 --resume --out-dir "$work/bx"
same "bf16 cuda -> cpu resume" "$work/b/final/model.safetensors" "$work/bx/final/model.safetensors"
base=$work/f32/final

head -n 200 "$data/sms_spam/SMSSpamCollection" > "$work/sms.tsv"
cls=(finetune-cls --data-dir "$data" --init "$base" --data "$work/sms.tsv" --sep tab --no-header --balance
     --batch-size 4 --max-steps 4 --eval-interval 2 --eval-iters 2 --threads 1 --trainable last-block --max-length 64
     --dtype bf16)
run c-cpu "${cls[@]}" --out-dir "$work/c-cpu"
run c-gpu "${cls[@]}" --device cuda --out-dir "$work/c-gpu"
same "bf16 finetune-cls" "$work/c-cpu/final/model.safetensors" "$work/c-gpu/final/model.safetensors"
cmp -s <(metrics "$work/c-cpu") <(metrics "$work/c-gpu") || fail "bf16 finetune-cls metrics differ"

printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' > "$work/test.jsonl"
ins=(finetune-instruct --data-dir "$data" --init "$base" --train-split 0.02 --test-split 0.005 --test-data
     "$work/test.jsonl" --batch-size 3 --max-steps 3 --lr 1e-2 --eval-interval 3 --eval-iters 1 --max-length 64
     --sample-tokens 0 --answer-tokens 4 --threads 1 --drop-rate 0.1 --dtype bf16)
run i-cpu "${ins[@]}" --lora-rank 2 --out-dir "$work/i-cpu"
run i-gpu "${ins[@]}" --lora-rank 2 --device cuda --out-dir "$work/i-gpu"
same "bf16 LoRA adapter" "$work/i-cpu/final/adapter_model.safetensors" "$work/i-gpu/final/adapter_model.safetensors"
same "bf16 LoRA answers" "$work/i-cpu/test-responses.json" "$work/i-gpu/test-responses.json"

run sft "${ins[@]}" --no-answer-test --out-dir "$work/sft"
dpo=(finetune-dpo --data-dir "$data" --init "$work/sft/final" --train-split 0.02 --batch-size 2 --max-steps 3
     --eval-interval 2 --eval-iters 1 --sample-tokens 0 --threads 1 --dtype bf16)
run d-cpu "${dpo[@]}" --out-dir "$work/d-cpu"
run d-gpu "${dpo[@]}" --device cuda --out-dir "$work/d-gpu"
same "bf16 finetune-dpo" "$work/d-cpu/final/model.safetensors" "$work/d-gpu/final/model.safetensors"
cmp -s <(metrics "$work/d-cpu") <(metrics "$work/d-gpu") || fail "bf16 finetune-dpo metrics differ"

# 4. inference in bf16 (generate with and without the KV cache, sampling; answer; chat): the CPU's
# and the emulated device's tokens are the same; --dtype bf16 with half decode weights is refused.
gen=(generate --adapter "$work/i-cpu/final" --prompt "Every effort moves" --max-new-tokens 6 --print-ids --threads 1
     --dtype bf16)
for mode in "" "--no-kv-cache" "--temperature 1.5 --top-k 20 --seed 7"; do
  # shellcheck disable=SC2086
  "$gptrain" "${gen[@]}" $mode > "$work/g-cpu.out" 2>/dev/null || fail "generate --dtype bf16 $mode exited $?"
  # shellcheck disable=SC2086
  "$gptrain" "${gen[@]}" $mode --device cuda > "$work/g-gpu.out" 2>/dev/null || fail "generate bf16 --device cuda $mode exited $?"
  expect_in "$work/g-cpu.out" "Every effort moves"
  same "generate --dtype bf16 $mode" "$work/g-cpu.out" "$work/g-gpu.out"
done
run a-cpu answer --adapter "$work/i-cpu/final" --data "$work/test.jsonl" --max-new-tokens 4 --dtype bf16 \
  --out "$work/a-cpu.json"
run a-gpu answer --adapter "$work/i-cpu/final" --data "$work/test.jsonl" --max-new-tokens 4 --dtype bf16 \
  --out "$work/a-gpu.json" --device cuda
same "answer --dtype bf16" "$work/a-cpu.json" "$work/a-gpu.json"
printf 'Name a color.\n' | "$gptrain" chat --adapter "$work/i-cpu/final" --max-new-tokens 4 --dtype bf16 \
  > "$work/chat.out" 2>&1 || fail "chat --dtype bf16 exited $?"
expect_error "\-\-dtype bf16 with \-\-weights-dtype f16" generate --model "$base" --prompt x --dtype bf16 \
  --weights-dtype f16

finish bf16_test 8
