#!/usr/bin/env bats
# mq-lag against a real mq-serve sampling every 200ms (a 6 s window):
# lag that rises with publishing and falls with consuming, each status
# brought about on purpose, thresholds and exit codes, the JSON document,
# the Prometheus text format, --watch, and the UNKNOWN cases; lag in time
# (the age of the oldest unconsumed message) and the --watch sparkline.

load helpers

lag() {
	timeout 60 mq-lag "$@"
}

# Field $3 (awk numbering) of the table row of group $1, topic $2
# (partition 0, or "(total)" as the topic for the total).
cell() { # group topic field [mq-lag args...]
	local g=$1 t=$2 f=$3
	shift 3
	lag -g "$g" "$@" | awk -v g="$g" -v t="$t" -v f="$f" '$1 == g && $2 == t && ($3 == 0 || t == "(total)") { print $f }'
}

# Wait until the status of group $1 on its partition 0 is $2 (at most $3 s).
wait_status() { # group status seconds
	local i got
	for ((i = 0; i < $3 * 5; i++)); do
		got=$(lag -g "$1" -f json | jq -r '.groups[0].partitions[0].status')
		[ "$got" = "$2" ] && return 0
		sleep 0.2
	done
	echo "wait_status: group $1 is $got after $3 s, wanted $2" >&2
	lag -g "$1" >&2 || true
	return 1
}

# A member that owns the partition but never commits: mq-sub writes into
# a FIFO that this shell holds open and never reads, so once the pipe is
# full it waits there (keeping its session alive) without committing.
# mq-sub must not hold the reading end itself, or it could never see
# the reader go.
# Sets STUCK_PID and STUCK_FD.
stuck_consumer() { # group topic
	mkfifo "$BATS_TEST_TMPDIR/stuck"
	exec {STUCK_FD}<>"$BATS_TEST_TMPDIR/stuck"
	mq-sub -g "$1" -t "$2" >"$BATS_TEST_TMPDIR/stuck" 2>"$BATS_TEST_TMPDIR/stuck.err" 3>&- {STUCK_FD}<&- &
	STUCK_PID=$!
}

# Closing the only reader ends it (EPIPE, exit 0).
end_stuck_consumer() {
	exec {STUCK_FD}<&-
	wait "$STUCK_PID"
}

# Wait until group $1 has a member owning partition 0.
wait_owner() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(lag -g "$1" -f json | jq -r '.groups[0].partitions[0].owner')" != null ] && return 0
		sleep 0.1
	done
	echo "wait_owner: group $1 has no owner after 10 s" >&2
	return 1
}

@test "mq-lag --help and -V" {
	run mq-lag --help
	assert_success
	assert_output --partial "usage: mq-lag [-g GROUP]... [-t TOPIC] [-f table|json|prom] [--warn N] [--crit N] [--watch SECONDS]"
	run mq-lag -V
	assert_success
	assert_output --regexp '^mq-lag [0-9]+\.[0-9]+'
}

@test "mq-lag usage errors are UNKNOWN (exit 3), one line each" {
	run mq-lag --frobnicate
	assert_failure 3
	assert_output "mq-lag: unknown option '--frobnicate' (try 'mq-lag --help')"
	run mq-lag -f xml
	assert_failure 3
	assert_output --partial "-f 'xml': unknown format (use table, json or prom)"
	run mq-lag --warn 0
	assert_failure 3
	run mq-lag --warn lots
	assert_failure 3
	assert_output --partial "--warn 'lots': expected a lag of 1 or more messages"
	run mq-lag --warn 100 --crit 10
	assert_failure 3
	assert_output --partial "--warn 100 is above --crit 10"
	run mq-lag --watch 0
	assert_failure 3
	run mq-lag -g 'a b'
	assert_failure 3
	assert_output --partial "group 'a b': invalid name"
	run mq-lag -t 'a/b'
	assert_failure 3
	assert_output --partial "topic 'a/b': invalid name"
	run mq-lag stray
	assert_failure 3
	assert_output --partial "unexpected argument 'stray'"
	[ "${#lines[@]}" -eq 1 ]
}

