#!/usr/bin/env bats
# mq-admin: topics, groups, offset resets, ping and stats against a real
# mq-serve; keygen; and the offline verify and dump over a data directory.

load helpers
bats_require_minimum_version 1.5.0

BG_PIDS=()

teardown() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	mq_teardown
}

# A group member in the background (mq-sub -g $1 -t $2), remembered for teardown; its pid in MEMBER.
# timeout -k: a member that does not end within 10 s of a SIGTERM (its own
# at 120 s, or stop_member's, which timeout passes on) is killed, so no
# wait for it hangs the run.
start_member() {
	timeout -k 10 120 mq-sub -g "$1" -t "$2" >/dev/null 2>"$BATS_TEST_TMPDIR/member.err" 3>&- &
	MEMBER=$!
	BG_PIDS+=("$MEMBER")
}

stop_member() {
	local st=0
	kill -TERM "$MEMBER"
	wait "$MEMBER" || st=$?
	if [ "$st" -eq 137 ]; then
		echo "stop_member: mq-sub -g did not exit within 10 s of SIGTERM and was killed; its stderr:" >&2
		cat "$BATS_TEST_TMPDIR/member.err" >&2
		return 1
	fi
}

# Wait until group $1 has $2 live members (at most 20 s).
wait_members() {
	local i out
	for ((i = 0; i < 400; i++)); do
		out=$(mq-admin group describe "$1" 2>/dev/null) || true
		grep -qx "members *$2" <<<"$out" && return 0
		sleep 0.05
	done
	echo "wait_members: group $1 does not have $2 members: $out" >&2
	return 1
}

# The committed offset of group $1 on topic $2 partition $3 ("-" for none).
committed() {
	mq-admin -q group describe "$1" -t "$2" | awk -v p="$3" 'NF == 7 && $2 == p { print $3 }'
}

bench_log() {
	"${MQ_BENCH_DIR:-$MQ_ROOT/build/bench}/bench_log" "$@"
}

# A partition of N records (batches of 100) in $BATS_TEST_TMPDIR/data/topics/t/0.
make_partition() {
	local n=${1:-5000}
	mkdir -p "$BATS_TEST_TMPDIR/data/topics/t"
	printf 'partitions=1\nretention_ms=0\nretention_bytes=0\ncreated_ms=1\n' >"$BATS_TEST_TMPDIR/data/topics/t/topic.meta"
	bench_log -n "$n" -b 100 -S 0 -k -d "$BATS_TEST_TMPDIR/bench" >/dev/null
	mv "$BATS_TEST_TMPDIR/bench/p0" "$BATS_TEST_TMPDIR/data/topics/t/0"
	PART=$BATS_TEST_TMPDIR/data/topics/t/0
	SEG=$PART/00000000000000000000.log
}

@test "mq-admin --help prints usage on stdout and exits 0" {
	run mq-admin --help
	assert_success
	assert_output --partial "usage: mq-admin COMMAND"
	local c
	for c in "topic list" "topic create NAME" "topic describe NAME" "topic delete NAME" "topic partitions NAME N" \
		"group list" "group describe GROUP" "group reset GROUP -t TOPIC --to" "group delete GROUP" ping stats \
		"verify DIR" "dump DIR" keygen; do
		assert_output --partial "mq-admin $c"
	done
	assert_output --partial "mq-admin group reset GROUP -t TOPIC --to beginning|end|N|-N|@TIME [--dry-run] [--create]"
	assert_output --partial "mq-admin topic describe NAME [-f json]"
	assert_output --regexp $'\n  -f, --format FMT +list, describe, ping, stats: table \\(default\\) or json'
	assert_output --regexp $'\n  --create +group reset: make the group when it does not exist'
	run mq-admin topic list --help
	assert_success
	assert_output --partial "usage: mq-admin COMMAND"
	run mq-admin -V
	assert_success
	assert_output --regexp '^mq-admin [0-9]+\.[0-9]+'
}

@test "mq-admin with an unknown command exits 2 and says what exists" {
	run mq-admin frobnicate
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	assert_output --partial "use topic, group, ping, stats, verify, dump or keygen"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin
	assert_failure 2
}

