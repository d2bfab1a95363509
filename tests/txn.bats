#!/usr/bin/env bats
# Half-message transactions end to end: mq-pub --prepare / --commit /
# --rollback / --txn-checker against a real mq-serve, with real failures
# (kill -9 of the broker, of mq-pub, of the checker), counting exactly
# what consumers see.

load helpers

# Every message of topic $1, sorted.
all() {
	mq-sub -t "$1" -e | sort
}

count() {
	mq-sub -t "$1" -e | wc -l
}

# Run "$@" until it succeeds, for at most $WAIT_S seconds (a deadline
# against hangs, not a timing assertion).
WAIT_S=30
eventually() {
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	echo "eventually: '$*' still fails after ${WAIT_S}s" >&2
	return 1
}

count_is() { # topic n
	[ "$(count "$1")" -eq "$2" ]
}

log_has() { # text
	grep -qF -- "$1" "$MQ_BROKER_LOG"
}

# Batches marked with transaction $2 in partition $3 of topic $1.
txn_batches() {
	mq-admin dump "$MQ_DATA_DIR/topics/$1/$3" | grep -c " txn=$2" || true
}

@test "prepare is invisible, commit shows every message once, twice is no error" {
	start_broker --partitions 4
	run bash -c 'seq 1 1000 | sed "s/.*/&,&/" | mq-pub -t t --prepare -K ,'
	assert_success
	txn=$output
	[[ "$txn" =~ ^[0-9a-f]{16}$ ]]
	assert_equal "$(count t)" 0
	run mq-pub --commit "$txn"
	assert_success
	assert_output ""
	assert_equal "$(count t)" 1000
	assert_equal "$(all t | sort -n | md5sum)" "$(seq 1 1000 | md5sum)"
	run mq-pub --commit "$txn" -t t
	assert_success
	assert_equal "$(count t)" 1000
	run mq-pub --rollback "$txn"
	assert_failure 1
	assert_output "mq-pub: transaction $txn was committed by mq-pub: its messages are visible and cannot be rolled back"
	# Each partition got its part as one batch: all of it or none.
	local p total=0
	for p in 0 1 2 3; do
		n=$(txn_batches t "$txn" "$p")
		[ "$n" -le 1 ]
		total=$((total + n))
	done
	[ "$total" -eq 4 ] # the keys spread it over every partition
}

@test "rollback discards, twice is no error, commit after it is refused with a clear error" {
	start_broker
	txn=$(printf 'a\nb\nc\n' | mq-pub -t t --prepare)
	run mq-pub --rollback "$txn"
	assert_success
	run mq-pub --rollback "$txn"
	assert_success
	run mq-pub --commit "$txn"
	assert_failure 1
	assert_output "mq-pub: transaction $txn was rolled back by mq-pub: it cannot be committed (prepare the messages again)"
	echo x | mq-pub -t t
	assert_equal "$(all t)" "x"
}

@test "unknown and malformed ids, wrong topic, option conflicts" {
	start_broker
	run mq-pub --commit 00000000deadbeef
	assert_failure 1
	assert_output --partial "no transaction 00000000deadbeef on this broker"
	run mq-pub --rollback 00000000deadbeef
	assert_failure 1
	run mq-pub --commit xyz
	assert_failure 2
	assert_output --partial "transaction id 'xyz': expected the 16 hex digits"
	run mq-pub --commit 0
	assert_failure 2
	run mq-pub --commit 1 --rollback 1
	assert_failure 2
	assert_output --partial "--commit and --rollback do not go together"
	run mq-pub -t t --prepare --txn-checker true
	assert_failure 2
	run mq-pub --commit 1 -m hello
	assert_failure 2
	run mq-pub --txn-checker true
	assert_failure 2
	assert_output --partial "no topic"
	run mq-serve --txn-timeout soon
	assert_failure 2
	assert_output --partial "--txn-timeout 'soon': use a duration"
	run mq-serve --txn-max-checks 0
	assert_failure 2
	run mq-serve --txn-check-interval 0
	assert_failure 2
	txn=$(echo a | mq-pub -t t --prepare)
	run mq-pub --commit "$txn" -t other
	assert_failure 1
	assert_output --partial "belongs to topic 't', not 'other'"
	run mq-pub --commit "$txn" -t t
	assert_success
	assert_equal "$(all t)" "a"
}