@test "mq-lag: broker unreachable, unknown group or topic: exit 3 with a message" {
	local port
	port=$(free_port)
	run mq-lag -b "tcp://127.0.0.1:$port" -w 300ms
	assert_failure 3
	assert_output --partial "mq-lag: "
	assert_output --partial "127.0.0.1:$port"
	start_broker --lag-interval 200ms
	run lag
	assert_success
	assert_output --partial "no consumer group"
	run lag -q
	assert_success
	assert_output ""
	run lag -f json
	assert_success
	[ "$(jq -c .groups <<<"$output")" = "[]" ]
	seq 1 10 | mq-pub -t t
	seq 1 10 | mq-pub -t other
	mq-sub -g g -t t -n 5 >/dev/null
	run lag -g nope
	assert_failure 3
	assert_output --partial "no group 'nope'"
	run lag -g g -t nope
	assert_failure 3
	assert_output --partial "topic 'nope'"
	run lag -g g -t other
	assert_failure 3
	assert_output --partial "group 'g' does not read topic 'other'"
	run lag -g g -g nope
	assert_failure 3
	# --watch keeps going through errors and says each on stderr
	run timeout --foreground -s INT 2 mq-lag -g nope --watch 500ms
	assert_output --partial "no group 'nope'"
}

@test "mq-lag: lag rises as messages are published and falls as the group consumes" {
	start_broker --lag-interval 200ms
	seq 1 100 | mq-pub -t t
	mq-sub -g g -t t -n 40 >/dev/null
	[ "$(cell g t 4)" = 40 ]  # committed
	[ "$(cell g t 5)" = 100 ] # end
	[ "$(cell g t 6)" = 60 ]  # lag
	seq 1 50 | mq-pub -t t
	[ "$(cell g t 6)" = 110 ]
	[ "$(cell g '(total)' 6)" = 110 ]
	mq-sub -g g -t t -n 100 >/dev/null
	[ "$(cell g t 6)" = 10 ]
	mq-sub -g g -t t -e >/dev/null
	[ "$(cell g t 4)" = 150 ]
	[ "$(cell g t 6)" = 0 ]
	run lag -g g
	assert_success
	# aligned columns: the header and every row have their fields at the same places
	assert_line --index 0 --regexp '^GROUP +TOPIC +PARTITION +COMMITTED +END +LAG +AGE +RATE +ETA +STATUS +MEMBER$'
	[ "${#lines[@]}" -eq 3 ]
	local at
	at=$(awk '{ print index($0, " OK") }' <<<"${lines[1]}")
	[ "$at" -gt 0 ]
	[ "$(awk '{ print index($0, " OK") }' <<<"${lines[2]}")" = "$at" ]
	[ "${lines[0]:$at:6}" = STATUS ]
}

@test "mq-lag: a group without members and with lag is STOPPED and CRITICAL (exit 2)" {
	start_broker --lag-interval 200ms
	seq 1 30 | mq-pub -t t
	mq-sub -g g -t t -n 10 >/dev/null
	run lag -g g
	assert_failure 2
	assert_line --regexp '^g +t +0 +10 +30 +20 .* STOPPED +-$'
	assert_line --regexp '^g +\(total\) .* 20 .* STOPPED +\(0 members\)$'
	# consumed to the end: no lag, nothing to report even without a member
	mq-sub -g g -t t -e >/dev/null
	run lag -g g
	assert_success
	assert_line --regexp '^g +t +0 +30 +30 +0 .* OK +-$'
}