@test "a mistyped command or subcommand is named with the likely one, exit 2" {
	export MQ_BROKER=tcp://127.0.0.1:1 # nobody there: nothing is asked
	run mq-admin topik
	assert_failure 2
	assert_output "mq-admin: unknown command 'topik' (did you mean 'topic'?)"
	run mq-admin grup list
	assert_failure 2
	assert_output "mq-admin: unknown command 'grup' (did you mean 'group'?)"
	run mq-admin pnig
	assert_failure 2
	assert_output "mq-admin: unknown command 'pnig' (did you mean 'ping'?)"
	run mq-admin topic lst
	assert_failure 2
	assert_output "mq-admin: topic: unknown subcommand 'lst' (did you mean 'list'?)"
	run mq-admin group desc g
	assert_failure 2
	assert_output "mq-admin: group: unknown subcommand 'desc' (did you mean 'describe'?)"
	run mq-admin topic remove t
	assert_failure 2
	assert_output --partial "topic: unknown subcommand 'remove' (use list, create, describe, delete or partitions"
}

@test "usage errors exit 2 with one line, before any broker is asked" {
	export MQ_BROKER=tcp://127.0.0.1:1 # nobody there: a usage error must not wait for it
	run mq-admin topic frob
	assert_failure 2
	assert_output --partial "topic: unknown subcommand 'frob' (use list, create, describe, delete or partitions"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin group
	assert_failure 2
	assert_output --partial "group: which one? (use list, describe, reset or delete"
	run mq-admin topic create 'a/b'
	assert_failure 2
	assert_output "mq-admin: topic 'a/b': invalid name (use A-Z a-z 0-9 . _ -)"
	run mq-admin topic describe __internal
	assert_failure 2
	assert_output --partial "reserved"
	run mq-admin group describe 'g g'
	assert_failure 2
	assert_output --partial "group 'g g': invalid name"
	run mq-admin group reset g -t 'x/y' --to end
	assert_failure 2
	assert_output --partial "topic 'x/y': invalid name"
	run mq-admin topic create
	assert_failure 2
	assert_output --partial "topic create: missing argument (usage: mq-admin topic create NAME"
	run mq-admin topic describe a b
	assert_failure 2
	assert_output --partial "unexpected argument 'b'"
	run mq-admin topic list --dry-run
	assert_failure 2
	assert_output --partial "topic list does not take --dry-run"
	run mq-admin topic create t --partitions 0
	assert_failure 2
	assert_output --partial "--partitions '0': expected a number from 1 to 10000"
	run mq-admin topic create t --retention-time soon
	assert_failure 2
	run mq-admin topic partitions t 0
	assert_failure 2
	assert_output --partial "expected a partition count"
	run mq-admin topic partitions t -1
	assert_failure 2
	run mq-admin group reset g -t t
	assert_failure 2
	assert_output --partial "give the new position with --to"
	run mq-admin group reset g --to end
	assert_failure 2
	assert_output --partial "give the topic with -t TOPIC"
	run mq-admin group reset g -t t --to yesterday
	assert_failure 2
	assert_output --partial "--to: offset 'yesterday': not understood"
	run mq-admin ping --bogus
	assert_failure 2
	assert_output --partial "unknown option '--bogus'"
	run mq-admin ping -w soon
	assert_failure 2
	run mq-admin topic list -f yaml
	assert_failure 2
	assert_output "mq-admin: -f 'yaml': unknown format (use table or json) (try 'mq-admin --help')"
	run mq-admin topic create t -f json
	assert_failure 2
	assert_output --partial "topic create does not take -f/--format"
	run mq-admin group delete g --format json
	assert_failure 2
	run mq-admin topic list --create
	assert_failure 2
	assert_output --partial "topic list does not take --create"
}

@test "ping names the broker, its version and the round trip; exit 1 when nobody answers within -w" {
	start_broker
	run mq-admin ping
	assert_success
	assert_output --regexp "^broker $MQ_BROKER: mq-serve [0-9]+\.[0-9]+\.[0-9]+, [0-9]+\.[0-9]{3} ms$"
	kill -STOP "$MQ_BROKER_PID"
	local t0=$SECONDS
	run mq-admin ping -w 300ms
	assert_failure 1
	assert_output "mq-admin: broker $MQ_BROKER did not answer within 300ms"
	[ $((SECONDS - t0)) -lt 5 ]
	run mq-admin -b "$MQ_BROKER" -w 200ms topic list
	assert_failure 1
	kill -CONT "$MQ_BROKER_PID"
	stop_broker
	run mq-admin ping -w 30s
	assert_failure 1
	assert_output "mq-admin: cannot connect to $MQ_BROKER: connection refused (is mq-serve running? set -b or MQ_BROKER)"
	[ $((SECONDS - t0)) -lt 10 ]
}

@test "stats prints name value lines" {
	start_broker
	seq 1 25 | mq-pub -t s
	run mq-admin stats
	assert_success
	assert_line --regexp '^messages_in +25$'
	assert_line --regexp '^topics +1$'
	assert_line --regexp '^uptime_ms +[0-9]+$'
	[ "$(awk 'NF != 2' <<<"$output" | wc -l)" -eq 0 ]
}

