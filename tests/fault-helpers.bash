# tests/fault-helpers.bash -- for tests that make mq-serve fail for real
# through the switches of its fault-injection build (make FAULT=1, in
# build/fault/bin; make check builds it):   load fault-helpers
#
#   start_faulty_broker VAR=VALUE [ARGS...]   start_broker with that build and
#                             that switch set (MQ_FAULT_KILL_AFTER_SYNC=N,
#                             MQ_FAULT_KILL_BEFORE_MOVE=1); skips the test, saying
#                             why, when the build is absent
#   wait_broker_killed        wait (up to 60 s) for that broker to kill itself;
#                             fails unless it died of SIGKILL

: "${MQ_FAULT_BIN:=$MQ_ROOT/build/fault/bin}"

start_faulty_broker() {
	[ -x "$MQ_FAULT_BIN/mq-serve" ] ||
		skip "no fault-injection build of mq-serve in $MQ_FAULT_BIN (build it with: make FAULT=1)"
	local st=0 var=$1
	shift
	export "${var?}"
	PATH="$MQ_FAULT_BIN:$PATH" start_broker "$@" || st=$?
	unset "${var%%=*}"
	return "$st"
}

wait_broker_killed() {
	local i
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$MQ_BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$MQ_BROKER_PID" 2>/dev/null; then
		echo "mq-serve (pid $MQ_BROKER_PID) did not kill itself within 60 s" >&2
		return 1
	fi
	_mq_reap "$MQ_BROKER_PID"
	MQ_BROKER_PID=
	if [ "$_mq_status" -ne 137 ]; then
		echo "mq-serve exited with status $_mq_status, not by SIGKILL (137)" >&2
		return 1
	fi
}
