#!/usr/bin/env bats
# mq-dedup: identities, windows, formats, the state file across restarts
# and kill -9, corrupt state, bad options, and the awk cross-check.

load helpers

flip_byte() { # file offset
	local c
	c=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "\\$(printf %03o $(((c ^ 64) & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "mq-dedup --help and -V" {
	run mq-dedup --help
	assert_success
	assert_output --partial "usage: mq-dedup [--by line|key|id|field:N]"
	run mq-dedup -V
	assert_success
	assert_output --regexp '^mq-dedup [0-9]+\.[0-9]+'
}

@test "lines: first of each passes, byte for byte; -v counts; a last line without newline" {
	run bash -c "printf 'a\nb\na\n\nc\nb\n\nd' | mq-dedup -v"
	assert_success
	assert_output "$(printf 'a\nb\n\nc\nd\nmq-dedup: 5 passed, 3 dropped')"
	run bash -c "printf 'a\0b\0a\0' | mq-dedup -0 | od -c | head -1"
	assert_output --partial 'a  \0   b  \0'
	run bash -c "printf 'a\0b\0a\0' | mq-dedup -0 | wc -c"
	assert_output 4
}

@test "identical to awk '!seen[\$0]++' and awk 'seen[\$0]++' on a large input with many repeats" {
	local f=$BATS_TEST_TMPDIR/in
	awk 'BEGIN { srand(3); for (i = 0; i < 300000; i++) printf "k%d some text %d\n", int(rand() * 40000), int(rand() * 3) }' >"$f"
	mq-dedup <"$f" >"$BATS_TEST_TMPDIR/ours"
	awk '!seen[$0]++' "$f" >"$BATS_TEST_TMPDIR/awk"
	cmp "$BATS_TEST_TMPDIR/ours" "$BATS_TEST_TMPDIR/awk"
	mq-dedup --invert <"$f" >"$BATS_TEST_TMPDIR/ours"
	awk 'seen[$0]++' "$f" >"$BATS_TEST_TMPDIR/awk"
	cmp "$BATS_TEST_TMPDIR/ours" "$BATS_TEST_TMPDIR/awk"
	mq-dedup --by field:1 <"$f" >"$BATS_TEST_TMPDIR/ours"
	awk '!seen[$1]++' "$f" >"$BATS_TEST_TMPDIR/awk"
	cmp "$BATS_TEST_TMPDIR/ours" "$BATS_TEST_TMPDIR/awk"
}

@test "--by field:N with blanks (as awk) and with -d DELIM (as cut); too few fields pass" {
	run bash -c "printf '  x 1\ny\t1\nz 2\nshort\nshort\n' | mq-dedup --by field:2 -v"
	assert_output "$(printf '  x 1\nz 2\nshort\nshort\nmq-dedup: 4 passed, 1 dropped, 2 without an identity (passed)')"
	run bash -c "printf 'a,,1\nb,,1\nc,x,1\n' | mq-dedup --by field:2 -d ,"
	assert_output "$(printf 'a,,1\nc,x,1')"
	run bash -c "printf 'a::1\nb::1\nc::2\n' | mq-dedup --by field:2 -d ::"
	assert_output "$(printf 'a::1\nc::2')"
}

@test "--by key with -K on lines; --by key and id on JSON envelopes, unknown fields kept" {
	run bash -c "printf 'u1=a\nu2=b\nu1=c\nnokey\nnokey\n' | mq-dedup --by key -K ="
	assert_output "$(printf 'u1=a\nu2=b\nnokey\nnokey')"
	local j='{"key":"a","value":"1","zz":[1,{"q":2}]}
{"key":"a","value":"2","id":"i1"}
{"key":"b","value":"3","id":"i1"}
{"value":"4"}'
	run bash -c "printf '%s\n' '$j' | mq-dedup -f json --by key"
	assert_output "$(printf '%s\n' '{"key":"a","value":"1","zz":[1,{"q":2}]}' '{"key":"b","value":"3","id":"i1"}' '{"value":"4"}')"
	run bash -c "printf '%s\n' '$j' | mq-dedup -f json --by id"
	assert_output "$(printf '%s\n' '{"key":"a","value":"1","zz":[1,{"q":2}]}' '{"key":"a","value":"2","id":"i1"}' '{"value":"4"}')"
	run bash -c "printf '%s\n' '$j' | mq-dedup -f json"
	assert_output "$j"
}

