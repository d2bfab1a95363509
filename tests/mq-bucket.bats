#!/usr/bin/env bats
# mq-bucket (local filter): rates and bad rates, --drop, --reject, -k,
# --bytes, formats, the accuracy of the rate measured from the arrival
# times of output lines, and backpressure on a fast producer.  Shared
# buckets held by a real broker: --take until empty, waiting with -w,
# unknown buckets, definitions across a broker restart, an unreachable
# broker, --shared with --drop, and two --shared filters that together
# keep to BURST + RATE x t.

load helpers

@test "mq-bucket --help and -V" {
	run mq-bucket --help
	assert_success
	assert_output --partial "usage: mq-bucket -r RATE [-B BURST] [--bytes] [--drop | --reject FILE] [-k FIELD]"
	run mq-bucket -V
	assert_success
	assert_output --regexp '^mq-bucket [0-9]+\.[0-9]+'
}

@test "a rate of 0, negative or unparsable, or none, exits 2 with a clear message" {
	local r
	for r in 0 0/s -5 -5/s abc 10/w 1KiBs 1.2.3 ""; do
		run mq-bucket -r "$r" </dev/null
		assert_failure 2
		assert_output --partial "mq-bucket: rate '$r'"
	done
	run mq-bucket </dev/null
	assert_failure 2
	assert_output --partial "-r RATE is required"
	run mq-bucket -r 10/s -B 0 </dev/null
	assert_failure 2
	run mq-bucket -r 10/s --drop --reject x </dev/null
	assert_failure 2
	run mq-bucket -r 10/s -k colour </dev/null
	assert_failure 2
	run mq-bucket -r 10/s -k key </dev/null
	assert_failure 2
	assert_output --partial "give -K DELIM"
}

@test "--shared and --take: bad rates, names, counts and combinations exit 2 before any broker is asked" {
	local r
	for r in 0 0/s -5 -5/s abc 10/w ""; do
		run mq-bucket --shared api -r "$r" </dev/null
		assert_failure 2
		assert_output --partial "mq-bucket: rate '$r'"
		run mq-bucket --take api -r "$r"
		assert_failure 2
		assert_output --partial "mq-bucket: rate '$r'"
	done
	run mq-bucket --take 'a/b'
	assert_failure 2
	assert_output --partial "shared bucket 'a/b': invalid name"
	run mq-bucket --shared __reserved </dev/null
	assert_failure 2
	run mq-bucket --take api -n 0
	assert_failure 2
	assert_output --partial "-n 0: the number of tokens must be a whole number"
	run mq-bucket --take api -n abc
	assert_failure 2
	run mq-bucket --take api -n -1
	assert_failure 2
	run mq-bucket --take api -r 1/s -B 2 -n 3
	assert_failure 2
	assert_output --partial "more than the burst"
	run mq-bucket --take api -B 5
	assert_failure 2
	assert_output --partial "give -r RATE too"
	run mq-bucket --shared api --take api
	assert_failure 2
	assert_output --partial "choose one"
	run mq-bucket --shared api -k key -K ' ' </dev/null
	assert_failure 2
	assert_output --partial "-k with --shared"
	run mq-bucket --shared api -n 2 </dev/null
	assert_failure 2
	run mq-bucket --take api --drop
	assert_failure 2
	run mq-bucket --shared api -w soon </dev/null
	assert_failure 2
}

@test "an unreachable rate passes everything byte for byte: lines, -0, json" {
	seq 1 100000 | sed 's/$/ some text/' >"$BATS_TEST_TMPDIR/in"
	printf 'no newline' >>"$BATS_TEST_TMPDIR/in"
	mq-bucket -r 1000000000/s <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	printf '\n' >>"$BATS_TEST_TMPDIR/in"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	run bash -c "printf 'a\0b\0' | mq-bucket -0 -r 1000/s | od -An -c | tr -s ' '"
	assert_output " a \\0 b \\0"
	local j='{"value":"x","zz":{"a":[1]}}'
	run bash -c "echo '$j' | mq-bucket -f json -r 100/s"
	assert_output "$j"
}

