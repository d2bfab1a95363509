#!/usr/bin/env bats
# CurveZMQ: mq-serve --curve-secret/--curve-allow/--curve-allow-admin and
# the clients' --curve-server/--curve-secret (and MQ_CURVE_*).  Every
# refusal is checked for its message, its exit status and its speed,
# and the traffic itself for plaintext.

load helpers

setup() {
	K=$BATS_TEST_TMPDIR/keys
	mkdir -p "$K/allow" "$K/admin"
	chmod 700 "$K/allow" "$K/admin"
	mq-admin keygen --secret "$K/server.key" --public "$K/server.pub"
	mq-admin keygen --secret "$K/alice.key" --public "$K/allow/alice"
	mq-admin keygen --secret "$K/bob.key" --public "$K/bob.pub"
	mq-admin keygen --secret "$K/root.key" --public "$K/admin/root"
}

teardown() {
	# A follower a failing test left (it waits forever with -w 0).
	[ -z "${FOLLOWER:-}" ] || kill "$FOLLOWER" 2>/dev/null || true
	mq_teardown
}

# Run a command (through bats's run) and set ms to how long it took.
timed() {
	local t0
	t0=$(date +%s%N)
	run timeout 30 "$@"
	ms=$((($(date +%s%N) - t0) / 1000000))
}

alice() { "$@" --curve-server "$K/server.pub" --curve-secret "$K/alice.key"; }

@test "with keys, publishing, consuming in a group and admin work; the key may be given as text or file, or in MQ_CURVE_*" {
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow"
	grep -q "CurveZMQ: only clients with a key in --curve-allow" "$MQ_BROKER_LOG"
	run alice mq-pub -t orders -m one
	assert_success
	run bash -c "seq 2 5 | mq-pub -t orders --curve-server '$(cat "$K/server.pub")' --curve-secret '$K/alice.key'"
	assert_success
	MQ_CURVE_SERVER=$K/server.pub MQ_CURVE_SECRET=$K/alice.key run mq-sub -t orders -g billing -e
	assert_success
	assert_output "$(printf 'one\n2\n3\n4\n5')"
	run alice mq-admin group describe billing
	assert_success
	assert_output --partial billing
	run alice mq-lag -g billing -t orders
	assert_success
	run alice mq-admin topic delete orders --force
	assert_success # no --curve-allow-admin: every allowed key has every right
	# --exec and its dead-letter producer go through the same keys.
	run alice mq-pub -t jobs -m job1
	assert_success
	MQ_CURVE_SERVER=$K/server.pub MQ_CURVE_SECRET=$K/alice.key run mq-sub -t jobs -g w -e --exec 'cat >/dev/null; exit 1' --max-attempts 1 --backoff 1ms --dlq jobs.dead
	assert_success
	run alice mq-sub -t jobs.dead -e -f json
	assert_output --partial job1
}

@test "a client without keys, with an unlisted key, or with the wrong server key is refused at once, saying which" {
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow"
	# No keys: the direct connection (mq-pub -t) and libzmq (mq-admin).
	timed mq-pub -w 20s -t a -m plain
	assert_failure 1
	assert_output --partial "the broker requires CurveZMQ: give --curve-server KEY"
	[ "$ms" -lt 5000 ]
	timed mq-admin -w 20s topic list
	assert_failure 1
	assert_output --partial "the broker requires CurveZMQ"
	[ "$ms" -lt 5000 ]
	timed mq-sub -w 20s -t a -e
	assert_failure 1
	assert_output --partial "the broker requires CurveZMQ"
	# An unlisted key: refused by the key check, the key named.
	local bob
	bob=$(cat "$K/bob.pub")
	timed mq-pub -w 20s --curve-server "$K/server.pub" --curve-secret "$K/bob.key" -t a -m hello
	assert_failure 1
	assert_output --partial "the broker refused this client's CurveZMQ key"
	assert_output --partial "$bob"
	[ "$ms" -lt 5000 ]
	# The broker says so too, once for the two sockets of that client.
	[ "$(grep -Fc "refused a client at 127.0.0.1: its public key $bob is not in --curve-allow" "$MQ_BROKER_LOG")" -eq 1 ]
	# The wrong server key: the broker cannot read the handshake.
	timed mq-admin -w 20s --curve-server "$K/bob.pub" --curve-secret "$K/alice.key" topic list
	assert_failure 1
	assert_output --partial "closed the connection during the CurveZMQ handshake: is --curve-server"
	[ "$ms" -lt 5000 ]
	# Nothing of theirs got in.
	run alice mq-admin topic list
	assert_success
	assert_output ""
}

