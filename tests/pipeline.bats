#!/usr/bin/env bats
# Whole pipelines against a real mq-serve: the backlog stays in the
# broker when the end of a pipe is slow (backpressure), stopping the
# head of a pipe loses nothing that was committed, and a reader that
# goes away ends mq-sub at once.

load helpers

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

@test "mq-sub -g on a quiet topic ends as soon as its reader does" {
	start_broker
	echo one | mq-pub -t quiet
	local t0 t1
	t0=$(date +%s%N)
	run bash -c 'timeout 20 mq-sub -g g -t quiet | head -1; echo "status ${PIPESTATUS[0]}"'
	t1=$(date +%s%N)
	echo "pipeline ended after $(((t1 - t0) / 1000000)) ms" >&2
	assert_output "one
status 0"
	# no message comes after 'one': only the reader's exit can end mq-sub
	[ $(((t1 - t0) / 1000000)) -lt 3000 ]
	# without a group too
	run bash -c 'timeout 20 mq-sub -t quiet | head -1; echo "status ${PIPESTATUS[0]}"'
	assert_output "one
status 0"
}

@test "mq-sub -g | mq-bucket: the backlog stays in the broker, mq-sub stays small, nothing committed is lost" {
	start_broker
	"$MQ_PYTHON" -c 'import sys
for i in range(100000): sys.stdout.write("%08d %s\n" % (i, "x" * 190))' >"$BATS_TEST_TMPDIR/in"
	mq-pub -t jobs <"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t jobs -g g >"$BATS_TEST_TMPDIR/pipe" 2>"$BATS_TEST_TMPDIR/sub.err" 3>&- &
	local sub=$!
	mq-bucket -r 2000/s <"$BATS_TEST_TMPDIR/pipe" >"$BATS_TEST_TMPDIR/out" 3>&- &
	local bucket=$!
	sleep 1
	local rss1 rss2 passed
	rss1=$(rss_kb "$sub")
	sleep 2
	rss2=$(rss_kb "$sub")
	passed=$(wc -l <"$BATS_TEST_TMPDIR/out")
	echo "mq-sub RSS ${rss1} kB then ${rss2} kB; ${passed} lines passed" >&2
	# mq-sub waits on the pipe: its memory stays flat and small
	[ "$rss2" -lt 65536 ]
	[ $((rss2 - rss1)) -lt 4096 ]
	# at 2000/s about 2000 + 3 x 2000 lines went through; the rest waits in the broker
	[ "$passed" -lt 20000 ]
	# stop the head: mq-sub commits what it wrote and closes the pipe; mq-bucket
	# passes what it holds, at its rate, and ends at end of input
	kill -TERM "$sub"
	wait "$sub"
	wait "$bucket"
	run mq-sub -t jobs -g g -e
	assert_success
	local rest=${#lines[@]}
	echo "$(wc -l <"$BATS_TEST_TMPDIR/out") lines through the bucket, $rest left in the group" >&2
	[ "$rest" -gt 50000 ]
	# every line arrived once through the pipe or is still to come: none lost, none twice
	{ cat "$BATS_TEST_TMPDIR/out"; printf '%s\n' "${lines[@]}"; } | sort >"$BATS_TEST_TMPDIR/all"
	cmp "$BATS_TEST_TMPDIR/all" "$BATS_TEST_TMPDIR/in"
}

@test "a member stuck behind a full pipe keeps its session and its partitions" {
	start_broker
	seq 1 200000 | mq-pub -t slow
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t slow -g g --session-timeout 1s >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	# a reader that takes a little and then stops reading for 4 s
	{ head -c 1000 >/dev/null; sleep 4; cat >/dev/null; } <"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local reader=$!
	sleep 3
	# the session (1 s) would have run out three times over: the partition is still taken
	run timeout 20 mq-sub -t slow -g g --session-timeout 1s -e
	assert_success
	assert_output ""
	kill -TERM "$sub"
	wait "$sub"
	wait "$reader"
}

@test "SIGTERM ends mq-sub behind a reader that reads nothing, and what it did not write is read again" {
	start_broker
	seq 1 300000 | mq-pub -t stuck
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t stuck -g g --session-timeout 1s >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	sleep 1000 <"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local reader=$!
	sleep 1
	kill -TERM "$sub"
	local st=0 t0 t1
	t0=$(date +%s%N)
	wait "$sub" || st=$?
	t1=$(date +%s%N)
	kill "$reader"
	wait "$reader" || true
	[ "$st" -eq 0 ]
	[ $(((t1 - t0) / 1000000)) -lt 8000 ]
	# nothing was read: everything is still there for the group
	run mq-sub -t stuck -g g -e
	assert_success
	[ "${#lines[@]}" -ge 290000 ]
	[ "$(printf '%s\n' "${lines[@]}" | tail -1)" = 300000 ]
}
