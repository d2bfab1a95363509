#!/usr/bin/env bats
# mq-admin's offline commands: verify and dump over a data directory.

load helpers

bench_log() {
	"${MQ_BENCH_DIR:-$MQ_ROOT/build/bench}/bench_log" "$@"
}

# A partition of N records (batches of 100) in $BATS_TEST_TMPDIR/data/topics/t/0.
make_partition() {
	local n=${1:-5000}
	mkdir -p "$BATS_TEST_TMPDIR/data/topics/t"
	printf 'partitions=1\nretention_ms=0\nretention_bytes=0\ncreated_ms=1\n' >"$BATS_TEST_TMPDIR/data/topics/t/topic.meta"
	bench_log -n "$n" -b 100 -S 0 -k -d "$BATS_TEST_TMPDIR/bench" >/dev/null
	mv "$BATS_TEST_TMPDIR/bench/p0" "$BATS_TEST_TMPDIR/data/topics/t/0"
	PART=$BATS_TEST_TMPDIR/data/topics/t/0
	SEG=$PART/00000000000000000000.log
}

@test "mq-admin --help prints usage on stdout and exits 0" {
	run mq-admin --help
	assert_success
	assert_output --partial "usage: mq-admin verify DIR"
	run mq-admin -V
	assert_success
	assert_output --regexp '^mq-admin [0-9]+\.[0-9]+'
}

@test "mq-admin with an unknown command exits 2 and says what exists" {
	run mq-admin frobnicate
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run mq-admin
	assert_failure 2
}

@test "verify passes a clean data directory, topic and partition" {
	make_partition 3000
	run mq-admin verify "$BATS_TEST_TMPDIR/data"
	assert_success
	assert_output --partial "1 partition checked, 0 faults"
	run mq-admin verify "$BATS_TEST_TMPDIR/data/topics/t"
	assert_success
	run mq-admin verify "$PART"
	assert_success
}

@test "verify names the file and byte of a flipped byte" {
	make_partition 3000
	# flip one byte in the middle of the segment
	local size at
	size=$(stat -c %s "$SEG")
	at=$((size / 2))
	printf '\xff' | dd of="$SEG" bs=1 seek="$at" conv=notrunc status=none
	run mq-admin verify "$BATS_TEST_TMPDIR/data"
	assert_failure 1
	assert_output --regexp "FAULT $SEG: .*at byte [0-9]+"
	assert_output --partial "1 fault"
}

@test "verify catches a truncated index and a torn time index" {
	make_partition 5000
	local idx=${SEG%.log}.idx tix=${SEG%.log}.tix
	truncate -s 16 "$idx"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "FAULT $idx:"
	assert_output --partial "truncated or stale index"
	truncate -s 13 "$tix"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "FAULT $tix: size 13 is not a multiple of 12"
}

@test "verify reports a stray file and a cut-off tail" {
	make_partition 2000
	echo x >"$PART/notes.txt"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "notes.txt: unexpected file"
	rm "$PART/notes.txt"
	truncate -s -7 "$SEG"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "torn batch at byte"
}

@test "verify refuses a path that is not a directory" {
	run mq-admin verify "$BATS_TEST_TMPDIR/nope"
	assert_failure 2
	assert_output --partial "not a directory"
	run mq-admin verify
	assert_failure 2
}

@test "dump prints every batch and record, and starts at --from" {
	make_partition 1000
	run mq-admin dump "$PART"
	assert_success
	[ "$(grep -c '^batch ' <<<"$output")" -eq 10 ]
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 1000 ]
	assert_output --partial "batch offset=900 count=100"
	run mq-admin dump --from 950 "$PART"
	assert_success
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 50 ]
	assert_line --index 1 --partial "  offset=950 "
	run mq-admin dump --from x "$PART"
	assert_failure 2
}

@test "dump shows damage as FAULT lines and exits 1, printing what is good" {
	make_partition 1000
	truncate -s -1 "$SEG"
	run mq-admin dump "$PART"
	assert_failure 1
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 900 ]
	assert_output --partial "FAULT $SEG: torn batch"
}