@test "keys for a broker without CurveZMQ, and settings that cannot take effect, are errors" {
	start_broker
	timed mq-pub -w 20s --curve-server "$K/server.pub" --curve-secret "$K/alice.key" -t a -m secret
	assert_failure 1
	assert_output --partial "the broker does not use CurveZMQ"
	[ "$ms" -lt 5000 ]
	MQ_CURVE_SERVER=$K/server.pub MQ_CURVE_SECRET=$K/alice.key run mq-admin -w 20s topic list
	assert_failure 1
	assert_output --partial "the broker does not use CurveZMQ"
	run mq-admin topic list
	refute_output --partial a
	# A secret key without the server's key; a key that is no key.
	MQ_CURVE_SECRET=$K/alice.key run mq-pub -t a -m x
	assert_failure 1
	assert_output --partial "MQ_CURVE_SECRET is set but not the broker's public key"
	run mq-pub --curve-server nokey -t a -m x
	assert_failure 1
	assert_output --partial "--curve-server 'nokey': neither a key"
	echo "not a key" >"$BATS_TEST_TMPDIR/junk"
	run mq-sub --curve-server "$BATS_TEST_TMPDIR/junk" -t a -e
	assert_failure 1
	assert_output --partial "holds no public key"
	run mq-pub --curve-server "$K/server.pub" --curve-secret "$K/missing.key" -t a -m x
	assert_failure 1
	assert_output --partial "--curve-secret '$K/missing.key': cannot read it"
	# Set but empty: not a setting.
	MQ_CURVE_SERVER= run mq-pub -t a -m fine
	assert_success
}

@test "secret key files readable by group or others are refused, by mq-serve and by clients" {
	chmod 644 "$K/server.key"
	run mq-serve -d "$BATS_TEST_TMPDIR/d" -l tcp://127.0.0.1:0 --curve-secret "$K/server.key"
	assert_failure 1
	assert_output --partial "must not be accessible by group or others (its mode is 0644): run chmod 600"
	chmod 600 "$K/server.key"
	chmod 640 "$K/alice.key"
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow"
	run alice mq-pub -t a -m x
	assert_failure 1
	assert_output --partial "its mode is 0640"
	# An allow-list others may write to lets anyone in: refused.
	stop_broker
	chmod 777 "$K/allow"
	run mq-serve -d "$BATS_TEST_TMPDIR/d" -l tcp://127.0.0.1:0 --curve-secret "$K/server.key" --curve-allow "$K/allow"
	assert_failure 1
	assert_output --partial "group or others may write to it (mode 0777)"
	# --curve-allow without a key of its own is a usage error.
	run mq-serve -d "$BATS_TEST_TMPDIR/d" --curve-allow "$K/allow"
	assert_failure 2
	assert_output --partial "--curve-allow needs --curve-secret FILE"
}

@test "SIGHUP adds and removes keys live, without dropping connections; a bad list keeps the old one" {
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow"
	# A follower of alice's stays connected through every reload.
	MQ_CURVE_SERVER=$K/server.pub MQ_CURVE_SECRET=$K/alice.key mq-sub -t t -o end -w 0 \
		>"$BATS_TEST_TMPDIR/follow" 2>"$BATS_TEST_TMPDIR/follow.err" 3>&- &
	FOLLOWER=$!
	bob() { "$@" --curve-server "$K/server.pub" --curve-secret "$K/bob.key"; }
	run bob mq-pub -t t -m bob0
	assert_failure 1
	cp "$K/bob.pub" "$K/allow/bob"
	kill -HUP "$MQ_BROKER_PID"
	run bob mq-pub -t t -m bob1
	assert_success
	grep -q "SIGHUP: 2 client keys allowed" "$MQ_BROKER_LOG"
	echo garbage >"$K/allow/broken"
	rm "$K/allow/bob"
	kill -HUP "$MQ_BROKER_PID"
	run bob mq-pub -t t -m bob2
	assert_success # the old list stays in force
	grep -q "allow/broken': holds no public key" "$MQ_BROKER_LOG"
	rm "$K/allow/broken"
	kill -HUP "$MQ_BROKER_PID"
	run bob mq-pub -t t -m bob3
	assert_failure 1
	assert_output --partial "refused this client's CurveZMQ key"
	run alice mq-pub -t t -m alice1
	assert_success
	wait_lines "$BATS_TEST_TMPDIR/follow" 3
	kill -INT "$FOLLOWER"
	wait "$FOLLOWER" || true
	run cat "$BATS_TEST_TMPDIR/follow"
	assert_output "$(printf 'bob1\nbob2\nalice1')"
}