@test "stats counts partition syncs: one per written partition and turn under --fsync always, none under never" {
	start_broker --fsync always
	mq-admin topic create one --partitions 1
	syncs() { mq-admin stats | awk '$1 == "partition_syncs" { print $2 }'; }
	[ "$(syncs)" -eq 0 ]
	# Each one-shot publish is a turn of its own: one sync each.
	for i in 1 2 3; do mq-pub -t one -m "m$i"; done
	[ "$(syncs)" -eq 3 ]
	# 20,000 lines in batches: far fewer syncs than messages, at least one.
	seq 1 20000 | mq-pub -t one
	local n
	n=$(syncs)
	[ "$n" -gt 3 ]
	[ "$n" -lt 2000 ]
	stop_broker
	start_broker --fsync never
	seq 1 100 | mq-pub -t one
	[ "$(syncs)" -eq 0 ]
}

@test "topic create, list and describe" {
	start_broker
	run mq-admin topic list
	assert_success
	assert_output ""
	run mq-admin topic create orders --partitions 3 --retention-time 7d --retention-bytes 1GiB
	assert_success
	assert_output ""
	mq-admin topic create audit -v
	run mq-admin topic create orders
	assert_failure 1
	assert_output --partial "topic 'orders' already exists"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin topic create orders --if-not-exists
	assert_success
	run mq-admin topic list
	assert_success
	assert_output $'audit\norders'
	run mq-admin topic list -v
	assert_success
	assert_line --index 0 --regexp '^TOPIC +PARTITIONS$'
	assert_line --index 1 --regexp '^audit +1$'
	assert_line --index 2 --regexp '^orders +3$'
	run mq-admin -q topic list -v
	assert_output --regexp '^audit +1'
	seq 1 10 | mq-pub -t orders -p 0
	seq 1 4 | mq-pub -t orders -p 2
	run mq-admin topic describe orders
	assert_success
	assert_line --index 0 --regexp '^topic +orders$'
	assert_line --index 1 --regexp '^partitions +3$'
	assert_line --index 2 --regexp '^retention-time +7d$'
	assert_line --index 3 --regexp '^retention-bytes +1GiB$'
	assert_line --index 4 --regexp "^created +$(date -u +%Y-%m-%d)T[0-9:]{8}Z$"
	assert_line --index 5 --regexp '^bytes +[1-9][0-9]*$'
	assert_line --index 6 --regexp '^messages +14$'
	assert_line --index 7 --regexp '^PARTITION +START +END +MESSAGES$'
	assert_line --index 8 --regexp '^0 +0 +10 +10$'
	assert_line --index 9 --regexp '^1 +0 +0 +0$'
	assert_line --index 10 --regexp '^2 +0 +4 +4$'
	run mq-admin topic describe audit
	assert_line --regexp '^retention-time +keep \(broker default\)$'
	assert_line --regexp '^retention-bytes +keep \(broker default\)$'
	run mq-admin topic describe nosuch
	assert_failure 1
	assert_output --partial "nosuch"
	[ "${#lines[@]}" -eq 1 ]
}

@test "topic partitions grows a topic; old data stays readable; shrinking is refused" {
	start_broker
	seq 1 10 | mq-pub -t grow -k k
	run mq-admin topic partitions grow 4
	assert_success
	run mq-admin topic describe grow
	assert_line --regexp '^partitions +4$'
	assert_line --regexp '^0 +0 +10 +10$'
	assert_line --regexp '^3 +0 +0 +0$'
	seq 11 12 | mq-pub -t grow -p 3
	run timeout 30 mq-sub -t grow -e
	assert_success
	[ "$(sort -n <<<"$output" | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 " ]
	run mq-admin topic partitions grow 2
	assert_failure 1
	assert_output --partial "'grow'"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin topic describe grow
	assert_line --regexp '^partitions +4$'
	run mq-admin topic partitions nosuch 3
	assert_failure 1
}

@test "a live group member is handed the partitions a topic grows" {
	start_broker
	seq 1 3 | mq-pub -t live
	start_member g live
	wait_members g 1
	mq-admin topic partitions live 3
	local i out
	for ((i = 0; i < 400; i++)); do
		out=$(mq-admin -q group describe g -t live)
		[ "$(awk 'NF == 7 && $6 != "-"' <<<"$out" | wc -l)" -eq 3 ] && break
		sleep 0.05
	done
	echo "$out"
	[ "$(awk 'NF == 7 && $6 != "-"' <<<"$out" | wc -l)" -eq 3 ]
	stop_member
}

