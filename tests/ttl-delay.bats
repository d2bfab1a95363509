#!/usr/bin/env bats
# Time to live (mq-pub --ttl) and delayed messages (mq-pub --delay, --at)
# against a real mq-serve: what expired is never written and is counted
# once; what is delayed stays invisible until due, survives kill -9, and
# then comes exactly once, in due order.

load helpers
load fault-helpers
bats_require_minimum_version 1.5.0

# Value of counter $1 in mq-admin stats (0 when absent).
stat() {
	mq-admin stats | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# Wait (up to 60 s) until N delayed batches are pending.
wait_delayed() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(stat delayed)" -eq "$1" ] && return 0
		sleep 0.1
	done
	echo "still $(stat delayed) delayed batches pending, not $1" >&2
	return 1
}

@test "--ttl: expired messages are never written, and counted once per topic" {
	start_broker
	seq 1 3 | mq-pub -t t
	seq 101 105 | mq-pub -t t --ttl 1ms
	seq 4 6 | mq-pub -t t
	seq 201 202 | mq-pub -t t --ttl 1h
	seq 301 304 | mq-pub -t other --ttl 1ms
	sleep 0.1 # past the 1 ms
	run --separate-stderr mq-sub -t t -e -v
	assert_success
	[ "$(echo "$output" | tr '\n' ' ')" = "1 2 3 4 5 6 201 202 " ]
	[[ "$stderr" == *"8 messages written, 0 commits, 5 expired skipped"* ]]
	[ "$(stat expired:t)" -eq 5 ]
	# Read again, by a group and without one: skipped again, not counted again.
	run --separate-stderr mq-sub -t t -g g1 -e -v
	[ "$(echo "$output" | tr '\n' ' ')" = "1 2 3 4 5 6 201 202 " ]
	[[ "$stderr" == *"5 expired skipped"* ]]
	[ "$(mq-sub -t t -e | wc -l)" -eq 8 ]
	[ "$(stat expired:t)" -eq 5 ]
	[ "$(mq-sub -t other -e | wc -l)" -eq 0 ]
	[ "$(stat expired:other)" -eq 4 ]
	[ "$(stat expired)" -eq 9 ]
	# The group committed past the expired ones: nothing left for it.
	run mq-sub -t t -g g1 -e
	assert_success
	assert_output ""
}

@test "--ttl: a long run of expired batches is passed over and what follows delivered" {
	start_broker
	seq 1 2000 | mq-pub -t slow --ttl 1ms --batch 100
	echo last | mq-pub -t slow
	sleep 0.1
	run --separate-stderr mq-sub -t slow -e -v
	assert_success
	assert_output "last"
	[[ "$stderr" == *"2000 expired skipped"* ]]
	[ "$(stat expired:slow)" -eq 2000 ]
}

@test "--ttl refuses what is not a duration" {
	run mq-pub -t t --ttl soon -m x
	assert_failure 2
	assert_output "mq-pub: --ttl: duration 'soon': not understood (use e.g. 250ms, 10s, 5m, 2h, 1d or 1h30m) (try 'mq-pub --help')"
	run mq-pub -t t --ttl 0 -m x
	assert_failure 2
	assert_output --partial "--ttl '0': must be more than 0"
}

@test "--delay and --at: invisible until due, then delivered once, in due order" {
	start_broker
	local now
	now=$(date +%s%3N)
	# Published in the reverse of their due order.
	seq 1 5 | mq-pub -t d --at $((now + 9000))
	seq 11 15 | mq-pub -t d --delay 6s
	seq 21 25 | mq-pub -t d --at "@+3s"
	echo now | mq-pub -t d
	run mq-sub -t d -e
	assert_output "now"
	[ "$(stat delayed)" -eq 3 ]
	# Then each set when due, and the consumer sees them at the end of the partition.
	run timeout 60 mq-sub -t d -n 16
	assert_success
	[ "$(echo "$output" | tr '\n' ' ')" = "now 21 22 23 24 25 11 12 13 14 15 1 2 3 4 5 " ]
	[ "$(stat delayed)" -eq 0 ]
	[ "$(mq-sub -t d -e | wc -l)" -eq 16 ]
	# Offsets are given when due: the first delayed set follows "now".
	run mq-sub -t d -o 1 -n 1 -F '%o %s\n'
	assert_output "1 21"
}