@test "--drop passes the burst and drops the rest; -v counts" {
	run bash -c "seq 1 100 | mq-bucket -r 1/h -B 10 --drop -v"
	assert_success
	assert_output "$(seq 1 10; echo 'mq-bucket: 10 passed, 90 dropped')"
}

@test "--reject FILE gets what found no token" {
	run bash -c "seq 1 100 | mq-bucket -r 1/h -B 10 --reject '$BATS_TEST_TMPDIR/rej' -v"
	assert_success
	assert_output "$(seq 1 10; echo 'mq-bucket: 10 passed, 90 rejected')"
	run cat "$BATS_TEST_TMPDIR/rej"
	assert_output "$(seq 11 100)"
	run mq-bucket -r 1/s --reject "$BATS_TEST_TMPDIR/no/such/file" </dev/null
	assert_failure 1
}

@test "-k: one bucket per key (-K on lines, key in envelopes)" {
	run bash -c "printf 'a 1\nb 1\na 2\nc 1\nb 2\nnokey\nnokey\n' | mq-bucket -r 1/h -B 1 -k key -K ' ' --drop -v"
	assert_output "$(printf 'a 1\nb 1\nc 1\nnokey\nmq-bucket: 4 passed, 3 dropped, 4 keys, 0 forgotten before their bucket was full, 2 without a key (one bucket)')"
	run bash -c "printf '%s\n' '{\"key\":\"a\",\"value\":\"1\"}' '{\"key\":\"a\",\"value\":\"2\"}' '{\"key\":\"b\",\"value\":\"3\"}' | mq-bucket -f json -r 1/h -B 1 -k key --drop"
	assert_output "$(printf '%s\n' '{"key":"a","value":"1"}' '{"key":"b","value":"3"}')"
	run bash -c "printf 'x 1\ny 1\nz 2\n' | mq-bucket -r 1/h -B 1 -k field:2 --drop"
	assert_output "$(printf 'x 1\nz 2')"
}

@test "--bytes counts bytes (terminator included); -B takes a size" {
	run bash -c "printf 'aaaa\nbbbb\ncccc\n' | mq-bucket --bytes -r 1/h -B 10 --drop"
	assert_output "$(printf 'aaaa\nbbbb')"
	run bash -c "head -c 3000 /dev/zero | tr '\\0' x | fold -w 99 | mq-bucket --bytes -r 1/h -B 1KiB --drop | wc -l"
	assert_output 10
}

# Runs "$@" with stdout to a pipe and prints, for each line it writes,
# the arrival time in seconds since just before it started: no earlier
# than the bucket's own start, so BURST + RATE x t stays an upper bound.
timestamps() {
	"$MQ_PYTHON" -c '
import subprocess, sys, time
t0 = time.monotonic_ns()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = []
while True:
    line = p.stdout.readline()
    if not line:
        break
    out.append(time.monotonic_ns())
p.wait()
print("\n".join("%.6f" % ((t - t0) / 1e9) for t in out))' "$@"
}

@test "the rate holds: at every moment passed <= BURST + RATE x t (within max(1, 1%)), and not 10% off" {
	# 20 at once, then 200/s for 2.5 s
	local rate=200 burst=20 n=520
	timestamps bash -c "seq 1 $n | mq-bucket -r $rate/s -B $burst" >"$BATS_TEST_TMPDIR/ts"
	run wc -l <"$BATS_TEST_TMPDIR/ts"
	assert_output $n
	run awk -v r=$rate -v b=$burst '
		{ t = $1; line = b + r * t; slack = line / 100; if (slack < 1) slack = 1
		  if (NR > line + slack) { printf "too fast: %d records at %.4fs, line %.1f\n", NR, t, line; bad = 1 } }
		NR == 100 { t1 = t } NR == 500 { t2 = t }
		END { rate = 400 / (t2 - t1); printf "measured %.1f/s\n", rate
		      if (rate < 0.9 * r || rate > 1.1 * r) { print "rate off by 10% or more"; bad = 1 }
		      exit bad }' "$BATS_TEST_TMPDIR/ts"
	echo "$output" >&2
	assert_success
}