@test "mq-lag: thresholds on a group's total lag: --warn exits 1, --crit exits 2" {
	# samples an hour apart: the window never fills, statuses stay OK
	start_broker --lag-interval 1h
	seq 1 300000 | mq-pub -t t
	stuck_consumer g t
	wait_owner g
	# what went into the pipe before it filled may be committed: wait until the lag holds still
	local l=-1 prev=-2 i
	for ((i = 0; i < 50 && l != prev; i++)); do
		prev=$l
		sleep 0.6
		l=$(lag -g g -f json | jq '.groups[0].lag')
	done
	[ "$l" = "$prev" ]
	[ "$l" -gt 250000 ]
	run lag -g g
	assert_success
	assert_line --regexp "^g +t +0 +[0-9-]+ +300000 +$l .* OK +m"
	run lag -g g --warn $((l + 1))
	assert_success
	run lag -g g --warn "$l"
	assert_failure 1
	run lag -g g --warn 1000 --crit "$l"
	assert_failure 2
	run lag -g g --crit $((l + 1))
	assert_success
	run lag -g g -f json --warn 1000
	assert_failure 1
	[ "$(jq -r '.state + " " + (.exit | tostring) + " " + .groups[0].state' <<<"$output")" = "WARNING 1 WARNING" ]
	end_stuck_consumer
}

@test "mq-lag: a live member that stops committing while lag > 0 is STALLED (exit 1)" {
	start_broker --lag-interval 200ms
	seq 1 300000 | mq-pub -t t
	stuck_consumer g t
	wait_owner g
	wait_status g STALLED 20
	run lag -g g
	assert_failure 1
	assert_line --regexp '^g +t +0 +[0-9-]+ +300000 +[0-9]+ +[0-9]+[smhd][0-9smh]* +0\.0 +never +STALLED +m'
	# a stopped group elsewhere makes it CRITICAL
	seq 1 5 | mq-pub -t u
	mq-sub -g h -t u -n 1 >/dev/null
	run lag
	assert_failure 2
	run lag -g g
	assert_failure 1
	end_stuck_consumer
}

@test "mq-lag: a member reading slower than the producer is LAGGING (exit 1)" {
	start_broker --lag-interval 200ms
	mkfifo "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	# 2000 messages of 200 bytes a second, for at most 60 s
	"$MQ_PYTHON" -u -c 'import sys, time
for i in range(1200):
    sys.stdout.write("".join("%08d %s\n" % (i * 100 + j, "x" * 190) for j in range(100)))
    sys.stdout.flush()
    time.sleep(0.05)' >"$BATS_TEST_TMPDIR/in" 3>&- &
	local gen=$!
	mq-pub -t t <"$BATS_TEST_TMPDIR/in" 3>&- &
	local pub=$!
	# ... read at 1000 a second
	mq-sub -g g -t t >"$BATS_TEST_TMPDIR/out" 3>&- &
	local sub=$!
	mq-bucket -r 1000/s <"$BATS_TEST_TMPDIR/out" >/dev/null 3>&- &
	local bucket=$!
	local st=0
	wait_status g LAGGING 25 || st=1
	run lag -g g
	kill "$bucket" "$gen"
	wait "$bucket" || true
	wait "$gen" || true
	wait "$sub" || true
	wait "$pub" || true
	[ "$st" -eq 0 ]
	# the status may have moved on meanwhile; what was seen was LAGGING
	[ "$status" -ge 1 ]
}

