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

@test "usage errors: one line each, ending like every mq program's, exit 2, nothing made" {
	local args
	for args in "--bogus" "-Z" "-l" "--fsync" "--fsync sometimes" "--partitions x" "--partitions 0" \
		"--segment-bytes 1" "--dedup-window soon" "extra-arg"; do
		# shellcheck disable=SC2086
		run mq-serve -d "$BATS_TEST_TMPDIR/never" $args
		assert_failure 2
		[ "${#lines[@]}" -eq 1 ]
		[[ ${lines[0]} == "mq-serve: "*"(try 'mq-serve --help')" ]]
	done
	[ ! -e "$BATS_TEST_TMPDIR/never" ]
}

@test "-v says more on stderr, -q undoes it, both keep the listening lines" {
	local port
	port=$(free_port)
	run timeout --foreground -s TERM 1 mq-serve -d "$BATS_TEST_TMPDIR/d" -l ":$port" -v
	assert_output --partial "mq-serve: data directory $BATS_TEST_TMPDIR/d"
	assert_output --partial "mq-serve: listening on tcp://127.0.0.1:$port"
	run timeout --foreground -s TERM 1 mq-serve -d "$BATS_TEST_TMPDIR/d" -l ":$port" -v -q
	refute_output --partial "data directory"
	assert_output "mq-serve: listening on tcp://127.0.0.1:$port"
	run timeout --foreground -s TERM 1 mq-serve -d "$BATS_TEST_TMPDIR/d" -l ":$port" -q -v
	assert_output "mq-serve: listening on tcp://127.0.0.1:$port"
}
