#!/usr/bin/env bats
# Whole pipelines against a real mq-serve: the backlog stays in the
# broker when the end of a pipe is slow (backpressure), stopping the
# head of a pipe loses nothing that was committed, and a group commits
# only what the reader took out of the pipe and outlived.

load helpers

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# The committed offset of group $1 in partition 0 of topic $2 (empty if none).
committed() {
	mq-admin group describe "$1" 2>/dev/null | awk -v t="$2" '$1 == t && $2 == 0 { print $3 }'
}

# Wait until group $1 has committed $3 in topic $2 (at most 20 s), while
# process $4 is still running.
wait_committed() {
	local i c
	for ((i = 0; i < 200; i++)); do
		c=$(committed "$1" "$2")
		[ "$c" = "$3" ] && return 0
		kill -0 "$4" 2>/dev/null || break
		sleep 0.1
	done
	echo "wait_committed: group $1 committed '${c}' in $2, wanted $3 (process $4 running: $(kill -0 "$4" 2>/dev/null && echo yes || echo no))" >&2
	return 1
}

# What group $1 still has to read in topic $2: lines into $BATS_TEST_TMPDIR/left.
left_for() {
	local c
	c=$(committed "$1" "$2")
	timeout 20 mq-sub -g "$1" -t "$2" -e >"$BATS_TEST_TMPDIR/left"
	echo "group $1 had committed '$c': $(wc -l <"$BATS_TEST_TMPDIR/left") messages left for it" >&2
}

# Group $1 has at least $3 messages of topic $2 left to read, up to $4.
assert_left() {
	left_for "$1" "$2"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/left")" -ge "$3" ] && [ "$(tail -1 "$BATS_TEST_TMPDIR/left")" = "$4" ]
}

@test "mq-sub -g | head -3: what head read and dropped is not committed" {
	start_broker
	seq 1 1000 | mq-pub -t p
	# head takes all 1,000 short lines in one read, prints three and exits
	run bash -c 'timeout 10 mq-sub -g g -t p | head -3; echo "status ${PIPESTATUS[0]}"'
	assert_left g p 997 1000
	assert_output "1
2
3
status 0"
}

@test "mq-sub -g -e | head -3: nor at the end of the topic" {
	start_broker
	seq 1 1000 | mq-pub -t p
	run bash -c 'timeout 10 mq-sub -g g -t p -e | head -3; echo "status ${PIPESTATUS[0]}"'
	assert_output "1
2
3
status 0"
	assert_left g p 997 1000
}

@test "mq-sub -g | (read a; read b; exit): at least 998 left for the group" {
	start_broker
	seq 1 1000 | mq-pub -t p
	# read takes one byte at a time from a pipe: exactly two lines leave it
	run bash -c 'timeout 10 mq-sub -g g -t p | (read a; read b; echo "$a $b"; exit); echo "status ${PIPESTATUS[0]}"'
	assert_left g p 998 1000
	assert_output "1 2
status 0"
}

@test "mq-sub -g on a quiet topic ends as soon as its reader does" {
	start_broker
	echo one | mq-pub -t quiet
	local t0 t1
	t0=$(date +%s%N)
	run bash -c 'timeout 20 mq-sub -g g -t quiet | head -1; echo "status ${PIPESTATUS[0]}"'
	t1=$(date +%s%N)
	echo "pipeline ended after $(((t1 - t0) / 1000000)) ms" >&2
	assert_output "one
status 0"
	# no message comes after 'one': only the reader's exit can end mq-sub
	[ $(((t1 - t0) / 1000000)) -lt 3000 ]
	# without a group too
	run bash -c 'timeout 20 mq-sub -t quiet | head -1; echo "status ${PIPESTATUS[0]}"'
	assert_output "one
status 0"
}

@test "into a socket too: a reader that leaves gets nothing committed, one that stays gets all" {
	start_broker
	seq 1 1000 | mq-pub -t p
	# stdout a Unix socket; the reader takes 100 bytes and leaves, or
	# takes everything and stays 3 s; then mq-sub must end within 10 s
	cat >"$BATS_TEST_TMPDIR/sock.py" <<'PY'
import socket, subprocess, sys, time
a, b = socket.socketpair()
p = subprocess.Popen(["mq-sub", "-g", sys.argv[1], "-t", "p"], stdout=b)
b.close()
data = a.recv(100)
if sys.argv[2] == "stay":
    a.settimeout(5)
    while data.count(b"\n") < 1000:
        data += a.recv(65536)
    time.sleep(3)
a.close()
try:
    sys.exit(p.wait(timeout=10))
except subprocess.TimeoutExpired:
    p.kill()
    sys.exit("mq-sub still running 10 s after its reader left")
PY
	"$MQ_PYTHON" "$BATS_TEST_TMPDIR/sock.py" leave leave
	assert_left leave p 997 1000
	"$MQ_PYTHON" "$BATS_TEST_TMPDIR/sock.py" stay stay
	[ "$(committed stay p)" = 1000 ]
}

