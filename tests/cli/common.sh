# Sourced by the CLI end-to-end scripts: `source common.sh BINARY FILE...` sets gptrain (the
# binary) and data ($GPTRAIN_TEST_DATA_DIR), exits 77 (ctest's skip) naming the first of the FILEs
# (data-dir paths) that is missing, makes a work dir removed on exit, and defines the checks.
gptrain=$1
shift
data=${GPTRAIN_TEST_DATA_DIR:-}
for needed in "$@"; do
  if [ -z "$data" ] || [ ! -f "$data/$needed" ]; then
    echo "SKIP: the data directory ($needed) is not available: set GPTRAIN_TEST_DATA_DIR"
    exit 77
  fi
done
work=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_in() {  # expect_in FILE PATTERN
  grep -q -- "$2" "$1" || fail "expected '$2' in $1; got: $(tail -3 "$1")"
}
# expect_error PATTERN ARGS...: `gptrain ARGS` fails with PATTERN in its output and exit code 1
# (gptrain's own errors); expect_usage_error: an option CLI11 refuses while parsing (CLI11's own
# exit codes: 105, 107, ...). A refusal comes at once: the command is killed after
# $expect_timeout seconds (default 600), so a binary that wrongly accepts a long run cannot stall
# the script; set it lower on one call (expect_timeout=60 expect_error ...) where that can happen.
expect_error() { expect_failure 1 "$@"; }
expect_usage_error() { expect_failure usage "$@"; }
expect_failure() {
  local kind=$1 pattern=$2
  shift 2
  local out
  out=$(timeout --kill-after=5 "${expect_timeout:-600}" "$gptrain" "$@" 2>&1)
  local rc=$?
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || out="(killed after ${expect_timeout:-600} s) $out"
  if [ "$kind" = usage ]; then
    [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] || fail "expected a usage error (CLI11's exit code) for: $* (got $rc)"
  else
    [ "$rc" -eq 1 ] || fail "expected exit 1 for: $* (got $rc)"
  fi
  echo "$out" | grep -q -- "$pattern" || fail "expected '$pattern' for: $*; got: $(echo "$out" | tail -2)"
}
finish() {  # finish NAME [LOG_LINES]: the verdict, with the tail of every log on failure
  if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s); logs:"
    tail -n "${2:-5}" "$work"/*.log
    exit 1
  fi
  echo "$1: all checks passed"
}
