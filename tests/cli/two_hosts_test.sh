#!/usr/bin/env bash
# Data-parallel training across two "hosts" (issue 16, must show 5): two network namespaces joined
# by a veth pair, one rank in each, talking TCP only (Open MPI's tcp btl and out-of-band channel
# on the pair's subnet; no shared memory). mpirun runs in the first namespace and starts the
# second rank's daemon through an rsh agent this script writes, which enters the other namespace
# (`ip netns exec`), as ssh would reach another machine. The run must equal the same 2 ranks on
# shared memory bit for bit (the same two-value sums, only the transport differs) and one process
# with --grad-accum 2 within the bound of tests/cli/dist_test.sh.
# Needs root with CAP_NET_ADMIN (ip netns, veth); exits 77 (skipped) without them.
# Usage: two_hosts_test.sh GPTRAIN_BINARY MPIRUN
set -uo pipefail
mpirun=$2
source "$(dirname "$0")/common.sh" "$1" the-verdict.txt gpt2_tokenizer/encoder.json
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
id=$$
ns0=gptrain-a$id ns1=gptrain-b$id
net=10.$((id % 200 + 20)).$(((id / 200) % 250)).0
a=${net%.0}.1 b=${net%.0}.2
cleanup() {
  ip netns del "$ns0" 2>/dev/null
  ip netns del "$ns1" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$(id -u)" -ne 0 ] || ! command -v ip > /dev/null || ! ip netns add "$ns0" 2> /dev/null; then
  echo "SKIP: needs root with network namespaces (ip netns, CAP_NET_ADMIN)"
  exit 77
fi
ip netns add "$ns1" && ip link add "v$id" type veth peer name "w$id" && ip link set "v$id" netns "$ns0" &&
  ip link set "w$id" netns "$ns1" && ip -n "$ns0" addr add "$a/24" dev "v$id" && ip -n "$ns1" addr add "$b/24" dev "w$id" &&
  ip -n "$ns0" link set "v$id" up && ip -n "$ns1" link set "w$id" up && ip -n "$ns0" link set lo up &&
  ip -n "$ns1" link set lo up || { echo "SKIP: cannot make a veth pair between namespaces"; exit 77; }

cat > "$work/agent.sh" <<AGENT
#!/bin/sh
# Open MPI's rsh agent: "agent HOST COMMAND..." runs COMMAND in HOST's namespace.
host=\$1
shift
case "\$host" in
  $a) ns=$ns0 ;;
  $b) ns=$ns1 ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent.sh"
printf '%s slots=1\n%s slots=1\n' "$a" "$b" > "$work/hosts"

tiny=(--data-dir "$data" --emb-dim 32 --n-layers 2 --n-heads 2 --context-length 32 --drop-rate 0.1 --lr 1e-3
      --eval-interval 1 --eval-iters 1 --sample-tokens 0 --threads 1 --save-interval 6 --batch-size 1 --max-steps 12)
losses() { sed -E 's/.*"step":([0-9]+).*"step_loss":([^,}]*).*/\1 \2/' "$1/metrics.jsonl"; }

ip netns exec "$ns0" "$mpirun" --hostfile "$work/hosts" -np 2 --mca plm rsh --mca plm_rsh_agent "$work/agent.sh" \
  --mca btl tcp,self --mca btl_tcp_if_include "$net/24" --mca oob_tcp_if_include "$net/24" -x OMP_NUM_THREADS \
  "$gptrain" pretrain "${tiny[@]}" --out-dir "$work/tcp" > "$work/tcp.log" 2>&1 || fail "two hosts exited $?"
expect_in "$work/tcp.log" "2 ranks (mpi)"
OMPI_MCA_plm=isolated OMPI_MCA_btl_vader_single_copy_mechanism=none "$mpirun" --oversubscribe -np 2 "$gptrain" pretrain \
  "${tiny[@]}" --out-dir "$work/shm" > "$work/shm.log" 2>&1 || fail "shared memory exited $?"
cmp -s <(losses "$work/tcp") <(losses "$work/shm") || fail "two hosts over TCP differ from shared memory"
cmp -s "$work/tcp/final/model.safetensors" "$work/shm/final/model.safetensors" || fail "two hosts: other final weights"
"$gptrain" pretrain "${tiny[@]}" --grad-accum 2 --out-dir "$work/one" > "$work/one.log" 2>&1 || fail "one process exited $?"
bound=$(awk 'BEGIN { u = 2^-24; K = 128; printf "%.6g", K * u / (1 - K * u) * 15 }')
worst=$(paste <(losses "$work/tcp") <(losses "$work/one") | awk '{ e = ($2 - $4) / $4; if (e < 0) e = -e; if (e > w) w = e } END { printf "%.3g", w }')
echo "two hosts over TCP: losses equal shared memory bit for bit; against one process with --grad-accum 2: largest rel. difference $worst (bound $bound)"
awk -v w="$worst" -v b="$bound" 'BEGIN { exit !(w <= b) }' || fail "two hosts vs one process: $worst above $bound"
finish "two hosts"
