# shellcheck shell=bash
# share/bench/common.sh -- sourced by the benchmark scripts: a temporary
# directory and the servers in it, stopped at exit, and the peers they
# compare mq with, each on loopback on a free port with its data in $tmp.
#
#   bench_tmp NAME     tmp=$(mktemp -d .../NAME.XXXXXX); pids=(); an EXIT
#                      trap that TERMs and waits for every pid in pids, then
#                      removes $tmp
#   free_port          a TCP port the kernel says is free
#   peer_wait LOG TEXT NAME   wait (10 s at most) until LOG holds TEXT
#   start_redis        redis-server, appendonly with appendfsync everysec; sets rport
#   start_mosquitto    mosquitto with persistence on; sets mport
#
# A server started in the background is added to pids; each start_*
# returns once the server is ready, or fails showing its log.

bench_py=/usr/bin/python3
[ -x "$bench_py" ] || bench_py=python3

bench_tmp() { # name
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}

free_port() {
	"$bench_py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until file $1 holds text $2 (at most 10 s); else show it and fail.
peer_wait() { # log text name
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: $3 did not start within 10 s; its log ($1):" >&2
	cat "$1" >&2
	return 1
}

start_redis() {
	rport=$(free_port)
	mkdir -p "$tmp/redis"
	redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp/redis" --appendonly yes \
		--appendfsync everysec --save '' --daemonize no >"$tmp/redis.log" 2>&1 &
	pids+=($!)
	peer_wait "$tmp/redis.log" 'Ready to accept connections' redis-server
}

# Persistence saves the in-memory database every autosave_interval and at
# exit, not per message.  user: as root, mosquitto would otherwise switch
# to user mosquitto, which cannot write into $tmp (mode 0700) and so could
# not save its database.
start_mosquitto() {
	mport=$(free_port)
	mkdir -p "$tmp/mosq"
	printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 0\nuser %s\n' \
		"$mport" "$tmp/mosq" "$(id -un)" >"$tmp/mosq.conf"
	mosquitto -c "$tmp/mosq.conf" >"$tmp/mosq.log" 2>&1 &
	pids+=($!)
	peer_wait "$tmp/mosq.log" ' running' mosquitto
}
