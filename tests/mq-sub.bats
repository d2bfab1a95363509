#!/usr/bin/env bats
# mq-sub against a real mq-serve: start offsets, output formats, exit
# conditions, consumer groups (sharing, failover, resuming after the
# last commit) and errors.

load helpers
bats_require_minimum_version 1.5.0

# Publish seq 1 N to topic $1 (one batch per call: same timestamps).
fill() {
	seq 1 "$2" | mq-pub -t "$1"
}

sub() {
	timeout 60 mq-sub "$@"
}

# Wait until files $2... hold $1 distinct values in column 2 (at most 20 s).
wait_unique() {
	local want=$1 i
	shift
	for ((i = 0; i < 400; i++)); do
		[ "$(cat "$@" | awk '{ print $2 }' | sort -u | wc -l)" -ge "$want" ] && return 0
		sleep 0.05
	done
	echo "wait_unique: $(cat "$@" | awk '{ print $2 }' | sort -u | wc -l) distinct values, wanted $want" >&2
	return 1
}

@test "mq-sub --help and -V" {
	run mq-sub --help
	assert_success
	assert_output --partial "usage: mq-sub -t TOPIC [-g GROUP] [-o OFFSET] [-e] [-n COUNT] [-F FORMAT | -f FMT] [options]"
	run mq-sub -V
	assert_success
	assert_output --regexp '^mq-sub [0-9]+\.[0-9]+'
}

@test "mq-sub refuses bad usage with one line and exit 2" {
	run mq-sub -t a --frobnicate
	assert_failure 2
	assert_output "mq-sub: unknown option '--frobnicate' (try 'mq-sub --help')"
	run mq-sub -t 'bad name'
	assert_failure 2
	assert_output --partial "topic 'bad name': invalid name"
	run mq-sub -t a -o sometime
	assert_failure 2
	assert_output --partial "offset 'sometime': not understood"
	[ "${#lines[@]}" -eq 1 ]
	for o in @yesterday @2026-13-01T00:00:00Z @-1x 1.5 --; do
		run mq-sub -t a -o "$o"
		assert_failure 2
	done
	run mq-sub -t a -n 0
	assert_failure 2
	run mq-sub -t a -F '%z'
	assert_failure 2
	assert_output --partial "%z"
	run mq-sub -t 'logs/*'
	assert_failure 2
	assert_output --partial "topic pattern 'logs/*': invalid"
	[ "${#lines[@]}" -eq 1 ]
	run mq-sub -t a -t 'b c'
	assert_failure 2
	assert_output --partial "topic 'b c': invalid name"
	run mq-sub -t a --with-seq
	assert_failure 2
	assert_output --partial "--with-seq goes with -f json or -f msgpack"
	run mq-sub -t a -g 'no/slash'
	assert_failure 2
	run mq-sub -t a --at-most-once
	assert_failure 2
}

@test "mq-sub against a silent broker exits 1 within its -w timeout; against none at once" {
	start_broker
	kill -STOP "$MQ_BROKER_PID" # connections are taken by the kernel, nothing answers
	run timeout 20 mq-sub -w 1s -t a
	kill -CONT "$MQ_BROKER_PID"
	assert_failure 1
	assert_output "mq-sub: broker $MQ_BROKER did not answer within 1s"
	local port
	port=$(free_port)
	run timeout 20 mq-sub -b "tcp://127.0.0.1:$port" -w 10s -t a
	assert_failure 1
	assert_output "mq-sub: cannot connect to tcp://127.0.0.1:$port: connection refused (is mq-serve running? set -b or MQ_BROKER)"
}

@test "-e on a topic that does not exist says so" {
	start_broker
	run sub -t nothing -e
	assert_failure 1
	assert_output --partial "topic 'nothing' does not exist"
}