@test "mq-lag -f json is one document with every group and partition" {
	start_broker --lag-interval 200ms --partitions 2
	seq 1 80 | mq-pub -t t
	seq 1 20 | mq-pub -t u
	mq-sub -g g1 -t t -n 10 >/dev/null
	mq-sub -g g2 -t u -e >/dev/null
	run lag -f json
	assert_failure 2 # g1 is STOPPED with lag
	[ "${#lines[@]}" -eq 1 ]
	"$MQ_PYTHON" -m json.tool <<<"$output" >/dev/null
	run jq -r '.groups | map(.group) | join(",")' <<<"$output"
	assert_output "g1,g2"
	run lag -f json
	jq -e '.broker == env.MQ_BROKER and .interval_ms == 200 and .history == 30 and .state == "CRITICAL"
		and .exit == 2 and .warn == null and .crit == null and (.time_ms | type) == "number"' <<<"$output"
	jq -e '.groups[0] | .status == "STOPPED" and .state == "CRITICAL" and .members == []
		and .lag == ([.partitions[].lag] | add) and (.partitions | length) >= 1' <<<"$output"
	jq -e '.groups[0].partitions[0] | has("topic") and has("partition") and has("committed") and has("start")
		and has("end") and has("lag") and has("rate") and has("eta_s") and has("status") and has("owner")
		and has("samples") and has("lag_seconds") and has("since_ms")' <<<"$output"
	jq -e '.warn_age == null and .crit_age == null and (.groups[0].lag_seconds | type) == "number"
		and .groups[1].lag_seconds == 0 and ([.groups[1].partitions[].since_ms] | unique) == [null]' <<<"$output"
	jq -e '.groups[0] | (.partitions | length) == 2 and ([.partitions[].end] | add) == 80
		and .lag == 70' <<<"$output"
	jq -e '.groups[1] | .status == "OK" and .lag == 0 and ([.partitions[].committed] | add) == 20
		and ([.partitions[].end] | add) == 20' <<<"$output"
	# -g twice, -t
	run lag -f json -g g2 -g g1 -t u
	assert_failure 3
	assert_output --partial "group 'g1' does not read topic 'u'"
	run lag -f json -g g2 -t u
	assert_success
	jq -e '.groups | length == 1 and .[0].group == "g2"' <<<"$output"
	run lag -f json -t t
	jq -e '.groups | length == 1 and .[0].group == "g1"' <<<"$output"
}

# A strict reader of the Prometheus text format (version 0.0.4), for
# where promtool is not installed.
prom_check() {
	"$MQ_PYTHON" -c '
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r"[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\n]|\\\\[\\\\\"n])*\""
sample = re.compile(r"^(" + name + r")(?:\{(" + label + r"(?:," + label + r")*)?\})? (\S+)$")
typed, helped, done, seen, current = {}, set(), set(), set(), None
for n, line in enumerate(sys.stdin.read().split("\n")[:-1], 1):
    def bad(why):
        sys.exit("line %d: %s: %r" % (n, why, line))
    if line.startswith("# HELP "):
        m = re.match(r"^# HELP (" + name + r") (.*)$", line) or bad("bad HELP")
        if m.group(1) in helped: bad("second HELP")
        helped.add(m.group(1))
    elif line.startswith("# TYPE "):
        m = re.match(r"^# TYPE (" + name + r") (counter|gauge|histogram|summary|untyped)$", line) or bad("bad TYPE")
        if m.group(1) in typed: bad("second TYPE")
        typed[m.group(1)] = m.group(2)
        if current and current != m.group(1): done.add(current)
        current = m.group(1)
    elif line.startswith("#"):
        continue
    else:
        m = sample.match(line) or bad("bad sample")
        if m.group(1) not in typed: bad("sample before its TYPE")
        if m.group(1) in done: bad("family not contiguous")
        if m.group(1) != current: done.add(current); current = m.group(1)
        float(m.group(3))
        key = (m.group(1), m.group(2))
        if key in seen: bad("duplicate series")
        seen.add(key)
print(len(seen))
'
}