@test "msgpack envelopes pass through byte for byte" {
	# {"value": bin "a"}, {"value": bin "b"}, {"value": bin "a"}
	printf '\x81\xa5value\xc4\x01a\x81\xa5value\xc4\x01b\x81\xa5value\xc4\x01a' >"$BATS_TEST_TMPDIR/in"
	mq-dedup -f msgpack <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	head -c 20 "$BATS_TEST_TMPDIR/in" | cmp - "$BATS_TEST_TMPDIR/out"
}

@test "--window N forgets the oldest identities; --window DURATION forgets by age" {
	run bash -c "printf 'a\nb\nc\na\nc\n' | mq-dedup --window 2"
	assert_output "$(printf 'a\nb\nc\na')"
	run bash -c "(echo a; echo a; sleep 1.3; echo a) | mq-dedup --window 1s"
	assert_output "$(printf 'a\na')"
	run bash -c "(echo a; sleep 0.2; echo a) | mq-dedup --window 1m --window 10"
	assert_output a
}

@test "bad options exit 2 with a clear message" {
	run mq-dedup --by colour </dev/null
	assert_failure 2
	assert_output --partial "--by 'colour': use line, key, id or field:N"
	run mq-dedup --by field:0 </dev/null
	assert_failure 2
	run mq-dedup --window 0 </dev/null
	assert_failure 2
	run mq-dedup --window 5parsecs </dev/null
	assert_failure 2
	assert_output --partial "--window '5parsecs'"
	run mq-dedup --by id </dev/null
	assert_failure 2
	assert_output --partial "only envelopes carry an id"
	run mq-dedup --by key </dev/null
	assert_failure 2
	run mq-dedup -f json -K = </dev/null
	assert_failure 2
	run mq-dedup --reset-state </dev/null
	assert_failure 2
	run mq-dedup -d , </dev/null
	assert_failure 2
	run mq-dedup -f yaml </dev/null
	assert_failure 2
	run mq-dedup extra </dev/null
	assert_failure 2
}

@test "--state in a missing directory exits 1 and names it" {
	run mq-dedup --state "$BATS_TEST_TMPDIR/nope/seen" </dev/null
	assert_failure 1
	assert_output "mq-dedup: state file '$BATS_TEST_TMPDIR/nope/seen': directory '$BATS_TEST_TMPDIR/nope' does not exist (create it first)"
}

@test "--state remembers across restarts; the file stays bounded by the window" {
	local st=$BATS_TEST_TMPDIR/seen
	run bash -c "printf 'a\nb\n' | mq-dedup --state '$st'"
	assert_output "$(printf 'a\nb')"
	run bash -c "printf 'b\nc\na\n' | mq-dedup --state '$st'"
	assert_output c
	seq 1 200000 | mq-dedup --window 1000 --state "$st" >/dev/null
	local size
	size=$(stat -c %s "$st")
	# at most 2 x 1000 + 4096 entries of 24 bytes, a header and block headers
	[ "$size" -le $(((2 * 1000 + 4096 + 100) * 24 + 4096)) ]
	run bash -c "seq 199001 200000 | mq-dedup --window 1000 --state '$st' | wc -l"
	assert_output 0
	run bash -c "seq 198990 199000 | mq-dedup --window 1000 --state '$st' | wc -l"
	assert_output 11
}

@test "kill -9: what was printed before it is known after it" {
	local st=$BATS_TEST_TMPDIR/seen i
	mkfifo "$BATS_TEST_TMPDIR/in"
	mq-dedup --state "$st" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out1" 3>&- &
	local pid=$!
	(for i in $(seq 1 400); do echo "line $i"; if ((i % 20 == 0)); then sleep 0.05; fi; done
	 sleep 5) >"$BATS_TEST_TMPDIR/in" 3>&- &
	local prod=$!
	sleep 0.6
	kill -KILL "$pid"
	wait "$pid" || true
	kill "$prod" 2>/dev/null || true
	wait "$prod" 2>/dev/null || true
	[ -s "$BATS_TEST_TMPDIR/out1" ]
	for i in $(seq 1 400); do echo "line $i"; done | mq-dedup --state "$st" >"$BATS_TEST_TMPDIR/out2"
	# nothing printed twice, and between them everything printed once
	run bash -c "sort '$BATS_TEST_TMPDIR/out1' '$BATS_TEST_TMPDIR/out2' | uniq -d"
	assert_output ""
	[ "$(cat "$BATS_TEST_TMPDIR/out1" "$BATS_TEST_TMPDIR/out2" | wc -l)" -eq 400 ]
}