@test "topic delete is refused while a group has live members on it, allowed with --force" {
	start_broker
	seq 1 5 | mq-pub -t t
	start_member g t
	wait_members g 1
	run mq-admin topic delete t
	assert_failure 1
	assert_output --partial "'g'"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin topic list
	assert_output t
	run mq-admin topic delete t --force
	assert_success
	run mq-admin topic list
	assert_output ""
	stop_member
	seq 1 3 | mq-pub -t other
	run mq-admin topic delete other -v
	assert_success
	assert_output --partial "deleted topic 'other'"
	run mq-admin topic delete other
	assert_failure 1
}

@test "group list and describe show members, committed offsets, lag and owners" {
	start_broker --partitions 2
	run mq-admin group list
	assert_success
	assert_output ""
	seq 1 100 | mq-pub -t t
	run timeout 30 mq-sub -g g -t t -e
	assert_success
	seq 1 7 | mq-pub -t t -p 1
	run mq-admin group list
	assert_output g
	run mq-admin group list -v
	assert_line --index 0 --regexp '^GROUP +MEMBERS +LAG$'
	assert_line --index 1 --regexp '^g +0 +7$'
	run mq-admin group describe g
	assert_success
	assert_line --index 0 --regexp '^group +g$'
	assert_line --regexp '^members +0$'
	assert_line --regexp '^TOPIC +PARTITION +COMMITTED +END +LAG +OWNER +AGE$'
	local end0
	end0=$(mq-admin -q topic describe t | awk 'NF == 4 && $1 == 0 { print $3 }')
	assert_line --regexp "^t +0 +$end0 +$end0 +0 +- +0s$"
	# AGE: how long the oldest unread message has waited (just written).
	assert_line --regexp "^t +1 +$((100 - end0)) +$((107 - end0)) +7 +- +[0-9]+s$"
	run mq-admin group describe g -f json
	[ "$(jq -r '.offsets[] | select(.partition == 0) | "\(.lag_seconds) \(.since_ms)"' <<<"$output")" = "0 null" ]
	[ "$(jq -r '.offsets[] | select(.partition == 1) | .lag_seconds >= 0 and .lag_seconds < 600 and .since_ms > 0' <<<"$output")" = true ]
	start_member g t
	wait_members g 1
	run mq-admin group describe g
	assert_line --regexp '^MEMBER +CLIENT +PARTITIONS +IDLE$'
	assert_line --regexp '^[^ ]+ +mq-sub +2 +[0-9]+\.[0-9]s$'
	local id
	id=$(awk '$2 == "mq-sub" { print $1 }' <<<"$output")
	assert_line --regexp "^t +0 +.* $id +[0-9]+s$"
	stop_member
	run mq-admin group describe g -t nosuch
	assert_failure 1
	run mq-admin group describe nosuch
	assert_failure 1
	assert_output --partial "'nosuch'"
	[ "${#lines[@]}" -eq 1 ]
}

@test "group reset to beginning, end, N, -N and @TIME; mq-sub -g resumes there" {
	start_broker
	seq 1 10 | mq-pub -t t
	sleep 0.3
	local t0
	t0=$(date +%s%3N)
	sleep 0.3
	seq 11 20 | mq-pub -t t
	run timeout 30 mq-sub -g g -t t -e
	assert_success
	[ "$(committed g t 0)" = 20 ]

	run mq-admin group reset g -t t --to beginning
	assert_success
	assert_line --index 0 --regexp '^PARTITION +OLD +NEW$'
	assert_line --index 1 --regexp '^0 +20 +0$'
	run timeout 30 mq-sub -g g -t t -e
	assert_success
	assert_output "$(seq 1 20)"

	run mq-admin group reset g -t t --to 15
	assert_line --index 1 --regexp '^0 +20 +15$'
	run timeout 30 mq-sub -g g -t t -e
	assert_output "$(seq 16 20)"

	run mq-admin group reset g -t t --to -3
	assert_line --index 1 --regexp '^0 +20 +17$'
	run timeout 30 mq-sub -g g -t t -e
	assert_output "$(seq 18 20)"

	run mq-admin group reset g -t t --to "@$t0"
	assert_success
	assert_line --index 1 --regexp '^0 +20 +10$'
	run timeout 30 mq-sub -g g -t t -e
	assert_output "$(seq 11 20)"

	run mq-admin group reset g -t t --to 0
	run mq-admin group reset g -t t --to end
	assert_line --index 1 --regexp '^0 +0 +20$'
	seq 21 22 | mq-pub -t t
	run timeout 30 mq-sub -g g -t t -e
	assert_output "$(seq 21 22)"
}