@test "every -o form" {
	start_broker --partitions 2
	seq 1 10 | mq-pub -t o -p 0
	sleep 0.05
	local mid
	mid=$(date +%s%3N)
	sleep 0.05
	seq 11 20 | mq-pub -t o -p 0
	run sub -t o -e -o beginning
	[ "${#lines[@]}" -eq 20 ]
	run sub -t o -e -o end
	assert_success
	assert_output ""
	run sub -t o -e -o 15 -F '%p:%o:%s\n'
	assert_output "0:15:16
0:16:17
0:17:18
0:18:19
0:19:20"
	run sub -t o -e -o 100
	assert_output ""
	run sub -t o -e -o -3
	assert_output "18
19
20"
	run sub -t o -e -o -100
	[ "${#lines[@]}" -eq 20 ]
	run sub -t o -e -o "@$mid"
	assert_line --index 0 11
	[ "${#lines[@]}" -eq 10 ]
	run sub -t o -e -o "@$(date -u -d "@$((mid / 1000)).$(printf %03d $((mid % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)"
	assert_line --index 0 11
	[ "${#lines[@]}" -eq 10 ]
	run sub -t o -e -o @2099-01-01T00:00:00+01:00
	assert_output ""
	run sub -t o -e -o "@$(date -u -d @$((mid / 1000 - 60)) +%Y-%m-%dT%H:%M:%SZ)"
	[ "${#lines[@]}" -eq 20 ]
	run sub -t o -e -o @-1h
	[ "${#lines[@]}" -eq 20 ]
	run sub -t o -e -o @-1ms
	assert_output ""
}

@test "-o @TIME: seconds as date +%s prints them, local dates, compound durations, impossible dates refused" {
	start_broker
	seq 1 3 | mq-pub -t o
	sleep 1.1
	local t
	t=$(date +%s)
	seq 4 5 | mq-pub -t o
	# Seconds, not milliseconds of 1970.
	run sub -t o -e -o "@$t"
	assert_output "4
5"
	run sub -t o -e -o "@$((t * 1000))"
	assert_output "4
5"
	run sub -t o -e -o "@$((t + 60))"
	assert_output ""
	# Local time: what date prints without -u.
	run sub -t o -e -o "@$(date -d "@$t" +%Y-%m-%dT%H:%M:%S)"
	assert_output "4
5"
	run sub -t o -e -o "@$(date -d "@$((t + 120))" +%Y-%m-%dT%H:%M)"
	assert_output ""
	run sub -t o -e -o "@$(date -d "@$((t - 86400))" +%Y-%m-%d)"
	[ "${#lines[@]}" -eq 5 ]
	run sub -t o -e -o @-1h30m
	[ "${#lines[@]}" -eq 5 ]
	run sub -t o -e -o @2026-02-30
	assert_failure 2
	assert_output --partial "offset '@2026-02-30': time not understood"
	run mq-pub -t o -w 1h30m -m x
	assert_success
	run mq-pub -t o --ttl 30m1h -m x
	assert_failure 2
	assert_output --partial "from the largest unit to the smallest"
}

@test "-F codes and -f json" {
	start_broker
	printf 'k1\tv1\n' | mq-pub -t f -K "$(printf '\t')" -H h1=a -H h2=b
	run sub -t f -e -F '%t|%p|%o|%k|%s|%i|%h|%S|%%|\t|\n'
	assert_output "$(printf 'f|0|0|k1|v1||h1=a,h2=b|2|%%|\t|')"
	run sub -t f -e -F '%T\n'
	[ "${output}" -gt 1700000000000 ]
	[ "$(sub -t f -e -F 'x\0y' | od -An -tx1 | tr -d ' \n')" = "780079" ]
	sub -t f -e -f json | "$MQ_PYTHON" -m json.tool >/dev/null
	run sub -t f -e -f json
	assert_output '{"topic":"f","partition":0,"offset":0,"timestamp":'"$(sub -t f -e -F %T)"',"key":"k1","value":"v1","id":null,"headers":{"h1":"a","h2":"b"}}'
}

@test "-n COUNT stops after COUNT messages, following the topic meanwhile" {
	start_broker
	fill n 3
	mq-sub -t n -n 5 >"$BATS_TEST_TMPDIR/out" 3>&- &
	local s=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 3
	fill n 3
	wait "$s"
	run cat "$BATS_TEST_TMPDIR/out"
	assert_output "1
2
3
1
2"
}

@test "a closed pipe ends mq-sub quietly with status 0" {
	start_broker
	fill pipe 200000
	run bash -c 'timeout 30 mq-sub -t pipe | head -2; echo "status ${PIPESTATUS[0]}"'
	assert_output "1
2
status 0"
}

@test "two group members split 4 partitions; after kill -9 of one the other gets all" {
	start_broker --partitions 4
	seq 1 4000 | mq-pub -t g --batch 50
	mq-sub -t g -g G --session-timeout 2s -F '%p %s\n' >"$BATS_TEST_TMPDIR/a" 2>"$BATS_TEST_TMPDIR/a.err" 3>&- &
	local a=$!
	wait_lines "$BATS_TEST_TMPDIR/a" 4000
	mq-sub -t g -g G --session-timeout 2s -F '%p %s\n' >"$BATS_TEST_TMPDIR/b" 2>"$BATS_TEST_TMPDIR/b.err" 3>&- &
	local b=$! n=4000 i
	# b joins and a hands over half of the partitions: publish until both read
	for ((i = 0; i < 100; i++)); do
		seq $((n + 1)) $((n + 100)) | mq-pub -t g --batch 10
		n=$((n + 100))
		[ "$(awk '$2 > 4000' "$BATS_TEST_TMPDIR/b" | wc -l)" -gt 0 ] && break
		sleep 0.1
	done
	seq $((n + 1)) $((n + 4000)) | mq-pub -t g --batch 50
	n=$((n + 4000))
	wait_unique "$n" "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	# both members got messages, of different partitions
	local pa pb
	pa=$(awk -v n=$((n - 4000)) '$2 > n { print $1 }' "$BATS_TEST_TMPDIR/a" | sort -u | tr '\n' ' ')
	pb=$(awk -v n=$((n - 4000)) '$2 > n { print $1 }' "$BATS_TEST_TMPDIR/b" | sort -u | tr '\n' ' ')
	echo "a: $pa b: $pb"
	[ -n "$pa" ]
	[ -n "$pb" ]
	[ "$(echo $pa $pb | tr ' ' '\n' | sort | uniq -d)" = "" ]
	kill -9 "$a"
	wait "$a" || true
	seq $((n + 1)) $((n + 4000)) | mq-pub -t g --batch 50
	wait_unique $((n + 4000)) "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	kill -TERM "$b"
	wait "$b"
	# nothing lost (repeats are allowed: at least once)
	[ "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | awk '{ print $2 }' | sort -n -u | wc -l)" -eq $((n + 4000)) ]
	# b read every partition in the end
	[ "$(awk -v n="$n" '$2 > n { print $1 }' "$BATS_TEST_TMPDIR/b" | sort -u | wc -l)" -eq 4 ]
}

@test "a group resumes after its last commit: on restart of mq-sub and of the broker" {
	start_broker --partitions 2
	fill r 1000
	run sub -t r -g R -n 300
	assert_success
	[ "${#lines[@]}" -eq 300 ]
	stop_broker
	start_broker --partitions 2
	run sub -t r -g R -e
	assert_success
	[ "${#lines[@]}" -eq 700 ]
	# -n 300 then -e: every message exactly once, since both exited cleanly
	(sub -t r -g R2 -n 300 && sub -t r -g R2 -e) | sort -n | uniq -c | awk '$1 != 1 { exit 1 }'
	run sub -t r -g R -e
	assert_output ""
}

@test "a follower keeps going across a broker restart and resumes where it was" {
	start_broker
	fill live 500
	mq-sub -t live -g L -w 10s >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local s=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 500
	stop_broker
	sleep 0.5
	start_broker
	seq 501 1000 | mq-pub -t live
	wait_lines "$BATS_TEST_TMPDIR/out" 1000
	kill -TERM "$s"
	wait "$s"
	[ "$(sort -n -u "$BATS_TEST_TMPDIR/out" | wc -l)" -eq 1000 ]
	# the clean exit committed everything
	run sub -t live -g L -e
	assert_output ""
}

@test "SIGINT with a group: flush, commit, leave, exit 0" {
	start_broker
	fill sig 100
	mq-sub -t sig -g S >"$BATS_TEST_TMPDIR/out" 3>&- &
	local s=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 100
	kill -INT "$s"
	wait "$s"
	seq 101 150 | mq-pub -t sig
	run sub -t sig -g S -e
	[ "${#lines[@]}" -eq 50 ]
	assert_line --index 0 101
}

@test "SIGINT while a heartbeat waits for the broker: still flush, commit, leave, exit 0" {
	start_broker
	fill sigw 10
	mq-sub -t sigw -g W --session-timeout 3s >"$BATS_TEST_TMPDIR/out" 3>&- &
	local s=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 10
	kill -STOP "$MQ_BROKER_PID"
	sleep 1.5 # a heartbeat (every second) is now waiting for the stopped broker
	kill -INT "$s"
	sleep 0.3
	kill -CONT "$MQ_BROKER_PID"
	local st=0
	wait "$s" || st=$?
	[ "$st" -eq 0 ]
	run sub -t sigw -g W -e
	assert_output ""
}

@test "--at-most-once commits before writing" {
	start_broker
	fill amo 10
	run sub -t amo -g A --at-most-once -n 4
	assert_output "1
2
3
4"
	# -n 4: only the four written were committed
	run sub -t amo -g A -e
	assert_line --index 0 5
	[ "${#lines[@]}" -eq 6 ]
}

@test "without -g every partition is read and nothing is committed" {
	start_broker --partitions 3
	seq 1 3000 | mq-pub -t all --batch 10
	[ "$(sub -t all -e | sort -n -u | wc -l)" -eq 3000 ]
	[ "$(sub -t all -e | wc -l)" -eq 3000 ]
	[ "$(sub -t all -e -F '%p\n' | sort -u | wc -l)" -eq 3 ]
}

@test "-t repeated reads every topic named" {
	start_broker --partitions 2
	seq 1 100 | mq-pub -t one
	seq 101 150 | mq-pub -t two
	seq 151 160 | mq-pub -t three
	run sub -t one -t two -e -F '%t %s\n'
	assert_success
	[ "${#lines[@]}" -eq 150 ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 == "one"' | wc -l)" -eq 100 ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 == "two" && $2 > 100' | wc -l)" -eq 50 ]
}

@test "-t PATTERN reads matching topics, also ones created later, and no others" {
	start_broker --partitions 2
	seq 1 10 | mq-pub -t logs.web
	seq 1 10 | mq-pub -t metrics
	mq-sub -t 'logs.*' -F '%t %s\n' >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pid=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 10
	seq 11 20 | mq-pub -t logs.web
	seq 1 5 | mq-pub -t logs.db
	seq 1 5 | mq-pub -t logsXdb
	wait_lines "$BATS_TEST_TMPDIR/out" 25
	sleep 1.5
	kill -TERM "$pid"
	wait "$pid"
	[ "$(awk '$1 == "logs.web"' "$BATS_TEST_TMPDIR/out" | sort -n -k2 -u | wc -l)" -eq 20 ]
	[ "$(awk '$1 == "logs.db"' "$BATS_TEST_TMPDIR/out" | wc -l)" -eq 5 ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 25 ]
	# -e with a pattern: what matches now, to its end
	run sub -t 'logs.[dw]*' -t metrics -e -F '%t\n'
	assert_success
	[ "${#lines[@]}" -eq 35 ]
	run sub -t 'nothing.*' -e
	assert_success
	assert_output --partial "no topic matches nothing.*"
}

@test "a group reading a pattern takes up topics created later and commits each" {
	start_broker --partitions 2
	seq 1 10 | mq-pub -t jobs.a
	mq-sub -t 'jobs.*' -g g -F '%t %s\n' >"$BATS_TEST_TMPDIR/out" 3>&- &
	local pid=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 10
	seq 1 7 | mq-pub -t jobs.b
	wait_lines "$BATS_TEST_TMPDIR/out" 17
	sleep 1
	kill -TERM "$pid"
	wait "$pid"
	[ "$(awk '$1 == "jobs.b"' "$BATS_TEST_TMPDIR/out" | wc -l)" -eq 7 ]
	# everything was committed: a new member of the group has nothing left
	seq 8 9 | mq-pub -t jobs.b
	run sub -t 'jobs.*' -g g -e -F '%t %s\n'
	assert_success
	assert_output "$(printf 'jobs.b 8\njobs.b 9')"
}

@test "without -g, partitions added while following are read from their beginning" {
	start_broker --partitions 1
	seq 1 5 | mq-pub -t grow
	mq-sub -t grow -F '%p %s\n' >"$BATS_TEST_TMPDIR/out" 3>&- &
	local pid=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 5
	mq-admin topic partitions grow 3
	seq 6 8 | mq-pub -t grow -p 2
	seq 9 9 | mq-pub -t grow -p 1
	wait_lines "$BATS_TEST_TMPDIR/out" 9
	kill -TERM "$pid"
	wait "$pid"
	[ "$(awk '$1 == 2' "$BATS_TEST_TMPDIR/out" | wc -l)" -eq 3 ]
	[ "$(awk '$1 == 1 { print $2 }' "$BATS_TEST_TMPDIR/out")" = 9 ]
}

@test "with -g and -o end, partitions added later are read from their beginning" {
	start_broker --partitions 1
	seq 1 5 | mq-pub -t gg
	mq-sub -t gg -g G -o end -F '%p %s\n' >"$BATS_TEST_TMPDIR/out" 3>&- &
	local pid=$!
	sleep 1
	mq-admin topic partitions gg 2
	sleep 1.5
	seq 6 8 | mq-pub -t gg -p 1
	wait_lines "$BATS_TEST_TMPDIR/out" 3
	kill -TERM "$pid"
	wait "$pid"
	[ "$(awk '$1 == 1 { print $2 }' "$BATS_TEST_TMPDIR/out" | tr '\n' ' ')" = "6 7 8 " ]
	[ "$(awk '$1 == 0' "$BATS_TEST_TMPDIR/out" | wc -l)" -eq 0 ]
}

@test "a topic deleted and made again while followed is read from its new start" {
	start_broker
	seq 1 10 | mq-pub -t re
	mq-sub -t re -g G -F '%s\n' >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local pid=$!
	wait_lines "$BATS_TEST_TMPDIR/out" 10
	sleep 0.7 # committed
	mq-admin topic delete re --force
	printf 'NEW1\nNEW2\nNEW3\n' | mq-pub -t re
	wait_lines "$BATS_TEST_TMPDIR/out" 13
	sleep 0.7
	kill -TERM "$pid"
	wait "$pid"
	[ "$(tail -3 "$BATS_TEST_TMPDIR/out" | tr '\n' ' ')" = "NEW1 NEW2 NEW3 " ]
	# the group's offset is one of the new topic: nothing is left, and new records come
	printf 'NEW4\n' | mq-pub -t re
	run mq-sub -t re -g G -e
	assert_success
	assert_output "NEW4"
}

@test "--max-wait: stop after D; exit 1 when -n was not reached, saying how many arrived" {
	start_broker
	seq 1 3 | mq-pub -t mw
	run --separate-stderr timeout 20 mq-sub -t mw --max-wait 300ms
	assert_success
	assert_output "1
2
3"
	run --separate-stderr timeout 20 mq-sub -t mw --max-wait 300ms -n 5
	assert_failure 1
	[ "${#lines[@]}" -eq 3 ]
	[ "$stderr" = "mq-sub: --max-wait 300ms passed with 3 of 5 messages" ]
	run timeout 20 mq-sub -t mw --max-wait 10s -n 2
	assert_success
	assert_output "1
2"
	# A group commits what was written before the deadline.
	run --separate-stderr timeout 20 mq-sub -t mw -g g --max-wait 300ms -n 9
	assert_failure 1
	seq 4 4 | mq-pub -t mw
	run timeout 20 mq-sub -t mw -g g -e
	assert_output "4"
	# The --exec sink too.
	run --separate-stderr timeout 20 mq-sub -t mw -g x --exec 'cat; echo' --max-wait 300ms -n 9
	assert_failure 1
	[ "${#lines[@]}" -eq 4 ]
	[ "$stderr" = "mq-sub: --max-wait 300ms passed with 4 of 9 messages" ]
	run mq-sub -t mw --max-wait soon
	assert_failure 2
}

@test "reading never creates a topic: a follower waits for it, and reads it once published" {
	start_broker
	timeout 30 mq-sub -t later -n 2 -v >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	local sub=$!
	timeout 30 mq-sub -t later2 -g g -n 1 >"$BATS_TEST_TMPDIR/out2" 2>&1 3>&- &
	local sub2=$!
	sleep 1.5
	# Nothing was created by the readers.
	run mq-admin topic list
	refute_output --partial later
	run mq-sub -t later -e
	assert_failure 1
	assert_output --partial "topic 'later' does not exist"
	printf 'a\nb\n' | mq-pub -t later
	mq-pub -t later2 -m c
	wait "$sub"
	wait "$sub2"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "a
b"
	grep -q "topic 'later' does not exist yet: waiting for it" "$BATS_TEST_TMPDIR/err"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out2")" "c"
	# The group committed it: read again, nothing new.
	run timeout 20 mq-sub -t later2 -g g -e
	assert_success
	assert_output ""
}
