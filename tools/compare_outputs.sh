#!/usr/bin/env bash
# compare_outputs.sh A B — compare two capture dirs written by capture_outputs.sh.
# Every file must be byte-identical, except *metrics.jsonl, compared with the "tokens_per_s" field
# removed (the logs had their wall-time fields stripped by capture_outputs.sh already). The runs/ dir
# (run dirs and raw logs) is not compared. Prints each difference (file and a short diff) and
# exits 1 when anything differs; prints "identical" and exits 0 otherwise.
set -uo pipefail
if [ $# -ne 2 ] || [ ! -d "$1" ] || [ ! -d "$2" ]; then
  echo "usage: $0 CAPTURE_DIR_A CAPTURE_DIR_B" >&2
  exit 2
fi
A=$1
B=$2
export LC_ALL=C
MAXLINES=${MAXLINES:-20}

list() { (cd "$1" && find . -path ./runs -prune -o \( -type f -o -type l \) -print | sed 's#^\./##' | sort); }
no_tps() { sed -E 's/"tokens_per_s":[^,}]*,?//g; s/,}/}/g' "$1"; }

diffs=0
report() {  # report FILE MESSAGE [DIFF]
  diffs=$((diffs + 1))
  echo "DIFFERS: $1: $2"
  if [ -n "${3:-}" ]; then
    local n
    n=$(printf '%s\n' "$3" | wc -l)
    printf '%s\n' "$3" | head -n "$MAXLINES" | cut -c1-300 | sed 's/^/    /'
    [ "$n" -le "$MAXLINES" ] || echo "    ... ($((n - MAXLINES)) more diff lines)"
  fi
}

while IFS= read -r f; do
  report "$f" "only in $A"
done < <(comm -23 <(list "$A") <(list "$B"))
while IFS= read -r f; do
  report "$f" "only in $B"
done < <(comm -13 <(list "$A") <(list "$B"))

while IFS= read -r f; do
  a="$A/$f"
  b="$B/$f"
  case "$f" in
    *metrics.jsonl)
      if ! cmp -s <(no_tps "$a") <(no_tps "$b"); then
        report "$f" "metrics differ (tokens_per_s ignored)" "$(diff <(no_tps "$a") <(no_tps "$b"))"
      fi
      ;;
    *)
      if ! cmp -s "$a" "$b"; then
        if grep -qI . "$a" 2>/dev/null || [ ! -s "$a" ]; then
          report "$f" "content differs" "$(diff -a "$a" "$b")"
        else
          report "$f" "binary content differs" "$(cmp "$a" "$b" 2>&1 | head -1)"
        fi
      fi
      ;;
  esac
done < <(comm -12 <(list "$A") <(list "$B"))

if [ "$diffs" -ne 0 ]; then
  echo "$diffs difference(s) between $A and $B"
  exit 1
fi
echo "identical"