@test "group reset --dry-run changes nothing; reset is refused while the group has live members" {
	start_broker
	seq 1 10 | mq-pub -t t
	timeout 30 mq-sub -g g -t t -e >/dev/null
	run mq-admin group reset g -t t --to beginning --dry-run
	assert_success
	assert_line --index 1 --regexp '^0 +10 +0$'
	assert_line --index 2 "(dry run: nothing changed)"
	[ "$(committed g t 0)" = 10 ]
	run mq-admin -q group reset g -t t --to 4 --dry-run
	assert_output $'0  10  4\n(dry run: nothing changed)'
	start_member g t
	wait_members g 1
	run mq-admin group reset g -t t --to beginning
	assert_failure 1
	assert_output --partial "'g'"
	[ "${#lines[@]}" -eq 1 ]
	run mq-admin group reset g -t t --to beginning --dry-run
	[ "$(committed g t 0)" = 10 ]
	stop_member
	run mq-admin group reset g -t nosuch --to beginning
	assert_failure 1
}

@test "group delete is refused while the group has live members, then forgets it" {
	start_broker
	seq 1 10 | mq-pub -t t
	timeout 30 mq-sub -g g -t t -e >/dev/null
	timeout 30 mq-sub -g h -t t -e >/dev/null
	start_member g t
	wait_members g 1
	run mq-admin group delete g
	assert_failure 1
	assert_output --partial "'g'"
	[ "${#lines[@]}" -eq 1 ]
	stop_member
	run mq-admin group delete g
	assert_success
	run mq-admin group list
	assert_output h
	run mq-admin group describe g
	assert_failure 1
	run mq-admin group delete g
	assert_failure 1
	# a group started again begins at the beginning of the retained log
	run timeout 30 mq-sub -g g -t t -e
	[ "${#lines[@]}" -eq 10 ]
}

@test "keygen prints a key pair, or writes it to new files with modes 0600 and 0644" {
	run mq-admin keygen
	if [ "$status" -eq 1 ]; then
		assert_output --partial "no CURVE support"
		skip "libzmq without CURVE"
	fi
	assert_success
	assert_line --index 0 --regexp '^public: .{40}$'
	assert_line --index 1 --regexp '^secret: .{40}$'
	local s=$BATS_TEST_TMPDIR/broker.key p=$BATS_TEST_TMPDIR/broker.pub
	(umask 077 && mq-admin keygen --secret "$s" --public "$p")
	[ "$(stat -c %a "$s")" = 600 ]
	[ "$(stat -c %a "$p")" = 644 ]
	[ "$(wc -c <"$s")" -eq 41 ]
	[ "$(wc -c <"$p")" -eq 41 ]
	local old
	old=$(cat "$s")
	run mq-admin keygen --secret "$s" --public "$BATS_TEST_TMPDIR/other.pub"
	assert_failure 1
	assert_output --partial "'$s' exists; not overwriting it (remove it, or add --overwrite)"
	[ ! -e "$BATS_TEST_TMPDIR/other.pub" ]
	[ "$(cat "$s")" = "$old" ]
	run mq-admin keygen --secret "$s" --public "$p" --overwrite
	assert_success
	[ "$(cat "$s")" != "$old" ]
	[ "$(stat -c %a "$s")" = 600 ]
	run mq-admin keygen --secret "$s"
	assert_failure 2
	assert_output --partial "--secret FILE and --public FILE go together"
	run mq-admin keygen --secret "$s" --public "$s" --overwrite
	assert_failure 2
	run mq-admin keygen --secret "$BATS_TEST_TMPDIR/nodir/k" --public "$BATS_TEST_TMPDIR/nodir/p"
	assert_failure 1
	assert_output --partial "cannot create '$BATS_TEST_TMPDIR/nodir/k'"
}

@test "keygen refuses two spellings of one file before writing anything" {
	mq-admin keygen >/dev/null || skip "libzmq without CURVE"
	cd "$BATS_TEST_TMPDIR"
	mkdir d
	mq-admin keygen --secret s --public p
	local old
	old=$(cat s)
	run mq-admin keygen --secret ./s --public s --overwrite
	assert_failure 2
	assert_output "mq-admin: keygen: --secret and --public name the same file ('./s', 's'); give two files"
	[ "$(cat s)" = "$old" ]
	run mq-admin keygen --secret d/../s --public "$BATS_TEST_TMPDIR/s" --overwrite
	assert_failure 2
	[ "$(cat s)" = "$old" ]
	ln s h
	run mq-admin keygen --secret s --public h --overwrite
	assert_failure 2
	[ "$(cat s)" = "$old" ]
	# not there yet: the same directory and name
	run mq-admin keygen --secret ./new --public d/../new
	assert_failure 2
	[ ! -e new ]
	run mq-admin keygen --secret d/new --public new
	assert_success
	[ "$(stat -c %a d/new)" = 600 ]
	[ "$(stat -c %a new)" = 644 ]
}

