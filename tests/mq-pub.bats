#!/usr/bin/env bats
# mq-pub against a real mq-serve: round trips, formats, keys, limits,
# errors, and what happens when the broker is away or goes away.

load helpers

bats_require_minimum_version 1.5.0

# All records of topic $1 (partition order), read back with mq-sub.
read_back() {
	local t=$1
	shift
	timeout 60 mq-sub -t "$t" -e "$@"
}

teardown() {
	# The second broker of a test that failed before stopping it.
	[ -z "${B2:-}" ] || kill "$B2" 2>/dev/null || true
	mq_teardown
}

@test "mq-pub --help and -V" {
	run mq-pub --help
	assert_success
	assert_output --partial "usage: mq-pub -t TOPIC [-k KEY | -K DELIM] [-p PARTITION] [-m MESSAGE] [options] < records"
	run mq-pub -V
	assert_success
	assert_output --regexp '^mq-pub [0-9]+\.[0-9]+'
}

@test "mq-pub refuses bad usage with one line and exit 2, before touching the network" {
	run mq-pub -t a --frobnicate
	assert_failure 2
	assert_output "mq-pub: unknown option '--frobnicate' (try 'mq-pub --help')"
	run mq-pub -t 'a/b' -m x
	assert_failure 2
	assert_output --partial "mq-pub: topic 'a/b': invalid name (use A-Z a-z 0-9 . _ -)"
	[ "${#lines[@]}" -eq 1 ]
	run mq-pub -t __internal -m x
	assert_failure 2
	run mq-pub -m x
	assert_failure 2
	assert_output --partial "no topic"
	run mq-pub -t a -k k -K :
	assert_failure 2
	run mq-pub -t a -w never
	assert_failure 2
	run mq-pub -t a -p x
	assert_failure 2
	run mq-pub -t a -f yaml
	assert_failure 2
	run mq-pub -t a -H novalue
	assert_failure 2
	run mq-pub -t a --max-message-bytes lots
	assert_failure 2
}

@test "mq-pub against a silent broker exits 1 within its -w timeout" {
	local start end
	start_broker
	kill -STOP "$MQ_BROKER_PID" # connections are taken by the kernel, nothing answers
	start=$(date +%s%N)
	run timeout 20 mq-pub -w 1s -t a -m hello
	end=$(date +%s%N)
	kill -CONT "$MQ_BROKER_PID"
	assert_failure 1
	assert_output "mq-pub: broker $MQ_BROKER did not answer within 1s"
	[ $(((end - start) / 1000000)) -lt 5000 ]
}

@test "mq-pub against no broker exits 1 at once, not after -w" {
	local port
	port=$(free_port)
	run timeout 20 mq-pub -b "tcp://127.0.0.1:$port" -w 10s -t a -m hello
	assert_failure 1
	assert_output "mq-pub: cannot connect to tcp://127.0.0.1:$port: connection refused (is mq-serve running? set -b or MQ_BROKER)"
}