@test "kill -9 while a slow reader keeps the pipe full: nothing lost, nothing twice, no torn line" {
	local st=$BATS_TEST_TMPDIR/seen d=$BATS_TEST_TMPDIR
	seq -f 'line %g' 1 300000 >"$d/in" # 3.4 MB: more than the pipe and the batch hold
	mkfifo "$d/pipe"
	(sleep 1.5; exec cat) <"$d/pipe" >"$d/out1" 3>&- &
	local reader=$!
	mq-dedup --state "$st" <"$d/in" >"$d/pipe" 3>&- &
	local pid=$!
	sleep 0.8 # the pipe is full and mq-dedup waits for room, with a batch synced
	kill -KILL "$pid"
	wait "$pid" || true
	wait "$reader"
	[ -s "$d/out1" ]
	[ "$(wc -l <"$d/out1")" -lt 300000 ]
	[ "$(tail -c 1 "$d/out1" | od -An -c | tr -d ' ')" = '\n' ] # no torn last line
	mq-dedup --state "$st" <"$d/in" >"$d/out2"
	run bash -c "sort '$d/out1' '$d/out2' | uniq -d | head -3"
	assert_output ""
	run bash -c "cat '$d/out1' '$d/out2' | sort | cmp - <(sort '$d/in') && echo same"
	assert_output same
}

@test "kill -9 beside a reader that keeps reading slowly: no torn line, nothing lost, nothing twice" {
	local st=$BATS_TEST_TMPDIR/seen d=$BATS_TEST_TMPDIR
	# lines of many lengths, so the room the reader frees rarely ends at a line's end
	seq 1 20000 | awk '{ s = sprintf("%*s", ($1 * 7) % 390 + 10, ""); gsub(/ /, "y", s); print "line " $1 " " s }' >"$d/in"
	mkfifo "$d/pipe"
	# a reader that takes a byte at a time, and keeps a last line without its newline
	(while IFS= read -r l; do printf '%s\n' "$l"; done; printf '%s' "$l") <"$d/pipe" >"$d/out1" 3>&- &
	local reader=$!
	mq-dedup --state "$st" <"$d/in" >"$d/pipe" 3>&- &
	local pid=$!
	sleep 1
	kill -KILL "$pid"
	wait "$pid" || true
	wait "$reader"
	[ -s "$d/out1" ]
	[ "$(wc -l <"$d/out1")" -lt 20000 ]
	[ "$(tail -c 1 "$d/out1" | od -An -c | tr -d ' ')" = '\n' ] # every write ended at a line's end
	mq-dedup --state "$st" <"$d/in" >"$d/out2"
	run bash -c "sort '$d/out1' '$d/out2' | uniq -d | head -3"
	assert_output ""
	run bash -c "cat '$d/out1' '$d/out2' | sort | cmp - <(sort '$d/in') && echo same"
	assert_output same
}

@test "kill -9 while a slow reader keeps a socket full (stdout a socketpair, as libuv and socat give): nothing lost, nothing twice" {
	local d=$BATS_TEST_TMPDIR
	seq 1 30000 | awk '{ s = sprintf("%*s", ($1 * 7) % 390 + 10, ""); gsub(/ /, "y", s); print "line " $1 " " s }' >"$d/in"
	# the reader takes 1000 bytes every millisecond (about 1 MB/s), kills
	# mq-dedup after 1.5 s, then reads what is left in the socket
	"$MQ_PYTHON" - "$d" <<-'PY'
		import os, signal, socket, subprocess, sys, time
		d = sys.argv[1]
		a, b = socket.socketpair()
		p = subprocess.Popen(["mq-dedup", "--state", d + "/seen"], stdin=open(d + "/in", "rb"), stdout=b)
		b.close()
		out = open(d + "/out1", "wb")
		end = time.monotonic() + 1.5
		while time.monotonic() < end:
		    out.write(a.recv(1000))
		    time.sleep(0.001)
		p.send_signal(signal.SIGKILL)
		p.wait()
		while True:
		    got = a.recv(65536)
		    if not got:
		        break
		    out.write(got)
	PY
	[ -s "$d/out1" ]
	[ "$(wc -l <"$d/out1")" -lt 30000 ]
	mq-dedup --state "$d/seen" <"$d/in" >"$d/out2"
	run bash -c "sort '$d/out1' '$d/out2' | uniq -d | head -3"
	assert_output ""
	run bash -c "cat '$d/out1' '$d/out2' | sort | cmp - <(sort '$d/in') && echo same"
	assert_output same
}

