#!/usr/bin/env bats
# mq-sub --exec against a real mq-serve: a command per message, commit
# after it succeeded, retries, dead letters, order per partition with
# --concurrency, kill -9 and SIGTERM of mq-sub, output, timeouts, and a
# dead letter that cannot be published.

load helpers

# The committed offset of group $1 in partition $3 (default 0) of topic $2.
committed() {
	mq-admin group describe "$1" 2>/dev/null | awk -v t="$2" -v p="${3:-0}" '$1 == t && $2 == p { print $3 }'
}

# Wait until file $1 exists (at most 20 s).
wait_file() {
	local i
	for ((i = 0; i < 400; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	echo "wait_file: $1 never appeared" >&2
	return 1
}

@test "--exec: one run per message, value on stdin, the message in MQ_*; exit 0 commits" {
	start_broker
	printf 'k1:v1\nk2:v2\nk3:v3\n' | mq-pub -t t -K : -H trace-id=abc
	cd "$BATS_TEST_TMPDIR"
	run timeout 60 mq-sub -t t -g g -e --exec \
		'printf "%s|%s|%s|%s|%s|%s|%s|%s\n" "$MQ_TOPIC" "$MQ_PARTITION" "$MQ_OFFSET" "$MQ_KEY" "$MQ_ATTEMPT" "$MQ_HEADERS" "$MQ_HEADER_TRACE_ID" "$(cat)"'
	assert_success
	assert_output "t|0|0|k1|1|1|abc|v1
t|0|1|k2|1|1|abc|v2
t|0|2|k3|1|1|abc|v3"
	[ "$(committed g t)" = 3 ]
	# Nothing is left for the group.
	run timeout 60 mq-sub -t t -g g -e --exec 'cat'
	assert_success
	assert_output ""
	[[ "$(env | grep -c '^MQ_TOPIC=')" -eq 0 ]]
}

@test "--exec: a failure is retried, then dead-lettered with why, and committed; the dead letters go back with mq-pub" {
	start_broker
	seq 1 20 | mq-pub -t jobs
	run timeout 60 mq-sub -t jobs -g g -e --max-attempts 3 --backoff 10ms,40ms --exec \
		'v=$(cat); echo "$v $MQ_ATTEMPT" >>'"$BATS_TEST_TMPDIR"'/runs; if [ $((v % 7)) = 0 ]; then echo "no good: $v" >&2; exit 4; fi'
	assert_success
	# 18 good ones once, 7 and 14 three times each
	[ "$(wc -l <"$BATS_TEST_TMPDIR/runs")" -eq 24 ]
	[ "$(grep -c '^7 ' "$BATS_TEST_TMPDIR/runs")" -eq 3 ]
	[ "$(grep -c '^14 ' "$BATS_TEST_TMPDIR/runs")" -eq 3 ]
	[ "$(awk '$1 == 8' "$BATS_TEST_TMPDIR/runs" | wc -l)" -eq 1 ]
	# the poison message held its partition only for its attempts: 8 came after 7
	[ "$(grep -n '^8 ' "$BATS_TEST_TMPDIR/runs" | cut -d: -f1)" -gt "$(grep -n '^7 3' "$BATS_TEST_TMPDIR/runs" | cut -d: -f1)" ]
	assert_output --partial "jobs/0/6: no good: 7"
	assert_output --partial "topic 'jobs' partition 0 offset 6: failed 3 times (exit 4); dead-lettered to 'jobs.dlq'"
	[ "$(committed g jobs)" = 20 ]
	run mq-sub -t jobs.dlq -e -F '%s %h\n'
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == "7 "* ]]
	[[ "${lines[0]}" == *"mq.dlq.topic=jobs"* ]]
	[[ "${lines[0]}" == *"mq.dlq.offset=6"* ]]
	[[ "${lines[0]}" == *"mq.dlq.attempts=3"* ]]
	[[ "${lines[0]}" == *"mq.dlq.status=exit 4"* ]]
	[[ "${lines[0]}" == *"mq.dlq.stderr=no good: 7"* ]]
	[[ "${lines[1]}" == "14 "* ]]
	# Re-published unchanged, they are read like any message.
	mq-sub -t jobs.dlq -f json -e | mq-pub -f json -t jobs
	run mq-sub -t jobs -o 20 -e
	assert_output "7
14"
}

@test "--exec --dlq NAME, and key, id and headers kept in the dead letter" {
	start_broker
	printf '{"key":"k","value":"v","id":"i-1","headers":{"h":"x"}}\n' | mq-pub -t t -f json
	run timeout 60 mq-sub -t t -e --max-attempts 1 --dlq dead --exec 'exit 1'
	assert_success
	run mq-sub -t dead -e -F '%k %s %i %h\n'
	assert_output --partial "k v i-1 h=x"
	[[ "$output" == *"mq.dlq.attempts=1"* ]]
}

@test "--exec --concurrency 4: partitions at once, each in order, never two runs of one partition" {
	start_broker
	mq-admin topic create p4 --partitions 4
	for p in 0 1 2 3; do seq 1 50 | mq-pub -t p4 -p "$p"; done
	local T=$BATS_TEST_TMPDIR
	run timeout 60 mq-sub -t p4 -g g -e --concurrency 4 --exec \
		'mkdir '"$T"'/lock.$MQ_PARTITION 2>/dev/null || echo "TWO RUNS of $MQ_PARTITION" >>'"$T"'/bad
		 echo "$MQ_PARTITION $MQ_OFFSET" >>'"$T"'/log; sleep 0.005; rmdir '"$T"'/lock.$MQ_PARTITION'
	assert_success
	[ ! -e "$T/bad" ]
	[ "$(wc -l <"$T/log")" -eq 200 ]
	# per partition, offsets 0, 1, 2, ... in order
	awk '{ if ($2 != n[$1]++) { print "partition " $1 ": offset " $2 " out of order"; bad = 1 } } END { exit bad }' "$T/log"
	for p in 0 1 2 3; do [ "$(committed g p4 "$p")" = 50 ]; done
}

