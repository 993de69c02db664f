#!/usr/bin/env bash
# End-to-end tests of `gptrain finetune-cls` and `gptrain classify` on tiny models:
#   1. the SMS Spam Collection gives the book's counts (5572 rows, 747/747 balanced, split
#      1045/149/300, padded length 120, 130 train batches of 8) and writes the three splits, which
#      read back (--train/--val/--test) to the same counts;
#   2. any CSV with named columns and three classes: per-epoch accuracies, plots, a model dir with
#      class names that `classify` uses on arguments and on --input files;
#   3. determinism, and a run resumed for more epochs equals an uninterrupted one;
#   4. clear errors naming file and line: missing column, unknown label at validation time, empty
#      text, malformed line, single class, a length over the context; classify on a checkpoint.
# Usage: finetune_cls_test.sh GPTRAIN_BINARY   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
source "$(dirname "$0")/common.sh" "$1" sms_spam/SMSSpamCollection gpt2_tokenizer/encoder.json

tiny=(--data-dir "$data" --init gpt2-small --emb-dim 16 --n-layers 1 --n-heads 2 --context-length 128 --threads 1)

# 1. the book's counts
"$gptrain" finetune-cls "${tiny[@]}" --max-steps 2 --eval-interval 1 --eval-iters 1 --out-dir "$work/sms" \
  > "$work/sms.log" 2>&1 || fail "SMS run exited $?"
expect_in "$work/sms.log" "5572 rows from .*SMSSpamCollection, 2 classes: ham 4825, spam 747"
expect_in "$work/sms.log" "balanced (undersampling the larger classes, seed 123): 1494 rows: ham 747, spam 747"
expect_in "$work/sms.log" "split (seed 123, 0.7/0.1/0.2): train 1045 (ham 528, spam 517), validation 149 (ham 70, spam 79), test 300 (ham 149, spam 151)"
expect_in "$work/sms.log" "padded length 120 (the longest training text), pad id 50256; batches of 8: train 130 (last partial batch dropped), validation 19, test 38"
expect_in "$work/sms.log" "Training accuracy: .*(.*/1040)"
expect_in "$work/sms.log" "Test accuracy: .*(.*/300)"
for f in train.csv validation.csv test.csv run.json metrics.jsonl loss.svg final/config.json final/model.safetensors final/vocab.json final/merges.txt; do
  [ -s "$work/sms/$f" ] || fail "missing output $f"
done
[ "$(head -1 "$work/sms/train.csv")" = "Label,Text" ] || fail "train.csv header is not Label,Text"
"$gptrain" finetune-cls "${tiny[@]}" --max-steps 1 --eval-iters 1 --out-dir "$work/sms2" \
  --train "$work/sms/train.csv" --val "$work/sms/validation.csv" --test "$work/sms/test.csv" > "$work/sms2.log" 2>&1 \
  || fail "pass-back run exited $?"
expect_in "$work/sms2.log" "train 1045 rows (ham 528, spam 517)"
expect_in "$work/sms2.log" "validation 149 rows (ham 70, spam 79)"
expect_in "$work/sms2.log" "test 300 rows (ham 149, spam 151)"
expect_in "$work/sms2.log" "padded length 120"
[ -e "$work/sms2/train.csv" ] && fail "ready splits should not be written again"
# a Hugging Face GPT-2 dir as --init (tied head, qkv bias), when the data dir has one
hf="$data/tiny_models/fake_gpt2_vocab50257"
if [ -f "$hf/config.json" ]; then
  "$gptrain" finetune-cls --data-dir "$data" --threads 1 --init "$hf" --max-steps 2 --eval-iters 1 --out-dir "$work/hf" \
    --train "$work/sms/train.csv" --val "$work/sms/validation.csv" > "$work/hf.log" 2>&1 || fail "HF --init run exited $?"
  expect_in "$work/hf.log" "1 layers, 1 heads, 2 channels, context 1024, 2 classes (last pooling); .* trainable (the last block, the final norm and the head)"
  "$gptrain" classify --model "$work/hf/final" "Free entry to win" > "$work/hf.out" 2>&1 || fail "classify (HF) exited $?"
  grep -qP '^(ham|spam)\t' "$work/hf.out" || fail "classify (HF): $(cat "$work/hf.out")"
fi

# 2. any CSV: three classes in named columns, a comma inside a quoted text
{
  echo "id,topic,message"
  for i in $(seq 1 40); do
    echo "$i,food,\"apples, pears and bread $i\""
    echo "$((i + 100)),weather,rain and wind today $i"
    echo "$((i + 200)),sport,football match score $i"
  done
} > "$work/topics.csv"
opts=("${tiny[@]}" --data "$work/topics.csv" --text-column message --label-column topic --trainable all
      --lr 5e-3 --batch-size 4 --eval-interval 10 --eval-iters 2)
"$gptrain" finetune-cls "${opts[@]}" --epochs 3 --out-dir "$work/t" > "$work/t.log" 2>&1 || fail "topics run exited $?"
expect_in "$work/t.log" "120 rows from .*topics.csv, 3 classes: food 40, sport 40, weather 40"
[ "$(grep -c "Training accuracy: .* | Validation accuracy: " "$work/t.log")" -eq 3 ] || fail "expected 3 per-epoch accuracy lines"
for f in accuracy.svg loss.svg final/config.json; do [ -s "$work/t/$f" ] || fail "missing $f"; done
grep -q '"class_names"' "$work/t/final/config.json" || fail "no class names in the model dir"
[ "$(grep -c '"kind":"epoch"' "$work/t/metrics.jsonl")" -eq 3 ] || fail "expected 3 epoch records in metrics.jsonl"
"$gptrain" classify --model "$work/t/final" --data-dir "$data" "apples, pears and bread" "football match score 3" \
  > "$work/c.out" 2> "$work/c.err" || fail "classify exited $?"