@test "mq-lag -f prom is valid Prometheus text format" {
	start_broker --lag-interval 200ms
	seq 1 30 | mq-pub -t t
	mq-sub -g g -t t -n 10 >/dev/null
	seq 1 30 | mq-pub -t u
	mq-sub -g h -t u -e >/dev/null
	run lag -f prom
	assert_failure 2
	assert_line 'mq_lag_up 1'
	assert_line 'mq_lag_state 2'
	assert_line '# TYPE mq_lag_up gauge'
	assert_line '# TYPE mq_lag_state gauge'
	assert_line --regexp '^# HELP mq_lag_up .+'
	assert_line --regexp '^# HELP mq_lag_state .+'
	assert_line 'mq_consumer_lag{group="g",topic="t",partition="0"} 20'
	assert_line 'mq_consumer_lag{group="h",topic="u",partition="0"} 0'
	assert_line 'mq_consumer_committed_offset{group="g",topic="t",partition="0"} 10'
	assert_line 'mq_consumer_end_offset{group="g",topic="t",partition="0"} 30'
	assert_line 'mq_consumer_status{group="g",topic="t",partition="0"} 3'
	assert_line 'mq_consumer_status{group="h",topic="u",partition="0"} 0'
	assert_line '# TYPE mq_consumer_lag gauge'
	assert_line --regexp '^# HELP mq_consumer_lag .+'
	assert_line '# TYPE mq_consumer_lag_seconds gauge'
	assert_line --regexp '^# HELP mq_consumer_lag_seconds .+'
	assert_line --regexp '^mq_consumer_lag_seconds\{group="g",topic="t",partition="0"\} [0-9]+\.[0-9]{3}$'
	assert_line 'mq_consumer_lag_seconds{group="h",topic="u",partition="0"} 0.000'
	if command -v promtool >/dev/null 2>&1; then
		promtool check metrics <<<"$output"
	fi
	run prom_check <<<"$output"
	assert_success
	[ "$output" -ge 8 ]
	# the checker is strict: it refuses a broken line
	run prom_check <<<'mq_consumer_lag{group="g" 1'
	assert_failure
	run prom_check <<<'mq_consumer_lag 1'
	assert_failure
}

# mq-lag -f prom's stdout alone in $output, its exit status in $status.
prom_only() {
	status=0
	output=$(timeout 60 mq-lag -f prom "$@" 2>"$BATS_TEST_TMPDIR/prom.err") || status=$?
}

# The exposition in $output is valid and says the report could not be made.
assert_prom_down() {
	[ "$output" = "$(printf '%s\n' \
		'# HELP mq_lag_up Whether mq-lag made the report: 1 yes, 0 no (broker unreachable, no such group or topic).' \
		'# TYPE mq_lag_up gauge' 'mq_lag_up 0' \
		'# HELP mq_lag_state The state mq-lag exits with: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.' \
		'# TYPE mq_lag_state gauge' 'mq_lag_state 3')" ]
	[ "$(prom_check <<<"$output")" -eq 2 ]
}

@test "mq-lag -f prom reports mq_lag_up 0 and mq_lag_state 3 when it cannot report (exit 3)" {
	local port
	port=$(free_port)
	prom_only -b "tcp://127.0.0.1:$port" -w 300ms
	[ "$status" -eq 3 ]
	assert_prom_down
	grep -q "127.0.0.1:$port" "$BATS_TEST_TMPDIR/prom.err"
	start_broker --lag-interval 200ms
	seq 1 10 | mq-pub -t t
	seq 1 10 | mq-pub -t other
	mq-sub -g g -t t -e >/dev/null
	prom_only -g nope
	[ "$status" -eq 3 ]
	assert_prom_down
	grep -q "no group 'nope'" "$BATS_TEST_TMPDIR/prom.err"
	prom_only -g g -t other
	[ "$status" -eq 3 ]
	assert_prom_down
	prom_only -g g
	[ "$status" -eq 0 ]
	grep -qx 'mq_lag_up 1' <<<"$output"
	grep -qx 'mq_lag_state 0' <<<"$output"
	grep -qx 'mq_consumer_lag{group="g",topic="t",partition="0"} 0' <<<"$output"
	[ "$(prom_check <<<"$output")" -ge 6 ]
}

