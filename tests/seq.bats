#!/usr/bin/env bats
# mq-sub --check-seq against a real mq-serve: gaps provoked for real
# (retention deletes what a reader had not fetched yet; an envelope
# stream with a number skipped), repeats (the same envelope published
# twice with deduplication off), and clean streams that must stay
# silent (several producers and partitions, re-published envelopes, a
# group, the --exec sink).

load helpers
bats_require_minimum_version 1.5.0

# Envelopes of producer $1 with the sequence numbers $2...
envelopes() {
	local p=$1 q
	shift
	for q in "$@"; do
		printf '{"value":"v%s","producer":"%s","seq":%s}\n' "$q" "$p" "$q"
	done
}

@test "--check-seq: offsets deleted by retention between two fetches are one gap, counted exactly" {
	start_broker --segment-bytes 1MiB
	# One producer, 40,000 numbered lines of 1,000 bytes: 40 segments.
	awk 'BEGIN { pad = sprintf("%990s", ""); for (i = 1; i <= 40000; i++) printf "%d %s\n", i, pad }' |
		mq-pub -t r
	local pipe=$BATS_TEST_TMPDIR/pipe first=$BATS_TEST_TMPDIR/first rest=$BATS_TEST_TMPDIR/rest
	mkfifo "$pipe"
	# The reader takes 100 kB, then waits until told to read on: mq-sub
	# stops on the full pipe with the rest of its fetches unwritten.
	{
		head -c 100000 >"$first"
		while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.05; done
		cat >"$rest"
	} <"$pipe" 3>&- &
	local reader=$!
	mq-sub -t r -e --check-seq -w 30s >"$pipe" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local sub=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(stat -c %s "$first" 2>/dev/null || echo 0)" -eq 100000 ] && break
		sleep 0.05
	done
	# Restart the broker keeping only the last 4 MiB: the segments mq-sub
	# has not fetched yet go.
	stop_broker
	start_broker --segment-bytes 1MiB --retention-bytes 4MiB
	local start=0
	for ((i = 0; i < 200; i++)); do
		start=$(mq-sub -t r -e -n 1 | cut -d' ' -f1)
		[ "$start" -gt 30000 ] && break
		sleep 0.05
	done
	[ "$start" -gt 30000 ]
	touch "$BATS_TEST_TMPDIR/go"
	local st=0
	wait "$sub" || st=$?
	wait "$reader"
	cat "$BATS_TEST_TMPDIR/err"
	[ "$st" -eq 1 ]
	# What arrived: 1..K, then start..40000, nothing else.
	cat "$first" "$rest" | cut -d' ' -f1 >"$BATS_TEST_TMPDIR/got"
	local k
	k=$(awk '$1 != NR { print NR - 1; exit }' "$BATS_TEST_TMPDIR/got")
	[ -n "$k" ]
	[ "$k" -gt 0 ]
	[ "$(sed -n "$((k + 1))p" "$BATS_TEST_TMPDIR/got")" -eq "$start" ]
	diff <(tail -n +"$((k + 1))" "$BATS_TEST_TMPDIR/got") <(seq "$start" 40000)
	# Sequence numbers count from 0: line N is sequence N-1, offset N-1.
	local missing=$((start - 1 - k))
	grep -q "offsets $k to $((start - 2)) were deleted (retention) before they were read" "$BATS_TEST_TMPDIR/err"
	grep -Eq "sequence gap: producer [0-9]+, topic 'r' partition 0: expected $k, got $((start - 1)) \(offset $((start - 1))\): $missing missing" "$BATS_TEST_TMPDIR/err"
	grep -q -- "--check-seq: 1 gap ($missing missing), 0 repeats" "$BATS_TEST_TMPDIR/err"
	[ "$(grep -c 'sequence ' "$BATS_TEST_TMPDIR/err")" -eq 1 ]
}

@test "--check-seq: an envelope stream with a number skipped is a gap, even with -q" {
	start_broker
	envelopes sensor-7 1 2 3 5 6 | mq-pub -t e -f json
	run --separate-stderr mq-sub -t e -e --check-seq -q
	assert_failure 1
	[ "$(echo "$output" | tr '\n' ' ')" = "v1 v2 v3 v5 v6 " ]
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ "${stderr_lines[0]}" = "mq-sub: sequence gap: producer sensor-7, topic 'e' partition 0: expected 4, got 5 (offset 3): 1 missing" ]
	[ "${stderr_lines[1]}" = "mq-sub: --check-seq: 1 gap (1 missing), 0 repeats" ]
	# Without --check-seq nothing is said.
	run --separate-stderr mq-sub -t e -e
	assert_success
	[ -z "$stderr" ]
}