@test "100,000 lines go through byte for byte" {
	start_broker
	seq -f 'line %06g of the round trip' 1 100000 >"$BATS_TEST_TMPDIR/in"
	run mq-pub -t rt -v <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_output --partial "100000 acknowledged (0 duplicates)"
	read_back rt >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "empty lines, a last line without newline, and 1 MiB lines" {
	start_broker
	"$MQ_PYTHON" -c '
import sys
w = sys.stdout.write
w("\n\nx\n\n")
w("a" * 1048576 + "\n")
w("\n")
w("b" * 1048576 + "\n")
w("end")' >"$BATS_TEST_TMPDIR/in"
	run mq-pub -t long <"$BATS_TEST_TMPDIR/in"
	assert_success
	read_back long >"$BATS_TEST_TMPDIR/out"
	printf '\n' >>"$BATS_TEST_TMPDIR/in"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	[ "$(read_back long -F '%S\n' | tr '\n' ' ')" = "0 0 1 0 1048576 0 1048576 3 " ]
}

@test "binary values with -0 keep every byte" {
	start_broker
	"$MQ_PYTHON" -c '
import os, random, sys
random.seed(7)
out = bytearray()
for i in range(2000):
    n = random.choice([0, 1, 2, 10, 100, 5000])
    out += bytes(b % 255 + 1 for b in os.urandom(n)) + b"\0"
sys.stdout.buffer.write(out)' >"$BATS_TEST_TMPDIR/in"
	run mq-pub -t bin -0 <"$BATS_TEST_TMPDIR/in"
	assert_success
	read_back bin -0 >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "keys keep per-key order across 8 partitions and follow the documented hash" {
	start_broker --partitions 8
	seq 1 20000 | awk '{ print "key" ($1 % 37) ":" $1 }' >"$BATS_TEST_TMPDIR/in"
	run mq-pub -t keyed -K : --batch 100 <"$BATS_TEST_TMPDIR/in"
	assert_success
	read_back keyed -F '%p %k %s\n' >"$BATS_TEST_TMPDIR/out"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 20000 ]
	# every partition got keys, each key stays in one partition, in order
	"$MQ_PYTHON" - "$BATS_TEST_TMPDIR/out" <<'EOF'
import sys
def part(key, n):
    h = 0xcbf29ce484222325
    for b in key.encode():
        h ^= b
        h = (h * 0x100000001b3) % (1 << 64)
    return h % n
last, parts = {}, set()
for line in open(sys.argv[1]):
    p, k, v = line.split()
    assert int(p) == part(k, 8), (p, k)
    assert int(v) > last.get(k, 0), (k, v)
    last[k] = int(v)
    parts.add(p)
assert len(parts) == 8, parts
assert len(last) == 37
EOF
}

@test "one-message runs spread over partitions: each run starts its round robin at random" {
	start_broker --partitions 4
	local i
	for ((i = 0; i < 40; i++)); do
		mq-pub -t rr -m "m$i"
	done
	run read_back rr -F '%p\n'
	[ "${#lines[@]}" -eq 40 ]
	# 40 runs landing on one partition by chance: 4^-39.
	[ "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" -ge 2 ]
}

@test "unkeyed records spread over partitions batch by batch" {
	start_broker --partitions 4
	seq 1 4000 | mq-pub -t spread --batch 100
	for p in 0 1 2 3; do
		[ "$(read_back spread -F '%p\n' | grep -c "^$p\$")" -gt 0 ]
	done
	[ "$(read_back spread | sort -n | uniq | wc -l)" -eq 4000 ]
}

@test "--batch N holds when an unkeyed record moves on to a partition whose batch keyed records filled" {
	start_broker --partitions 2
	# keys a and c hash to partition 0, b and d to 1 (the documented hash):
	# each partition's batch is full when the unkeyed lines come
	printf 'a\t1\nc\t2\nb\t3\nd\t4\nn5\nn6\n' | mq-pub -t full --batch 2 -K $'\t'
	[ "$(read_back full | wc -l)" -eq 6 ]
	run mq-admin dump "$MQ_DATA_DIR/full/0"
	refute_output --regexp 'count=([3-9]|[1-9][0-9])'
	run mq-admin dump "$MQ_DATA_DIR/full/1"
	refute_output --regexp 'count=([3-9]|[1-9][0-9])'
}

@test "-k, -p, -H and -m" {
	start_broker --partitions 3
	run mq-pub -t opts -m 'just this' -k K1 -p 2 -H a=1 -H b=x=y
	assert_success
	run read_back opts -F '%p|%k|%h|%s\n'
	assert_output "2|K1|a=1,b=x=y|just this"
	run mq-pub -t opts -p 3 -m x
	assert_failure 1
	assert_output "mq-pub: partition 3 out of range: topic 'opts' has 3 partitions (0-2)"
}

@test "-K: a line without the delimiter has no key and keeps its whole text" {
	start_broker
	printf 'k1=v1\nno delimiter here\n=empty key\nk2=a=b\n' | mq-pub -t kd -K =
	run read_back kd -F '[%k] [%s]\n'
	assert_output "[k1] [v1]
[] [no delimiter here]
[] [empty key]
[k2] [a=b]"
	run read_back kd -f json
	assert_line --index 1 --partial '"key":null'
	assert_line --index 2 --partial '"key":""'
}

@test "JSON and msgpack envelopes are published with their key, headers, id and timestamp" {
	start_broker
	cat >"$BATS_TEST_TMPDIR/in" <<'EOF'
{"key":"k","value":"v1","headers":{"h":"1"},"id":"id-1","timestamp":1700000000000}
{"value":"v2","unknown":[1,2,{"x":null}]}
{"value_b64":"AAEC/w==","key_b64":"/w=="}
EOF
	run mq-pub -t env -f json <"$BATS_TEST_TMPDIR/in"
	assert_success
	read_back env -f json >"$BATS_TEST_TMPDIR/out"
	"$MQ_PYTHON" - "$BATS_TEST_TMPDIR/out" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 3
a, b, c = recs
assert a["key"] == "k" and a["value"] == "v1" and a["headers"] == {"h": "1"}, a
assert a["id"] == "id-1" and a["timestamp"] == 1700000000000 and a["offset"] == 0, a
assert a["topic"] == "env" and a["partition"] == 0
assert b["value"] == "v2" and b["key"] is None and b["timestamp"] > 1700000000000, b
assert c["value_b64"] == "AAEC/w==" and c["key_b64"] == "/w==", c
EOF
	# mq-sub's msgpack output publishes again unchanged
	read_back env -f msgpack | mq-pub -t env2 -f msgpack
	diff <(read_back env -F '%k|%s|%i|%h|%T\n') <(read_back env2 -F '%k|%s|%i|%h|%T\n')
}

@test "a message over --max-message-bytes is refused by number; the others are sent; exit 1" {
	start_broker
	{ echo short; head -c 300 /dev/zero | tr '\0' x; echo; echo after; } >"$BATS_TEST_TMPDIR/in"
	run mq-pub -t big --max-message-bytes 100 <"$BATS_TEST_TMPDIR/in"
	assert_failure 1
	assert_line --index 0 "mq-pub: record 2: 300 bytes, over the limit of 100 (--max-message-bytes); not sent"
	assert_line --index 1 --partial "mq-pub: 1 of 3 messages were not acknowledged"
	run read_back big
	assert_output "short
after"
}

@test "a message over the broker's limit is refused before sending" {
	start_broker --max-message-bytes 1KiB
	run bash -c 'head -c 2000 /dev/zero | tr "\0" y | mq-pub -t lim'
	assert_failure 1
	assert_output --partial "record 1: 2000 bytes, over the limit of 1024"
}

@test "broker restarted while publishing: nothing lost, nothing doubled" {
	start_broker
	( for i in $(seq 1 40); do seq $((i * 500 - 499)) $((i * 500)); sleep 0.05; done ) |
		mq-pub -t restart -w 10s -v 2>"$BATS_TEST_TMPDIR/pub.err" 3>&- &
	local pub=$!
	sleep 0.7
	stop_broker
	sleep 0.3
	start_broker
	wait "$pub"
	run read_back restart
	echo "read back ${#lines[@]} lines, $(printf '%s\n' "${lines[@]}" | sort -n | uniq | wc -l) distinct" >&2
	cat "$BATS_TEST_TMPDIR/pub.err" >&2
	[ "${#lines[@]}" -eq 20000 ]
	[ "$(printf '%s\n' "${lines[@]}" | sort -n | uniq | wc -l)" -eq 20000 ]
}

@test "SIGTERM to the broker while publishing loses no acknowledged message" {
	start_broker
	seq -f '%09g padding padding padding padding padding padding padding padding' 1 1000000 >"$BATS_TEST_TMPDIR/in"
	mq-pub -t term -w 2s -v <"$BATS_TEST_TMPDIR/in" 2>"$BATS_TEST_TMPDIR/pub.err" 3>&- &
	local pub=$! st=0
	sleep 0.2
	stop_broker
	wait "$pub" || st=$?
	cat "$BATS_TEST_TMPDIR/pub.err"
	local acked
	acked=$(sed -n 's/.* \([0-9]*\) acknowledged.*/\1/p' "$BATS_TEST_TMPDIR/pub.err")
	[ -n "$acked" ]
	if [ "$st" -ne 0 ]; then
		grep -q "messages were not acknowledged (broker $MQ_BROKER did not answer within 2s)" "$BATS_TEST_TMPDIR/pub.err"
	fi
	start_broker
	local stored
	stored=$(read_back term | wc -l)
	echo "acked $acked stored $stored"
	[ "$stored" -ge "$acked" ]
	# what is stored is a prefix of the input, without repeats
	read_back term | cmp - <(head -n "$stored" "$BATS_TEST_TMPDIR/in")
}

@test "--id key: a repeated id within the dedup window is acknowledged, counted and never delivered" {
	start_broker --partitions 3
	run mq-pub -t d -K : --id key -v < <(printf 'a:1\nb:2\na:3\nc:4\n')
	assert_success
	assert_output --partial "4 acknowledged (1 duplicates)"
	run mq-pub -t d -K : --id key -v < <(printf 'a:5\nd:6\n')
	assert_success
	assert_output --partial "2 acknowledged (1 duplicates)"
	run mq-sub -t d -e -F '%k=%s %i\n'
	assert_success
	[ "$(printf '%s\n' "${lines[@]}" | sort | tr '\n' ' ')" = "a=1 a b=2 b c=4 c d=6 d " ]
	# records without a key carry no id with --id key: all stored
	run mq-pub -t d --id key -v < <(printf 'x\nx\n')
	assert_output --partial "2 acknowledged (0 duplicates)"
}

@test "--id hash, --id none and envelope ids; a bad --id is a usage error" {
	start_broker
	seq 1 5 | mq-pub -t h --id hash
	run mq-pub -t h --id hash -v < <(seq 3 8)
	assert_success
	assert_output --partial "6 acknowledged (3 duplicates)"
	[ "$(mq-sub -t h -e | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 " ]
	# the same value under another key is another message
	run mq-pub -t h -k other --id hash -v < <(seq 1 2)
	assert_output --partial "2 acknowledged (0 duplicates)"
	# envelopes: their id counts unless --id none
	printf '{"value":"e1","id":"X"}\n{"value":"e2","id":"X"}\n' | mq-pub -t env -f json
	printf '{"value":"e3","id":"X"}\n' | mq-pub -t env -f json
	[ "$(mq-sub -t env -e | tr '\n' ' ')" = "e1 " ]
	printf '{"value":"e4","id":"X"}\n' | mq-pub -t env -f json --id none
	[ "$(mq-sub -t env -e | tr '\n' ' ')" = "e1 e4 " ]
	run mq-pub -t h --id sometimes -m x
	assert_failure 2
	assert_output --partial "--id 'sometimes': use key, hash or none"
}

@test "the dedup window survives a broker crash and ends after --dedup-window" {
	start_broker --dedup-window 3s
	seq 1 4 | mq-pub -t w --id hash
	kill_broker
	start_broker --dedup-window 3s
	run mq-pub -t w --id hash -v < <(seq 1 6)
	assert_success
	assert_output --partial "6 acknowledged (4 duplicates)"
	[ "$(mq-sub -t w -e | wc -l)" -eq 6 ]
	sleep 3.2
	run mq-pub -t w --id hash -v < <(seq 1 2)
	assert_output --partial "2 acknowledged (0 duplicates)"
	[ "$(mq-sub -t w -e | wc -l)" -eq 8 ]
	stop_broker
	run mq-serve -d "$MQ_DATA_DIR" --dedup-window never
	assert_failure 2
	assert_output --partial "--dedup-window 'never'"
}

@test "ids stored but not yet journaled when the broker died are taken back from the log" {
	start_broker
	mq-admin topic create d --partitions 3
	seq 1 5 | mq-pub -t d --id hash
	stop_broker
	# The journal as it was before the next publish: what a kill between
	# the sync of the data and the write of its ids leaves behind.
	cp -p "$MQ_DATA_DIR/state/dedup" "$BATS_TEST_TMPDIR/dedup.before"
	start_broker
	seq 6 10 | mq-pub -t d --id hash
	kill_broker
	cp -p "$BATS_TEST_TMPDIR/dedup.before" "$MQ_DATA_DIR/state/dedup"
	start_broker
	run mq-pub -t d --id hash -v < <(seq 1 10)
	assert_success
	assert_output --partial "10 acknowledged (10 duplicates)"
	[ "$(mq-sub -t d -e | sort -n | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 " ]
	grep -q "dedup window: 5 ids of records stored just before mq-serve stopped were missing" "$MQ_BROKER_LOG"
	# A clean stop leaves nothing to take back.
	stop_broker
	start_broker
	run mq-pub -t d --id hash -v < <(seq 1 10)
	assert_output --partial "10 acknowledged (10 duplicates)"
	! grep -q "dedup window" "$MQ_BROKER_LOG"
}

@test "a topic deleted and made again starts with no remembered ids" {
	start_broker
	printf 'a:v1\nb:v2\n' | mq-pub -t t -K : --id key
	mq-admin topic delete t
	run mq-pub -t t -K : --id key -v < <(printf 'a:v1-new\nb:v2-new\nc:v3\n')
	assert_success
	assert_output --partial "3 acknowledged (0 duplicates)"
	[ "$(mq-sub -t t -e | wc -l)" -eq 3 ]
}

@test "--whole and --file: all the input is one binary-safe message; too big is not sent" {
	start_broker
	head -c 300000 /dev/urandom >"$BATS_TEST_TMPDIR/blob"
	printf '\0\n\0\n' >>"$BATS_TEST_TMPDIR/blob"
	run mq-pub -t w --file "$BATS_TEST_TMPDIR/blob"
	assert_success
	mq-pub -t w --whole <"$BATS_TEST_TMPDIR/blob"
	: | mq-pub -t w --whole # empty input: one empty message
	run read_back w -F '%S\n'
	assert_output "300004
300004
0"
	read_back w -n 1 -F '%s' | cmp - "$BATS_TEST_TMPDIR/blob"
	# -K splits off a key at its first occurrence, as with -m.
	printf 'k1:v:1\nline 2\n' | mq-pub -t wk --whole -K :
	run read_back wk -F '%k|%s'
	assert_output "k1|v:1
line 2"
	# Over the limit: nothing sent, exit 1, saying why.
	run mq-pub -t w --whole --max-message-bytes 1000 <"$BATS_TEST_TMPDIR/blob"
	assert_failure 1
	assert_output --partial "standard input: more than 1000 bytes"
	run read_back w -F '%S\n'
	[ "${#lines[@]}" -eq 3 ]
	run mq-pub -t w --file "$BATS_TEST_TMPDIR/nonexistent"
	assert_failure 1
	assert_output --partial "cannot read --file $BATS_TEST_TMPDIR/nonexistent: No such file or directory"
	run mq-pub -t w --whole -m x
	assert_failure 2
	run mq-pub -t w --whole -0
	assert_failure 2
}

@test "-D DELIM: records end at any byte string, escapes allowed" {
	start_broker
	printf 'a--b----c' | mq-pub -t d -D --
	run read_back d -F '[%s]'
	assert_output "[a][b][][c]"
	printf 'p1 l1\np1 l2\n\np2 l1\n' | mq-pub -t p -D '\n\n'
	run read_back p -F '[%s]\n'
	assert_output "[p1 l1
p1 l2]
[p2 l1
]"
	printf 'x\036y\036' | mq-pub -t rs -D '\x1e' -K ' '
	run read_back rs -F '[%s]'
	assert_output "[x][y]"
	run mq-pub -t d -D '\q'
	assert_failure 2
	assert_output --partial "unknown escape"
	run mq-pub -t d -D x -f json
	assert_failure 2
}