@test "mq-lag -f prom --watch off a terminal is a usage error (exit 3, one line)" {
	run timeout 10 mq-lag -f prom --watch 1
	assert_failure 3
	assert_output --partial "-f prom --watch: reports one after another are not one valid exposition"
	assert_output --partial "run mq-lag -f prom from cron or a loop that rewrites the file"
	[ "${#lines[@]}" -eq 1 ]
	run timeout 10 mq-lag --watch 1 --format prometheus -b tcp://127.0.0.1:1
	assert_failure 3
	[ "${#lines[@]}" -eq 1 ]
}

@test "mq-lag --watch prints one report per interval when not on a terminal" {
	start_broker --lag-interval 200ms
	seq 1 30 | mq-pub -t t
	mq-sub -g g -t t -e >/dev/null
	run timeout --foreground -s INT 1.8 mq-lag -g g -f json --watch 500ms
	[ "${#lines[@]}" -ge 3 ]
	local l
	for l in "${lines[@]}"; do
		jq -e '.groups[0].group == "g"' <<<"$l" >/dev/null
	done
	run timeout --foreground -s INT 1.3 mq-lag -g g --watch 500ms
	[ "$(grep -c '^GROUP' <<<"$output")" -ge 2 ]
	[[ "$output" != *$'\e['* ]]
}

@test "mq-lag: lag in time: the oldest unconsumed message's age grows while the group stands still, 0 when caught up" {
	start_broker --lag-interval 200ms
	seq 1 10 | mq-pub -t t
	mq-sub -g g -t t -n 4 >/dev/null
	local ts a1 a2
	ts=$(mq-sub -t t -o 4 -n 1 -F '%T')
	sleep 1.1
	run lag -g g -f json
	assert_failure 2 # STOPPED
	# the age of the message at the committed offset, by its own timestamp
	jq -e --argjson ts "$ts" '.groups[0] | .lag_seconds >= 1 and .partitions[0].lag_seconds >= 1
		and .partitions[0].since_ms == $ts and .lag_seconds == .partitions[0].lag_seconds' <<<"$output"
	a1=$(jq '.groups[0].partitions[0].lag_seconds' <<<"$output")
	sleep 0.3
	a2=$(lag -g g -f json | jq '.groups[0].partitions[0].lag_seconds')
	jq -en --argjson a "$a1" --argjson b "$a2" '$b > $a'
	# a column after LAG, in whole seconds
	run lag -g g
	assert_line --regexp '^g +t +0 +4 +10 +6 +[1-9][0-9]*s .* STOPPED +-$'
	assert_line --regexp '^g +\(total\) .* 6 +[1-9][0-9]*s .* STOPPED'
	run lag -g g -f prom
	assert_line --regexp '^mq_consumer_lag_seconds\{group="g",topic="t",partition="0"\} [1-9][0-9]*\.[0-9]{3}$'
	# caught up: 0, whatever the timestamps
	mq-sub -g g -t t -e >/dev/null
	run lag -g g -f json
	assert_success
	jq -e '.groups[0] | .lag_seconds == 0 and .partitions[0].lag_seconds == 0
		and .partitions[0].since_ms == null' <<<"$output"
	run lag -g g
	assert_line --regexp '^g +t +0 +10 +10 +0 +0s '
	run lag -g g -f prom
	assert_line 'mq_consumer_lag_seconds{group="g",topic="t",partition="0"} 0.000'
}

