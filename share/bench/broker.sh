#!/usr/bin/env bash
#
# share/bench/broker.sh -- mq-serve, mq-pub and mq-sub against cat,
# Redis Streams and mosquitto, on this machine, in one run (make bench).
#
#   1. cat of an N-line file of 100-byte lines through a pipe into a file (the ceiling)
#   2. mq-pub of that file; mq-sub -e of it to /dev/null; both at once
#   3. redis-benchmark -P 64 XADD into a Redis with appendonly everysec, and
#      mosquitto_pub -l -q 1 into a persistent mosquitto (the peers; from
#      `make bench-deps`; skipped with a note when not installed)
#
#   4. mq-pub and mq-sub again through a broker with CurveZMQ (--curve-secret,
#      --curve-allow): the cost of encryption
#
# Every server runs on loopback with its data in a temporary directory and
# is stopped afterwards.  Prints messages/s and ratios, and mq-serve's
# peak RSS.  Environment: MQ_BIN (programs), MQ_BENCH_LINES (default
# 1000000), MQ_BENCH_PEER_LINES (mosquitto, default 200000),
# MQ_BENCH_FSYNC (mq-serve --fsync, default: mq-serve's own default).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${MQ_BIN:-$root/bin}
lines=${MQ_BENCH_LINES:-1000000}
peer_lines=${MQ_BENCH_PEER_LINES:-200000}

for p in mq-serve mq-pub mq-sub; do
	[ -x "$bin/$p" ] || { echo "bench: $bin/$p is not built (run make)" >&2; exit 1; }
done

# shellcheck source=share/bench/common.sh
. "$root/share/bench/common.sh"
bench_tmp mq-bench
now() { date +%s.%N; }
rate() { # count seconds
	awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'
}
row() { # label count seconds
	printf '%-44s %9s msgs %8.3f s %12s msgs/s\n' "$1" "$2" "$3" "$(rate "$2" "$3")"
}

# The input: N lines of 100 bytes (99 characters and the newline).
"$bench_py" - "$tmp/in.txt" "$lines" <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    pad = "x" * 80
    f.writelines("%018d%s\n" % (i, pad) for i in range(n))
PY
sync

echo "bench: $lines lines of 100 bytes; $(nproc) cores"
t0=$(now); cat "$tmp/in.txt" | cat >"$tmp/out.txt"; t1=$(now)
cat_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
row "cat | cat > file (the ceiling)" "$lines" "$cat_s"
rm -f "$tmp/out.txt"

port=$(free_port)
ep=tcp://127.0.0.1:$port
serve_args=(-d "$tmp/mq" -l "$ep" -q)
[ -n "${MQ_BENCH_FSYNC:-}" ] && serve_args+=(--fsync "$MQ_BENCH_FSYNC")
"$bin/mq-serve" "${serve_args[@]}" 2>"$tmp/serve.log" &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 100); do grep -q 'listening on' "$tmp/serve.log" 2>/dev/null && break; sleep 0.05; done
export MQ_BROKER=$ep

t0=$(now); "$bin/mq-pub" -t bench <"$tmp/in.txt"; t1=$(now)
pub_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
row "mq-pub < file" "$lines" "$pub_s"

t0=$(now); n=$("$bin/mq-sub" -t bench -e | wc -l); t1=$(now)
sub_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
[ "$n" -eq "$lines" ] || echo "bench: mq-sub read $n messages, expected $lines" >&2
row "mq-sub -e > /dev/null (backlog)" "$lines" "$sub_s"

t0=$(now)
"$bin/mq-sub" -t bench2 -n "$lines" >/dev/null &
sub_pid=$!
"$bin/mq-pub" -t bench2 <"$tmp/in.txt"
wait "$sub_pid"
t1=$(now)
e2e_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
row "mq-pub | mq-sub at once (end to end)" "$lines" "$e2e_s"
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$serve_pid/status")
echo "mq-serve peak RSS: $((rss / 1024)) MiB"

