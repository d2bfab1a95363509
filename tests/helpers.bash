# tests/helpers.bash -- shared by every tests/*.bats file:  load helpers
#
# Puts the programs under test first in PATH ($MQ_BIN, default the
# repository's bin/), loads bats-support and bats-assert, and starts and
# stops brokers:
#
#   free_port                 print a TCP port the kernel says is free
#   start_broker [ARGS...]    mq-serve on a free port, data in $BATS_TEST_TMPDIR/data;
#                             exports MQ_BROKER, MQ_BROKER_PORT, MQ_BROKER_PID,
#                             MQ_BROKER_LOG, MQ_DATA_DIR.  Started again in the same
#                             test, it reuses the port, so clients keep MQ_BROKER.
#   stop_broker               SIGTERM, wait; fails unless mq-serve exits 0 (contract)
#   kill_broker               SIGKILL, for crash-recovery tests
#   wait_lines FILE N         wait until FILE has at least N lines (at most 20 s)
#
# teardown stops any broker still running, so none outlives a failing
# test, and shows the broker's log when the test failed.  A file that
# needs its own teardown calls mq_teardown from it.  Call these functions
# directly, not through `run` (a subshell cannot wait for the broker).
# Background programs a test starts must close fd 3 (`3>&-`), or bats
# waits for them.  Every function here is safe under bats's set -e.

: "${BATS_LIB_PATH:=/usr/lib/bats:/usr/local/lib/bats:/usr/share/bats}"
export BATS_LIB_PATH
bats_load_library bats-support || {
	echo "helpers.bash: bats-support not found in $BATS_LIB_PATH; run 'make deps' (Debian package bats-support)" >&2
	return 1
}
bats_load_library bats-assert || {
	echo "helpers.bash: bats-assert not found in $BATS_LIB_PATH; run 'make deps' (Debian package bats-assert)" >&2
	return 1
}

MQ_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export MQ_BIN=${MQ_BIN:-$MQ_ROOT/bin}
export PATH="$MQ_BIN:$PATH"

# Seconds to wait for a broker to start and to stop.
: "${MQ_BROKER_START_TIMEOUT:=10}"
: "${MQ_BROKER_STOP_TIMEOUT:=10}"

MQ_BROKER_PID=
MQ_BROKER_STARTS=0