@test "a bad record leaves no transaction: nothing printed, nothing visible" {
	start_broker --max-message-bytes 100
	run bash -c '{ echo ok; head -c 300 /dev/zero | tr "\0" x; echo; echo ok2; } | mq-pub -t t --prepare'
	assert_failure 1
	assert_output --partial "the transaction was not prepared"
	refute_output --regexp '^[0-9a-f]{16}$'
	run mq-sub -t t -e
	assert_output ""
}

@test "kill -9 of the broker between prepare and commit, and between prepare and rollback" {
	start_broker --partitions 3
	a=$(seq 1 500 | mq-pub -t t --prepare)
	b=$(seq 501 600 | mq-pub -t t --prepare)
	kill_broker
	start_broker --partitions 3
	assert_equal "$(count t)" 0
	run mq-pub --commit "$a"
	assert_success
	run mq-pub --rollback "$b"
	assert_success
	kill_broker
	start_broker --partitions 3
	assert_equal "$(all t | sort -n | md5sum)" "$(seq 1 500 | md5sum)"
	run mq-pub --commit "$b"
	assert_failure 1
	run mq-pub --commit "$a"
	assert_success
	assert_equal "$(count t)" 500
}

@test "kill -9 of the broker in the middle of a prepare: the prepare goes on and holds every message once" {
	start_broker --partitions 2
	mkfifo "$BATS_TEST_TMPDIR/in"
	# The writer alone holds the pipe (a broker started later must not
	# inherit it): half the input, then the rest once the broker is back.
	{
		seq 1 500
		while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.1; done
		seq 501 1000
	} >"$BATS_TEST_TMPDIR/in" 3>&- &
	mq-pub -t t --prepare --batch 10 -w 30s <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 3>&- &
	pub=$!
	eventually log_has_or_sent
	kill_broker
	start_broker --partitions 2
	touch "$BATS_TEST_TMPDIR/go"
	wait "$pub"
	txn=$(cat "$BATS_TEST_TMPDIR/out")
	[[ "$txn" =~ ^[0-9a-f]{16}$ ]]
	assert_equal "$(count t)" 0
	mq-pub --commit "$txn"
	assert_equal "$(all t | sort -n | md5sum)" "$(seq 1 1000 | md5sum)"
}

@test "a transaction log damaged between prepare and commit: said once, the lost transactions refused, nothing half visible" {
	start_broker
	a=$(printf 'a1\na2\n' | mq-pub -t t --prepare)
	b=$(printf 'b1\n' | mq-pub -t t --prepare)
	stop_broker
	seg=$MQ_DATA_DIR/state/txn/00000000000000000000.log
	# A byte of a's messages (the second batch of the log) changed.
	len1=$(od -An -tu4 -j8 -N4 "$seg" | tr -d ' ')
	printf '\377' | dd of="$seg" bs=1 seek=$((len1 + 100)) conv=notrunc 2>/dev/null
	start_broker
	assert_equal "$(grep -c 'kept the 1 records before it' "$MQ_BROKER_LOG")" 1
	run mq-pub --commit "$a"
	assert_failure 1
	assert_output --partial "transaction $a is not prepared"
	run mq-pub --commit "$b"
	assert_failure 1
	assert_output --partial "no transaction $b on this broker"
	assert_equal "$(count t)" 0
	# The log was written again without the damage: the next start is quiet.
	stop_broker
	start_broker
	run grep -c "kept the" "$MQ_BROKER_LOG"
	assert_output 0
	c=$(printf 'c1\n' | mq-pub -t t --prepare)
	mq-pub --commit "$c"
	assert_equal "$(all t)" "c1"
}

@test "a commit waits for a broker that restarts" {
	start_broker
	txn=$(seq 1 10 | mq-pub -t t --prepare)
	# The commit reaches a broker that hangs (the kernel takes the
	# connection) and then dies: a restart, waited for.  (A broker that is
	# not there at all is reported at once: connect.bats.)
	kill -STOP "$MQ_BROKER_PID"
	mq-pub --commit "$txn" -w 20s 3>&- &
	pub=$!
	sleep 0.5
	kill_broker
	sleep 0.5
	start_broker
	wait "$pub"
	assert_equal "$(count t)" 10
}