# The same with CurveZMQ: every byte encrypted, the client's key checked
# against an allow-list.  A broker of its own, on another port and data
# directory, so the two runs do not share page cache for the log.
curve_pub_s= curve_sub_s=
if "$bin/mq-admin" keygen >/dev/null 2>&1; then
	mkdir -p "$tmp/keys/allow" && chmod 700 "$tmp/keys" "$tmp/keys/allow"
	"$bin/mq-admin" keygen --secret "$tmp/keys/server.key" --public "$tmp/keys/server.pub"
	"$bin/mq-admin" keygen --secret "$tmp/keys/client.key" --public "$tmp/keys/allow/bench"
	cport=$(free_port)
	"$bin/mq-serve" -d "$tmp/mq-curve" -l "tcp://127.0.0.1:$cport" -q --curve-secret "$tmp/keys/server.key" \
		--curve-allow "$tmp/keys/allow" ${MQ_BENCH_FSYNC:+--fsync "$MQ_BENCH_FSYNC"} 2>"$tmp/serve-curve.log" &
	pids+=("$!")
	for _ in $(seq 100); do grep -q 'listening on' "$tmp/serve-curve.log" 2>/dev/null && break; sleep 0.05; done
	ckeys=(-b "tcp://127.0.0.1:$cport" --curve-server "$tmp/keys/server.pub" --curve-secret "$tmp/keys/client.key")
	t0=$(now); "$bin/mq-pub" "${ckeys[@]}" -t bench <"$tmp/in.txt"; t1=$(now)
	curve_pub_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	row "mq-pub < file, CurveZMQ" "$lines" "$curve_pub_s"
	t0=$(now); n=$("$bin/mq-sub" "${ckeys[@]}" -t bench -e | wc -l); t1=$(now)
	curve_sub_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	[ "$n" -eq "$lines" ] || echo "bench: mq-sub (CurveZMQ) read $n messages, expected $lines" >&2
	row "mq-sub -e > /dev/null (backlog), CurveZMQ" "$lines" "$curve_sub_s"
else
	echo "CurveZMQ: this libzmq has none (built without libsodium); skipped"
fi

# Peers.
redis_rate= mosq_rate=
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
	start_redis
	val=$(printf 'x%.0s' $(seq 100))
	t0=$(now)
	redis-benchmark -p "$rport" -P 64 -n "$lines" -q XADD bench '*' v "$val" >"$tmp/rb.txt" 2>&1
	t1=$(now)
	redis_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	row "redis-benchmark -P 64 XADD (appendfsync everysec)" "$lines" "$redis_s"
	redis_rate=$(rate "$lines" "$redis_s")
else
	echo "redis: not installed (make bench-deps)"
fi
if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null; then
	start_mosquitto
	head -n "$peer_lines" "$tmp/in.txt" >"$tmp/peer.txt"
	t0=$(now)
	mosquitto_pub -p "$mport" -h 127.0.0.1 -q 1 -t bench -l <"$tmp/peer.txt"
	t1=$(now)
	mosq_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	row "mosquitto_pub -l -q 1 (persistent)" "$peer_lines" "$mosq_s"
	mosq_rate=$(rate "$peer_lines" "$mosq_s")
else
	echo "mosquitto: not installed (make bench-deps)"
fi

pub_rate=$(rate "$lines" "$pub_s")
echo
echo "ratios: mq-pub/cat $(awk -v a="$cat_s" -v b="$pub_s" 'BEGIN { printf "%.2f", a / b }')" \
	"mq-sub/cat $(awk -v a="$cat_s" -v b="$sub_s" 'BEGIN { printf "%.2f", a / b }')" \
	"end-to-end/cat $(awk -v a="$cat_s" -v b="$e2e_s" 'BEGIN { printf "%.2f", a / b }')"
[ -n "$curve_pub_s" ] && echo "CurveZMQ: publish $(awk -v a="$pub_s" -v b="$curve_pub_s" 'BEGIN { printf "%.2f", a / b }')x," \
	"consume $(awk -v a="$sub_s" -v b="$curve_sub_s" 'BEGIN { printf "%.2f", a / b }')x of the plain rate"
[ -n "$redis_rate" ] && echo "ratio: mq-pub / Redis XADD $(awk -v a="$pub_rate" -v b="$redis_rate" 'BEGIN { printf "%.2f", a / b }')"
[ -n "$mosq_rate" ] && echo "ratio: mq-pub / mosquitto QoS 1 $(awk -v a="$pub_rate" -v b="$mosq_rate" 'BEGIN { printf "%.2f", a / b }')"
echo "targets: publish >= 2000000/s, consume >= 3000000/s, end to end >= 1500000/s, RSS < 64 MiB"