# Run a command without the power to read past file modes, which root
# has; skip when that power cannot be dropped.
unprivileged() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif setpriv --bounding-set=-dac_override,-dac_read_search true 2>/dev/null; then
		setpriv --bounding-set=-dac_override,-dac_read_search "$@"
	else
		skip "cannot drop root's power to read any file"
	fi
}

@test "verify passes a clean data directory, topic and partition" {
	make_partition 3000
	run mq-admin verify "$BATS_TEST_TMPDIR/data"
	assert_success
	assert_output --partial "1 partition checked, 0 faults"
	run mq-admin verify "$BATS_TEST_TMPDIR/data/topics/t"
	assert_success
	run mq-admin verify "$PART"
	assert_success
}

@test "verify names the file and byte of a flipped byte" {
	make_partition 3000
	# flip one byte in the middle of the segment
	local size at
	size=$(stat -c %s "$SEG")
	at=$((size / 2))
	printf '\xff' | dd of="$SEG" bs=1 seek="$at" conv=notrunc status=none
	run mq-admin verify "$BATS_TEST_TMPDIR/data"
	assert_failure 1
	assert_output --regexp "FAULT $SEG: .*at byte [0-9]+"
	assert_output --partial "1 fault"
}

@test "verify catches a truncated index and a torn time index" {
	make_partition 5000
	local idx=${SEG%.log}.idx tix=${SEG%.log}.tix
	truncate -s 16 "$idx"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "FAULT $idx:"
	assert_output --partial "truncated or stale index"
	truncate -s 13 "$tix"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "FAULT $tix: size 13 is not a multiple of 12"
}

@test "verify reports a stray file and a cut-off tail" {
	make_partition 2000
	echo x >"$PART/notes.txt"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "notes.txt: unexpected file"
	rm "$PART/notes.txt"
	truncate -s -7 "$SEG"
	run mq-admin verify "$PART"
	assert_failure 1
	assert_output --partial "torn batch at byte"
}

@test "verify: a missing or unreadable directory fails at run time (1), a missing operand is a usage error (2)" {
	run mq-admin verify "$BATS_TEST_TMPDIR/nope"
	assert_failure 1
	assert_output "mq-admin: verify '$BATS_TEST_TMPDIR/nope': No such file or directory (give a data directory, a topic directory or a partition directory that can be read)"
	touch "$BATS_TEST_TMPDIR/file"
	run mq-admin verify "$BATS_TEST_TMPDIR/file"
	assert_failure 1
	assert_output --partial "not a directory"
	run mq-admin verify
	assert_failure 2
	run mq-admin verify a b
	assert_failure 2
}

@test "verify counts a topics or topic directory it cannot list as a fault" {
	make_partition 100
	unprivileged true
	chmod 000 "$BATS_TEST_TMPDIR/data/topics"
	run unprivileged mq-admin verify "$BATS_TEST_TMPDIR/data"
	chmod 755 "$BATS_TEST_TMPDIR/data/topics"
	assert_failure 1
	assert_output --partial "FAULT $BATS_TEST_TMPDIR/data/topics: cannot list the topics: Permission denied"
	assert_output --partial "1 fault"
	chmod 000 "$BATS_TEST_TMPDIR/data/topics/t"
	run unprivileged mq-admin verify "$BATS_TEST_TMPDIR/data"
	chmod 755 "$BATS_TEST_TMPDIR/data/topics/t"
	assert_failure 1
	assert_output --partial "cannot list topic 't': Permission denied"
	run mq-admin verify "$BATS_TEST_TMPDIR/data"
	assert_success
}

@test "dump prints every batch and record, and starts at --from" {
	make_partition 1000
	run mq-admin dump "$PART"
	assert_success
	[ "$(grep -c '^batch ' <<<"$output")" -eq 10 ]
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 1000 ]
	assert_output --partial "batch offset=900 count=100"
	run mq-admin dump --from 950 "$PART"
	assert_success
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 50 ]
	assert_line --index 1 --partial "  offset=950 "
	run mq-admin dump --from x "$PART"
	assert_failure 2
}

