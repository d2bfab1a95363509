#!/usr/bin/env bats
# mq-pub and mq-sub against a Kafka-compatible cluster (-b kafka://...),
# checked with an independent client, kcat.  The cluster is librdkafka's mock cluster
# (build/tests/mock_cluster: three brokers on real TCP listeners), or a
# real one named by MQ_TEST_KAFKA=HOST:PORT (make check-kafka); topics
# get a per-test name so a real cluster can be reused.
#
# What the mock cluster cannot show: replication and acks=all across
# real brokers, a leader failing over, transactions, quotas, TLS/SASL,
# topics made by CreateTopics (it makes them on first use, with four
# partitions), lookups of offsets by time (it answers "none so late"),
# and much data (it keeps a few megabytes per partition).

bats_require_minimum_version 1.5.0
load helpers

setup() {
	command -v kcat >/dev/null || skip "kcat not installed (make bench-deps installs it)"
	if [ -n "${MQ_TEST_KAFKA:-}" ]; then
		KAFKA=$MQ_TEST_KAFKA
	else
		local mock=${MQ_UNIT_DIR:-$MQ_ROOT/build/tests}/mock_cluster
		[ -x "$mock" ] || skip "no mock cluster: librdkafka-dev was not installed when mq was built (make bench-deps)"
		mkfifo "$BATS_TEST_TMPDIR/mock.in"
		"$mock" <"$BATS_TEST_TMPDIR/mock.in" >"$BATS_TEST_TMPDIR/mock.out" 2>"$BATS_TEST_TMPDIR/mock.err" 3>&- &
		MOCK_PID=$!
		exec 7>"$BATS_TEST_TMPDIR/mock.in" # the cluster runs until this closes
		local i
		for ((i = 0; i < 100; i++)); do
			[ -s "$BATS_TEST_TMPDIR/mock.out" ] && break
			sleep 0.05
		done
		KAFKA=$(head -1 "$BATS_TEST_TMPDIR/mock.out")
		[ -n "$KAFKA" ] || fail "the mock cluster did not start: $(cat "$BATS_TEST_TMPDIR/mock.err")"
	fi
	T=t$$_${BATS_TEST_NUMBER}
}

teardown() {
	exec 7>&- 2>/dev/null || true
	[ -n "${MOCK_PID:-}" ] && { kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; } || true
	mq_teardown
}

# kcat's view of topic $1: "partition key=value headers" per record, sorted.
kread() {
	kcat -C -b "$KAFKA" -t "$1" -e -q -f '%p %k=%s %h\n' 2>/dev/null | sort
}

@test "lines, keys and headers published with mq-pub are what kcat reads; keys land where Kafka's clients put them" {
	for i in $(seq 1 40); do printf 'user%d\tevent %d\n' $((i % 7)) "$i"; done >"$BATS_TEST_TMPDIR/kv"
	run mq-pub -b "kafka://$KAFKA" -t "$T" -K $'\t' -H app=mq -H env=test <"$BATS_TEST_TMPDIR/kv"
	assert_success
	kread "$T" >"$BATS_TEST_TMPDIR/got"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/got")" 40
	run grep -c ' user3=event 10 app=mq,env=test$' "$BATS_TEST_TMPDIR/got"
	assert_output 1
	# the same keys through kcat with the Java clients' partitioner: the same partitions
	kcat -P -b "$KAFKA" -t "${T}k" -K $'\t' -X partitioner=murmur2_random <"$BATS_TEST_TMPDIR/kv"
	diff <(cut -d' ' -f1-2 "$BATS_TEST_TMPDIR/got" | cut -d= -f1 | sort -u) \
		<(kread "${T}k" | cut -d' ' -f1-2 | cut -d= -f1 | sort -u)
	# order within a key is kept
	kcat -C -b "$KAFKA" -t "$T" -e -q -f '%k %s\n' 2>/dev/null | awk '$1 == "user2" { print $3 }' >"$BATS_TEST_TMPDIR/u2"
	diff "$BATS_TEST_TMPDIR/u2" <(seq 1 40 | awk '$1 % 7 == 2')
	# -p pins; an empty key stays a key, no key stays none
	run mq-pub -b "kafka://$KAFKA" -t "${T}p" -p 3 -m pinned -k ''
	assert_success
	run mq-pub -b "kafka://$KAFKA" -t "${T}p" -p 2 -m keyless
	assert_success
	run kcat -C -b "$KAFKA" -t "${T}p" -e -q -f '%p|%K|%k|%s\n'
	assert_line '3|0||pinned'
	assert_line '2|-1||keyless'
}