@test "backpressure: while waiting mq-bucket reads nothing, so a fast producer blocks" {
	local st=$BATS_TEST_TMPDIR/produced
	# 100-byte lines as fast as the pipe takes them; the count so far in $st
	"$MQ_PYTHON" -c '
import os, sys
i = 0
while True:
    os.write(1, b"%099d\n" % i)
    i += 1
    if i % 10 == 0:
        with open(sys.argv[1], "w") as f:
            f.write(str(i))' "$st" 2>/dev/null | mq-bucket -r 10/s -B 10 >"$BATS_TEST_TMPDIR/out" 3>&- &
	local pid=$!
	sleep 2
	local produced passed
	produced=$(cat "$st")
	passed=$(wc -l <"$BATS_TEST_TMPDIR/out")
	kill "$pid" 2>/dev/null || true # the producer then dies of EPIPE on its next write
	wait "$pid" 2>/dev/null || true
	echo "produced $produced, passed $passed" >&2
	[ "$passed" -ge 20 ]
	[ "$passed" -le 40 ]
	# ahead by at most the pipe (64 KiB) and mq-bucket's one read of it
	[ $((produced - passed)) -le $((2 * 65536 / 100 + 10)) ]
}

# ---- shared buckets, held by the broker ----

# Seconds since the epoch, with microseconds.
now_s() {
	echo "$EPOCHREALTIME"
}

@test "--take: a bucket of 2 gives two tokens, then the third is refused at once with -w 0" {
	start_broker
	run mq-bucket --take api -r 1/m -B 2 -w 0
	assert_success
	run mq-bucket --take api -w 0 -v
	assert_success
	assert_output --partial "took 1 token from shared bucket 'api'"
	local t0 t1
	t0=$(now_s)
	run mq-bucket --take api -w 0
	t1=$(now_s)
	assert_failure 1
	assert_output --partial "mq-bucket: shared bucket 'api': 1 token not there now"
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 2) }'
	# -q: the exit status alone
	run mq-bucket --take api -w 0 -q
	assert_failure 1
	assert_output ""
}

@test "--take -w waits for the tokens and gets them; a timeout too short fails with 1" {
	start_broker
	run mq-bucket --take slow -r 4/s -B 2 -n 2
	assert_success
	local t0 t1
	t0=$(now_s)
	run mq-bucket --take slow -n 2 -w 3s
	t1=$(now_s)
	assert_success
	# two tokens at 4/s: half a second
	awk -v a="$t0" -v b="$t1" 'BEGIN { d = b - a; print "waited " d > "/dev/stderr"; exit !(d >= 0.4 && d < 2.5) }'
	run mq-bucket --take slow -n 2 -w 100ms
	assert_failure 1
	assert_output --partial "2 tokens not there within the timeout"
}

@test "--take of a bucket that does not exist, without -r, exits 1 and says how to create it" {
	start_broker
	run mq-bucket --take nope -w 0
	assert_failure 1
	assert_output --partial "no shared bucket 'nope'"
	assert_output --partial "-r RATE"
	run mq-bucket --shared nope </dev/null
	assert_failure 1
	assert_output --partial "no shared bucket 'nope'"
}

@test "a shared bucket's definition survives a broker restart (and it starts full)" {
	start_broker
	run mq-bucket --take kept -r 1/h -B 1 -w 0
	assert_success
	run mq-bucket --take kept -w 0
	assert_failure 1
	stop_broker
	start_broker
	run mq-bucket --take kept -w 0
	assert_success
	run mq-bucket --take kept -w 0
	assert_failure 1
	assert_output --partial "not there now"
	# -r again with another rate changes it
	run mq-bucket --take kept -r 1000/s -B 5 -n 5 -w 2s
	assert_success
}

@test "an unreachable broker: exit 1 at once with a message naming it" {
	local port t0 t1
	port=$(free_port)
	t0=$(now_s)
	run mq-bucket --take api -b "tcp://127.0.0.1:$port" -w 500ms
	t1=$(now_s)
	assert_failure 1
	assert_output --partial "tcp://127.0.0.1:$port"
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 3) }'
	run mq-bucket --shared api -r 10/s -b "tcp://127.0.0.1:$port" -w 500ms </dev/null
	assert_failure 1
	assert_output --partial "tcp://127.0.0.1:$port"
}