@test "dump takes DIR/TOPIC/PARTITION with DIR the data directory" {
	make_partition 1000
	run mq-admin dump "$BATS_TEST_TMPDIR/data/t/0"
	assert_success
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 1000 ]
	run mq-admin dump --from 990 "$BATS_TEST_TMPDIR/data/t/0/"
	assert_success
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 10 ]
	cd "$BATS_TEST_TMPDIR/data"
	run mq-admin dump t/0
	assert_success
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 1000 ]
}

@test "dump refuses a directory without segment files, and a missing one, with exit 1" {
	make_partition 100
	local d
	for d in "$BATS_TEST_TMPDIR/data" "$BATS_TEST_TMPDIR/data/topics/t" /etc; do
		run mq-admin dump "$d"
		assert_failure 1
		assert_output "mq-admin: dump '$d': no segment files, so not a partition directory (give DIR/TOPIC/PARTITION, or DIR/topics/TOPIC/PARTITION, with DIR the data directory)"
	done
	run mq-admin dump /nonexistent/t/0
	assert_failure 1
	assert_output --partial "dump '/nonexistent/t/0': No such file or directory (give a partition directory"
	run mq-admin dump "$BATS_TEST_TMPDIR/data/t/1"
	assert_failure 1
	run mq-admin dump "$SEG"
	assert_failure 1
	assert_output --partial "not a directory"
	chmod 000 "$PART"
	run unprivileged mq-admin dump "$PART"
	chmod 755 "$PART"
	assert_failure 1
	assert_output --partial "Permission denied"
	run mq-admin dump
	assert_failure 2
}

@test "dump shows damage as FAULT lines and exits 1, printing what is good" {
	make_partition 1000
	truncate -s -1 "$SEG"
	run mq-admin dump "$PART"
	assert_failure 1
	[ "$(grep -c '^  offset=' <<<"$output")" -eq 900 ]
	assert_output --partial "FAULT $SEG: torn batch"
}

@test "topic describe shows the retention that applies: the topic's own, or the broker's default" {
	start_broker --retention-time 7d --retention-bytes 64MiB
	mq-admin topic create own --retention-time 90m --retention-bytes 1GiB
	mq-admin topic create half --retention-bytes 1GiB
	echo x | mq-pub -t auto
	run mq-admin topic describe own
	assert_line --regexp '^retention-time +90m$'
	assert_line --regexp '^retention-bytes +1GiB$'
	run mq-admin topic describe half
	assert_line --regexp '^retention-time +7d \(broker default\)$'
	assert_line --regexp '^retention-bytes +1GiB$'
	run mq-admin topic describe auto
	assert_line --regexp '^retention-time +7d \(broker default\)$'
	assert_line --regexp '^retention-bytes +64MiB \(broker default\)$'
	run mq-admin topic describe half -f json
	assert_success
	jq -e '.retention_time_ms == 604800000 and .retention_time_default == true
		and .retention_bytes == 1073741824 and .retention_bytes_default == false' <<<"$output"
}

# Check JSON text $1 with the jq filter $2, which must come out true.
json_true() {
	if ! jq -e "$2" <<<"$1" >/dev/null; then
		echo "not true: $2 of $1" >&2
		return 1
	fi
}