@test "--exec: kill -9 of mq-sub while a command runs: that message runs again in the group, nothing is lost" {
	start_broker
	seq 0 9 | mq-pub -t t
	local T=$BATS_TEST_TMPDIR
	cmd='v=$(cat); if [ "$v" = 5 ] && [ ! -e '"$T"'/killed ]; then echo $$ >'"$T"'/running; sleep 30; fi; echo "$v" >>'"$T"'/done'
	mq-sub -t t -g g --session-timeout 1s --exec "$cmd" 2>"$T/sub.err" 3>&- &
	local pid=$!
	wait_file "$T/running"
	kill -9 "$pid"
	wait "$pid" || true
	kill -9 -"$(cat "$T/running")" 2>/dev/null || true # the orphaned run
	touch "$T/killed"
	[ "$(sort -n "$T/done" | tr '\n' ' ')" = "0 1 2 3 4 " ]
	sleep 1.5 # the killed member's session runs out
	run timeout 60 mq-sub -t t -g g -e --exec "$cmd"
	assert_success
	# 5 ran again and finished; every message done at least once, 5..9 once
	[ "$(sort -n "$T/done" | uniq | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 " ]
	for v in 5 6 7 8 9; do [ "$(grep -c "^$v\$" "$T/done")" -eq 1 ]; done
	[ "$(committed g t)" = 10 ]
}

@test "--exec: SIGTERM lets the running command finish, commits it, and exits 0" {
	start_broker
	seq 0 4 | mq-pub -t t
	local T=$BATS_TEST_TMPDIR
	mq-sub -t t -g g --exec 'v=$(cat); touch '"$T"'/started.$v; sleep 1; echo "$v" >>'"$T"'/done' 3>&- &
	local pid=$!
	wait_file "$T/started.0"
	kill -TERM "$pid"
	local st=0
	wait "$pid" || st=$?
	[ "$st" -eq 0 ]
	[ "$(cat "$T/done")" = 0 ]
	[ ! -e "$T/started.1" ]
	[ "$(committed g t)" = 1 ]
	run timeout 60 mq-sub -t t -g g -e --exec 'cat >>'"$T"'/done; echo >>'"$T"'/done'
	assert_success
	[ "$(tr '\n' ' ' <"$T/done")" = "0 1 2 3 4 " ]
}

@test "--exec: output of concurrent runs in whole lines, errors prefixed with topic/partition/offset" {
	start_broker
	mq-admin topic create two --partitions 2
	printf 'a\nc\n' | mq-pub -t two -p 0
	printf 'b\nd\n' | mq-pub -t two -p 1
	run timeout 60 mq-sub -t two -e --concurrency 2 --exec 'printf "line-"; sleep 0.1; echo "$(cat)"; echo "warn $MQ_OFFSET" >&2'
	assert_success
	[ "$(grep -c '^line-[abcd]$' <<<"$output")" -eq 4 ]
	[ "$(grep -c '^two/[01]/[01]: warn [01]$' <<<"$output")" -eq 4 ]
	! grep -q 'line-line' <<<"$output"
}

@test "--exec-timeout: a run that takes too long is killed and counts as a failure" {
	start_broker
	echo slow | mq-pub -t t
	SECONDS=0
	run timeout 60 mq-sub -t t -e --exec-timeout 200ms --max-attempts 2 --backoff 10ms --exec 'sleep 20'
	assert_success
	[ "$SECONDS" -lt 10 ]
	run mq-sub -t t.dlq -e -F '%h\n'
	assert_output --partial "mq.dlq.status=timeout after 200 ms"
	assert_output --partial "mq.dlq.attempts=2"
}

@test "--exec: a dead letter that cannot be published stops mq-sub with 1 and is not committed" {
	start_broker --max-message-bytes 300
	head -c 250 /dev/zero | tr '\0' x | mq-pub -t t # fits; with the dead-letter headers it does not
	echo next | mq-pub -t t
	run timeout 60 mq-sub -t t -g g -e --max-attempts 1 --exec 'exit 1'
	assert_failure 1
	assert_output --partial "could not be dead-lettered, so it is not committed"
	[ "$(committed g t)" = 0 ]
	run mq-sub -t t.dlq -e
	assert_output ""
}

@test "--exec options: usage errors" {
	run mq-sub -t t --exec 'cat' -f json
	assert_failure 2
	assert_output --partial "--exec does not go with -F, -f or -0"
	run mq-sub -t t --max-attempts 3
	assert_failure 2
	assert_output --partial "go with --exec CMD"
	run mq-sub -t t --exec cat --max-attempts 0
	assert_failure 2
	assert_output --partial "--max-attempts '0': expected 1 to 1000"
	run mq-sub -t t --exec cat --backoff 5s,1s
	assert_failure 2
	assert_output --partial "MAX >= MIN"
	run mq-sub -t t --exec cat --concurrency x
	assert_failure 2
	run mq-sub -t t --exec cat --dlq 'a/b'
	assert_failure 2
	assert_output --partial "invalid name"
	run mq-sub -t t -g g --exec cat --at-most-once
	assert_failure 2
}