@test "envelopes and -0 records keep value bytes, key, headers and timestamp; MQ_BROKER names the cluster" {
	printf '{"key":"k1","value":"v\\u0000one","headers":{"h":"x"},"timestamp":1700000000123}\n{"value":"two"}\n' \
		>"$BATS_TEST_TMPDIR/env.json"
	MQ_BROKER="kafka://$KAFKA" run mq-pub -t "$T" -f json <"$BATS_TEST_TMPDIR/env.json"
	assert_success
	run kcat -C -b "$KAFKA" -t "$T" -e -q -f '%T %k %h %S\n'
	assert_line '1700000000123 k1 h=x 5' # v, NUL, o, n, e
	assert_line --partial ' 3'
	printf 'a\0b\0' | MQ_BROKER="kafka://$KAFKA" mq-pub -t "${T}z" -0
	run kcat -C -b "$KAFKA" -t "${T}z" -e -q -f '%s\n'
	assert_line a
	assert_line b
}

@test "kcat's records and mq-pub's share a topic; 200,000 lines are all acknowledged and all there" {
	seq 1 200000 | kcat -P -b "$KAFKA" -t "$T"
	run bash -c "seq 200001 400000 | mq-pub -b kafka://$KAFKA -t $T -v"
	assert_success
	assert_output --partial "200000 acknowledged"
	run bash -c "kcat -C -b $KAFKA -t $T -e -q -f '%s\n' | sort -n | uniq | wc -l"
	assert_output 400000
}

@test "nothing listening, a bad endpoint and what Kafka cannot do are said at once and nothing is sent" {
	local t0=$(date +%s%N)
	run mq-pub -b kafka://127.0.0.1:9 -t "$T" -m x
	assert_failure 1
	assert_output "mq-pub: cannot connect to kafka://127.0.0.1:9: connection refused (is the Kafka cluster running? set -b or MQ_BROKER)"
	[ $((($(date +%s%N) - t0) / 1000000)) -lt 1000 ]
	run mq-pub -b kafka://nohost:x -t "$T" -m x
	assert_failure 1
	assert_output --partial "'nohost:x' is not HOST:PORT (kafka://HOST:PORT[,HOST:PORT...])"
	local opt
	for opt in "--ttl 1m" "--delay 1s" "--at +1m" "--id key -k a" "--prepare"; do
		run mq-pub -b "kafka://$KAFKA" -t "$T" -m x $opt
		assert_failure 2
		assert_output --partial "mq-serve endpoint"
	done
	run mq-pub -b "kafka://$KAFKA" -t "$T" -m x --id hash
	assert_failure 2
	assert_output --partial "mq-dedup"
	run mq-sub -b kafka://127.0.0.1:9 -t "$T" -e
	assert_failure 1
	assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
	# librdkafka's settings from MQ_KAFKA_CONFIG: a bad one is said, nothing sent
	MQ_KAFKA_CONFIG='linger.ms=0 nonsense' run mq-pub -b "kafka://$KAFKA" -t "$T" -m x
	assert_failure 1
	assert_output --partial "MQ_KAFKA_CONFIG: 'nonsense' is not NAME=VALUE"
	MQ_KAFKA_CONFIG='no.such.setting=1' run mq-sub -b "kafka://$KAFKA" -t "$T" -e
	assert_failure 1
	assert_output --partial "MQ_KAFKA_CONFIG: librdkafka setting no.such.setting=1: No such configuration property"
	run kcat -C -b "$KAFKA" -t "$T" -e -q -f '%s\n'
	refute_output --partial x
	# good ones apply; debug= (or -v) shows librdkafka's log on stderr
	MQ_KAFKA_CONFIG='linger.ms=0 debug=broker' run --separate-stderr mq-pub -b "kafka://$KAFKA" -t "$T" -m y
	assert_success
	[[ "$stderr" == *"mq-pub: librdkafka 7 "* ]]
	run --separate-stderr mq-admin -b "kafka://$KAFKA" ping
	assert_success
	[ -z "$stderr" ]
}