# Debian's python3 (make deps installs it) starts in a tenth of the time a
# version manager's shim takes.
if [ -z "${MQ_PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then MQ_PYTHON=/usr/bin/python3; else MQ_PYTHON=python3; fi
fi

free_port() {
	local port i
	for i in 1 2 3 4 5; do
		port=$("$MQ_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null) && [ -n "$port" ] && {
			echo "$port"
			return 0
		}
		sleep 0.1
	done
	echo "free_port: could not get a free TCP port from the kernel via $MQ_PYTHON; is python3 installed (make deps)?" >&2
	return 1
}

# 0 once "mq-serve: listening on" is in the log, 1 if mq-serve exited,
# 2 on timeout.
_mq_wait_listening() { # pid log
	local pid=$1 log=$2 i
	for ((i = 0; i < MQ_BROKER_START_TIMEOUT * 20; i++)); do
		grep -q 'mq-serve: listening on' "$log" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 2
}

start_broker() {
	local port attempt st
	if [ -n "$MQ_BROKER_PID" ]; then
		echo "start_broker: a broker (pid $MQ_BROKER_PID) is already running in this test; stop_broker first" >&2
		return 1
	fi
	if ! command -v mq-serve >/dev/null 2>&1; then
		echo "start_broker: mq-serve not found in $MQ_BIN or PATH; build it with make" >&2
		return 1
	fi
	export MQ_DATA_DIR=$BATS_TEST_TMPDIR/data
	mkdir -p "$MQ_DATA_DIR"
	for attempt in 1 2 3; do
		port=${MQ_BROKER_PORT:-}
		if [ -z "$port" ] || [ "$attempt" -gt 1 ]; then
			port=$(free_port) || return 1
		fi
		MQ_BROKER_STARTS=$((MQ_BROKER_STARTS + 1))
		export MQ_BROKER_LOG=$BATS_TEST_TMPDIR/broker.$MQ_BROKER_STARTS.log
		mq-serve -d "$MQ_DATA_DIR" -l "tcp://127.0.0.1:$port" "$@" \
			</dev/null >>"$BATS_TEST_TMPDIR/broker.stdout" 2>"$MQ_BROKER_LOG" 3>&- &
		MQ_BROKER_PID=$!
		st=0
		_mq_wait_listening "$MQ_BROKER_PID" "$MQ_BROKER_LOG" || st=$?
		if [ "$st" -eq 0 ]; then
			export MQ_BROKER_PID MQ_BROKER_PORT=$port
			export MQ_BROKER=tcp://127.0.0.1:$port
			return 0
		fi
		if [ "$st" -eq 2 ]; then
			echo "start_broker: mq-serve (pid $MQ_BROKER_PID) did not print 'mq-serve: listening on' within ${MQ_BROKER_START_TIMEOUT}s; its log:" >&2
			cat "$MQ_BROKER_LOG" >&2
			kill -KILL "$MQ_BROKER_PID" 2>/dev/null || true
			wait "$MQ_BROKER_PID" 2>/dev/null || true
			MQ_BROKER_PID=
			return 1
		fi
		st=0
		wait "$MQ_BROKER_PID" 2>/dev/null || st=$?
		MQ_BROKER_PID=
		# Someone took the port between free_port and the bind: try another.
		if grep -qi 'address already in use' "$MQ_BROKER_LOG" && [ "$attempt" -lt 3 ]; then
			continue
		fi
		echo "start_broker: mq-serve exited with status $st before listening (args: -d $MQ_DATA_DIR -l tcp://127.0.0.1:$port $*); its log:" >&2
		cat "$MQ_BROKER_LOG" >&2
		return 1
	done
}

# Waits up to MQ_BROKER_STOP_TIMEOUT for pid to go; 0 if it did.
_mq_wait_gone() { # pid
	local i
	for ((i = 0; i < MQ_BROKER_STOP_TIMEOUT * 20; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# wait for our own child without tripping set -e; its exit status goes to
# _mq_status (127: not a child of this shell).  Not $(...): a subshell
# cannot wait for its parent's child.
_mq_reap() { # pid
	_mq_status=0
	wait "$1" 2>/dev/null || _mq_status=$?
}

stop_broker() {
	local pid=$MQ_BROKER_PID st
	[ -n "$pid" ] || return 0
	MQ_BROKER_PID=
	if ! kill -0 "$pid" 2>/dev/null; then
		_mq_reap "$pid"
		st=$_mq_status
		echo "stop_broker: mq-serve (pid $pid) had already exited with status $st (use kill_broker to kill it on purpose); log: $MQ_BROKER_LOG" >&2
		return 1
	fi
	kill -TERM "$pid" 2>/dev/null || true
	if ! _mq_wait_gone "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		_mq_reap "$pid"
		echo "stop_broker: mq-serve (pid $pid) did not exit within ${MQ_BROKER_STOP_TIMEOUT}s of SIGTERM; killed it; log: $MQ_BROKER_LOG" >&2
		return 1
	fi
	_mq_reap "$pid"
	st=$_mq_status
	if [ "$st" -eq 127 ]; then
		echo "stop_broker: mq-serve (pid $pid) is not a child of this shell (started or stopped through run?); cannot see its exit status" >&2
		return 1
	fi
	if [ "$st" -ne 0 ]; then
		echo "stop_broker: mq-serve (pid $pid) exited with status $st after SIGTERM (expected 0); log: $MQ_BROKER_LOG" >&2
		return 1
	fi
}

# Wait until file $1 has at least $2 lines (at most 20 s).
wait_lines() {
	local i
	for ((i = 0; i < 400; i++)); do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "wait_lines: $1 has $(wc -l <"$1") lines, wanted $2" >&2
	return 1
}

kill_broker() {
	local pid=$MQ_BROKER_PID
	[ -n "$pid" ] || return 0
	MQ_BROKER_PID=
	kill -KILL "$pid" 2>/dev/null || true
	_mq_reap "$pid"
}

mq_teardown() {
	local st=0 f
	stop_broker || st=1
	if [ -z "${BATS_TEST_COMPLETED:-}" ] || [ "$st" -ne 0 ]; then
		for f in "$BATS_TEST_TMPDIR"/broker.*.log; do
			[ -s "$f" ] || continue
			echo "--- $f" >&2
			cat "$f" >&2
		done
	fi
	return "$st"
}

teardown() {
	mq_teardown
}
