#!/usr/bin/env bats
# Producer idempotence with acknowledgements lost for real: a test build
# of mq-serve (make FAULT=1, build/fault/bin) kills itself with SIGKILL
# after the sync of a turn that appended and before that turn's replies
# (MQ_FAULT_KILL_AFTER_SYNC=N).  The data is on disk, the producer never
# heard so.  The retry (same producer id and sequence) or the re-run with
# --id must not store anything twice.

load helpers
load fault-helpers

setup() {
	[ -x "$MQ_FAULT_BIN/mq-serve" ] ||
		skip "no fault-injection build of mq-serve in $MQ_FAULT_BIN (build it with: make FAULT=1)"
}

# The broker killed itself, and by the switch.
wait_fault_death() {
	wait_broker_killed &&
		grep -q "fault injection: MQ_FAULT_KILL_AFTER_SYNC reached" "$MQ_BROKER_LOG"
}

@test "the release mq-serve carries no fault-injection switch" {
	command -v strings >/dev/null || skip "strings (binutils) is not installed"
	run strings "$MQ_BIN/mq-serve"
	assert_success
	refute_output --partial MQ_FAULT_
	run strings "$MQ_FAULT_BIN/mq-serve"
	assert_output --partial MQ_FAULT_KILL_AFTER_SYNC
}

@test "batches retried after their acknowledgement was lost are stored once" {
	seq 1 5000 >"$BATS_TEST_TMPDIR/in"
	start_faulty_broker MQ_FAULT_KILL_AFTER_SYNC=2
	# Two bursts, so the broker sees at least two turns that append.
	{ head -n 2500 "$BATS_TEST_TMPDIR/in"; sleep 1; tail -n +2501 "$BATS_TEST_TMPDIR/in"; } |
		mq-pub -t idem --batch 100 -w 30s -v >"$BATS_TEST_TMPDIR/pub.out" 2>&1 3>&- &
	local pub=$!
	wait_fault_death
	# The acknowledgements of the second synced turn never went out: data on
	# disk, mq-pub waiting.  A normal broker on the same port takes over.
	start_broker
	local st=0
	wait "$pub" || st=$?
	cat "$BATS_TEST_TMPDIR/pub.out"
	[ "$st" -eq 0 ]
	grep -q "5000 acknowledged" "$BATS_TEST_TMPDIR/pub.out"
	mq-sub -t idem -e >"$BATS_TEST_TMPDIR/out"
	# Every line exactly once, in order.
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 5000 ]
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	# The broker did see the retries, and answered them as duplicates.
	run mq-admin stats
	assert_output --regexp "duplicate_batches +[1-9]"
}

@test "a re-run with --id after the acknowledgement was lost stores nothing twice" {
	seq 1 300 >"$BATS_TEST_TMPDIR/in"
	start_faulty_broker MQ_FAULT_KILL_AFTER_SYNC=1
	# mq-pub gives up: its only broker died before answering.
	run mq-pub -t ids --id hash -w 2s <"$BATS_TEST_TMPDIR/in"
	assert_failure 1
	wait_fault_death
	start_broker
	# The records are in the log although never acknowledged ...
	[ "$(mq-sub -t ids -e | wc -l)" -eq 300 ]
	# ... so the re-run finds every id in the dedup window.
	run mq-pub -t ids --id hash -v <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_output --partial "300 acknowledged (300 duplicates)"
	mq-sub -t ids -e >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}