@test "kill -9 of the broker while commits append to many partitions: no loss, no second copy" {
	start_broker --partitions 8
	local i txns=()
	for i in 1 2 3 4 5 6; do
		txns+=("$(seq $((i * 100000 + 1)) $((i * 100000 + 20000)) | mq-pub -t t --prepare --batch 500)")
	done
	for i in 0 1 2 3 4 5; do
		mq-pub --commit "${txns[$i]}" 3>&- &
		pub=$!
		# Kill at a different moment each time: before, during or after the appends.
		sleep "0.0$i"
		kill_broker
		start_broker --partitions 8
		wait "$pub" || true
	done
	# Whatever each crash left, committing again finishes it.
	for i in 0 1 2 3 4 5; do
		mq-pub --commit "${txns[$i]}"
	done
	assert_equal "$(count t)" 120000
	assert_equal "$(all t | uniq -d | wc -l)" 0
	for i in 0 1 2 3 4 5; do
		for p in 0 1 2 3 4 5 6 7; do
			[ "$(txn_batches t "${txns[$i]}" "$p")" -le 1 ]
		done
	done
}

# pid is traced (gdb attached) and runs again (its breakpoints are set).
traced_and_running() {
	local tracer state
	tracer=$(awk '/^TracerPid:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
	state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$tracer" ] && [ "$tracer" != 0 ] && [ "$state" != t ]
}

# kill -9 of the broker at the Nth append to a log during a commit of a
# transaction over 3 partitions (appends, in order: the decision record
# in the transaction log, partition 0, 1, 2, the "done" record), stopped
# there by gdb: the restart finishes the commit, each partition holds its
# part once.
commit_killed_at_append() { # N
	command -v gdb >/dev/null || skip "gdb not installed"
	start_broker --partitions 3
	txn=$(seq 1 300 | sed 's/.*/&,&/' | mq-pub -t t -K , --prepare)
	gdb -p "$MQ_BROKER_PID" -batch -ex 'break mq_log_append' -ex "ignore 1 $(($1 - 1))" -ex continue \
		-ex kill >"$BATS_TEST_TMPDIR/gdb.out" 2>&1 3>&- &
	gdb=$!
	eventually traced_and_running "$MQ_BROKER_PID" || skip "gdb cannot attach: $(cat "$BATS_TEST_TMPDIR/gdb.out")"
	run mq-pub --commit "$txn" -w 2s
	assert_failure 1 # the broker died before it answered
	wait "$gdb"
	grep -q "in mq_txns_commit" "$BATS_TEST_TMPDIR/gdb.out" || grep -q "Breakpoint 1, mq_log_append" "$BATS_TEST_TMPDIR/gdb.out"
	kill_broker
	local p before=0
	for p in 0 1 2; do
		before=$((before + $(txn_batches t "$txn" "$p")))
	done
	echo "$before" >"$BATS_TEST_TMPDIR/before"
	start_broker --partitions 3
	assert_equal "$(all t | sort -n | md5sum)" "$(seq 1 300 | md5sum)"
	for p in 0 1 2; do
		assert_equal "$(txn_batches t "$txn" "$p")" 1
	done
	run mq-pub --commit "$txn"
	assert_success
	assert_equal "$(count t)" 300
}

@test "kill -9 of the broker after the commit decision, before any append" {
	commit_killed_at_append 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/before")" 0
}

@test "kill -9 of the broker in the middle of a commit's appends across partitions" {
	commit_killed_at_append 3
	assert_equal "$(cat "$BATS_TEST_TMPDIR/before")" 1
}

@test "kill -9 of the broker after a commit's appends, before it recorded them done" {
	commit_killed_at_append 5
	assert_equal "$(cat "$BATS_TEST_TMPDIR/before")" 3
}

@test "kill -9 of mq-pub during the prepare: no id, nothing visible, rolled back as abandoned" {
	start_broker --txn-timeout 200ms --txn-check-interval 300ms
	mkfifo "$BATS_TEST_TMPDIR/in"
	mq-pub -t t --prepare --batch 10 <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 3>&- &
	pub=$!
	exec 5>"$BATS_TEST_TMPDIR/in"
	seq 1 100 >&5
	eventually log_has_or_sent
	kill -9 "$pub"
	wait "$pub" || true
	exec 5>&-
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	eventually log_has "never finished (mq-pub died?): rolled back"
	assert_equal "$(count t)" 0
}

# The prepare's batches reached the broker (its topic exists and the
# transaction log grew past its first record).
log_has_or_sent() {
	[ -d "$MQ_DATA_DIR/topics/t" ] && [ "$(stat -c %s "$MQ_DATA_DIR"/state/txn/*.log | head -1)" -gt 1000 ]
}

@test "checker: exit 0 commits, 1 rolls back, anything else asks again until the checks run out" {
	start_broker --txn-timeout 200ms --txn-check-interval 300ms --txn-max-checks 3
	c=$(printf 'c1\nc2\n' | mq-pub -t t --prepare)
	r=$(printf 'r1\nr2\n' | mq-pub -t t --prepare)
	u=$(printf 'u1\n' | mq-pub -t t --prepare)
	o=$(printf 'o1\n' | mq-pub -t other --prepare)
	cat >"$BATS_TEST_TMPDIR/check.sh" <<EOF
#!/bin/sh
cat > "$BATS_TEST_TMPDIR/in.\$MQ_TXN"
echo "\$MQ_TOPIC" >> "$BATS_TEST_TMPDIR/asked.\$MQ_TXN"
case \$MQ_TXN in $c) exit 0;; $r) exit 1;; *) exit 3;; esac
EOF
	chmod +x "$BATS_TEST_TMPDIR/check.sh"
	mq-pub -t t --txn-checker "$BATS_TEST_TMPDIR/check.sh" -w 0 3>&- 2>"$BATS_TEST_TMPDIR/checker.err" &
	chk=$!
	eventually log_has "transaction $u of topic 't': no verdict after 3 checks: rolled back (1 message dropped)"
	kill -TERM "$chk"
	wait "$chk"
	assert_equal "$(all t)" "$(printf 'c1\nc2')"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/in.$c")" "$(printf 'c1\nc2')"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/asked.$c")" "t"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/asked.$u")" 3
	[ ! -e "$BATS_TEST_TMPDIR/asked.$o" ] # another topic's checker is asked
	run mq-pub --commit "$r"
	assert_failure 1
	assert_output --partial "was rolled back by its checker's verdict"
	run mq-pub --commit "$u"
	assert_failure 1
	assert_output --partial "was rolled back after its checks brought no verdict"
	run mq-pub --rollback "$c"
	assert_failure 1
	assert_output --partial "was committed by its checker's verdict"
	# Nobody checks topic 'other': it waits, invisible, and says so.
	eventually log_has "transaction $o of topic 'other' is due for a check but no checker asked for it"
	assert_equal "$(count other)" 0
	run mq-pub --commit "$o"
	assert_success
	assert_equal "$(all other)" "o1"
}