@test "--shared --drop passes the burst and drops the rest; -v counts" {
	start_broker
	run bash -c "seq 1 100 | mq-bucket --shared d -r 1/h -B 10 --drop -v"
	assert_success
	assert_output --partial "$(seq 1 10; echo 'mq-bucket: 10 passed, 90 dropped')"
	# the bucket is shared: a second filter finds it empty
	run bash -c "seq 1 100 | mq-bucket --shared d --reject '$BATS_TEST_TMPDIR/rej' -v"
	assert_success
	assert_output --partial "mq-bucket: 0 passed, 100 rejected"
	run wc -l <"$BATS_TEST_TMPDIR/rej"
	assert_output 100
}

@test "two --shared filters on one bucket together pass no more than BURST + RATE x t" {
	start_broker
	local rate=50 burst=10 t0 t1 n1 n2
	t0=$(now_s)
	yes | timeout -s KILL 3 mq-bucket --shared pair -r $rate/s -B $burst -v >"$BATS_TEST_TMPDIR/o1" 2>"$BATS_TEST_TMPDIR/e1" 3>&- &
	local p1=$!
	yes | timeout -s KILL 3 mq-bucket --shared pair -r $rate/s -B $burst -v >"$BATS_TEST_TMPDIR/o2" 2>"$BATS_TEST_TMPDIR/e2" 3>&- &
	local p2=$!
	wait "$p1" "$p2" || true
	t1=$(now_s)
	n1=$(wc -l <"$BATS_TEST_TMPDIR/o1")
	n2=$(wc -l <"$BATS_TEST_TMPDIR/o2")
	cat "$BATS_TEST_TMPDIR/e1" "$BATS_TEST_TMPDIR/e2" >&2
	run awk -v a="$t0" -v b="$t1" -v n=$((n1 + n2)) -v r=$rate -v B=$burst 'BEGIN {
		line = B + r * (b - a)
		printf "passed %d in %.3fs, line %.1f\n", n, b - a, line
		if (n > line * 1.01) { print "too many"; exit 1 }
		if (n < 0.8 * r * 3) { print "too few: the filters did not keep up with the rate"; exit 1 }
	}'
	echo "$output" >&2
	assert_success
	# (SIGKILL: a SIGTERM could land while a sanitizer build checks for leaks at exit)
	# both took part
	[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ]
}

@test "--shared --bytes: a record larger than the burst waits for a full bucket and passes" {
	start_broker
	run bash -c "printf 'short\nthis line is longer than ten bytes\nafter\n' | mq-bucket --shared by --bytes -r 100/s -B 10"
	assert_success
	assert_output "$(printf 'short\nthis line is longer than ten bytes\nafter')"
	# a take that can never come says so at once, without spinning until -w runs out
	mq-bucket --take huge -r 1/h -B 4611686018427387904 -n 4611686018427387904
	run timeout 10 mq-bucket --take huge -n 4611686018427387904 -w 5s
	assert_failure 1
	assert_output --partial "not there within the timeout"
}

@test "-r takes sizes (1KiB/s with --bytes) and days (N/d)" {
	head -c 4096 /dev/zero | tr '\0' 'x' | fold -w 63 >"$BATS_TEST_TMPDIR/in" # 66 lines: 65 of 64 bytes, a short last one
	run mq-bucket --bytes -r 1KiB/s -B 64KiB <"$BATS_TEST_TMPDIR/in"
	assert_success
	[ "${#lines[@]}" -eq 66 ]
	run mq-bucket --bytes -r 2MB/d --drop -B 128 <"$BATS_TEST_TMPDIR/in"
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	run mq-bucket -r 100/d --drop -B 1 <"$BATS_TEST_TMPDIR/in"
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	run mq-bucket -r 1KiBs
	assert_failure 2
	assert_output --partial "rate '1KiBs': not understood"
}
