# tests/fault/lib.bash -- sourced by tests/fault/*.sh.
#
#   fault_init NAME          a temporary directory in $FAULT_TMP (removed at exit,
#                            with every broker started here killed)
#   fault_scale QUICK FULL   prints QUICK under MQ_FAULT_SCALE=quick, else FULL
#   fault_port               a free TCP port
#   fault_broker_start [ARGS...]  mq-serve -d $FAULT_TMP/data on $FAULT_PORT (the
#                            same port every time), waits until it listens;
#                            sets FAULT_BROKER_PID; its log is $FAULT_TMP/broker.log
#   fault_broker_kill        SIGKILL and reap
#   fault_broker_stop        SIGTERM and reap; fails unless it exits 0
#   fault_fail MSG           says MSG on stderr and marks the script failed
#   fault_done SUMMARY       prints SUMMARY and exits 0, or 1 after a fault_fail

set -uo pipefail

FAULT_FAILED=0
FAULT_BROKER_PID=
FAULT_PORT=

fault_init() {
	FAULT_NAME=$1
	FAULT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mq-fault-$1.XXXXXX") || exit 1
	trap '_fault_cleanup' EXIT
	export MQ_BIN=${MQ_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin}
	export PATH="$MQ_BIN:$PATH"
	FAULT_PORT=$(fault_port) || exit 1
	export MQ_BROKER=tcp://127.0.0.1:$FAULT_PORT
}

_fault_cleanup() {
	[ -n "$FAULT_BROKER_PID" ] && kill -9 "$FAULT_BROKER_PID" 2>/dev/null
	wait 2>/dev/null
	[ "${MQ_FAULT_KEEP:-0}" = 1 ] && { echo "kept $FAULT_TMP" >&2; return; }
	rm -rf "$FAULT_TMP"
}

fault_scale() { if [ "${MQ_FAULT_SCALE:-full}" = quick ]; then echo "$1"; else echo "$2"; fi; }

fault_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

fault_broker_start() {
	local i
	mq-serve -d "$FAULT_TMP/data" -l "tcp://127.0.0.1:$FAULT_PORT" "$@" 2>>"$FAULT_TMP/broker.log" &
	FAULT_BROKER_PID=$!
	for ((i = 0; i < 200; i++)); do
		if [ "$(grep -c 'mq-serve: listening on' "$FAULT_TMP/broker.log")" -gt "${_fault_starts:-0}" ]; then
			_fault_starts=$((${_fault_starts:-0} + 1))
			return 0
		fi
		kill -0 "$FAULT_BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	fault_fail "mq-serve did not start on port $FAULT_PORT; its log: $(tail -5 "$FAULT_TMP/broker.log")"
	return 1
}

fault_broker_kill() {
	[ -n "$FAULT_BROKER_PID" ] || return 0
	kill -9 "$FAULT_BROKER_PID" 2>/dev/null
	wait "$FAULT_BROKER_PID" 2>/dev/null
	FAULT_BROKER_PID=
}

fault_broker_stop() {
	local rc
	[ -n "$FAULT_BROKER_PID" ] || return 0
	kill -TERM "$FAULT_BROKER_PID" 2>/dev/null
	wait "$FAULT_BROKER_PID"
	rc=$?
	FAULT_BROKER_PID=
	[ "$rc" -eq 0 ] || fault_fail "mq-serve exited $rc on SIGTERM"
}

fault_fail() {
	echo "$FAULT_NAME: FAIL: $*" >&2
	FAULT_FAILED=1
}

fault_done() {
	echo "$FAULT_NAME: $*"
	[ "$FAULT_FAILED" -eq 0 ] && exit 0
	exit 1
}
