#!/usr/bin/env bash
# The chat page in a real browser (tests/serve/chat_page_test.py: headless Chromium via selenium)
# on a gpt2-small-shaped model the test makes with one pretraining step (slow enough per token at
# one thread that an answer can be stopped mid-stream). Skipped (77) without chromium,
# chromium-driver or selenium. Usage: chat_page_test.sh GPTRAIN_BINARY SCREENSHOT_PNG
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt gpt2_tokenizer/encoder.json
python3 -c "import selenium" 2> /dev/null || { echo "SKIP: selenium is not installed (pip install selenium)"; exit 77; }
"$gptrain" pretrain --data-dir "$data" --max-steps 1 --batch-size 1 --eval-interval 1 --eval-iters 1 --sample-tokens 0 \
  --threads 2 --out-dir "$work/model" > "$work/pretrain.log" 2>&1 || { echo "FAIL: pretrain: $(tail -2 "$work/pretrain.log")"; exit 1; }
python3 "$(dirname "$0")/../serve/chat_page_test.py" "$gptrain" "$work/model/final" "$data" "$2"
