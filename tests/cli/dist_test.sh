#!/usr/bin/env bash
# Data-parallel training from the CLI (issue 16) under mpirun -np 2 (as root with Open MPI's two
# variables), beside tests/dist/data_parallel_test.cpp's in-process equivalence:
#   1. `mpirun -np 2 gptrain pretrain` prints once and only rank 0 writes the run dir (one record
#      per evaluation, checkpoints, final/), and its per-step losses equal one process with
#      --grad-accum 2 within the bound of data_parallel_test.cpp: gamma_K * D with K = max(4C,
#      T x rows) = 128 and D = 6L + 3 = 15;
#   2. resume across world sizes: 2 ranks stopped at step 6 and continued by 1 process with
#      --grad-accum 2 (and the reverse) give the uninterrupted run's losses within that bound; so
#      does a 2-rank run stopped by SIGINT to mpirun (every rank stops after the same step, rank 0
#      checkpoints); `kill -9` of rank 1 makes mpirun end rank 0 within seconds, naming rank 1,
#      and the last checkpoint resumes; a resume that changes the micro-batches per step is refused;
#   3. --zero 1 (AdamW's state sharded): the same losses, bit for bit (on 2 ranks each summed
#      element is one addition, as in the all-reduce), a checkpoint with the whole state that a
#      single process resumes, each rank's peak memory printed;
#   4. finetune-cls and finetune-instruct run on 2 ranks and write their final/ once;
#   6. (below 5) --device cuda on the host-emulated device (kernels/emulated_device.h): 2 ranks
#      with the gradients through the host equal the CPU's 2 ranks bit for bit, --zero 1 too;
#   7. (last) --dtype bf16 on 2 ranks: the emulated device equals the CPU bit for bit; --zero 1
#      in bf16 equals the unsharded bf16 run bit for bit on both;
#   5. torchrun-style variables without mpirun: the ranks join through ompi-server and equal the
#      mpirun run bit for bit; kill -9 of rank 1 ends rank 0 within seconds, naming rank 1, and
#      the last checkpoint resumes; a rank with another WORLD_SIZE is refused; real torchrun too
#      where PyTorch is installed.
# Usage: dist_test.sh GPTRAIN_BINARY MPIRUN   (needs $GPTRAIN_TEST_DATA_DIR; exits 77 = skipped without it)
set -uo pipefail
mpirun=$2
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt instruction-data.json sms_spam/SMSSpamCollection \
  gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm=${OMPI_MCA_plm:-isolated} OMPI_MCA_btl_vader_single_copy_mechanism=none  # one node, no ssh
ranks2=("$mpirun" --oversubscribe -np 2 "$gptrain")
tiny=(--data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 32 --drop-rate 0.1 --lr 1e-3
      --eval-interval 1 --eval-iters 1 --sample-tokens 0 --threads 1 --save-interval 6 --batch-size 1)
