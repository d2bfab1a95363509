#!/usr/bin/env bash
#
# share/bench/filters.sh -- the pipe filters mq-bucket and mq-dedup against
# cat and awk, on this machine, in one run (make bench-filters, make bench).
#
#   1. cat < in | wc -l                           the pipe ceiling
#   2. mq-bucket -r 1000000000/s < in | wc -l     a rate never reached: the cost of passing
#   3. awk '!seen[$0]++' < in | wc -l             the usual one-line dedup (mawk or gawk)
#   4. mq-dedup --window N < in | wc -l           every line remembered, as awk does
#
# The input is N distinct lines of 100 bytes (99 characters and the
# newline) in a temporary file, written and synced before any timing.
# Every command reads it on standard input and writes into a pipe to
# `wc -l`, the same consumer for all; the count it prints is checked
# (every line is distinct, so every command must pass all N).  Prints
# records/s for each, the time ratios mq-bucket/cat and mq-dedup/awk,
# and whether the targets are met: at least 5,000,000 records/s, and
# within 3 times the time of cat (mq-bucket) or awk (mq-dedup).
# Environment: MQ_BIN (programs), MQ_BENCH_FILTER_LINES (default 10000000).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${MQ_BIN:-$root/bin}
lines=${MQ_BENCH_FILTER_LINES:-10000000}
floor=5000000
bound=3

for p in mq-bucket mq-dedup; do
	[ -x "$bin/$p" ] || { echo "bench: $bin/$p is not built (run make)" >&2; exit 1; }
done
case $lines in
'' | *[!0-9]* | 0) echo "bench: MQ_BENCH_FILTER_LINES='$lines': give a whole number of lines, at least 1" >&2; exit 1 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mq-bench-filters.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
calc() { # awk-expression var=value...
	local e=$1
	shift
	local args=()
	for a in "$@"; do args+=(-v "$a"); done
	awk "${args[@]}" "BEGIN { $e }"
}

# Which awk `awk` is: mawk and gawk differ several times over here.
awk_path=$(command -v awk)
awk_real=$(readlink -f "$awk_path")
case $(basename "$awk_real") in
mawk) awk_name="mawk $(awk -W version 2>/dev/null | awk 'NR == 1 { print $2; exit }')" ;;
gawk) awk_name="gawk $(awk --version 2>/dev/null | awk 'NR == 1 { print $3; exit }' | tr -d ,)" ;;
*) awk_name=$(basename "$awk_real") ;;
esac

# The input: N distinct lines of 100 bytes (99 characters and the newline).
pad=$(printf 'x%.0s' $(seq 80))
awk -v n="$lines" -v pad="$pad" 'BEGIN { for (i = 0; i < n; i++) printf "%019d%s\n", i, pad }' >"$tmp/in.txt"
sync

# time_run LABEL CMD...: runs CMD < in | wc -l, checks the count, prints
# a row and leaves the seconds in $secs.
secs=
time_run() {
	local label=$1
	shift
	local t0 t1 n
	t0=$(now)
	n=$("$@" <"$tmp/in.txt" | wc -l)
	t1=$(now)
	secs=$(calc 'printf "%.3f", b - a' a="$t0" b="$t1")
	[ "$n" -eq "$lines" ] || { echo "bench: $label passed $n lines, expected $lines" >&2; exit 1; }
	printf '%-40s %9s recs %8.3f s %12s recs/s\n' "$label" "$lines" "$secs" \
		"$(calc 'printf "%.0f", n / s' n="$lines" s="$secs")"
}

echo "bench: $lines distinct lines of 100 bytes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: each command reads the file on stdin and writes into a pipe to wc -l"
echo "bench: awk is $awk_path -> $awk_real ($awk_name)"
time_run "cat (the pipe ceiling)" cat
cat_s=$secs
time_run "mq-bucket -r 1000000000/s" "$bin/mq-bucket" -r 1000000000/s
bucket_s=$secs
# shellcheck disable=SC2016 # $0 is awk's, not the shell's
time_run "awk '!seen[\$0]++' ($awk_name)" awk '!seen[$0]++'
awk_s=$secs
time_run "mq-dedup --window $lines" "$bin/mq-dedup" --window "$lines"
dedup_s=$secs

verdict() { # label seconds peer-seconds peer
	calc 'r = n / s; q = s / p;
	      printf "%-10s %10.0f recs/s (%s %s/s), %.2fx the time of %s (%s %sx)\n", l, r,
	             (r >= f ? "meets" : "BELOW"), f, q, peer, (q <= b ? "within" : "NOT within"), b' \
		l="$1" s="$2" p="$3" peer="$4" n="$lines" f="$floor" b="$bound"
}
echo
echo "ratios (time): mq-bucket/cat $(calc 'printf "%.2f", a / b' a="$bucket_s" b="$cat_s")" \
	"mq-dedup/awk $(calc 'printf "%.2f", a / b' a="$dedup_s" b="$awk_s")"
verdict mq-bucket "$bucket_s" "$cat_s" cat
verdict mq-dedup "$dedup_s" "$awk_s" awk
echo "targets: >= $floor records/s each, and within ${bound}x the time of cat (mq-bucket) and awk (mq-dedup)"