@test "checker gets envelopes with -f json and survives a broker restart with -w 0" {
	start_broker --txn-timeout 200ms --txn-check-interval 300ms
	mq-pub -t t --txn-checker "cat > $BATS_TEST_TMPDIR/env.\$MQ_TXN; exit 0" -f json -w 0 3>&- 2>"$BATS_TEST_TMPDIR/checker.err" &
	chk=$!
	a=$(printf 'k1,v1\n' | mq-pub -t t -K , --prepare)
	eventually count_is t 1
	kill_broker
	start_broker --txn-timeout 200ms --txn-check-interval 300ms
	b=$(printf 'k2,v2\n' | mq-pub -t t -K , --prepare)
	eventually count_is t 2
	kill -TERM "$chk"
	wait "$chk"
	run jq -r '.key + "=" + .value' "$BATS_TEST_TMPDIR/env.$b"
	assert_output "k2=v2"
	assert_equal "$(all t)" "$(printf 'v1\nv2')"
}

@test "kill -9 of the checker while it runs: asked again, decided once" {
	start_broker --txn-timeout 200ms --txn-check-interval 500ms
	txn=$(seq 1 5 | mq-pub -t t --prepare)
	mq-pub -t t --txn-checker "echo \$\$ > $BATS_TEST_TMPDIR/cmd.pid; exec sleep 1000" 3>&- &
	chk=$!
	eventually test -s "$BATS_TEST_TMPDIR/cmd.pid"
	kill -9 "$chk"
	wait "$chk" || true
	kill -9 "$(cat "$BATS_TEST_TMPDIR/cmd.pid")"
	assert_equal "$(count t)" 0
	mq-pub -t t --txn-checker "cat >/dev/null; exit 0" 3>&- &
	chk=$!
	eventually count_is t 5
	kill -TERM "$chk"
	wait "$chk"
	assert_equal "$(all t | sort -n | md5sum)" "$(seq 1 5 | md5sum)"
	run mq-pub --commit "$txn"
	assert_success
	assert_equal "$(count t)" 5
}

