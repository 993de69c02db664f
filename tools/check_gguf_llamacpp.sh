#!/usr/bin/env bash
# llama.cpp parity of `gptrain export-gguf` (a developer check, not CI: it needs a llama.cpp
# checkout built beside the project, and Python with transformers and PEFT for the adapters).
#
#   tools/check_gguf_llamacpp.sh [WORK_DIR]
#
# Environment: LLAMA_CPP_DIR (a llama.cpp source tree whose build/bin holds libllama.so; built with
# cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF, target llama), GPTRAIN (the
# binary, default build/gptrain), N (tokens, default 24), GPTRAIN_DATA_DIR (for the GPT-2 vocabulary).
#
# For each model (a GPT-2-vocabulary random model from the data dir, and the GPT-2, Llama 3 and
# Qwen3 random models of tests/tools/gen_gguf_fixtures.py --parity, with the real tokenizers) and
# each type f32/f16/q8_0: export, then N greedy tokens from llama.cpp (tools/llamacpp_greedy.cpp,
# K/V cache in F32) against `gptrain generate --temperature 0`. The prompt's ids must agree (the
# exported vocabulary), f32's tokens must all agree; f16 and q8_0 report how many leading tokens do.
# Adapters: llama.cpp with --lora's GGUF against transformers + PEFT (tests/tools/hf_greedy.py) and
# against `gptrain generate --adapter` (the adapter applied, not merged).
# EXTRA_MODELS="NAME=DIR ..." checks more model dirs the same way (e.g. the full-size Qwen3-0.6B);
# EXTRA_ADAPTERS="NAME=BASE_DIR:ADAPTER_DIR ..." checks more adapters (a gptrain LoRA run's final/):
# llama.cpp --lora against PEFT and against `gptrain generate --adapter`.
# ONLY_EXTRA=1 skips the default models and adapters.
# CONVERTER=1 also converts the Llama and Qwen3 models with llama.cpp's own convert_hf_to_gguf.py
# (and the Qwen3 adapter with convert_lora_to_gguf.py) and compares the files tensor by tensor
# (tests/tools/compare_gguf.py; needs sentencepiece, which the converter imports).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-/tmp/gptrain-gguf-parity}
LLAMA=${LLAMA_CPP_DIR:-$ROOT/../peers/llama.cpp}
GPTRAIN=${GPTRAIN:-$ROOT/build/gptrain}
N=${N:-24}
DATA=${GPTRAIN_DATA_DIR:-$ROOT/../shared/data}
PROMPT="Every effort moves you toward the"
mkdir -p "$WORK"

[[ -f "$LLAMA/build/bin/libllama.so" ]] || { echo "no $LLAMA/build/bin/libllama.so: build llama.cpp first (see the header)"; exit 1; }
[[ -x "$GPTRAIN" ]] || { echo "no $GPTRAIN: build gptrain first"; exit 1; }
CLIENT=$WORK/llamacpp_greedy
g++ -O2 -std=c++17 tools/llamacpp_greedy.cpp -I"$LLAMA/include" -I"$LLAMA/ggml/include" -L"$LLAMA/build/bin" \
  -lllama -lggml -lggml-base -Wl,-rpath,"$LLAMA/build/bin" -o "$CLIENT"
[[ -d "$WORK/models/llama" ]] || python3 tests/tools/gen_gguf_fixtures.py --parity-only --parity "$WORK/models"

ids_after() { sed -n "s/^$1: *//p" | head -1; }  # the ids printed after "LABEL:"
leading_equal() {  # how many leading ids of two space-separated lists agree
  python3 -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); n = 0
while n < min(len(a), len(b)) and a[n] == b[n]: n += 1
print(n)' "$1" "$2"
}

status=0
check_model() {  # NAME DIR
  local name=$1 dir=$2
  echo "$PROMPT" > "$WORK/prompt.txt"
  truncate -s -1 "$WORK/prompt.txt"
  # The tokenizer generate uses: the dir's, else its family's in the data dir (GPT-2's by default).
  local tok=()
  if [[ -f $dir/tokenizer.json || -f $dir/vocab.json ]]; then tok=(--model "$dir")
  elif grep -q '"model_type": *"llama"' "$dir/config.json"; then tok=(--model "$DATA/tokenizers/llama3")
  elif grep -q '"model_type": *"qwen3"' "$dir/config.json"; then tok=(--model "$DATA/tokenizers/qwen")
  fi
  local ours_prompt; ours_prompt=$("$GPTRAIN" tokenize "$WORK/prompt.txt" "${tok[@]}" --allow-special --data-dir "$DATA" 2>/dev/null)
  local ours; ours=$("$GPTRAIN" generate --model "$dir" --prompt "$PROMPT" --max-new-tokens "$N" --temperature 0 \
    --ignore-eos --print-ids --no-echo --data-dir "$DATA" 2>&1 >/dev/null | ids_after "generated ids")
  for type in f32 f16 q8_0; do
    local file=$WORK/$name-$type.gguf
    "$GPTRAIN" export-gguf --model "$dir" --out "$file" --type "$type" --data-dir "$DATA" > "$WORK/$name-$type.export.log"
    local out; out=$("$CLIENT" "$file" "$N" "$PROMPT" 2>"$WORK/$name-$type.llama.log")
    local theirs_prompt; theirs_prompt=$(echo "$out" | ids_after "prompt ids")
    local theirs; theirs=$(echo "$out" | ids_after "generated ids")
    local agree; agree=$(leading_equal "$ours" "$theirs")
    local verdict="ok"
    [[ "$ours_prompt" == "$theirs_prompt" ]] || { verdict="PROMPT IDS DIFFER (gptrain: $ours_prompt; llama.cpp: $theirs_prompt)"; status=1; }
    if [[ $type == f32 && $agree != "$N" ]]; then verdict="FAIL"; status=1; fi
    printf '%-22s %-5s %s: %2d/%d leading tokens agree  %s\n' "$name" "$type" "$(du -h "$file" | cut -f1)" "$agree" "$N" "$verdict"
    if [[ $type == f32 ]]; then
      echo "    gptrain:   $ours"
      echo "    llama.cpp: $theirs"
    fi
  done
}