@test "behind a full pipe, what a slow reader took is committed while it works" {
	start_broker
	seq 1 20000 | mq-pub -t p # 108,894 bytes: more than the pipe holds
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -g g -t p >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	# a worker that takes exactly 1,000 bytes (lines 1 to 277), then works on them
	{ head -c 1000 >/dev/null; exec sleep 60; } <"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local reader=$!
	wait_committed g p 277 "$sub"
	# the worker dies without taking more: the rest is still the group's
	kill "$reader"
	wait "$reader" || true
	wait "$sub"
	left_for g p
	[ "$(wc -l <"$BATS_TEST_TMPDIR/left")" -eq 19723 ]
	[ "$(head -1 "$BATS_TEST_TMPDIR/left")" = 278 ]
}

@test "a steady reader gets its commits while mq-sub runs" {
	start_broker
	seq 1 1000 | mq-pub -t p
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -g g -t p >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	cat <"$BATS_TEST_TMPDIR/pipe" >"$BATS_TEST_TMPDIR/out" 3>&- &
	local reader=$!
	wait_committed g p 1000 "$sub"
	seq 1001 3000 | mq-pub -t p
	wait_committed g p 3000 "$sub"
	kill -TERM "$sub"
	wait "$sub"
	wait "$reader"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 3000 ]
	left_for g p
	[ ! -s "$BATS_TEST_TMPDIR/left" ]
}

@test "mq-sub -g | mq-bucket: the backlog stays in the broker, mq-sub stays small, nothing committed is lost" {
	start_broker
	"$MQ_PYTHON" -c 'import sys
for i in range(100000): sys.stdout.write("%08d %s\n" % (i, "x" * 190))' >"$BATS_TEST_TMPDIR/in"
	mq-pub -t jobs <"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t jobs -g g >"$BATS_TEST_TMPDIR/pipe" 2>"$BATS_TEST_TMPDIR/sub.err" 3>&- &
	local sub=$!
	mq-bucket -r 2000/s <"$BATS_TEST_TMPDIR/pipe" >"$BATS_TEST_TMPDIR/out" 3>&- &
	local bucket=$!
	sleep 1
	local rss1 rss2 passed
	rss1=$(rss_kb "$sub")
	sleep 2
	rss2=$(rss_kb "$sub")
	passed=$(wc -l <"$BATS_TEST_TMPDIR/out")
	echo "mq-sub RSS ${rss1} kB then ${rss2} kB; ${passed} lines passed" >&2
	# mq-sub waits on the pipe: its memory stays flat and small
	[ "$rss2" -lt 65536 ]
	[ $((rss2 - rss1)) -lt 4096 ]
	# at 2000/s about 2000 + 3 x 2000 lines went through; the rest waits in the broker
	[ "$passed" -lt 20000 ]
	# stop the head: mq-sub commits what it wrote and closes the pipe; mq-bucket
	# passes what it holds, at its rate, and ends at end of input
	kill -TERM "$sub"
	wait "$sub"
	wait "$bucket"
	run mq-sub -t jobs -g g -e
	assert_success
	local rest=${#lines[@]}
	echo "$(wc -l <"$BATS_TEST_TMPDIR/out") lines through the bucket, $rest left in the group" >&2
	[ "$rest" -gt 50000 ]
	# every line arrived once through the pipe or is still to come: none lost, none twice
	{ cat "$BATS_TEST_TMPDIR/out"; printf '%s\n' "${lines[@]}"; } | sort >"$BATS_TEST_TMPDIR/all"
	cmp "$BATS_TEST_TMPDIR/all" "$BATS_TEST_TMPDIR/in"
}

@test "a member stuck behind a full pipe keeps its session and its partitions" {
	start_broker
	seq 1 200000 | mq-pub -t slow
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t slow -g g --session-timeout 1s >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	# a reader that takes a little and then stops reading for 4 s
	{ head -c 1000 >/dev/null; sleep 4; cat >/dev/null; } <"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local reader=$!
	sleep 3
	# the session (1 s) would have run out three times over: the partition is still taken
	run timeout 20 mq-sub -t slow -g g --session-timeout 1s -e
	assert_success
	assert_output ""
	kill -TERM "$sub"
	wait "$sub"
	wait "$reader"
}

@test "SIGTERM ends mq-sub behind a reader that reads nothing, and what it did not write is read again" {
	start_broker
	seq 1 300000 | mq-pub -t stuck
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	mq-sub -t stuck -g g --session-timeout 1s >"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local sub=$!
	sleep 1000 <"$BATS_TEST_TMPDIR/pipe" 3>&- &
	local reader=$!
	sleep 1
	kill -TERM "$sub"
	local st=0 t0 t1
	t0=$(date +%s%N)
	wait "$sub" || st=$?
	t1=$(date +%s%N)
	kill "$reader"
	wait "$reader" || true
	[ "$st" -eq 0 ]
	[ $(((t1 - t0) / 1000000)) -lt 8000 ]
	# nothing was read: everything is still there for the group
	run mq-sub -t stuck -g g -e
	assert_success
	[ "${#lines[@]}" -ge 290000 ]
	[ "$(printf '%s\n' "${lines[@]}" | tail -1)" = 300000 ]
}
