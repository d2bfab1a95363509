#!/usr/bin/env bash
#
# share/demo.sh -- a short tour of mq with whatever programs are built
# (run by `make demo`).  Every step runs a real program and shows its own
# output; a step whose program is not built yet is left out, and a step
# that fails stops the demo with its exit status.
#
#   the broker (bin/mq-serve): publish with ids, a group through mq-dedup
#   and mq-bucket, topic patterns, a shared bucket, mq-lag, mq-admin, verify;
#   then a CurveZMQ broker: keys made, a listed client let in, one without keys refused
#   the pipe filters (bin/mq-dedup, bin/mq-bucket)
#   the partition log (build/bench/bench_log -n N -d DIR -k), then
#   bin/mq-admin verify on the partition it leaves
#
# Environment: MQ_BIN (default bin/), MQ_BENCH_DIR (default build/bench/),
# MQ_DEMO_RECORDS (records for the log benchmark, default 200000).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${MQ_BIN:-$root/bin}
bench=${MQ_BENCH_DIR:-$root/build/bench}
records=${MQ_DEMO_RECORDS:-200000}
shown=0
broker_pid=

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mq-demo.XXXXXX") || {
	echo "demo: cannot create a temporary directory in ${TMPDIR:-/tmp}; check that it exists and is writable" >&2
	exit 1
}
cleanup() {
	if [ -n "$broker_pid" ]; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

heading() { printf '\n== %s\n' "$*"; }

# Print a command line as typed (program names without their directory),
# run it, and stop the demo if it fails.
run() {
	local prog=$1 shown_cmd=${1##*/} arg st=0
	shift
	for arg in "$@"; do
		shown_cmd+=" $(printf '%q' "$arg")"
	done
	shown_cmd=${shown_cmd//"$tmp"/\$DEMO}
	printf '$ %s%s\n' "$shown_cmd" "$run_input"
	"$prog" "$@" || st=$?
	if [ "$st" -ne 0 ]; then
		echo "demo: '$shown_cmd' failed with exit status $st (see its message above)" >&2
		exit "$st"
	fi
}

# run with stdin from a file, shown as "< FILE".
run_input=
run_from() { # file command...
	local in=$1
	shift
	run_input=" < ${in//"$tmp"/\$DEMO}"
	run "$@" <"$in"
	run_input=
}

have() { [ -x "$bin/$1" ]; }

# Print a shell pipeline (with $DEMO for the temporary directory) and run
# it with the programs in $bin first in PATH; stop the demo if it fails.
pipe() {
	local line=$1 st=0
	printf '$ %s\n' "$line"
	DEMO=$tmp PATH="$bin:$PATH" bash -o pipefail -c "$line" || st=$?
	if [ "$st" -ne 0 ]; then
		echo "demo: '$line' failed with exit status $st (see its message above)" >&2
		exit "$st"
	fi
}

free_port() {
	local py=python3
	[ -x /usr/bin/python3 ] && py=/usr/bin/python3
	"$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Start mq-serve in the background (broker_pid) with its messages in log,
# and wait until it listens; stop the demo if it does not.
start_serve() { # log args...
	local log=$1 i
	shift
	"$bin/mq-serve" "$@" </dev/null >/dev/null 2>"$log" &
	broker_pid=$!
	for ((i = 0; i < 200; i++)); do
		grep -q 'mq-serve: listening on' "$log" && break
		if ! kill -0 "$broker_pid" 2>/dev/null; then
			echo "demo: mq-serve exited before listening; its messages:" >&2
			cat "$log" >&2
			exit 1
		fi
		sleep 0.05
	done
	if ! grep -q 'mq-serve: listening on' "$log"; then
		echo "demo: mq-serve did not say 'listening on' within 10s; its messages:" >&2
		cat "$log" >&2
		exit 1
	fi
	cat "$log"
}

# SIGTERM: flush and exit 0; stop the demo if it does not.
stop_serve() { # log
	kill -TERM "$broker_pid"
	local st=0
	wait "$broker_pid" || st=$?
	broker_pid=
	if [ "$st" -ne 0 ]; then
		echo "demo: mq-serve exited with status $st on SIGTERM; its messages:" >&2
		cat "$1" >&2
		exit 1
	fi
	echo "mq-serve exited 0"
}

broker_tour() {
	local port log
	port=$(free_port) || {
		echo "demo: cannot get a free TCP port (python3 missing? run make deps)" >&2
		exit 1
	}
	log=$tmp/mq-serve.log
	heading "The broker: mq-serve on tcp://127.0.0.1:$port, data in \$DEMO/data"
	start_serve "$log" -d "$tmp/data" -l "tcp://127.0.0.1:$port" --lag-interval 200ms
	export MQ_BROKER=tcp://127.0.0.1:$port

	if have mq-pub && have mq-sub && have mq-dedup && have mq-bucket; then
		heading "Publish orders keyed by customer; a repeated order id is stored once (--id key)"
		printf '%s\n' 'o1 alice 12.50' 'o2 bob 3.10' 'o3 alice 7.00' 'o2 bob 3.10' 'o4 carol 99.99' >"$tmp/orders.txt"
		pipe "mq-pub -t orders -K ' ' --id key -v < \$DEMO/orders.txt"
		heading "A consumer group 'billing' through the filters: drop repeated customers, at most 20/s"
		pipe "mq-sub -t orders -g billing -e -F '%k %s\\n' | mq-dedup --by field:2 -d ' ' | mq-bucket -r 20/s -B 2"
		heading "Topics by pattern: every 'logs.*', with their names"
		pipe "printf 'GET /\\nGET /about\\n' | mq-pub -t logs.web"
		pipe "printf 'slow query\\n' | mq-pub -t logs.db"
		pipe "mq-sub -t 'logs.*' -e -F '%t: %s\\n'"
		heading "A shared token bucket in the broker: one nightly run a minute, whoever asks"
		pipe "mq-bucket --take nightly -r 1/m -B 1 && echo 'got the token: run'"
		pipe "mq-bucket --take nightly -w 0 -q || echo 'no token left: skip (exit 1)'"
	fi
	if have mq-lag; then
		heading "Lag: publish 1000 more, read 400 of them in the group"
		pipe "seq 1000 | mq-pub -t orders && mq-sub -t orders -g billing -n 400 > /dev/null"
		pipe "mq-lag -g billing; echo \"(exit \$? = monitoring status)\""
		pipe "mq-lag -g billing -f prom > \$DEMO/lag.prom; grep -v '^#' \$DEMO/lag.prom"
	fi
	if have mq-admin; then
		heading "Administration"
		pipe "mq-admin topic list -v"
		pipe "mq-admin group describe billing"
		pipe "mq-admin ping"
	fi

	heading "Stop the broker (SIGTERM: flush and exit 0)"
	stop_serve "$log"
	if have mq-admin; then
		heading "Check the data directory offline"
		run "$bin/mq-admin" verify "$tmp/data"
	fi
	shown=1
}

curve_tour() {
	have mq-admin && have mq-pub && have mq-sub || return 0
	if ! "$bin/mq-admin" keygen >/dev/null 2>&1; then
		echo "(CurveZMQ: this libzmq has none, so no encrypted broker to show)"
		return 0
	fi
	local port log=$tmp/mq-serve-curve.log
	port=$(free_port) || exit 1
	heading "Encrypted: a broker that lets in only the keys in a directory"
	mkdir -m 700 "$tmp/clients"
	run "$bin/mq-admin" keygen --secret "$tmp/server.key" --public "$tmp/server.pub"
	run "$bin/mq-admin" keygen --secret "$tmp/alice.key" --public "$tmp/clients/alice"
	printf '$ mq-serve -d $DEMO/secure -l :%s --curve-secret $DEMO/server.key --curve-allow $DEMO/clients &\n' "$port"
	start_serve "$log" -d "$tmp/secure" -l "tcp://127.0.0.1:$port" --curve-secret "$tmp/server.key" \
		--curve-allow "$tmp/clients"
	pipe "export MQ_CURVE_SERVER=\$DEMO/server.pub MQ_CURVE_SECRET=\$DEMO/alice.key; mq-pub -b :$port -t secrets -m 'for alice only' && mq-sub -b :$port -t secrets -e"
	pipe "mq-sub -b :$port -t secrets -e || echo '(no keys: refused at once, exit 1)'"
	stop_serve "$log"
}

filter_tour() {
	if have mq-dedup; then
		heading "mq-dedup: drop repeated lines"
		printf 'a\nb\na\nc\nb\n' >"$tmp/dups.txt"
		run_from "$tmp/dups.txt" "$bin/mq-dedup"
		shown=1
	fi
	if have mq-bucket; then
		heading "mq-bucket: 10 lines at 20/s with a burst of 5 (about a quarter second)"
		seq 1 10 >"$tmp/ten.txt"
		run_from "$tmp/ten.txt" "$bin/mq-bucket" -r 20/s -B 5
		shown=1
	fi
}

log_tour() {
	heading "The partition log benchmark (tests/bench/bench_log.c), $records records"
	mkdir -p "$tmp/bench"
	run "$bench/bench_log" -n "$records" -d "$tmp/bench" -k
	if have mq-admin; then
		# bench_log writes one partition (DIR/p0), not a whole data directory.
		local target=$tmp/bench/p0
		[ -f "$tmp/bench/format" ] && target=$tmp/bench
		heading "Check the data it left, offline"
		run "$bin/mq-admin" verify "$target"
	fi
	shown=1
}

if have mq-serve; then
	broker_tour
	curve_tour
else
	echo "demo: bin/mq-serve is not built yet, so there is no broker to show; showing what is built."
fi
filter_tour
if [ -x "$bench/bench_log" ]; then
	log_tour
fi
if [ "$shown" -eq 0 ]; then
	echo "demo: nothing to show yet: neither $bin/mq-serve nor $bench/bench_log is built (their sources are cmd/mq-serve.c and tests/bench/bench_log.c)"
fi
