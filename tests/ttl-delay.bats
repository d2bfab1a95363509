#!/usr/bin/env bats
# Time to live (mq-pub --ttl) and delayed messages (mq-pub --delay, --at)
# against a real mq-serve: what expired is never written and is counted
# once; what is delayed stays invisible until due, survives kill -9, and
# then comes exactly once, in due order.

load helpers
bats_require_minimum_version 1.5.0

# Value of counter $1 in mq-admin stats (0 when absent).
stat() {
	mq-admin stats | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
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
	assert_output --partial "mq-pub: "
	run mq-pub -t t --ttl 0 -m x
	assert_failure 2
	assert_output --partial "--ttl '0': must be more than 0"
}