@test "a cluster that goes away mid-stream: mq-pub says how many were not acknowledged, soon after -w, and exits 1" {
	[ -z "${MQ_TEST_KAFKA:-}" ] || skip "stops the cluster: the mock cluster only"
	mkfifo "$BATS_TEST_TMPDIR/in"
	mq-pub -b "kafka://$KAFKA" -t "$T" -w 2s -v <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- 7>&- &
	local pub=$!
	exec 8>"$BATS_TEST_TMPDIR/in"
	seq 1 1000 >&8
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(kcat -C -b "$KAFKA" -t "$T" -e -q -f '%s\n' 2>/dev/null | wc -l)" -ge 1000 ] && break
		sleep 0.1
	done
	exec 7>&-
	wait "$MOCK_PID" 2>/dev/null || true
	MOCK_PID=
	seq 1001 1500 >&8
	exec 8>&-
	local t0=$(date +%s) st=0
	wait "$pub" || st=$?
	assert_equal "$st" 1
	# librdkafka fails a record some seconds after its message.timeout.ms (-w): 2 s became 3 to 10 here
	[ $(($(date +%s) - t0)) -le 20 ]
	run cat "$BATS_TEST_TMPDIR/err"
	assert_output --partial "1500 read, 1500 sent, 1000 acknowledged"
	assert_output --partial "500 of 1500 messages were not acknowledged"
	assert_output --partial "kafka://$KAFKA did not acknowledge it: Local: Message timed out"
}

@test "records kcat produced are what mq-sub reads, in every format: keys, headers, partitions, offsets, times" {
	for i in $(seq 1 30); do printf 'k%d\tv%d\n' $((i % 4)) "$i"; done |
		kcat -P -b "$KAFKA" -t "$T" -K $'\t' -H src=kcat -X partitioner=murmur2_random
	kcat -C -b "$KAFKA" -t "$T" -e -q -f '%p %o %k %s %T\n' 2>/dev/null | sort >"$BATS_TEST_TMPDIR/want"
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -F '%p %o %k %s %T\n'
	assert_success
	diff "$BATS_TEST_TMPDIR/want" <(sort <<<"$output")
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -f json -n 1 -o 0
	assert_success
	assert_output --partial '"headers":{"src":"kcat"}'
	assert_output --partial "\"topic\":\"$T\""
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -f msgpack
	assert_success
	run bash -c "mq-sub -b kafka://$KAFKA -t $T -e -0 | tr '\\0' '\\n' | wc -l"
	assert_output 30
}

@test "where mq-sub starts over Kafka: -o beginning, N, -N, @TIME and end (then what comes next), -n" {
	seq 1 20 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 0
	sleep 1.1
	local mid=$(($(date +%s%3N)))
	sleep 0.1
	seq 21 30 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 0
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -o beginning
	assert_equal "$(wc -l <<<"$output")" 30
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -o 25
	assert_equal "$(tr '\n' ' ' <<<"$output")" "26 27 28 29 30 "
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -o -3
	assert_equal "$(tr '\n' ' ' <<<"$output")" "28 29 30 "
	run mq-sub -b "kafka://$KAFKA" -t "$T" -e -o "@$mid"
	assert_success
	if [ -n "${MQ_TEST_KAFKA:-}" ]; then
		assert_equal "$(head -1 <<<"$output")" 21
	else # the mock answers every lookup by time with "none so late" (kcat -Q too): from the end
		assert_output ""
	fi
	run mq-sub -b "kafka://$KAFKA" -t "$T" -n 2
	assert_equal "$(tr '\n' ' ' <<<"$output")" "1 2 "
	mq-sub -b "kafka://$KAFKA" -t "$T" -o end -n 2 >"$BATS_TEST_TMPDIR/follow" 3>&- 7>&- &
	local f=$!
	sleep 1
	mq-pub -b "kafka://$KAFKA" -t "$T" -p 0 -m later1
	mq-pub -b "kafka://$KAFKA" -t "$T" -p 0 -m later2
	wait "$f"
	assert_equal "$(tr '\n' ' ' <"$BATS_TEST_TMPDIR/follow")" "later1 later2 "
}

@test "mq-pub to mq-sub over Kafka: 100,000 lines whole; a pattern reads every match" {
	seq 1 100000 | mq-pub -b "kafka://$KAFKA" -t "${T}a"
	run bash -c "mq-sub -b kafka://$KAFKA -t ${T}a -e | sort -n | uniq | wc -l"
	assert_output 100000
	mq-pub -b "kafka://$KAFKA" -t "${T}b" -m other
	run mq-sub -b "kafka://$KAFKA" -t "${T}?" -e -F '%t\n'
	assert_success
	assert_equal "$(grep -c "^${T}a$" <<<"$output")" 100000
	assert_equal "$(grep -c "^${T}b$" <<<"$output")" 1
}

