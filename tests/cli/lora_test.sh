#!/usr/bin/env bash
# End-to-end tests of LoRA (the book's appendix E) on a tiny base from gptrain pretrain:
#   1. finetune-cls --lora-rank: the trainable count of the adapters alone (every Linear and the
#      new head), the accuracy before training equal to the base's (B = 0), checkpoints holding
#      only the adapters, a run resumed for more epochs equal to an uninterrupted one, final/ with
#      the base and its PEFT adapter, classify applying it, merge-lora giving the same labels and
#      probabilities;
#   2. finetune-instruct --lora-rank: final/ is a PEFT adapter dir naming its base; generate,
#      answer and chat take --adapter (the base from the adapter when --model is left out);
#      continued pretraining with an adapter;
#   3. clear errors: rank 0 or above the width, alpha <= 0, LoRA options without a rank, an
#      unknown target, an adapter on another base, LoRA on a preset.
# Usage: lora_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" instruction-data.json gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1

# A tiny base: width 16, 2 blocks of 2 heads, context 128.
"$gptrain" pretrain --data-dir "$data" --emb-dim 16 --n-layers 2 --n-heads 2 --context-length 128 --batch-size 2 \
  --max-steps 2 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir "$work/base" > "$work/base.log" 2>&1 ||
  fail "pretrain exited $?"
base=$work/base/final

# 1. classification with LoRA
{
  echo "id,topic,message"
  for i in $(seq 1 40); do
    echo "$i,food,\"apples, pears and bread $i\""
    echo "$((i + 100)),weather,rain and wind today $i"
  done
} > "$work/topics.csv"
cls=(finetune-cls --data-dir "$data" --init "$base" --data "$work/topics.csv" --text-column message --label-column topic
     --lr 5e-3 --batch-size 4 --eval-interval 10 --eval-iters 2 --threads 1)
"$gptrain" "${cls[@]}" --lora-rank 4 --lora-alpha 8 --epochs 2 --out-dir "$work/c" > "$work/c.log" 2>&1 ||
  fail "finetune-cls --lora-rank exited $?"
# per block: q, k, v and the output projection 4x16 + 16x4 each, fc 4x16 + 64x4, proj 4x64 + 16x4
# = 1152; two blocks and the head's 4x16 + 2x4: 2376
expect_in "$work/c.log" "2,376 trainable (the LoRA adapters alone: LoRA rank 4, scaling 2 on 9 Linear layers (query, key, value, attn_out, mlp_in, mlp_out, head))"
"$gptrain" "${cls[@]}" --trainable head --max-steps 1 --out-dir "$work/c-base" > "$work/c-base.log" 2>&1 ||
  fail "finetune-cls (no LoRA) exited $?"
before() { grep "^before training" "$1"; }
[ -n "$(before "$work/c.log")" ] && [ "$(before "$work/c.log")" = "$(before "$work/c-base.log")" ] ||
  fail "accuracy before training differs from the base's: '$(before "$work/c.log")' vs '$(before "$work/c-base.log")'"
for f in adapter_config.json adapter_model.safetensors config.json model.safetensors; do
  [ -s "$work/c/final/$f" ] || fail "finetune-cls --lora-rank: missing final/$f"
done
ck=$(ls -d "$work/c/checkpoints"/step_* | tail -1)
[ -s "$ck/adapters.safetensors" ] || fail "the checkpoint has no adapters.safetensors"
[ -e "$ck/model.safetensors" ] && fail "a LoRA checkpoint should not copy the frozen base"
metrics() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1/metrics.jsonl"; }
"$gptrain" "${cls[@]}" --lora-rank 4 --lora-alpha 8 --epochs 1 --out-dir "$work/c2" > "$work/c2.log" 2>&1 ||
  fail "1-epoch LoRA run exited $?"
"$gptrain" "${cls[@]}" --lora-rank 4 --lora-alpha 8 --epochs 2 --out-dir "$work/c2" --resume >> "$work/c2.log" 2>&1 ||
  fail "LoRA resume exited $?"
cmp -s <(metrics "$work/c") <(metrics "$work/c2") || fail "the resumed LoRA run differs from the uninterrupted one"
cmp -s "$work/c/final/adapter_model.safetensors" "$work/c2/final/adapter_model.safetensors" ||
  fail "the resumed adapter differs"
"$gptrain" classify --model "$work/c/final" "apples, pears and bread" "rain and wind today" > "$work/cl.out" 2>&1 ||
  fail "classify (adapter) exited $?"
"$gptrain" merge-lora --model "$work/c/final" --out "$work/merged" > "$work/merge.log" 2>&1 || fail "merge-lora exited $?"
[ -e "$work/merged/adapter_config.json" ] && fail "the merged dir should hold no adapter"
"$gptrain" classify --model "$work/merged" "apples, pears and bread" "rain and wind today" > "$work/cm.out" 2>&1 ||
  fail "classify (merged) exited $?"