@test "-f json: one JSON document for topic list and describe, group list and describe, ping and stats" {
	command -v jq >/dev/null || fail "jq is missing: run make deps"
	start_broker --partitions 2
	run mq-admin topic list -f json
	assert_success
	assert_output '{"topics":[]}'
	run mq-admin group list --format json
	assert_output '{"groups":[]}'
	mq-admin topic create orders --partitions 3 --retention-time 7d
	seq 1 10 | mq-pub -t orders -p 0
	seq 1 4 | mq-pub -t orders -p 2
	seq 1 5 | mq-pub -t logs
	timeout 30 mq-sub -g billing -t orders -e >/dev/null
	seq 1 7 | mq-pub -t orders -p 1

	run mq-admin topic list -f json
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	json_true "$output" '.topics == [{"name":"logs","partitions":2},{"name":"orders","partitions":3}]'
	# the same with -v and -q: they shape tables only
	[ "$(mq-admin -v -q topic list -f json)" = "$output" ]

	local t0
	t0=$(date +%s%3N)
	run mq-admin topic describe orders -f json
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	json_true "$output" '.topic == "orders" and .partitions == 3 and .messages == 21 and (.bytes | type) == "number"'
	json_true "$output" '.retention_time_ms == 604800000 and .retention_time_default == false'
	json_true "$output" '.retention_bytes == null and .retention_bytes_default == true'
	json_true "$output" ".created_ms > $t0 - 600000 and .created_ms <= $t0"
	json_true "$output" '[.offsets[] | [.partition, .start, .end, .messages]] == [[0,0,10,10],[1,0,7,7],[2,0,4,4]]'

	run mq-admin group list -f json
	assert_success
	json_true "$output" '.groups == [{"group":"billing","members":0,"lag":7}]'

	run mq-admin group describe billing -f json
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	json_true "$output" '.group == "billing" and (.generation | type) == "number" and .lag == 7 and .members == []'
	json_true "$output" '[.offsets[] | [.topic, .partition, .committed, .end, .lag, .owner]]
		== [["orders",0,10,10,0,null],["orders",1,0,7,7,null],["orders",2,4,4,0,null]]'
	start_member billing orders
	wait_members billing 1
	run mq-admin group describe billing -t orders -f json
	assert_success
	json_true "$output" '(.members | length) == 1 and .members[0].client == "mq-sub"
		and .members[0].partitions == 3 and (.members[0].idle_ms | type) == "number"'
	json_true "$output" '[.offsets[].owner] == [.members[0].id, .members[0].id, .members[0].id]'
	stop_member

	run mq-admin ping -f json
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	json_true "$output" ".broker == \"$MQ_BROKER\" and .ok == true and (.version | test(\"^[0-9]+\\\\.[0-9]+\"))"
	json_true "$output" '(.rtt_ms | type) == "number" and .rtt_ms >= 0 and .max_message_bytes == 1048576 and .default_partitions == 2'

	run mq-admin stats -f json
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	json_true "$output" '.messages_in == 26 and .topics == 2 and .uptime_ms >= 0 and ([.[] | type] | unique) == ["number"]'
	# every counter of the table, with the same names
	[ "$(jq -r 'keys_unsorted[]' <<<"$output")" = "$(mq-admin stats | awk '{ print $1 }')" ]

	# -f table is the default, unchanged
	[ "$(mq-admin topic describe orders -f table)" = "$(mq-admin topic describe orders)" ]
	[ "$(mq-admin group describe billing --format table)" = "$(mq-admin group describe billing)" ]
}

@test "-f json: a failure prints nothing on stdout; ping says why in its document" {
	start_broker
	run --separate-stderr mq-admin topic describe nosuch -f json
	assert_failure 1
	assert_output ""
	run --separate-stderr mq-admin group describe nosuch -f json
	assert_failure 1
	assert_output ""
	stop_broker
	run --separate-stderr mq-admin ping -w 300ms -f json
	assert_failure 1
	local why="cannot connect to $MQ_BROKER: connection refused (is mq-serve running? set -b or MQ_BROKER)"
	json_true "$output" ".broker == \"$MQ_BROKER\" and .ok == false and .error == \"$why\""
	[ "$stderr" = "mq-admin: $why" ]
}

@test "group reset of a group that does not exist is refused and makes nothing; --create makes it" {
	start_broker
	seq 1 10 | mq-pub -t t
	timeout 30 mq-sub -g real -t t -e >/dev/null
	run mq-admin group reset billng -t t --to beginning
	assert_failure 1
	assert_output "mq-admin: no group 'billng' (it has no members and no committed offsets): check the name with 'mq-admin group list', or add --create to make it with these offsets"
	run mq-admin group reset billng -t t --to beginning --dry-run
	assert_failure 1
	assert_output --partial "no group 'billng'"
	run mq-admin group list
	assert_output real
	run mq-admin group describe billng
	assert_failure 1
	# --dry-run --create shows, and still makes nothing
	run mq-admin group reset billng -t t --to -3 --dry-run --create
	assert_success
	assert_line --index 1 --regexp '^0 +- +7$'
	run mq-admin group list
	assert_output real
	run mq-admin group reset billng -t t --to -3 --create
	assert_success
	assert_line --index 1 --regexp '^0 +- +7$'
	run mq-admin group list
	assert_output $'billng\nreal'
	run timeout 30 mq-sub -g billng -t t -e
	assert_output "$(seq 8 10)"
	# a group that exists needs no --create, and --create changes nothing for it
	run mq-admin group reset real -t t --to 5
	assert_success
	run mq-admin group reset real -t t --to 6 --create
	assert_success
	assert_line --index 1 --regexp '^0 +5 +6$'
	# a deleted group is gone for reset too
	mq-admin group delete real
	run mq-admin group reset real -t t --to 0
	assert_failure 1
	assert_output --partial "no group 'real'"
}