@test "--check-seq over Kafka: mq-pub --with-seq and envelopes carry numbers, checked (a gap: exit 1); records without them are said not checked" {
	printf '{"value":"v%s","producer":"p1","seq":%s}\n' 0 0 1 1 2 2 4 4 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 1 -f json
	run --separate-stderr mq-sub -b "kafka://$KAFKA" -t "$T" -e --check-seq
	assert_failure 1
	[ "${#lines[@]}" -eq 4 ]
	[[ "$stderr" == *"sequence gap: producer p1, topic '$T' partition 1: expected 3, got 4 (offset 3): 1 missing"* ]]
	[[ "$stderr" != *"not checked"* ]]
	# lines from mq-pub, and kcat's records, carry none: said, with the count
	seq 1 10 | mq-pub -b "kafka://$KAFKA" -t "${T}l"
	seq 11 15 | kcat -P -b "$KAFKA" -t "${T}l"
	run --separate-stderr mq-sub -b "kafka://$KAFKA" -t "${T}l" -e --check-seq
	assert_success
	[ "${#lines[@]}" -eq 15 ]
	[[ "$stderr" == *"--check-seq: 15 of 15 messages carry no producer sequence and were not checked (Kafka keeps its producers' numbers to itself; records with the headers mq.producer and mq.seq, as mq-pub --with-seq sets, are checked)"* ]]
	# mq-pub --with-seq numbers them per partition, keyed ones where Kafka puts the key
	{
		seq 1 500
		for i in $(seq 1 300); do printf 'user%d\tevent %d\n' $((i % 7)) "$i"; done
	} >"$BATS_TEST_TMPDIR/in"
	head -500 "$BATS_TEST_TMPDIR/in" | mq-pub -b "kafka://$KAFKA" -t "${T}n" --with-seq
	tail -300 "$BATS_TEST_TMPDIR/in" | mq-pub -b "kafka://$KAFKA" -t "${T}n" --with-seq -K $'\t'
	run --separate-stderr mq-sub -b "kafka://$KAFKA" -t "${T}n" -e --check-seq -v
	assert_success
	[ "${#lines[@]}" -eq 800 ]
	[[ "$stderr" == *"--check-seq: 0 gaps (0 missing), 0 repeats"* ]]
	[[ "$stderr" != *"not checked"* ]]
	[ "$(kcat -C -b "$KAFKA" -t "${T}n" -e -q -f '%h\n' | grep -c '^mq.producer=[0-9]*,mq.seq=[0-9]*$')" -eq 800 ]
	# numbers of a record's own (-H here) give way to mq-pub's, other headers stay
	seq 1 3 | mq-pub -b "kafka://$KAFKA" -t "${T}h" -p 0 --with-seq -H mq.seq=7 -H mq.producer=x -H a=b
	run kcat -C -b "$KAFKA" -t "${T}h" -e -q -f '%h\n'
	assert_line --index 0 --regexp '^a=b,mq.producer=[0-9]+,mq.seq=0$'
	assert_line --index 2 --regexp '^a=b,mq.producer=[0-9]+,mq.seq=2$'
	# one message lost on the way to a mirror is found there
	mq-sub -b "kafka://$KAFKA" -t "${T}n" -e -f json --with-seq | sed 250d |
		mq-pub -b "kafka://$KAFKA" -t "${T}m" -f json
	run --separate-stderr mq-sub -b "kafka://$KAFKA" -t "${T}m" -e --check-seq
	assert_failure 1
	[ "${#lines[@]}" -eq 799 ]
	[[ "$stderr" == *"sequence gap: producer "*": 1 missing"* ]]
	[[ "$stderr" == *"--check-seq: 1 gap (1 missing), 0 repeats"* ]]
}

