#!/usr/bin/env bats
# mq-bucket (local filter): rates and bad rates, --drop, --reject, -k,
# --bytes, formats, the accuracy of the rate measured from the arrival
# times of output lines, and backpressure on a fast producer.

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
	for r in 0 0/s -5 -5/s abc 10/d 1.2.3 ""; do
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

@test "--shared and --take are refused for now, with exit 2" {
	run mq-bucket --shared api -r 10/s </dev/null
	assert_failure 2
	assert_output --partial "need buckets held by the broker"
	run mq-bucket --take api -n 1
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
	[ "$passed" -ge 20 ] && [ "$passed" -le 40 ]
	# ahead by at most the pipe (64 KiB) and mq-bucket's one read of it
	[ $((produced - passed)) -le $((2 * 65536 / 100 + 10)) ]
}