[ "$(wc -l < "$work/c.out")" -eq 2 ] || fail "classify: expected 2 lines, got $(cat "$work/c.out" "$work/c.err")"
grep -qP '^(food|sport|weather)\t[01]\.\d{4}\tapples, pears and bread$' "$work/c.out" || fail "classify output: $(cat "$work/c.out")"
printf 'rain and wind today\n\nfootball match\n' > "$work/in.txt"
"$gptrain" classify --model "$work/t/final" --input "$work/in.txt" > "$work/c2.out" 2>&1 || fail "classify --input exited $?"
[ "$(wc -l < "$work/c2.out")" -eq 2 ] || fail "classify --input: expected 2 lines: $(cat "$work/c2.out")"
"$gptrain" classify --model "$work/t/final" --data "$work/in.txt" > "$work/c3.out" 2>&1 || fail "classify --data exited $?"
cmp -s "$work/c2.out" "$work/c3.out" || fail "classify --data differs from --input"

# 3. determinism; a run stopped after epoch 1 and resumed to 3 epochs equals the uninterrupted run
metrics() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1/metrics.jsonl"; }
"$gptrain" finetune-cls "${opts[@]}" --epochs 3 --out-dir "$work/t2" > "$work/t2.log" 2>&1 || fail "second topics run exited $?"
cmp -s <(metrics "$work/t") <(metrics "$work/t2") || fail "two runs with the same seed differ"
"$gptrain" finetune-cls "${opts[@]}" --epochs 1 --out-dir "$work/t3" > "$work/t3.log" 2>&1 || fail "1-epoch run exited $?"
"$gptrain" finetune-cls "${opts[@]}" --epochs 3 --out-dir "$work/t3" --resume >> "$work/t3.log" 2>&1 || fail "resume exited $?"
cmp -s <(metrics "$work/t") <(metrics "$work/t3") || fail "resumed run differs from the uninterrupted one"
cmp -s "$work/t/final/model.safetensors" "$work/t3/final/model.safetensors" || fail "resumed model differs"

# 4. errors: exit 1 and a message naming the file and line
printf 'Label,Text\nham,hello there\nspam,WIN cash now\nham,see you\n' > "$work/train.csv"
printf 'Label,Message\nham,hi\n' > "$work/nocol.csv"
printf 'Label,Text\nham,hi\nspamm,what\n' > "$work/badlabel.csv"
printf 'Label,Text\nham,hi\nspam,""\n' > "$work/empty.csv"
printf 'Label\tText\nham\thi\nspam\t"never closed\nham\tok\n' > "$work/unclosed.tsv"
printf 'Label,Text\nham,hi\nham,there\n' > "$work/single.csv"
cls=(finetune-cls "${tiny[@]}" --max-steps 1)
expect_error "nocol.csv line 1: missing column: no column 'Text' in the header ('Label', 'Message')" \
  "${cls[@]}" --out-dir "$work/e1" --train "$work/nocol.csv" --val "$work/train.csv"
expect_error "badlabel.csv line 3: unknown label 'spamm' in column Label: the training data has only the classes 'ham', 'spam'" \
  "${cls[@]}" --out-dir "$work/e2" --train "$work/train.csv" --val "$work/badlabel.csv"
expect_error "empty.csv line 3: empty text in column 'Text'" \
  "${cls[@]}" --out-dir "$work/e3" --train "$work/train.csv" --val "$work/empty.csv"
expect_error "unclosed.tsv line 3: malformed line: the quoted field that starts here is never closed" \
  "${cls[@]}" --out-dir "$work/e4" --data "$work/unclosed.tsv"
expect_error "single.csv: single class: every one of the 2 training rows has the label 'ham'" \
  "${cls[@]}" --out-dir "$work/e5" --train "$work/single.csv" --val "$work/train.csv"
expect_error "exceeds the model's context length 128" "${cls[@]}" --out-dir "$work/e6" --max-length 500
# F3: a checkpoint is a complete model dir: classify runs on it with the padding of training and the
# run's vocabulary (before, it had neither)
ck="$work/sms/checkpoints/$(ls "$work/sms/checkpoints" | tail -1)"
for f in vocab.json merges.txt; do [ -s "$ck/$f" ] || fail "the classifier checkpoint has no $f"; done
grep -q '"max_length"' "$ck/config.json" && grep -q '"pad_token_id"' "$ck/config.json" ||
  fail "the classifier checkpoint's config.json lacks max_length or pad_token_id"
"$gptrain" classify --model "$ck" "some text" > "$work/ck.out" 2>&1 || fail "classify on a checkpoint exited $?"
grep -qP '^(ham|spam)\t' "$work/ck.out" || fail "classify on a checkpoint: $(cat "$work/ck.out")"
# a classifier dir without the padded length (an older checkpoint) still says what to do
cp -r "$ck" "$work/old-ck"
sed -i '/"max_length"/d' "$work/old-ck/config.json"
expect_error "has no gptrain.max_length .*pass --max-length N" classify --model "$work/old-ck" "some text"
for e in e1 e2 e3 e4 e5 e6; do [ -e "$work/$e/final" ] && fail "$e: a refused run wrote a model"; done

finish "finetune-cls end-to-end"