@test "a due time in the past is delivered at once" {
	start_broker
	echo old | mq-pub -t p --at 2020-01-01T00:00:00Z
	echo older | mq-pub -t p --at 0
	echo hour | mq-pub -t p --at -1h
	echo zero | mq-pub -t p --delay 0
	run mq-sub -t p -e
	assert_output "$(printf 'old\nolder\nhour\nzero')"
	[ "$(stat delayed)" -eq 0 ]
}

@test "pending delayed messages survive kill -9 and come once, in due order" {
	start_broker
	seq 1 100 | mq-pub -t k --batch 10 --delay 6s
	seq 101 200 | mq-pub -t k --batch 10 --delay 5s
	echo first | mq-pub -t k
	[ "$(stat delayed)" -eq 20 ]
	kill_broker
	start_broker
	[ "$(stat delayed)" -eq 20 ]
	run timeout 60 mq-sub -t k -n 201
	assert_success
	diff <(echo "$output") <(echo first; seq 101 200; seq 1 100)
	[ "$(stat delayed)" -eq 0 ]
	# Nothing more comes, at another restart either.
	kill_broker
	start_broker
	[ "$(stat delayed)" -eq 0 ]
	[ "$(mq-sub -t k -e | wc -l)" -eq 201 ]
}

@test "a crash after a due batch was copied and before it was marked moved stores it once" {
	# Synced turns that appended: 1 = the publish, 2 = the move.
	start_faulty_broker MQ_FAULT_KILL_AFTER_SYNC=2
	seq 1 10 | mq-pub -t c --delay 1s
	wait_broker_killed
	start_broker
	grep -q "delayed messages: 1 move to its partition cut short when mq-serve stopped was found complete" \
		"$MQ_BROKER_LOG"
	[ "$(stat delayed)" -eq 0 ]
	run mq-sub -t c -e
	assert_output "$(seq 1 10)"
}

@test "a crash after a move was recorded and before the copy stores it once" {
	start_faulty_broker MQ_FAULT_KILL_BEFORE_MOVE=1
	seq 1 10 | mq-pub -t c --delay 1s
	wait_broker_killed
	start_broker
	run timeout 60 mq-sub -t c -n 10
	assert_output "$(seq 1 10)"
	[ "$(stat delayed)" -eq 0 ]
	stop_broker
	start_broker
	run mq-sub -t c -e
	assert_output "$(seq 1 10)"
}

@test "a delayed batch retried after its acknowledgement was lost is kept once" {
	# The broker dies after syncing the first publish, before answering it.
	start_faulty_broker MQ_FAULT_KILL_AFTER_SYNC=1
	seq 1 50 | mq-pub -t r --delay 5s -w 30s 3>&- &
	local pub=$!
	wait_broker_killed
	start_broker
	local st=0
	wait "$pub" || st=$?
	[ "$st" -eq 0 ]
	[ "$(stat duplicate_batches)" -ge 1 ]
	[ "$(stat delayed)" -eq 1 ]
	run timeout 60 mq-sub -t r -n 50
	assert_output "$(seq 1 50)"
	wait_delayed 0
	[ "$(mq-sub -t r -e | wc -l)" -eq 50 ]
}

@test "--ttl with --delay counts from the due time" {
	start_broker
	# Due in 1 s, then alive for 1 ms: expired by the time it is read.
	seq 11 13 | mq-pub -t dt --delay 1s --ttl 1ms
	wait_delayed 0
	sleep 0.01
	# Due in 2 s, alive for 1 s after that: a waiting consumer gets it
	# (counted from the publish, it would expire before it is due).
	seq 1 3 | mq-pub -t dt --delay 2s --ttl 1s
	echo end | mq-pub -t dt --delay 2s
	run --separate-stderr timeout 60 mq-sub -t dt -n 4 -v
	assert_success
	assert_output "$(printf '1\n2\n3\nend')"
	[[ "$stderr" == *"3 expired skipped"* ]]
	[ "$(stat expired:dt)" -eq 3 ]
}

@test "--at and --delay refuse bad values and each other" {
	run mq-pub -t t --at yesterday -m x
	assert_failure 2
	assert_output --partial "--at: time 'yesterday' not understood"
	run mq-pub -t t --delay soon -m x
	assert_failure 2
	assert_output --partial "mq-pub: --delay: duration 'soon': not understood"
	run mq-pub -t t --delay 1s --at +1s -m x
	assert_failure 2
	assert_output --partial "--at and --delay do not go together"
}