cmp -s "$work/cl.out" "$work/cm.out" || fail "merged and adapter classify differ: $(cat "$work/cl.out" "$work/cm.out")"
[ "$(wc -l < "$work/cl.out")" -eq 2 ] || fail "classify: $(cat "$work/cl.out")"

# 2. instruction finetuning with LoRA; generate, answer, chat with --adapter; continued pretraining
printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' > "$work/test.jsonl"
"$gptrain" finetune-instruct --data-dir "$data" --init "$base" --train-split 0.02 --test-split 0.005 \
  --test-data "$work/test.jsonl" --batch-size 3 --max-steps 3 --lr 1e-2 --eval-interval 3 --eval-iters 1 \
  --max-length 64 --sample-tokens 0 --answer-tokens 4 --threads 1 --lora-rank 2 --lora-targets attention \
  --out-dir "$work/i" > "$work/i.log" 2>&1 || fail "finetune-instruct --lora-rank exited $?"
expect_in "$work/i.log" "trainable (the LoRA adapters alone: LoRA rank 2, scaling 1 on 4 Linear layers (query, key, value, attn_out))"
for f in adapter_config.json adapter_model.safetensors vocab.json; do
  [ -s "$work/i/final/$f" ] || fail "finetune-instruct --lora-rank: missing final/$f"
done
[ -e "$work/i/final/model.safetensors" ] && fail "an LM adapter's final/ should not copy the base"
grep -q "\"base_model_name_or_path\": \"$base\"" "$work/i/final/adapter_config.json" ||
  fail "adapter_config.json does not name the base $base"
"$gptrain" generate --adapter "$work/i/final" --prompt "Every effort" --max-new-tokens 5 --print-ids \
  > "$work/g1.out" 2> "$work/g1.err" || fail "generate --adapter exited $?"
grep -q "adapter" "$work/g1.err" || fail "generate does not say it applies the adapter: $(cat "$work/g1.err")"
"$gptrain" generate --model "$base" --adapter "$work/i/final" --prompt "Every effort" --max-new-tokens 5 --print-ids \
  > "$work/g2.out" 2>/dev/null || fail "generate --model --adapter exited $?"
cmp -s "$work/g1.out" "$work/g2.out" || fail "generate with the adapter's base and with --model differ"
"$gptrain" answer --adapter "$work/i/final" --data "$work/test.jsonl" --max-new-tokens 3 --out "$work/ans.json" \
  > "$work/ans.log" 2>&1 || fail "answer --adapter exited $?"
grep -q '"model_response"' "$work/ans.json" || fail "answer --adapter wrote no responses"
printf 'Name a color.\n' | "$gptrain" chat --adapter "$work/i/final" --max-new-tokens 3 > "$work/chat.out" 2>&1 ||
  fail "chat --adapter exited $?"
"$gptrain" pretrain --data-dir "$data" --init "$base" --context-length 128 --batch-size 2 --max-steps 1 \
  --eval-interval 10 --sample-tokens 0 --threads 1 --lora-rank 2 --out-dir "$work/p" > "$work/p.log" 2>&1 ||
  fail "pretrain --lora-rank exited $?"
[ -s "$work/p/final/adapter_model.safetensors" ] || fail "pretrain --lora-rank wrote no adapter"

# 3. errors
one=("${cls[@]}" --max-steps 1)
expect_usage_error "--lora-rank: 0: the rank must be at least 1" "${one[@]}" --lora-rank 0 --out-dir "$work/e1"
expect_error "--lora-rank 17 is above the input width 16 of blocks.0.attn.qkv" "${one[@]}" --lora-rank 17 --out-dir "$work/e2"
expect_usage_error "--lora-alpha: -1: alpha must be positive" "${one[@]}" --lora-rank 2 --lora-alpha -1 --out-dir "$work/e3"
expect_usage_error "--lora-alpha requires --lora-rank" "${one[@]}" --lora-alpha 8 --out-dir "$work/e4"
expect_error "unknown target 'wq'" "${one[@]}" --lora-rank 2 --lora-targets query,wq --out-dir "$work/e5"
expect_error "no gate and up projections" "${one[@]}" --lora-rank 2 --lora-targets gate_proj --out-dir "$work/e6"
expect_error "--init must be a model dir" pretrain --data-dir "$data" --init gpt2-small --lora-rank 2 --out-dir "$work/e7"
"$gptrain" pretrain --data-dir "$data" --emb-dim 32 --n-layers 1 --n-heads 2 --context-length 64 --batch-size 2 \
  --max-steps 1 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir "$work/other" > "$work/other.log" 2>&1 ||
  fail "second pretrain exited $?"
expect_error "the adapter was made for another base" generate --model "$work/other/final" --adapter "$work/i/final" \
  --prompt "Hi"
expect_error "no adapter_config.json" generate --model "$base" --adapter "$base" --prompt "Hi"
for e in e1 e2 e3 e4 e5 e6 e7; do [ -e "$work/$e/final" ] && fail "$e: a refused run wrote a model"; done

finish "LoRA end-to-end"