check_adapter() {  # NAME BASE_DIR ADAPTER_DIR
  local name=$1 base=$2 adapter=$3
  local file=$WORK/$name.gguf
  "$GPTRAIN" export-gguf --model "$base" --adapter "$adapter" --out "$file" > "$WORK/$name.export.log"
  [[ -f "$WORK/${name%_lora}-f32.gguf" ]] || "$GPTRAIN" export-gguf --model "$base" --out "$WORK/${name%_lora}-f32.gguf" --data-dir "$DATA" > /dev/null
  local out; out=$("$CLIENT" "$WORK/${name%_lora}-f32.gguf" "$N" "$PROMPT" "$file" 2>"$WORK/$name.llama.log")
  local prompt_ids; prompt_ids=$(echo "$out" | ids_after "prompt ids")
  local theirs; theirs=$(echo "$out" | ids_after "generated ids")
  local base_only; base_only=$("$CLIENT" "$WORK/${name%_lora}-f32.gguf" "$N" "$PROMPT" 2>/dev/null | ids_after "generated ids")
  local peft_out; peft_out=$(python3 tests/tools/hf_greedy.py "$base" --adapter "$adapter" --ids "$prompt_ids" --n "$N" 2>/dev/null)
  local peft; peft=$(echo "$peft_out" | ids_after "generated ids")
  local agree; agree=$(leading_equal "$peft" "$theirs")
  local verdict="ok"
  [[ $agree == "$N" ]] || { verdict="FAIL"; status=1; }
  [[ "$base_only" != "$theirs" ]] || { verdict="$verdict (but the adapter changed nothing)"; status=1; }
  printf '%-22s lora : %2d/%d leading tokens agree with transformers+PEFT  %s (%s)\n' "$name" "$agree" "$N" "$verdict" \
    "$(echo "$peft_out" | sed -n 's/^smallest/smallest/p')"
  echo "    PEFT:      $peft"
  echo "    llama.cpp: $theirs"
  echo "    base only: $base_only"
  # gptrain itself with the adapter applied (not merged): the same greedy tokens
  local ours; ours=$("$GPTRAIN" generate --model "$base" --adapter "$adapter" --prompt "$PROMPT" --max-new-tokens "$N" \
    --temperature 0 --ignore-eos --print-ids --no-echo --data-dir "$DATA" 2>&1 >/dev/null | ids_after "generated ids")
  local agree_ours; agree_ours=$(leading_equal "$ours" "$theirs")
  [[ $agree_ours == "$N" ]] || status=1
  printf '%-22s lora : %2d/%d leading tokens agree with gptrain generate --adapter\n' "$name" "$agree_ours" "$N"
  echo "    gptrain:   $ours"
}

for extra in ${EXTRA_MODELS:-}; do check_model "${extra%%=*}" "${extra#*=}"; done
for extra in ${EXTRA_ADAPTERS:-}; do  # NAME=BASE_DIR:ADAPTER_DIR (e.g. a gptrain LoRA run's final/)
  pair=${extra#*=}
  check_adapter "${extra%%=*}_lora" "${pair%%:*}" "${pair#*:}"
done
if [[ ${ONLY_EXTRA:-0} != 1 ]]; then
  FAKE=$DATA/tiny_models/fake_gpt2_vocab50257
  [[ -d "$FAKE" ]] && check_model fake_gpt2_vocab50257 "$FAKE"
  check_model gpt2 "$WORK/models/gpt2"
  check_model llama "$WORK/models/llama"
  check_model qwen3 "$WORK/models/qwen3"
  check_adapter gpt2_lora "$WORK/models/gpt2" "$WORK/models/gpt2_lora"
  check_adapter llama_lora "$WORK/models/llama" "$WORK/models/llama_lora"
  check_adapter qwen3_lora "$WORK/models/qwen3" "$WORK/models/qwen3_lora"
fi
if [[ ${CONVERTER:-0} == 1 && ${ONLY_EXTRA:-0} != 1 ]]; then
  for model in llama qwen3; do
    for type in f16 q8_0; do
      python3 "$LLAMA/convert_hf_to_gguf.py" "$WORK/models/$model" --outfile "$WORK/$model-$type.converter.gguf" \
        --outtype "$type" > "$WORK/$model-$type.converter.log" 2>&1
      echo "== $model $type: gptrain against convert_hf_to_gguf.py"
      PYTHONPATH="$LLAMA/gguf-py" python3 tests/tools/compare_gguf.py "$WORK/$model-$type.gguf" \
        "$WORK/$model-$type.converter.gguf" || status=1
    done
  done
  python3 "$LLAMA/convert_lora_to_gguf.py" "$WORK/models/qwen3_lora" --base "$WORK/models/qwen3" \
    --outfile "$WORK/qwen3_lora.converter.gguf" --outtype f32 > "$WORK/qwen3_lora.converter.log" 2>&1
  echo "== qwen3_lora: gptrain against convert_lora_to_gguf.py"
  PYTHONPATH="$LLAMA/gguf-py" python3 tests/tools/compare_gguf.py "$WORK/qwen3_lora.gguf" "$WORK/qwen3_lora.converter.gguf" || status=1
fi
exit $status