@test "mq-sub -g over Kafka commits what it wrote: the group's next run, and kcat -G, go on from there" {
	seq 1 100 | mq-pub -b "kafka://$KAFKA" -t "$T"
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -e --session-timeout 6s
	assert_success
	assert_equal "$(sort -n <<<"$output" | uniq | wc -l)" 100
	seq 101 110 | mq-pub -b "kafka://$KAFKA" -t "$T"
	# a group rejoined: what the first run committed is where this one starts
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -e --session-timeout 6s
	assert_success
	assert_equal "$(sort -n <<<"$output" | tr '\n' ' ')" "101 102 103 104 105 106 107 108 109 110 "
	seq 111 115 | mq-pub -b "kafka://$KAFKA" -t "$T"
	# kcat in the same group: the commits are Kafka's own
	run timeout 60 kcat -C -b "$KAFKA" -G "G$T" -X session.timeout.ms=6000 -e -q -f '%s\n' "$T"
	assert_equal "$(sort -n <<<"$output" | tr '\n' ' ')" "111 112 113 114 115 "
}

@test "two mq-sub of one group over Kafka split the partitions; every record is read" {
	mq-pub -b "kafka://$KAFKA" -t "$T" -m warm # made, with its four partitions
	# -w 0: long-running members wait through rebalances however long the
	# cluster takes (under load the mock's can outlast the default 10 s)
	mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -o end --session-timeout 6s -w 0 >"$BATS_TEST_TMPDIR/a" 3>&- 7>&- &
	local a=$!
	mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -o end --session-timeout 6s -w 0 >"$BATS_TEST_TMPDIR/b" 3>&- 7>&- &
	local b=$! i
	# until the group has settled: both members read something
	for ((i = 0; i < 60; i++)); do
		[ -s "$BATS_TEST_TMPDIR/a" ] && [ -s "$BATS_TEST_TMPDIR/b" ] && break
		for k in 1 2 3 4 5 6 7 8; do printf 'w%d\twarm\n' "$k"; done | mq-pub -b "kafka://$KAFKA" -t "$T" -K $'\t'
		sleep 1
	done
	[ -s "$BATS_TEST_TMPDIR/a" ] && [ -s "$BATS_TEST_TMPDIR/b" ]
	for i in $(seq 1 400); do printf 'key%d\t%d\n' "$i" "$i"; done | mq-pub -b "kafka://$KAFKA" -t "$T" -K $'\t'
	for ((i = 0; i < 300; i++)); do
		[ "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | grep -cv warm)" -ge 400 ] && break
		sleep 0.2
	done
	kill "$a" "$b" 2>/dev/null || true
	wait "$a" "$b" || true
	# at least once: a rebalance in between may hand a record to both
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | grep -v warm | sort -n | uniq | wc -l)" 400
	[ "$(grep -cv warm "$BATS_TEST_TMPDIR/a")" -gt 0 ]
	[ "$(grep -cv warm "$BATS_TEST_TMPDIR/b")" -gt 0 ]
}

@test "--exec over Kafka: each record runs the command, failures retried then dead-lettered with why, all committed" {
	cat >"$BATS_TEST_TMPDIR/job.sh" <<JOB
#!/bin/sh
v=\$(cat)
case \$v in *7) echo "no sevens" >&2; exit 1;; esac
echo "\$v" >>"$BATS_TEST_TMPDIR/done"
JOB
	chmod +x "$BATS_TEST_TMPDIR/job.sh"
	seq 1 30 | mq-pub -b "kafka://$KAFKA" -t "$T"
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -e --exec "$BATS_TEST_TMPDIR/job.sh" --max-attempts 2 \
		--backoff 10ms --session-timeout 6s
	assert_success
	assert_equal "$(sort -n "$BATS_TEST_TMPDIR/done" | tr '\n' ' ')" \
		"$(seq 1 30 | grep -v 7 | tr '\n' ' ')"
	run kcat -C -b "$KAFKA" -t "$T.dlq" -e -q -f '%s %h\n'
	assert_equal "$(cut -d' ' -f1 <<<"$output" | sort -n | tr '\n' ' ')" "7 17 27 "
	assert_output --partial "mq.dlq.topic=$T,"
	assert_output --partial "mq.dlq.attempts=2,mq.dlq.status=exit 1,mq.dlq.stderr=no sevens"
	# everything was committed: the group's next run has nothing to do
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -e --exec "$BATS_TEST_TMPDIR/job.sh" --session-timeout 6s
	assert_success
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/done")" 27
}