@test "a reader that quits: what it never got passes again on the next run" {
	local st=$BATS_TEST_TMPDIR/seen d=$BATS_TEST_TMPDIR
	mkfifo "$d/in" "$d/pipe"
	head -n 10 <"$d/pipe" >"$d/out1" 3>&- &
	local reader=$!
	mq-dedup --state "$st" <"$d/in" >"$d/pipe" 2>"$d/err" 3>&- &
	local pid=$!
	exec 4>"$d/in"
	seq -f 'line %g' 1 10 >&4
	wait "$reader" # head got its 10 lines and quit
	seq -f 'line %g' 11 20 >&4 # these find no reader
	local rc=0
	wait "$pid" || rc=$?
	exec 4>&-
	[ "$(cat "$d/out1")" = "$(seq -f 'line %g' 1 10)" ]
	run bash -c "seq -f 'line %g' 1 20 | mq-dedup --state '$st'"
	assert_success
	assert_output "$(seq -f 'line %g' 11 20)"
}

@test "--invert --state: a first occurrence never printed is still known after a clean exit" {
	local st=$BATS_TEST_TMPDIR/seen
	run bash -c "printf 'b\nb\na\n' | mq-dedup --invert --state '$st'"
	assert_success
	assert_output b
	run bash -c "printf 'a\nc\n' | mq-dedup --invert --state '$st'"
	assert_success
	assert_output a
}

@test "a corrupt state file is refused with its byte; --reset-state starts over" {
	local st=$BATS_TEST_TMPDIR/seen
	seq 1 200000 | mq-dedup --state "$st" >/dev/null
	flip_byte "$st" 70
	run mq-dedup --state "$st" </dev/null
	assert_failure 1
	assert_output --partial "mq-dedup: state file '$st' is corrupt at byte 56"
	assert_output --partial "use --reset-state to start over"
	flip_byte "$st" 70
	flip_byte "$st" 2
	run mq-dedup --state "$st" </dev/null
	assert_failure 1
	assert_output --partial "corrupt at byte 0"
	run bash -c "seq 1 3 | mq-dedup --state '$st' --reset-state"
	assert_success
	assert_output "$(seq 1 3)"
	run bash -c "seq 1 4 | mq-dedup --state '$st'"
	assert_output 4
}

@test "a torn last entry (crash mid-write) is cut, not refused" {
	local st=$BATS_TEST_TMPDIR/seen
	seq 1 500 | mq-dedup --state "$st" >/dev/null
	seq 501 1000 | mq-dedup --state "$st" >/dev/null
	truncate -s -7 "$st"
	run bash -c "seq 1 1000 | mq-dedup --state '$st'"
	assert_success
	assert_output "$(seq 501 1000)"
	run bash -c "seq 1 1000 | mq-dedup --state '$st' | wc -l"
	assert_output 0
}

@test "a state file in use by another mq-dedup is refused" {
	local st=$BATS_TEST_TMPDIR/seen
	mkfifo "$BATS_TEST_TMPDIR/in"
	mq-dedup --state "$st" <"$BATS_TEST_TMPDIR/in" >/dev/null 3>&- &
	local pid=$!
	exec 4>"$BATS_TEST_TMPDIR/in"
	sleep 0.3
	run mq-dedup --state "$st" </dev/null
	assert_failure 1
	assert_output --partial "in use by another process"
	exec 4>&-
	wait "$pid"
}
