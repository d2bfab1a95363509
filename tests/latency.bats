#!/usr/bin/env bats
# build/bench/latency (tests/bench/latency.c), the end-to-end latency
# program of make bench-latency, against a real mq-serve: that it counts
# every line, orders its percentiles and says what went wrong.  Behaviour
# only: no figure here is a timing assertion.

load helpers

bats_require_minimum_version 1.5.0

latency() {
	"${MQ_BENCH_DIR:-$MQ_ROOT/build/bench}/latency" "$@"
}

# The value of key $1 in the key=value line $output.
field() {
	local kv
	for kv in $output; do
		[ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return 0; }
	done
	echo "field: no $1 in: $output" >&2
	return 1
}

@test "latency: mq-pub into mq-sub -o end for a second: every line arrives, percentiles ordered" {
	start_broker --fsync never
	run --separate-stderr latency -r 100 -d 1 -w 10 pipe "exec mq-pub -t lat" "exec mq-sub -t lat -o end"
	assert_success
	[ "$(field sent)" -eq 100 ]
	[ "$(field received)" -eq 100 ]
	[ "$(field duplicates)" -eq 0 ]
	[ "$(field sent_per_s)" -gt 0 ]
	p50=$(field p50_us) p90=$(field p90_us) p99=$(field p99_us) p999=$(field p999_us) max=$(field max_us)
	late=$(field late_max_us)
	awk -v a="$p50" -v b="$p90" -v c="$p99" -v d="$p999" -v e="$max" -v l="$late" \
		'BEGIN { exit !(a > 0 && a <= b && b <= c && c <= d && d <= e && l >= 0) }' || {
		echo "percentiles not ordered: $output" >&2
		return 1
	}
	# What the program sent really went through the broker: the warm-up
	# lines and the 100 measured ones.
	run mq-sub -t lat -e
	assert_success
	[ "$(grep -c '^m ' <<<"$output")" -eq 100 ]
}

@test "latency: lines that never arrive are counted, and the run fails saying how many" {
	start_broker --fsync never
	# The subscriber passes the warm-up lines and drops the measured ones.
	# Late lines are waited for 1 s; starting up, on a loaded machine, may
	# take longer (-W).
	run --separate-stderr latency -r 50 -d 0.4 -w 1 -W 30 pipe "exec mq-pub -t lost" \
		"mq-sub -t lost -o end | grep --line-buffered '^w '"
	assert_failure 1
	# About 20 at 50/s for 0.4 s; a loaded machine may send one fewer.
	local n
	n=$(field sent)
	[ "$n" -ge 15 ]
	[ "$n" -le 20 ]
	[ "$(field received)" -eq 0 ]
	[ "$(field p50_us)" = - ]
	[[ $stderr == *"$n of $n lines did not arrive within 1 s after the last was sent"* ]] || {
		echo "stderr: $stderr" >&2
		return 1
	}
}

@test "latency: a subscriber that shows nothing is reported, not waited for" {
	start_broker --fsync never
	run --separate-stderr latency -r 50 -d 1 -w 1 pipe "exec mq-pub -t quiet" "exec mq-sub -t other -o end"
	assert_failure 1
	[ "$(field sent)" -eq 0 ]
	[[ $stderr == *"showed none of the warm-up lines"* ]]
}

@test "latency: a subscriber that exits at once is reported" {
	start_broker --fsync never
	run --separate-stderr latency -r 50 -d 1 -w 10 pipe "exec mq-pub -t gone" "exit 3"
	assert_failure 1
	[[ $stderr == *"ended before showing any line"* ]]
}

@test "latency: a publisher that fails fails the run, though every line arrived" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	run --separate-stderr latency -r 100 -d 0.2 -w 5 pipe "cat >'$BATS_TEST_TMPDIR/fifo'; exit 4" \
		"exec cat '$BATS_TEST_TMPDIR/fifo'"
	assert_failure 1
	[ "$(field received)" -eq 20 ]
	[[ $stderr == *"ended with status 4"* ]]
}

@test "latency: bad options are usage errors" {
	run latency -r 0 pipe true true
	assert_failure 2
	assert_output --partial -- "-r 0: give a number"
	run latency -s 10 pipe true true
	assert_failure 2
	run latency -W 0 pipe true true
	assert_failure 2
	assert_output --partial -- "-W 0: give a number"
	run latency pipe true
	assert_failure 2
	assert_output --partial usage
}