@test "without -t, envelopes go to their own topics: copying many topics in one pipeline" {
	start_broker --partitions 2
	local t
	for t in logs.a logs.b logs.c; do
		seq 1 500 | sed "s/^/$t /" | mq-pub -t "$t" -k "$t"
	done
	seq 1 5 | mq-pub -t other
	# A second broker, as a backup.
	local first=$MQ_BROKER dir=$MQ_DATA_DIR pid=$MQ_BROKER_PID port2
	port2=$(free_port)
	mkdir -p "$BATS_TEST_TMPDIR/data2"
	mq-serve -d "$BATS_TEST_TMPDIR/data2" -l "tcp://127.0.0.1:$port2" 2>"$BATS_TEST_TMPDIR/b2.log" 3>&- &
	B2=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$BATS_TEST_TMPDIR/b2.log" && break
		sleep 0.05
	done
	mq-sub -t 'logs.*' -e -f json | mq-pub -b "tcp://127.0.0.1:$port2" -f json
	run mq-admin -b "tcp://127.0.0.1:$port2" topic list
	assert_output --partial logs.a
	refute_output --partial other
	for t in logs.a logs.b logs.c; do
		diff <(mq-sub -t "$t" -e -F '%k %s\n' | sort) \
			<(mq-sub -b "tcp://127.0.0.1:$port2" -t "$t" -e -F '%k %s\n' | sort)
	done
	# More topics than are written at once: all of them, in order per key.
	for ((i = 0; i < 40; i++)); do
		printf '{"topic":"t%d","key":"k","value":"%d"}\n' $((i % 20)) "$i"
	done | mq-pub -b "tcp://127.0.0.1:$port2" -f json
	run mq-sub -b "tcp://127.0.0.1:$port2" -t 't7' -e
	assert_output "7
27"
	kill "$B2"
	wait "$B2" || true
	B2=
	# No topic, or a bad one: refused, the rest sent, exit 1.
	run mq-pub -f json <<<'{"value":"x"}
{"topic":"a/b","value":"y"}
{"topic":"fine","value":"z"}'
	assert_failure 1
	assert_output --partial "record 1: no topic; not sent"
	assert_output --partial "record 2: topic 'a/b': invalid name"
	assert_output --partial "2 of 3 messages were not acknowledged"
	run mq-sub -t fine -e
	assert_output "z"
	run mq-pub -m x
	assert_failure 2
	assert_output --partial "no topic: give one with -t TOPIC"
}

@test "-q: bad records are not said one by one; the summary names the first, not 'see above'" {
	start_broker
	run --separate-stderr mq-pub -q -t q -f json <<<'{"value":"a"}
{bad
{"value":"c"}
{"value":"d"'
	assert_failure 1
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	[[ $stderr == "mq-pub: 2 of 4 messages were not acknowledged (invalid or too big; the first: record 2: invalid JSON envelope"* ]]
	[[ $stderr != *"see above"* ]]
	run mq-sub -t q -e
	assert_output "a
c"
	# Without -q each is said, and the summary points at them.
	run --separate-stderr mq-pub -t q -f json <<<'{bad'
	assert_failure 1
	[ "$(wc -l <<<"$stderr")" -eq 2 ]
	[[ $stderr == *"invalid or too big, see above)" ]]
}