@test "--curve-allow-admin: only admin keys delete topics, add partitions, reset groups and define shared buckets" {
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow" --curve-allow-admin "$K/admin"
	root() { "$@" --curve-server "$K/server.pub" --curve-secret "$K/root.key"; }
	run alice mq-pub -t t -m one
	assert_success
	run alice mq-sub -t t -g g -e
	assert_success
	run alice mq-admin topic delete t --force
	assert_failure 1
	assert_output --partial "deleting a topic needs an admin key"
	run alice mq-admin topic partitions t 4
	assert_failure 1
	assert_output --partial "adding partitions needs an admin key"
	run alice mq-admin group reset g -t t --to beginning
	assert_failure 1
	assert_output --partial "resetting a group needs an admin key"
	run alice mq-admin group delete g
	assert_failure 1
	run bash -c "echo x | mq-bucket --curve-server '$K/server.pub' --curve-secret '$K/alice.key' --shared b -r 10/s"
	assert_failure 1
	assert_output --partial "defining or changing a shared bucket needs an admin key"
	# The admin key may; then others take from the bucket it defined.
	run bash -c "echo x | mq-bucket --curve-server '$K/server.pub' --curve-secret '$K/root.key' --shared b -r 10/s"
	assert_success
	run bash -c "echo y | mq-bucket --curve-server '$K/server.pub' --curve-secret '$K/alice.key' --shared b -r 10/s"
	assert_success
	assert_output y
	run root mq-admin group reset g -t t --to beginning
	assert_success
	run root mq-admin topic delete t --force
	assert_success
}

@test "the traffic carries no plaintext with CurveZMQ, and does without it (a relay records both ways)" {
	command -v socat >/dev/null || skip "socat is not installed (make deps installs it)"
	local relay rport
	capture() { # through a relay on rport to MQ_BROKER's port; the bytes into $1
		rport=$(free_port)
		socat -v "TCP-LISTEN:$rport,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$MQ_BROKER_PORT" \
			2>>"$1" 3>&- &
		relay=$!
		local i
		for ((i = 0; i < 100; i++)); do
			(exec 9<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
			sleep 0.05
		done
	}
	start_broker
	capture "$BATS_TEST_TMPDIR/plain.bin"
	run mq-pub -b ":$rport" -t t -m "payload-XYZZY-plaintext"
	assert_success
	run mq-sub -b ":$rport" -t t -e
	assert_output "payload-XYZZY-plaintext"
	kill "$relay"
	wait "$relay" || true
	grep -c "payload-XYZZY-plaintext" "$BATS_TEST_TMPDIR/plain.bin" # both ways: the relay sees it
	stop_broker
	start_broker --curve-secret "$K/server.key" --curve-allow "$K/allow"
	capture "$BATS_TEST_TMPDIR/curve.bin"
	run alice mq-pub -b ":$rport" -t t -m "payload-XYZZY-secret"
	assert_success
	run alice mq-sub -b ":$rport" -t t -e
	assert_output "$(printf 'payload-XYZZY-plaintext\npayload-XYZZY-secret')"
	kill "$relay"
	wait "$relay" || true
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/curve.bin")" -gt 1000 ] # the relay did carry it
	run grep -c "XYZZY" "$BATS_TEST_TMPDIR/curve.bin"
	assert_output 0
}