# "step loss" per evaluation record
losses() { sed -E 's/.*"step":([0-9]+).*"step_loss":([^,}]*).*/\1 \2/' "$1/metrics.jsonl"; }
bound=$(awk 'BEGIN { u = 2^-24; K = 128; printf "%.6g", K * u / (1 - K * u) * 15 }')
expect_close() {  # expect_close DIR REF_DIR WHAT: the same steps, losses within the bound
  local out
  out=$(paste <(losses "$1") <(losses "$2") | awk -v b="$bound" '
    { n++; if ($1 != $3) { print "step " $1 " against " $3; bad = 1; exit }
      e = ($2 - $4) / $4; if (e < 0) e = -e; if (e > worst) worst = e; if (e > b) { print "step " $1 ": " $2 " vs " $4; bad = 1 } }
    END { if (!bad) printf "%d steps, largest rel. difference %.3g (bound %s)\n", n, worst, b; exit bad }')
  local rc=$?
  echo "$3: $out"
  [ "$rc" -eq 0 ] || fail "$3: $out"
  [ "$(losses "$1" | wc -l)" -eq "$(losses "$2" | wc -l)" ] || fail "$3: record counts differ"
}

# 1. two ranks against accumulation in one process
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 12 --out-dir "$work/m" > "$work/m.log" 2>&1 || fail "2 ranks exited $?"
expect_in "$work/m.log" "2 ranks (mpi) x 1 micro-batch(es) of 1 per step"
[ "$(grep -c '^gptrain pretrain$' "$work/m.log")" -eq 1 ] || fail "2 ranks: the header printed $(grep -c '^gptrain pretrain$' "$work/m.log") times"
[ "$(wc -l < "$work/m/metrics.jsonl")" -eq 12 ] || fail "2 ranks: $(wc -l < "$work/m/metrics.jsonl") records, expected 12"
for f in run.json loss.svg checkpoints/step_00000006/DONE checkpoints/step_00000012/DONE final/model.safetensors; do
  [ -e "$work/m/$f" ] || fail "2 ranks: missing $f"
done
grep -q '"ranks": 2' "$work/m/run.json" || fail "2 ranks: run.json does not record the ranks"
"$gptrain" pretrain "${tiny[@]}" --max-steps 12 --grad-accum 2 --out-dir "$work/s" > "$work/s.log" 2>&1 ||
  fail "--grad-accum 2 exited $?"
expect_close "$work/m" "$work/s" "2 ranks vs --grad-accum 2"

# 2. resume across world sizes
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 6 --out-dir "$work/r1" > "$work/r1.log" 2>&1 || fail "r1 exited $?"
"$gptrain" pretrain "${tiny[@]}" --max-steps 12 --grad-accum 2 --resume --out-dir "$work/r1" >> "$work/r1.log" 2>&1 ||
  fail "2 ranks resumed by 1 exited $?"
expect_close "$work/r1" "$work/m" "2 ranks, resumed by 1 with --grad-accum 2"
"$gptrain" pretrain "${tiny[@]}" --max-steps 6 --grad-accum 2 --out-dir "$work/r2" > "$work/r2.log" 2>&1 || fail "r2 exited $?"
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 12 --resume --out-dir "$work/r2" >> "$work/r2.log" 2>&1 ||
  fail "1 process resumed by 2 ranks exited $?"
expect_close "$work/r2" "$work/s" "1 process, resumed by 2 ranks"
# SIGINT to mpirun mid-run (it passes a SIGTERM to every rank), then one process continues
wait_records() {  # wait_records DIR N: until DIR/metrics.jsonl has N records (at most 60 s)
  for _ in $(seq 1 600); do
    [ -f "$1/metrics.jsonl" ] && [ "$(wc -l < "$1/metrics.jsonl")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 60 --out-dir "$work/long" > "$work/long.log" 2>&1 || fail "60 steps on 2 ranks exited $?"
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 60 --out-dir "$work/i" > "$work/i.log" 2>&1 &
launcher=$!
wait_records "$work/i" 8 || fail "SIGINT: the run did not start"
kill -INT "$launcher"
wait "$launcher"
rc=$?
[ "$rc" -ne 0 ] || fail "SIGINT: mpirun exited 0"
expect_in "$work/i.log" "continue with --resume"
if [ "$(wc -l < "$work/i/metrics.jsonl")" -ge 60 ]; then
  echo "SIGINT arrived after the last step: the resume below has nothing to do"
fi
"$gptrain" pretrain "${tiny[@]}" --max-steps 60 --grad-accum 2 --resume --out-dir "$work/i" >> "$work/i.log" 2>&1 ||
  fail "resume of the interrupted 2-rank run by 1 process exited $?"
expect_close "$work/i" "$work/long" "2 ranks stopped by SIGINT, resumed by 1 process"
kill_rank() {  # kill_rank DIR VAR=VALUE: kill -9 the pretrain process of DIR whose environment has VAR=VALUE
  local p victim=""
  for p in $(pgrep -f "pretrain.*$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "$2" && victim=$p
  done
  [ -n "$victim" ] && kill -9 "$victim"
}
# kill -9 of rank 1: rank 0 must not hang
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 400 --out-dir "$work/k" > "$work/k.log" 2>&1 &
launcher=$!
wait_records "$work/k" 13 || fail "kill -9: the run did not start"
kill_rank "$work/k" OMPI_COMM_WORLD_RANK=1 || fail "kill -9: rank 1 not found"
start=$SECONDS
wait "$launcher"
rc=$?
[ "$rc" -ne 0 ] || fail "kill -9 of rank 1: mpirun exited 0"
[ $((SECONDS - start)) -le 30 ] || fail "kill -9 of rank 1: rank 0 took $((SECONDS - start)) s to end"
expect_in "$work/k.log" "rank 1 .*exited on signal 9"
"$gptrain" pretrain "${tiny[@]}" --max-steps 20 --grad-accum 2 --resume --out-dir "$work/k" > "$work/k2.log" 2>&1 ||
  fail "the last checkpoint after kill -9 did not resume: exit $?"
expect_in "$work/k2.log" "resuming from .*step_000000"
out=$("${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 14 --grad-accum 2 --resume --out-dir "$work/s" 2>&1)
echo "$out" | grep -q "micro-batches per step (ranks x --grad-accum): checkpoint 2 (1 x 2), now 4 (2 x 2)" ||
  fail "a resume with other micro-batches per step was not refused: $(echo "$out" | tail -3)"

# 3. --zero 1
"${ranks2[@]}" pretrain "${tiny[@]}" --max-steps 12 --zero 1 --out-dir "$work/z" > "$work/z.log" 2>&1 || fail "--zero 1 exited $?"
cmp -s <(losses "$work/z") <(losses "$work/m") || fail "--zero 1: losses differ from the unsharded run"
cmp -s "$work/z/final/model.safetensors" "$work/m/final/model.safetensors" || fail "--zero 1: other final weights"
cmp -s "$work/z/checkpoints/step_00000012/optimizer.safetensors" "$work/m/checkpoints/step_00000012/optimizer.safetensors" ||
  fail "--zero 1: the checkpoint's optimizer state differs from the unsharded run's"
expect_in "$work/z.log" "peak memory per rank (MB), optimizer state sharded (--zero 1): [0-9]*, [0-9]*"
expect_in "$work/m.log" "peak memory per rank (MB): [0-9]*, [0-9]*"
"$gptrain" pretrain "${tiny[@]}" --max-steps 14 --grad-accum 2 --resume --out-dir "$work/z" > "$work/z2.log" 2>&1 ||
  fail "a --zero 1 checkpoint resumed by one process exited $?"

# 4. the finetuning commands
"${ranks2[@]}" finetune-cls --data-dir "$data" --init "$work/m/final" --max-length 32 --batch-size 2 --max-steps 3 \
  --eval-interval 2 --eval-iters 1 --threads 1 --out-dir "$work/cls" > "$work/cls.log" 2>&1 || fail "finetune-cls on 2 ranks exited $?"
expect_in "$work/cls.log" "Test accuracy:"
[ "$(grep -c '^Test accuracy:' "$work/cls.log")" -eq 1 ] || fail "finetune-cls: the final scores printed more than once"
[ -s "$work/cls/final/model.safetensors" ] || fail "finetune-cls on 2 ranks wrote no final/"
"${ranks2[@]}" finetune-instruct --data-dir "$data" --init "$work/m/final" --train-split 0.02 --test-split 0.005 \
  --batch-size 2 --max-steps 3 --eval-interval 2 --eval-iters 1 --max-length 32 --sample-tokens 2 --answer-tokens 2 \
  --threads 1 --out-dir "$work/ins" > "$work/ins.log" 2>&1 || fail "finetune-instruct on 2 ranks exited $?"
[ -s "$work/ins/final/model.safetensors" ] || fail "finetune-instruct on 2 ranks wrote no final/"
[ -s "$work/ins/test-responses.json" ] || fail "finetune-instruct on 2 ranks wrote no test answers"

# 5. torchrun-style variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) without mpirun: the
#    ranks join through ompi-server at MASTER_PORT + 1; the run equals mpirun's bit for bit
port=$((20000 + RANDOM % 20000))
torchrun_style() {  # torchrun_style PORT RANK WORLD_SIZE ARGS...: one rank started as torchrun would
  local p=$1 r=$2 n=$3
  shift 3
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
    GPTRAIN_RENDEZVOUS_TIMEOUT=60 "$gptrain" "$@"
}
torchrun_style "$port" 1 2 pretrain "${tiny[@]}" --max-steps 12 --out-dir "$work/t" > "$work/t1.log" 2>&1 &
rank1=$!
torchrun_style "$port" 0 2 pretrain "${tiny[@]}" --max-steps 12 --out-dir "$work/t" > "$work/t0.log" 2>&1 ||
  fail "torchrun-style rank 0 exited $?: $(tail -2 "$work/t0.log")"
wait "$rank1" || fail "torchrun-style rank 1 exited $?: $(tail -2 "$work/t1.log")"
expect_in "$work/t0.log" "2 ranks (mpi) x 1 micro-batch(es) of 1 per step"
cmp "$work/t/final/model.safetensors" "$work/m/final/model.safetensors" ||
  fail "torchrun-style: the weights differ from mpirun's"
pgrep -x ompi-server > /dev/null && sleep 1 && pgrep -x ompi-server > /dev/null && fail "ompi-server outlived the run"
# kill -9 of rank 1: rank 0 ends within seconds, naming it; the last checkpoint resumes
port=$((port + 10))
torchrun_style "$port" 1 2 pretrain "${tiny[@]}" --max-steps 400 --out-dir "$work/tk" > "$work/tk1.log" 2>&1 &
rank1=$!
torchrun_style "$port" 0 2 pretrain "${tiny[@]}" --max-steps 400 --out-dir "$work/tk" > "$work/tk0.log" 2>&1 &
rank0=$!
wait_records "$work/tk" 13 || fail "torchrun-style kill -9: the run did not start"
kill_rank "$work/tk" RANK=1 || fail "torchrun-style kill -9: rank 1 not found"
start=$SECONDS
wait "$rank0"
rc=$?
[ "$rc" -ne 0 ] || fail "torchrun-style kill -9 of rank 1: rank 0 exited 0"
[ $((SECONDS - start)) -le 10 ] || fail "torchrun-style kill -9 of rank 1: rank 0 took $((SECONDS - start)) s to end"
wait "$rank1"
expect_in "$work/tk0.log" "rank 1 of 2 ended without finishing"
"$gptrain" pretrain "${tiny[@]}" --max-steps 14 --grad-accum 2 --resume --out-dir "$work/tk" >> "$work/tk0.log" 2>&1 ||
  fail "the last checkpoint after a torchrun-style kill -9 did not resume: exit $?"
# a rank with another WORLD_SIZE is refused by name
port=$((port + 10))
torchrun_style "$port" 1 3 pretrain "${tiny[@]}" --max-steps 1 --out-dir "$work/tw" > "$work/tw1.log" 2>&1 &
rank1=$!
out=$(torchrun_style "$port" 0 2 pretrain "${tiny[@]}" --max-steps 1 --out-dir "$work/tw" 2>&1)
wait "$rank1"
echo "$out" | grep -q "a different WORLD_SIZE" || fail "WORLD_SIZE mismatch: $(echo "$out" | tail -2)"
# real torchrun, where PyTorch is installed (not in CI): its agent holds MASTER_PORT itself
if command -v torchrun > /dev/null && python3 -c "import torch" 2> /dev/null; then
  torchrun --nproc_per_node 2 --master_port $((port + 10)) --no-python "$gptrain" pretrain "${tiny[@]}" \
    --max-steps 12 --out-dir "$work/tr" > "$work/tr.log" 2>&1 || fail "torchrun exited $?: $(tail -3 "$work/tr.log")"
  cmp "$work/tr/final/model.safetensors" "$work/m/final/model.safetensors" || fail "torchrun: the weights differ"
  echo "torchrun --nproc_per_node 2: the weights equal mpirun's"
fi

# 6. 2 ranks on the host-emulated device: the device buffers go through the host to MPI and back
for z in 0 1; do
  "$mpirun" --oversubscribe -np 2 -x GPTRAIN_TEST_EMULATE_CUDA=1 "$gptrain" pretrain "${tiny[@]}" --max-steps 12 \
    --zero $z --device cuda --out-dir "$work/dev$z" > "$work/dev$z.log" 2>&1 || fail "2 ranks --device cuda --zero $z exited $?"
  cmp -s <(losses "$work/dev$z") <(losses "$work/m") || fail "2 ranks --device cuda --zero $z: losses differ from the CPU's"
  cmp -s "$work/dev$z/final/model.safetensors" "$work/m/final/model.safetensors" ||
    fail "2 ranks --device cuda --zero $z: other final weights"
  cmp -s "$work/dev$z/checkpoints/step_00000012/optimizer.safetensors" "$work/m/checkpoints/step_00000012/optimizer.safetensors" ||
    fail "2 ranks --device cuda --zero $z: other optimizer state"
done

# 7. --dtype bf16 on 2 ranks: the bf16 gradients are summed in float32 through the host and
# rounded once; the emulated device gives the CPU's bits; --zero 1 (each rank's block rounded once,
# the others' bf16 copy redrawn from the gathered weights) gives the unsharded run's bits.
"$mpirun" --oversubscribe -np 2 "$gptrain" pretrain "${tiny[@]}" --max-steps 4 --dtype bf16 --out-dir "$work/b" \
  > "$work/b.log" 2>&1 || fail "2 ranks --dtype bf16 exited $?"
for z in 0 1; do
  "$mpirun" --oversubscribe -np 2 -x GPTRAIN_TEST_EMULATE_CUDA=1 "$gptrain" pretrain "${tiny[@]}" --max-steps 4 \
    --dtype bf16 --zero $z --device cuda --out-dir "$work/bdev$z" > "$work/bdev$z.log" 2>&1 ||
    fail "2 ranks bf16 --device cuda --zero $z exited $?"
  cmp -s "$work/b/final/model.safetensors" "$work/bdev$z/final/model.safetensors" ||
    fail "2 ranks --dtype bf16 --zero $z: the emulated device's weights differ from the CPU's"
done
"$mpirun" --oversubscribe -np 2 "$gptrain" pretrain "${tiny[@]}" --max-steps 4 --dtype bf16 --zero 1 \
  --out-dir "$work/bz" > "$work/bz.log" 2>&1 || fail "2 ranks --dtype bf16 --zero 1 exited $?"
cmp -s <(losses "$work/bz") <(losses "$work/b") || fail "bf16 --zero 1: losses differ from the unsharded run"
cmp -s "$work/bz/final/model.safetensors" "$work/b/final/model.safetensors" || fail "bf16 --zero 1: other final weights"
cmp -s "$work/bz/checkpoints/step_00000004/optimizer.safetensors" "$work/b/checkpoints/step_00000004/optimizer.safetensors" ||
  fail "bf16 --zero 1: the checkpoint's optimizer state differs from the unsharded run's"

finish "data-parallel end-to-end"