@test "a pattern follower over Kafka picks up a topic made while it reads, each record under its own topic" {
	mq-pub -b "kafka://$KAFKA" -t "${T}b" -p 0 -m first
	mq-sub -b "kafka://$KAFKA" -t "${T}?" -o beginning -n 3 -F '%t %s\n' >"$BATS_TEST_TMPDIR/out" 3>&- 7>&- &
	local f=$! i
	for ((i = 0; i < 100; i++)); do [ -s "$BATS_TEST_TMPDIR/out" ] && break; sleep 0.1; done
	mq-pub -b "kafka://$KAFKA" -t "${T}a" -p 0 -m second # a new topic, sorted before the one being read
	sleep 1
	mq-pub -b "kafka://$KAFKA" -t "${T}b" -p 0 -m third
	for ((i = 0; i < 200; i++)); do [ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -ge 3 ] && break; sleep 0.1; done
	kill "$f" 2>/dev/null || true
	wait "$f" || true
	run sort "$BATS_TEST_TMPDIR/out"
	assert_output "${T}a second
${T}b first
${T}b third"
}

@test "mq-lag and mq-admin over Kafka: a group's commit against the end, the same table, JSON and exit codes" {
	seq 1 100 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 0
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -n 50 -o beginning --session-timeout 6s
	assert_success
	run mq-admin -b "kafka://$KAFKA" group describe "G$T"
	assert_success
	assert_line --regexp "^$T +0 +50 +100 +50 "
	run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "$T" --window 0 -f json
	assert_success # nobody reads now, but whether anyone does is the cluster's to say (see below)
	[ "$(jq -r '.groups[0].lag' <<<"$output")" = 50 ]
	[ "$(jq -r '.groups[0].partitions[] | select(.partition == 0) | .committed' <<<"$output")" = 50 ]
	[ "$(jq -r '.groups[0].partitions[] | select(.partition == 0) | .end' <<<"$output")" = 100 ]
	# the age of the oldest unconsumed record: from the time of record 50
	[ "$(jq -r '.groups[0].partitions[] | select(.partition == 0) | .lag_seconds' <<<"$output")" != null ]
	[ "$(jq -r '.groups[0].partitions[] | select(.partition == 1) | .lag_seconds' <<<"$output")" = 0 ]
	sleep 2
	run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "$T" --window 0 -f json
	[ "$(jq -r '.groups[0].lag_seconds >= 2 and .groups[0].lag_seconds < 60' <<<"$output")" = true ]
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 --crit-age 1s
	assert_failure 2
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 --warn-age 1s --crit-age 1h
	assert_failure 1
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 -f prom
	assert_line --regexp "^mq_consumer_lag_seconds\{group=\"G$T\",topic=\"$T\",partition=\"0\"\} [0-9]"
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 --warn 40
	assert_failure 1
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 --warn 40 --crit 50
	assert_failure 2
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 -f prom
	assert_line "mq_consumer_lag{group=\"G$T\",topic=\"$T\",partition=\"0\"} 50"
	if [ -z "${MQ_TEST_KAFKA:-}" ]; then
		# the mock cluster does not describe groups: members unknown, never STOPPED on a guess
		run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0
		assert_output --partial "(members unknown)"
		refute_output --partial STOPPED
	fi
	# a group asked about a topic it does not read: said, as with mq-serve
	mq-pub -b "kafka://$KAFKA" -t "${T}o" -p 0 -m other
	run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "${T}o" --window 0
	assert_failure 3
	assert_output --partial "group 'G$T' does not read topic '${T}o'"
	# but it is a group: its offsets on that topic can be set without --create, as with mq-serve
	run mq-admin -b "kafka://$KAFKA" group reset "G$T" -t "${T}o" --to end --dry-run
	assert_success
	assert_line --regexp "^0 +- +1$"
	run mq-lag -b "kafka://$KAFKA" -g "G$T" --window 0 -f json
	[ "$(jq -r '.groups[0].partitions | length' <<<"$output")" = 4 ] # every partition of what it reads, and no more
	# a name that is no group: UNKNOWN, as with mq-serve
	run mq-lag -b "kafka://$KAFKA" -g "nosuch$T" --window 0
	assert_failure 3
	assert_output --partial "no group 'nosuch$T'"
	run mq-admin -b "kafka://$KAFKA" group reset "nosuch$T" -t "$T" --to beginning
	assert_failure 1
	assert_output --partial "no group 'nosuch$T'"
	# a dry run shows what a reset would do and changes nothing
	run mq-admin -b "kafka://$KAFKA" group reset "G$T" -t "$T" --to 10 --dry-run
	assert_success
	assert_line --regexp "^0 +50 +10$"
	assert_line --regexp "^1 +-? *0? +0$"
	run mq-admin -b "kafka://$KAFKA" group describe "G$T" -f json
	[ "$(jq -r ".offsets[] | select(.topic == \"$T\" and .partition == 0) | .committed" <<<"$output")" = 50 ]
	run mq-admin -b "kafka://$KAFKA" -w 3s group reset "G$T" -t "$T" --to 10
	if [ -n "${MQ_TEST_KAFKA:-}" ]; then
		assert_success
		run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "$T" --window 0 -f json
		[ "$(jq -r '.groups[0].lag' <<<"$output")" = 90 ]
	else # the mock cluster takes commits from group members alone: refused, and said why
		assert_failure 1
		assert_output --partial "setting the offsets of group 'G$T'"
	fi
}

@test "mq-lag over Kafka samples its own window: a lag that grows is LAGGING, one nobody commits is STALLED" {
	seq 1 100 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 0
	run mq-sub -b "kafka://$KAFKA" -t "$T" -g "G$T" -n 50 -o beginning --session-timeout 6s
	assert_success
	# partition 1: empty when the window opens (so not STALLED), then growing
	(sleep 0.7; for i in $(seq 1 30); do seq 1 10 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 1; sleep 0.1; done) 3>&- 7>&- &
	local w=$!
	run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "$T" --window 3s -v
	wait "$w"
	assert_failure 1 # WARNING
	assert_line --regexp "^G$T +$T +1 .* LAGGING "
	[ -n "${MQ_TEST_KAFKA:-}" ] || assert_line --regexp "^G$T +$T +0 .* STALLED "
	assert_output --partial "samples every 100ms, 30 kept (window 3.0s)"
	# --window 0: one sample, statuses from the present alone
	run mq-lag -b "kafka://$KAFKA" -g "G$T" -t "$T" --window 0
	refute_output --partial LAGGING
	refute_output --partial STALLED
}

@test "mq-admin over Kafka: topics listed and described from the cluster; what it cannot do or tell, said" {
	seq 1 30 | mq-pub -b "kafka://$KAFKA" -t "$T" -p 2
	run mq-admin -b "kafka://$KAFKA" topic list
	assert_success
	assert_line "$T"
	run mq-admin -b "kafka://$KAFKA" topic describe "$T"
	assert_success
	assert_line --regexp "^messages +30$"
	assert_line --regexp "^bytes +-$" # a Kafka cluster does not say through this API
	assert_line --regexp "^2 +0 +30 +30$"
	run mq-admin -b "kafka://$KAFKA" topic describe "$T" -f json
	[ "$(jq -r '.bytes' <<<"$output")" = null ]
	[ "$(jq -r '.offsets[2].end' <<<"$output")" = 30 ]
	run mq-admin -b "kafka://$KAFKA" topic describe "nosuch$T"
	assert_failure 1
	assert_output --partial "no topic 'nosuch$T'"
	run mq-admin -b "kafka://$KAFKA" ping
	assert_success
	run mq-admin -b "kafka://$KAFKA" stats
	assert_failure 1
	assert_output --partial "stats are mq-serve's counters; a Kafka cluster keeps its own"
	if [ -n "${MQ_TEST_KAFKA:-}" ]; then
		run mq-admin -b "kafka://$KAFKA" topic create "${T}c" --partitions 3 --retention-time 1h
		assert_success
		run mq-admin -b "kafka://$KAFKA" topic create "${T}c"
		assert_failure 1
		assert_output --partial "exists"
		run mq-admin -b "kafka://$KAFKA" topic partitions "${T}c" 5
		assert_success
		run mq-admin -b "kafka://$KAFKA" topic describe "${T}c" -f json
		[ "$(jq -r '.partitions' <<<"$output")" = 5 ]
		[ "$(jq -r '.retention_time_ms' <<<"$output")" = 3600000 ]
		run mq-admin -b "kafka://$KAFKA" topic delete "${T}c"
		assert_success
		run mq-admin -b "kafka://$KAFKA" group list
		assert_success
	else # the mock cluster has no controller: creating is refused, and said why
		run mq-admin -b "kafka://$KAFKA" -w 2s topic create "${T}c" --partitions 3
		assert_failure 1
		assert_output --partial "creating topic '${T}c' at kafka://$KAFKA"
		run mq-admin -b "kafka://$KAFKA" group list
		assert_failure 1
		assert_output --partial "the group list from kafka://$KAFKA"
	fi
}
