#!/usr/bin/env bash
# End-to-end tests of the Llama 3 and Qwen3 families in every job, on tiny models (the real runs
# are in BENCHMARKS.md), with the real tokenizer.json files of the data dir:
#   1. pretrain a small Qwen3-shaped model on the-verdict: a Hugging Face qwen3 dir with its
#      tokenizer; generate, info, tokenize --model read it;
#   2. pretrain a small Llama-shaped model, finetune-instruct --template chat (Llama 3's format),
#      answer and chat with it (the dir records the template);
#   3. finetune-cls of a small Qwen3 on the SMS data, then classify;
#   4. clear errors: unknown model_type, a config contradicting the tensors, a missing tokenizer,
#      an unknown pre-tokenizer pattern, an unknown chat template, --template chat on GPT-2.
# Usage: llama_qwen_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" tokenizers/qwen/tokenizer.json tokenizers/llama3/tokenizer.json the-verdict.txt instruction-data.json \
         sms_spam/SMSSpamCollection gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1
small=(--emb-dim 64 --n-layers 2 --n-heads 2 --n-kv-heads 1 --head-dim 32 --mlp-dim 128)

# 1. Qwen3 pretraining on the-verdict
"$gptrain" pretrain --data-dir "$data" --init qwen3-tiny "${small[@]}" --context-length 64 --batch-size 2 \
  --max-steps 3 --eval-interval 2 --eval-iters 1 --sample-tokens 4 --threads 1 --out-dir "$work/qwen" \
  > "$work/qwen.log" 2>&1 || fail "pretrain qwen3-tiny exited $?"
# the-verdict is 20479 characters; the Qwen tokenizer gives fewer tokens than GPT-2's 5145
expect_in "$work/qwen.log" "model: 2 layers, 2 heads, 64 channels, context 64"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
  [ -s "$work/qwen/final/$f" ] || fail "qwen final/: missing $f"
done
grep -q '"model_type": "qwen3"' "$work/qwen/final/config.json" || fail "qwen final/config.json is not a qwen3 config"
"$gptrain" generate --model "$work/qwen/final" --prompt "Every effort moves you" --max-new-tokens 4 --threads 1 \
  > "$work/qwen-gen.log" 2>&1 || fail "generate on the qwen model exited $?"
"$gptrain" info --model "$work/qwen/final" > "$work/qwen-info.log" 2>&1 || fail "info on the qwen model exited $?"
expect_in "$work/qwen-info.log" "n_kv_heads 1  head_size 32"
echo "Hello, world" | "$gptrain" tokenize --model "$work/qwen/final" - > "$work/qwen-ids.txt" 2> "$work/qwen-tok.log" ||
  fail "tokenize --model on the qwen model exited $?"
[ "$(cat "$work/qwen-ids.txt")" = "9707 11 1879 198" ] || fail "tokenize --model: got $(cat "$work/qwen-ids.txt")"

# 2. Llama: pretrain, finetune-instruct in Llama 3's chat format, answer, chat
"$gptrain" pretrain --data-dir "$data" --init llama-tiny "${small[@]}" --context-length 128 --batch-size 2 \
  --max-steps 2 --eval-interval 10 --sample-tokens 0 --threads 1 --out-dir "$work/llama" > "$work/llama.log" 2>&1 ||
  fail "pretrain llama-tiny exited $?"
printf '%s\n' '{"instruction": "Name a color.", "input": "", "output": "Blue."}' \
  '{"instruction": "Translate to French.", "input": "Good night", "output": "Bonne nuit."}' > "$work/test.jsonl"
"$gptrain" finetune-instruct --data-dir "$data" --init "$work/llama/final" --template chat --train-split 0.02 \
  --test-split 0.005 --test-data "$work/test.jsonl" --batch-size 3 --max-steps 4 --lr 1e-2 --eval-interval 2 \
  --eval-iters 1 --max-length 64 --sample-tokens 4 --answer-tokens 4 --threads 1 --out-dir "$work/llama-ft" \
  > "$work/llama-ft.log" 2>&1 || fail "finetune-instruct --template chat exited $?"