@test "mq-lag --warn-age and --crit-age: the oldest unconsumed message's wait sets the exit status" {
	# samples an hour apart: the window never fills, the status stays OK
	start_broker --lag-interval 1h
	local old=$((($(date +%s) - 7200) * 1000)) i
	for i in 1 2 3; do
		printf '{"value":"m%d","timestamp":%d}\n' "$i" "$old"
	done | mq-pub -t t -f json
	# a member that takes nothing, so commits nothing
	stuck_consumer g t
	wait_owner g
	run lag -g g
	assert_success
	assert_line --regexp '^g +t +0 +[0-9-]+ +3 +3 +2h00m .* OK +m'
	assert_line --regexp '^g +\(total\) .* 3 +2h00m .* OK'
	run lag -g g --warn-age 3h
	assert_success
	run lag -g g --warn-age 1h
	assert_failure 1
	run lag -g g --crit-age 90m
	assert_failure 2
	run lag -g g --warn-age 1h --crit-age 3h
	assert_failure 1
	run lag -g g --warn-age 30m --crit-age 2h
	assert_failure 2
	run lag -g g --crit-age 1d --warn 100
	assert_success
	run lag -g g -f json --warn-age 1h --crit-age 1d
	assert_failure 1
	jq -e '.state == "WARNING" and .exit == 1 and .warn_age == 3600 and .crit_age == 86400
		and .groups[0].state == "WARNING" and .groups[0].lag_seconds >= 7200
		and .groups[0].partitions[0].since_ms == '"$old" <<<"$output"
	run lag -g g -f prom --crit-age 1h
	assert_failure 2
	assert_line 'mq_lag_state 2'
	assert_line --regexp '^mq_consumer_lag_seconds\{group="g",topic="t",partition="0"\} 7[0-9]{3}\.[0-9]{3}$'
	end_stuck_consumer
}

@test "mq-lag --warn-age and --crit-age refuse what is not a duration above 0 (exit 3)" {
	run mq-lag --warn-age 0
	assert_failure 3
	assert_output --partial "--warn-age '0': expected a duration above 0"
	run mq-lag --crit-age soon
	assert_failure 3
	assert_output --partial "--crit-age 'soon': expected a duration above 0"
	run mq-lag --warn-age 1h --crit-age 1m
	assert_failure 3
	assert_output --partial "--warn-age 1h is above --crit-age 1m (warn at the shorter wait)"
	[ "${#lines[@]}" -eq 1 ]
	run mq-lag --help
	assert_output --partial "--warn-age DURATION"
	assert_output --partial "--crit-age DURATION"
}

@test "mq-lag --watch shows each partition's lag over the window as a sparkline" {
	start_broker --lag-interval 200ms
	seq 1 30 | mq-pub -t t
	mq-sub -g g -t t -n 10 >/dev/null
	sleep 1 # samples of a lag of 20 ...
	seq 1 20 | mq-pub -t t # ... then 40: the tallest bar, 20 half as tall
	run env LC_ALL=C.UTF-8 TERM=xterm timeout --foreground -s INT 3 mq-lag -g g --watch 500ms
	assert_line --index 0 --regexp '^GROUP +TOPIC +PARTITION +COMMITTED +END +LAG +AGE +TREND +RATE +ETA +STATUS +MEMBER$'
	local l rows=0
	for l in "${lines[@]}"; do
		case $l in
		"g "*) [[ "$l" == *▅▅*█\ * ]] || { echo "no sparkline: $l" >&2; return 1; }; rows=$((rows + 1)) ;;
		esac
	done
	[ "$rows" -ge 4 ] # a partition and the total, in two reports or more
	assert_line --regexp '^g +t +0 +10 +50 +40 +[0-9]+s +[^ ]+ +[0-9.]+ +never +STOPPED +-$'
	# ASCII where the locale is not UTF-8, and on a dumb terminal
	run env LC_ALL=C timeout --foreground -s INT 1.3 mq-lag -g g --watch 500ms
	assert_line --regexp '^g +t +0 +10 +50 +40 +[0-9]+s +[_.:=+*#-]*==+#+ +[0-9.]+ +never +STOPPED +-$'
	run env LC_ALL=C.UTF-8 TERM=dumb timeout --foreground -s INT 1.3 mq-lag -g g --watch 500ms
	assert_line --regexp '^g +t +0 +10 +50 +40 +[0-9]+s +[_.:=+*#-]*==+#+ +[0-9.]+ +never'
	# only with --watch
	run lag -g g
	refute_output --partial TREND
}