# The notes' scenario: a service writes a row and publishes a message
# about it; killed between any two steps, the checker settles the rest,
# and the consumers see exactly the messages whose rows exist.
@test "database scenario: killed at every step, consumers see exactly the rows that exist" {
	command -v sqlite3 >/dev/null || skip "sqlite3 not installed (make deps)"
	start_broker --partitions 2 --txn-timeout 300ms --txn-check-interval 500ms
	db=$BATS_TEST_TMPDIR/shop.db
	sqlite3 "$db" "CREATE TABLE orders (id INTEGER PRIMARY KEY)"
	cat >"$BATS_TEST_TMPDIR/order.sh" <<'EOF'
#!/bin/sh
# order.sh ID STOP: prepare, insert, commit; kill -9 of itself at STOP
id=$1 stop=$2
txn=$(mq-pub -t orders --prepare -m "order $id") || exit 1
echo "$id $txn" >>"$TXNS"
[ "$stop" = prepared ] && kill -9 $$
if sqlite3 "$DB" "INSERT INTO orders VALUES ($id)"; then
	[ "$stop" = inserted ] && kill -9 $$
	mq-pub --commit "$txn" || exit 1
	[ "$stop" = committed ] && kill -9 $$
else
	mq-pub --rollback "$txn"
fi
exit 0
EOF
	cat >"$BATS_TEST_TMPDIR/check.sh" <<'EOF'
#!/bin/sh
id=$(sed -n 's/^order //p' | head -1)
n=$(sqlite3 "$DB" "SELECT count(*) FROM orders WHERE id=$id") || exit 2
[ "$n" = 1 ] && exit 0
exit 1
EOF
	chmod +x "$BATS_TEST_TMPDIR/order.sh" "$BATS_TEST_TMPDIR/check.sh"
	export DB=$db TXNS=$BATS_TEST_TMPDIR/txns
	local id stop stops=(none prepared inserted committed)
	for id in $(seq 1 40); do
		stop=${stops[$((id % 4))]}
		"$BATS_TEST_TMPDIR/order.sh" "$id" "$stop" 3>&- || true
	done
	# A crash of the broker too, with undecided transactions in it.
	kill_broker
	start_broker --partitions 2 --txn-timeout 300ms --txn-check-interval 500ms
	mq-pub -t orders --txn-checker "$BATS_TEST_TMPDIR/check.sh" -w 0 -v 3>&- 2>"$BATS_TEST_TMPDIR/checker.err" &
	chk=$!
	rows=$(sqlite3 "$db" "SELECT count(*) FROM orders")
	assert_equal "$rows" 30 # all but the ten killed right after the prepare
	eventually count_is orders "$rows"
	# Every transaction is decided as its row says (an undecided one would
	# take this commit or rollback instead of refusing it).
	local txn n
	while read -r id txn; do
		n=$(sqlite3 "$db" "SELECT count(*) FROM orders WHERE id=$id")
		if [ "$n" = 1 ]; then
			run mq-pub --rollback "$txn"
			assert_output --partial "was committed"
		else
			eventually grep -q "transaction $txn: rolled back" "$BATS_TEST_TMPDIR/checker.err"
			run mq-pub --commit "$txn"
			assert_output --partial "was rolled back by its checker's verdict"
		fi
	done <"$TXNS"
	kill -TERM "$chk"
	wait "$chk"
	assert_equal "$(wc -l <"$TXNS")" 40
	assert_equal "$(all orders)" "$(sqlite3 "$db" "SELECT 'order ' || id FROM orders" | sort)"
}