expect_in "$work/llama-ft.log" "prompt: chat template llama3 (built in)"
expect_in "$work/llama-ft.log" "sample (first validation entry): <|begin_of_text|><|start_header_id|>user<|end_header_id|>"
grep -q '"gptrain_prompt_format": "chat"' "$work/llama-ft/final/tokenizer_config.json" ||
  fail "final/tokenizer_config.json does not record the chat format"
grep -q '"chat_template": ".*<|start_header_id|>' "$work/llama-ft/final/tokenizer_config.json" ||
  fail "final/tokenizer_config.json has no Jinja chat_template for transformers"
[ "$(grep -c '"model_response": ' "$work/llama-ft/test-responses.json")" -eq 2 ] || fail "test-responses.json: expected 2"
"$gptrain" answer --model "$work/llama-ft/final" --data "$work/test.jsonl" --max-new-tokens 3 --threads 1 \
  --out "$work/answers.json" > "$work/answer.log" 2>&1 || fail "answer exited $?"
expect_in "$work/answer.log" "prompt chat template llama3"
printf 'Name a fruit.\nAnd a vegetable?\n' | "$gptrain" chat --model "$work/llama-ft/final" --max-new-tokens 3 \
  --threads 1 > "$work/chat.log" 2>&1 || fail "chat exited $?"
expect_in "$work/chat.log" "chat template llama3"

# 3. finetune-cls of a small Qwen3 on the SMS data, then classify
"$gptrain" finetune-cls --data-dir "$data" --init qwen3-tiny "${small[@]}" --context-length 128 --trainable all \
  --max-steps 2 --eval-interval 1 --eval-iters 1 --threads 1 --out-dir "$work/cls" > "$work/cls.log" 2>&1 ||
  fail "finetune-cls qwen3-tiny exited $?"
expect_in "$work/cls.log" "pad id 151643"
expect_in "$work/cls.log" "Test accuracy: .*(.*/300)"
"$gptrain" classify --model "$work/cls/final" "You won a prize, call now" > "$work/classify.log" 2>&1 ||
  fail "classify exited $?"
grep -Eq "^(ham|spam)" "$work/classify.log" || fail "classify printed no label: $(cat "$work/classify.log")"

# 4. bad input
cp -r "$work/qwen/final" "$work/bad1"
sed -i 's/"model_type": "qwen3"/"model_type": "mistral"/' "$work/bad1/config.json"
expect_error 'config.json.*model_type.*mistral' generate --model "$work/bad1" --prompt x
cp -r "$work/qwen/final" "$work/bad2"
sed -i 's/"hidden_size": 64/"hidden_size": 96/' "$work/bad2/config.json"
expect_error "model.safetensors.*has shape" generate --model "$work/bad2" --prompt x
mkdir -p "$work/empty"
expect_error "empty.*tokenizer.json" tokenize --model "$work/empty" "$work/test.jsonl"
mkdir -p "$work/badtok"
# Llama 3's pattern with digits in fours instead of threes: no scanner of gptrain's
sed 's/p{N}{1,3}/p{N}{1,4}/' "$data/tokenizers/llama3/tokenizer.json" > "$work/badtok/tokenizer.json"
expect_error "tokenizer.json.*pattern" tokenize --model "$work/badtok" "$work/test.jsonl"
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' > "$work/bad.jinja"
expect_error "bad.jinja.*gptrain does not know" chat --model "$work/llama-ft/final" --chat-template "$work/bad.jinja"
"$gptrain" pretrain --data-dir "$data" --emb-dim 32 --n-layers 1 --n-heads 2 --context-length 64 --max-steps 1 \
  --sample-tokens 0 --eval-interval 10 --eval-iters 1 --threads 1 --out-dir "$work/gpt2" > "$work/gpt2.log" 2>&1 ||
  fail "pretrain gpt2 exited $?"
expect_error "no chat tokens" finetune-instruct --data-dir "$data" --init "$work/gpt2/final" --template chat \
  --out-dir "$work/e1"
expect_error "shape a preset" pretrain --data-dir "$data" --init "$work/qwen/final" --n-kv-heads 2 --out-dir "$work/e2"
expect_error "n_kv_heads" pretrain --data-dir "$data" --init qwen3-tiny --n-kv-heads 3 --out-dir "$work/e3"

finish "llama/qwen end-to-end" 8
