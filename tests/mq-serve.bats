#!/usr/bin/env bats
# mq-serve's own checks, before and as it starts.

load helpers

@test "a data directory path too long for the files below it is refused before anything is made" {
	long=$BATS_TEST_TMPDIR/$(printf 'a%.0s' $(seq 1 200))
	for i in $(seq 1 17); do long=$long/$(printf 'b%.0s' $(seq 1 200)); done
	run mq-serve -d "$long" -l tcp://127.0.0.1:0
	[ "$status" -eq 2 ]
	assert_output --partial "bytes long; at most 3500 (choose a shorter -d)"
	run env MQ_DATA="$long" mq-serve -l tcp://127.0.0.1:0
	[ "$status" -eq 2 ]
	assert_output --partial "at most 3500"
	[ ! -e "$BATS_TEST_TMPDIR/$(printf 'a%.0s' $(seq 1 200))" ]
}