@test "--check-seq: the same envelope published twice with dedup off is a repeat" {
	start_broker
	envelopes p 1 2 3 | mq-pub -t d -f json --id none
	envelopes p 3 | mq-pub -t d -f json --id none
	envelopes p 4 | mq-pub -t d -f json --id none
	run --separate-stderr mq-sub -t d -e --check-seq
	assert_failure 1
	[ "$(echo "$output" | tr '\n' ' ')" = "v1 v2 v3 v3 v4 " ]
	[ "${stderr_lines[0]}" = "mq-sub: sequence repeat: producer p, topic 'd' partition 0: expected 4, got 3 again (offset 3)" ]
	[ "${stderr_lines[1]}" = "mq-sub: --check-seq: 0 gaps (0 missing), 1 repeat" ]
	[ "${#stderr_lines[@]}" -eq 2 ]
	# The --exec sink checks the same way.
	run --separate-stderr mq-sub -t d -e --check-seq -g x --exec 'cat; echo'
	assert_failure 1
	[ "${stderr_lines[0]}" = "mq-sub: sequence repeat: producer p, topic 'd' partition 0: expected 4, got 3 again (offset 3)" ]
	# With an id and the broker's dedup window, the second copy is never
	# stored: nothing to report.
	envelopes q 1 2 | sed 's/^{/{"id":"i",/; s/"id":"i","value":"v2"/"id":"j","value":"v2"/' | mq-pub -t d2 -f json
	envelopes q 2 | sed 's/^{/{"id":"j",/' | mq-pub -t d2 -f json
	run --separate-stderr mq-sub -t d2 -e --check-seq
	assert_success
	[ "$(echo "$output" | tr '\n' ' ')" = "v1 v2 " ]
}

@test "--check-seq: clean streams stay silent: producers, partitions, re-published envelopes, a group" {
	start_broker --partitions 4
	local i pids=()
	for i in 1 2 3; do
		seq 1 3000 | mq-pub -t c --batch 100 3>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	seq 1 100 | mq-pub -t c -k k # keyed, one partition
	run --separate-stderr mq-sub -t c -e --check-seq -v
	assert_success
	[ "${#lines[@]}" -eq 9100 ]
	[[ "$stderr" == *"--check-seq: 0 gaps (0 missing), 0 repeats"* ]]
	[[ "$stderr" != *"sequence "* ]]
	# Envelopes keep producer and seq: re-published, in a different
	# order of partitions (all into one), each stream is still whole.
	mq-sub -t c -e -f json | grep -c '"producer"' | grep -qx 0 # only when asked
	mq-sub -t c -e -f json --with-seq >"$BATS_TEST_TMPDIR/c.json"
	grep -c '"producer":"[0-9]*","seq":[0-9]*}$' "$BATS_TEST_TMPDIR/c.json" | grep -qx 9100
	mq-pub -t c1 -p 0 -f json <"$BATS_TEST_TMPDIR/c.json"
	mq-sub -t c1 -e -f json >"$BATS_TEST_TMPDIR/c1.json"
	diff <(jq -c '[.producer, .seq, .value]' "$BATS_TEST_TMPDIR/c.json") \
		<(jq -c '[.producer, .seq, .value]' "$BATS_TEST_TMPDIR/c1.json")
	jq -e '.headers == {}' "$BATS_TEST_TMPDIR/c1.json" >/dev/null
	# msgpack envelopes too, producer given as an integer.
	printf '\x83\xa5value\xc4\x01a\xa8producer\xcd\x04\xd2\xa3seq\x07' | mq-pub -t m -f msgpack
	run mq-sub -t m -e -f json
	assert_output --partial '"producer":"1234","seq":7}'
	# A group reads it in two members' turns: no repeat from re-reads.
	run --separate-stderr mq-sub -t c -g g -n 5000 --check-seq
	assert_success
	run --separate-stderr mq-sub -t c -g g -e --check-seq
	assert_success
	[ "${#lines[@]}" -eq 4100 ]
	[[ "$stderr" != *"sequence "* ]]
}

@test "--check-seq: a re-published stream with a message dropped on the way shows the gap" {
	start_broker
	seq 1 10 | mq-pub -t src
	mq-sub -t src -e -f json --with-seq | grep -v '"value":"6"' | mq-pub -t dst -f json
	run --separate-stderr mq-sub -t dst -e --check-seq
	assert_failure 1
	[[ "${stderr_lines[0]}" =~ ^"mq-sub: sequence gap: producer "[0-9]+", topic 'dst' partition 0: expected 5, got 6 (offset 5): 1 missing"$ ]]
}

@test "--check-seq: messages without a producer sequence (a transaction's) are counted and said, never passed for checked" {
	start_broker
	local id
	id=$(seq 1 5 | mq-pub -t tx --prepare)
	mq-pub -t tx --commit "$id"
	seq 6 8 | mq-pub -t tx
	run --separate-stderr mq-sub -t tx -e --check-seq
	assert_success
	[ "${#lines[@]}" -eq 8 ]
	[[ "$stderr" == *"--check-seq: 5 of 8 messages carry no producer sequence and were not checked (messages of transactions carry none)"* ]]
	# -q keeps it quiet; with every message numbered there is nothing to say
	run --separate-stderr mq-sub -t tx -e --check-seq -q
	assert_success
	[ -z "$stderr" ]
	seq 1 3 | mq-pub -t plain
	seq 4 6 | mq-pub -t plain --with-seq # mq-serve numbers every message: nothing more to do
	run --separate-stderr mq-sub -t plain -e --check-seq
	assert_success
	[ -z "$stderr" ]
}
