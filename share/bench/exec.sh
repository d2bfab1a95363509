#!/usr/bin/env bash
#
# share/bench/exec.sh -- mq-sub --exec (a process per message) against
# xargs -P running the same command over the same lines: the ceiling for
# process-per-message on this machine (make bench-exec, make bench).
#
# A broker on a temporary directory; N lines (MQ_BENCH_EXEC_LINES,
# default 5000) published to a topic of 4 partitions.  For each command
# (`true`, `cat >/dev/null`) and concurrency (1, 4):
#   xargs -d '\n' -n 1 -P C sh -c CMD sh < lines
#   mq-sub -t T -g G -e --exec CMD --concurrency C       (a new group each time)
# prints messages/s of both and mq-sub's share of the xargs rate, and
# checks that the group committed every message.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${MQ_BIN:-$root/bin}
lines=${MQ_BENCH_EXEC_LINES:-5000}
case $lines in
'' | *[!0-9]* | 0) echo "bench: MQ_BENCH_EXEC_LINES='$lines': give a whole number, at least 1" >&2; exit 1 ;;
esac
for p in mq-serve mq-pub mq-sub mq-admin; do
	[ -x "$bin/$p" ] || { echo "bench: $bin/$p is not built (run make)" >&2; exit 1; }
done
export PATH=$bin:$PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mq-bench-exec.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MQ_BROKER=tcp://127.0.0.1:$port
mq-serve -d "$tmp/data" -l "$MQ_BROKER" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/serve.log" && break; sleep 0.05; done
mq-admin topic create t --partitions 4 >/dev/null
seq 1 "$lines" >"$tmp/lines"
mq-pub -t t <"$tmp/lines"

now() { date +%s.%N; }
rate() { awk -v n="$lines" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", n / (b - a) }'; }

echo "mq-sub --exec against xargs -P, $lines messages, $(nproc) cores"
printf '%-18s %4s %12s %12s %8s\n' command conc "xargs msg/s" "mq-sub msg/s" "ratio"
g=0
for cmd in 'true' 'cat >/dev/null'; do
	for c in 1 4; do
		t0=$(now)
		xargs -d '\n' -n 1 -P "$c" sh -c "$cmd" sh <"$tmp/lines"
		t1=$(now)
		g=$((g + 1))
		mq-sub -t t -g "bench$g" -e -q --exec "$cmd" --concurrency "$c"
		t2=$(now)
		done=$(mq-admin group describe "bench$g" | awk '$1 == "t" { s += $3 } END { print s + 0 }')
		[ "$done" -eq "$lines" ] || { echo "bench: group bench$g committed $done of $lines" >&2; exit 1; }
		x=$(rate "$t0" "$t1") m=$(rate "$t1" "$t2")
		printf '%-18s %4s %12s %12s %7.0f%%\n' "$cmd" "$c" "$x" "$m" "$(awk -v a="$m" -v b="$x" 'BEGIN { print 100 * a / b }')"
	done
done
