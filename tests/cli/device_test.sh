#!/usr/bin/env bash
# End-to-end tests of --device (issue 20) on a machine without a GPU:
#   1. refusals: --device cuda where no GPU is visible (or the build has no CUDA) names the
#      option and the reason before any file is read; an unknown device is a usage error; --tf32
#      off the GPU or with --dtype bf16 is refused;
#   2. with GPTRAIN_TEST_EMULATE_CUDA=1 (kernels/emulated_device.h: Device::CUDA tensors in host
#      memory, every op run by the CPU kernels, host code reading a device tensor an error), every
#      job on --device cuda equals the same job on the CPU bit for bit: pretrain (dropout, a
#      sample, checkpoints, the final model), runs resumed across devices (cuda -> cpu and cpu ->
#      cuda equal the uninterrupted run), finetune-cls and classify, finetune-instruct with LoRA
#      (adapter, test answers), finetune-dpo (frozen reference), generate (KV cache or not, bf16
#      decode weights), answer and chat. That proves the plumbing (models, workspaces, caches,
#      checkpoints and logits crossing devices); the CUDA kernels themselves are proven on a GPU
#      (tests/kernels/cuda_staged.cpp, tests/model cuda_model_parity_test).
# Usage: device_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt instruction-data.json sms_spam/SMSSpamCollection \
  instruction-data-with-preference.json gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1

# 1. refusals (no emulation)
tiny=(--data-dir "$data" --emb-dim 16 --n-layers 2 --n-heads 2 --context-length 128 --batch-size 2 --threads 1)
if [ -z "${GPTRAIN_TEST_HAVE_GPU:-}" ]; then
  expect_error "\-\-device cuda: " pretrain "${tiny[@]}" --max-steps 1 --device cuda --out-dir "$work/e1"
  [ -e "$work/e1" ] && fail "a refused --device cuda left $work/e1 behind"
  expect_error "\-\-device cuda: " generate --model "$work/nowhere" --device cuda --prompt x
fi
expect_usage_error "device" pretrain "${tiny[@]}" --max-steps 1 --device tpu --out-dir "$work/e3"
# --tf32 is the GPU's f32 products: refused on the CPU and with --dtype bf16, before any file is read
expect_error "\-\-tf32: .*--device cuda" pretrain "${tiny[@]}" --max-steps 1 --tf32 --out-dir "$work/e4"
[ -e "$work/e4" ] && fail "a refused --tf32 left $work/e4 behind"
expect_error "\-\-tf32: .*--device cuda" generate --model "$work/nowhere" --tf32 --prompt x
expect_error "\-\-tf32: --dtype bf16" pretrain "${tiny[@]}" --max-steps 1 --device cuda --dtype bf16 --tf32 \
  --out-dir "$work/e5"
expect_usage_error "device" generate --model "$work/nowhere" --device tpu --prompt x

# 2. the emulated device against the CPU, bit for bit
export GPTRAIN_TEST_EMULATE_CUDA=1
# run NAME ARGS...: gptrain ARGS > NAME.log, failing the check on a non-zero exit
run() {
  local name=$1
  shift
  "$gptrain" "$@" > "$work/$name.log" 2>&1 || fail "$name: gptrain $1 exited $?: $(tail -2 "$work/$name.log")"
}
same() {  # same WHAT FILE_A FILE_B
  cmp -s "$2" "$3" || fail "$1: $2 and $3 differ"
}
# The lines a run prints that depend on neither timing nor the device.
printed() { grep -v -e "tokens/s" -e "tok/s" -e "\-\-device" -e "\-\-out-dir" -e "in [0-9.]* s" -e "minutes" \
  -e "^note: GPTRAIN_TEST_EMULATE_CUDA" -e "model in" "$1" | sed "s#$work/[a-z0-9-]*#DIR#g"; }
# metrics.jsonl without its timing
metrics() { sed 's/"tokens_per_s":[^,}]*//' "$1/metrics.jsonl"; }

pre=(pretrain "${tiny[@]}" --drop-rate 0.1 --eval-interval 2 --eval-iters 2 --sample-tokens 4 --save-interval 3
     --keep-last 5)
run p-cpu "${pre[@]}" --max-steps 6 --out-dir "$work/p-cpu"
run p-gpu "${pre[@]}" --max-steps 6 --device cuda --out-dir "$work/p-gpu"
expect_in "$work/p-gpu.log" "GPTRAIN_TEST_EMULATE_CUDA=1"
expect_in "$work/p-gpu/run.json" '"device": "cuda"'
grep -q '"device"' "$work/p-cpu/run.json" && fail "a CPU run records a device (the default is left out)"
same "pretrain final" "$work/p-cpu/final/model.safetensors" "$work/p-gpu/final/model.safetensors"
for step in 00000003 00000006; do
  for f in model.safetensors optimizer.safetensors; do
    same "checkpoint $step" "$work/p-cpu/checkpoints/step_$step/$f" "$work/p-gpu/checkpoints/step_$step/$f"
  done
done
cmp -s <(printed "$work/p-cpu.log") <(printed "$work/p-gpu.log") ||
  fail "pretrain prints differ: $(diff <(printed "$work/p-cpu.log") <(printed "$work/p-gpu.log") | head -4)"
