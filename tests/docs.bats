#!/usr/bin/env bats
# Every example in README.md and in the man pages' EXAMPLES runs as
# written against a real broker.  tests/docs/extract.py finds them (they
# are not copied here); each runs in a sandbox that has what the examples
# name: topics with data, groups, the files and the scripts (./bill,
# ./work ...) a reader would have.  Only system paths are mapped into the
# sandbox (/var/lib, /etc/mq, /srv), the host 'backup' is a second
# broker, mq-serve examples get a port and a
# default data directory of their own, and a crontab line is run
# without its schedule.
#
# An example passes when it exits 0 or ends by SIGPIPE, or, if it is one
# that runs until stopped (a follower such as 'mq-sub -t logs -o end |
# grep ERROR', a broker, --watch), is still running after 3 seconds;
# mq-lag may also say 1 or 2 (lag found).

load helpers

setup() {
	export HOME=$BATS_TEST_TMPDIR/home
	mkdir -p "$HOME/.local/state" "$HOME/.cache" "$HOME/work"
	start_broker --partitions 3
	ln -s "$MQ_DATA_DIR" "$HOME/.local/state/mq"
	cd "$HOME/work"
	# Data the examples read.
	for i in $(seq 1 30); do printf 'k%d order-%d\n' $((i % 5)) "$i"; done | mq-pub -t orders -K ' '
	printf '{"topic":"jobs","value":"redo me","headers":{"mq.dlq.topic":"jobs"}}\n' | mq-pub -t jobs.dlq -f json
	printf 'ERROR one\nINFO two\n' | mq-pub -t logs
	printf 'app line\n' | mq-pub -t logs.app
	printf 'u1\tclick\n' | mq-pub -t events -K "$(printf '\t')"
	mq-sub -t orders -g billing -n 10 >/dev/null
	# Files and scripts the examples name.
	printf 'INFO start\nERROR boom\n' >app.log
	printf 'u1\tx\tclick\nu2\tx\tview\n' >events.tsv
	seq 1 1000 >big.log
	printf 'alice GET /\nbob GET /x\n' >requests
	printf 'http://a\nhttp://b\nhttp://a\n' >urls.txt
	printf 'p1 10 EUR\np2 5 EUR\n' >payments.txt
	printf '1,a,x\n2,b,x\n3,c,y\n' >log.csv
	for s in bill handle handle-job work worker call-api job job.sh ship index-order reload ledger; do
		printf '#!/bin/sh\ncat >/dev/null\n' >"$s"
		chmod +x "$s"
	done
	sqlite3 shop.db 'CREATE TABLE orders (id INTEGER PRIMARY KEY)'
	mkdir -m 700 clients # the CurveZMQ allow-list of the README
	export id=42
	mkdir -p "$HOME/etc-mq" "$HOME/var-lib-mq" "$HOME/var-lib/ledger" "$HOME/var-lib/prom" "$HOME/srv/archive"
	# The host 'backup' of the examples: a second broker.
	BACKUP_PORT=$(free_port)
	mkdir -p "$HOME/backup"
	mq-serve -d "$HOME/backup" -l "tcp://127.0.0.1:$BACKUP_PORT" 2>"$BATS_TEST_TMPDIR/backup.log" 3>&- &
	BACKUP_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$BATS_TEST_TMPDIR/backup.log" && break
		sleep 0.05
	done
}

teardown() {
	[ -z "${BACKUP_PID:-}" ] || kill "$BACKUP_PID" 2>/dev/null || true
	mq_teardown
}

# Does the example run until stopped (a follower, a broker, --watch)?
follows() {
	local c=${1//$'\n'/|} seg segs
	[[ $c == *"tail -F"* || $c == *--watch* || $c == *mq-serve* || $c == *--txn-checker* ]] && return 0
	IFS='|' read -ra segs <<<"$c"
	for seg in "${segs[@]}"; do
		[[ $seg == *mq-sub* && $seg != *" -e"* && $seg != *" -n "* && $seg != *--max-wait* ]] && return 0
	done
	return 1
}

# Run one example: its status in $st, its output in $BATS_TEST_TMPDIR/ex.*
run_example() {
	local code=$1 port2
	code=${code//\/var\/lib\/mq/$HOME\/var-lib-mq}
	code=${code//\/var\/lib\//$HOME\/var-lib\/}
	code=${code//\/etc\/mq\//$HOME\/etc-mq\/}
	code=${code//\/srv\//$HOME\/srv\/}
	code=${code//backup:7733/127.0.0.1:$BACKUP_PORT}
	# Crontab lines: the commands without their schedules.
	code=$(sed -E 's/^([^[:space:]]+[[:space:]]+){5}(mq-)/\2/' <<<"$code")
	if [[ $code == mq-serve* ]]; then
		port2=$(free_port)
		code="${code%&}"
		code="XDG_STATE_HOME=$HOME/state2 ${code%% } -l tcp://127.0.0.1:$port2"
	fi
	st=0
	# timeout leads a process group of its own: whatever of the example
	# outlives it (a follower, or a sanitized program that LeakSanitizer
	# hangs at exit when timeout's SIGCONT lands in its stop-the-world)
	# is killed with the group, never left running.
	timeout 3 bash -c "$code" </dev/null >"$BATS_TEST_TMPDIR/ex.out" 2>"$BATS_TEST_TMPDIR/ex.err" 3>&- &
	local tpid=$!
	wait "$tpid" || st=$?
	kill -KILL -- "-$tpid" 2>/dev/null || true
}

@test "every example of README.md and of the man pages runs as written" {
	local where code failed=0 n=0
	while IFS=$'\t' read -r -d '' where code; do
		n=$((n + 1))
		run_example "$code"
		local ok=0
		case $st in 0 | 141) ok=1 ;; 124) follows "$code" && ok=1 ;; esac
		if [[ $code == *mq-lag* ]] && { [ "$st" -eq 1 ] || [ "$st" -eq 2 ]; }; then ok=1; fi
		if grep -q "(try 'mq-\|command not found\|unknown option" "$BATS_TEST_TMPDIR/ex.err"; then ok=0; fi
		if [ "$ok" -ne 1 ]; then
			failed=$((failed + 1))
			echo "--- $where: exit $st: $code" >&2
			head -5 "$BATS_TEST_TMPDIR/ex.err" >&2
		fi
	done < <(python3 "$MQ_ROOT/tests/docs/extract.py" "$MQ_ROOT")
	echo "$n examples, $failed failed" >&2
	[ "$n" -ge 40 ]
	[ "$failed" -eq 0 ]
}