cmp -s <(metrics "$work/p-cpu") <(metrics "$work/p-gpu") || fail "pretrain metrics differ"
# resumed across devices: 3 steps on one, 3 more on the other
run r1 "${pre[@]}" --max-steps 3 --device cuda --out-dir "$work/r1"
run r1b "${pre[@]}" --max-steps 6 --resume --out-dir "$work/r1"
expect_in "$work/r1b.log" "resuming from"
same "cuda -> cpu resume" "$work/p-cpu/final/model.safetensors" "$work/r1/final/model.safetensors"
run r2 "${pre[@]}" --max-steps 3 --out-dir "$work/r2"
run r2b "${pre[@]}" --max-steps 6 --resume --device cuda --out-dir "$work/r2"
same "cpu -> cuda resume" "$work/p-cpu/final/model.safetensors" "$work/r2/final/model.safetensors"
cmp -s <(metrics "$work/p-cpu") <(metrics "$work/r2") || fail "the cpu -> cuda resumed metrics differ"
base=$work/p-cpu/final

# finetune-cls and classify
head -n 200 "$data/sms_spam/SMSSpamCollection" > "$work/sms.tsv"
cls=(finetune-cls --data-dir "$data" --init "$base" --data "$work/sms.tsv" --sep tab --no-header --balance
     --batch-size 4 --max-steps 4 --eval-interval 2 --eval-iters 2 --threads 1 --trainable last-block --max-length 64)
run c-cpu "${cls[@]}" --out-dir "$work/c-cpu"
run c-gpu "${cls[@]}" --device cuda --out-dir "$work/c-gpu"
same "finetune-cls final" "$work/c-cpu/final/model.safetensors" "$work/c-gpu/final/model.safetensors"
cmp -s <(printed "$work/c-cpu.log") <(printed "$work/c-gpu.log") ||
  fail "finetune-cls prints differ: $(diff <(printed "$work/c-cpu.log") <(printed "$work/c-gpu.log") | head -4)"
run k-cpu classify --model "$work/c-cpu/final" "You won a prize, call now" "See you at lunch" --threads 1
run k-gpu classify --model "$work/c-cpu/final" "You won a prize, call now" "See you at lunch" --threads 1 --device cuda
cmp -s <(printed "$work/k-cpu.log") <(printed "$work/k-gpu.log") || fail "classify differs on the device"

# finetune-instruct with LoRA (adapter and test answers), then generate, answer, chat
printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' > "$work/test.jsonl"
ins=(finetune-instruct --data-dir "$data" --init "$base" --train-split 0.02 --test-split 0.005 --test-data
     "$work/test.jsonl" --batch-size 3 --max-steps 3 --lr 1e-2 --eval-interval 3 --eval-iters 1 --max-length 64
     --sample-tokens 0 --answer-tokens 4 --threads 1 --drop-rate 0.1)
run i-cpu "${ins[@]}" --lora-rank 2 --out-dir "$work/i-cpu"
run i-gpu "${ins[@]}" --lora-rank 2 --device cuda --out-dir "$work/i-gpu"
same "finetune-instruct adapter" "$work/i-cpu/final/adapter_model.safetensors" "$work/i-gpu/final/adapter_model.safetensors"
same "finetune-instruct answers" "$work/i-cpu/test-responses.json" "$work/i-gpu/test-responses.json"
gen=(generate --adapter "$work/i-cpu/final" --prompt "Every effort moves" --max-new-tokens 6 --print-ids --threads 1)
for mode in "" "--no-kv-cache" "--weights-dtype bf16" "--temperature 1.5 --top-k 20 --seed 7"; do
  # shellcheck disable=SC2086
  "$gptrain" "${gen[@]}" $mode > "$work/g-cpu.out" 2>/dev/null || fail "generate $mode exited $?"
  # shellcheck disable=SC2086
  "$gptrain" "${gen[@]}" $mode --device cuda > "$work/g-gpu.out" 2>/dev/null || fail "generate --device cuda $mode exited $?"
  same "generate $mode" "$work/g-cpu.out" "$work/g-gpu.out"
done
run a-cpu answer --adapter "$work/i-cpu/final" --data "$work/test.jsonl" --max-new-tokens 4 --out "$work/a-cpu.json"
run a-gpu answer --adapter "$work/i-cpu/final" --data "$work/test.jsonl" --max-new-tokens 4 --out "$work/a-gpu.json" \
  --device cuda
same "answer" "$work/a-cpu.json" "$work/a-gpu.json"
printf 'Name a color.\nAnd another one.\n' | "$gptrain" chat --adapter "$work/i-cpu/final" --max-new-tokens 4 \
  > "$work/chat-cpu.out" 2>&1 || fail "chat exited $?"
printf 'Name a color.\nAnd another one.\n' | "$gptrain" chat --adapter "$work/i-cpu/final" --max-new-tokens 4 \
  --device cuda > "$work/chat-gpu.out" 2>&1 || fail "chat --device cuda exited $?"
cmp -s <(printed "$work/chat-cpu.out") <(printed "$work/chat-gpu.out") || fail "chat differs on the device"

# finetune-dpo from a full instruction finetune, with its frozen reference on the device too
run sft "${ins[@]}" --no-answer-test --out-dir "$work/sft"
dpo=(finetune-dpo --data-dir "$data" --init "$work/sft/final" --train-split 0.02 --batch-size 2 --max-steps 3
     --eval-interval 2 --eval-iters 1 --sample-tokens 0 --threads 1)
run d-cpu "${dpo[@]}" --out-dir "$work/d-cpu"
run d-gpu "${dpo[@]}" --device cuda --out-dir "$work/d-gpu"
same "finetune-dpo final" "$work/d-cpu/final/model.safetensors" "$work/d-gpu/final/model.safetensors"
cmp -s <(metrics "$work/d-cpu") <(metrics "$work/d-gpu") || fail "finetune-dpo metrics differ"

finish device_test 8
