#!/usr/bin/env bats
# How every client program reaches the broker: HOST:PORT and :PORT
# endpoints, a refused connection or an unknown host reported at once
# (not after -w), and -w 0 waiting through a broker restart.

load helpers

# Run a command (through bats's run) and set ms to how long it took.
timed() {
	local t0
	t0=$(date +%s%N)
	run timeout 30 "$@"
	ms=$((($(date +%s%N) - t0) / 1000000))
}

@test "a refused connection fails at once in every client program, naming the endpoint, exit 1 (mq-lag 3)" {
	local port ep ms
	port=$(free_port)
	ep=tcp://127.0.0.1:$port
	local want="cannot connect to $ep: connection refused (is mq-serve running? set -b or MQ_BROKER)"
	# -w 30s: what fails at once is the refusal, not the timeout
	timed mq-pub -b "$ep" -w 30s -t a -m hello
	assert_failure 1
	assert_output "mq-pub: $want"
	[ "$ms" -lt 1000 ]
	timed bash -c "seq 1 10 | mq-pub -b $ep -w 30s -t a"
	assert_failure 1
	assert_output "mq-pub: $want"
	[ "$ms" -lt 1000 ]
	timed mq-sub -b "$ep" -w 30s -t a
	assert_failure 1
	assert_output "mq-sub: $want"
	[ "$ms" -lt 1000 ]
	timed mq-sub -b "$ep" -w 30s -t a -g G
	assert_failure 1
	assert_output "mq-sub: $want"
	[ "$ms" -lt 1000 ]
	timed mq-admin -b "$ep" -w 30s ping
	assert_failure 1
	assert_output "mq-admin: $want"
	[ "$ms" -lt 1000 ]
	timed mq-lag -b "$ep" -w 30s
	assert_failure 3
	assert_output --partial "mq-lag: $want"
	[ "$ms" -lt 1000 ]
	# MQ_BROKER, and -w 0 (forever) as well: nothing listens, nothing to wait for
	MQ_BROKER=$ep timed mq-pub -w 0 -t a -m hello
	assert_failure 1
	assert_output "mq-pub: $want"
	[ "$ms" -lt 1000 ]
}

@test "an ipc endpoint nobody serves fails at once" {
	local ms
	timed mq-pub -b "ipc://$BATS_TEST_TMPDIR/none.sock" -t a -m hello
	assert_failure 1
	assert_output "mq-pub: cannot connect to ipc://$BATS_TEST_TMPDIR/none.sock: no such file or directory (is mq-serve running? set -b or MQ_BROKER)"
	[ "$ms" -lt 1000 ]
}

@test "a host that does not resolve fails at once" {
	local ms
	# .invalid never resolves (RFC 2606); the bound leaves room for a slow resolver
	timed mq-pub -b no-such-host.invalid:7733 -w 30s -t a -m hello
	assert_failure 1
	assert_output --regexp "^mq-pub: cannot connect to tcp://no-such-host.invalid:7733: host 'no-such-host.invalid' not found \(.*\) \(check the host in -b or MQ_BROKER\)$"
	[ "$ms" -lt 5000 ]
	timed mq-sub -b no-such-host.invalid:7733 -w 30s -t a
	assert_failure 1
	assert_output --partial "mq-sub: cannot connect to tcp://no-such-host.invalid:7733: host 'no-such-host.invalid' not found"
}

@test "HOST:PORT and :PORT name a tcp broker for -b and MQ_BROKER" {
	start_broker
	local p=$MQ_BROKER_PORT
	run mq-pub -b "127.0.0.1:$p" -t hp -m one
	assert_success
	run mq-pub -b ":$p" -t hp -m two
	assert_success
	MQ_BROKER=localhost:$p run mq-pub -t hp -m three
	assert_success
	run mq-sub -b ":$p" -t hp -e
	assert_success
	assert_output $'one\ntwo\nthree'
	MQ_BROKER=:$p run mq-sub -t hp -e -n 1
	assert_output one
	run mq-admin -b "127.0.0.1:$p" topic list
	assert_success
	assert_output --partial hp
	run mq-admin -b ":$p" ping
	assert_success
	assert_output --regexp "^broker tcp://127.0.0.1:$p: mq-serve "
	run mq-lag -b ":$p"
	assert_success
}

@test "IPv6: mq-serve -l [::1]:PORT serves, and every client reaches it as [::1]:PORT or tcp://[::1]:PORT" {
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 loopback on this machine"
	local port
	port=$(free_port)
	mkdir -p "$BATS_TEST_TMPDIR/d6"
	mq-serve -d "$BATS_TEST_TMPDIR/d6" -l "[::1]:$port" 2>"$BATS_TEST_TMPDIR/b6.log" 3>&- &
	local pid=$! i
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$BATS_TEST_TMPDIR/b6.log" && break
		sleep 0.05
	done
	run cat "$BATS_TEST_TMPDIR/b6.log"
	assert_output "mq-serve: listening on tcp://[::1]:$port"
	run mq-pub -b "[::1]:$port" -t six -m hello
	assert_success
	run mq-sub -b "tcp://[::1]:$port" -t six -e
	assert_output hello
	run mq-admin -b "[::1]:$port" ping
	assert_output --regexp "^broker tcp://\[::1\]:$port: mq-serve "
	run mq-lag -b "[::1]:$port"
	assert_success
	kill "$pid"
	wait "$pid"
}

@test "an endpoint in none of the forms is refused, naming the forms" {
	run mq-pub -b localhost -t a -m x
	assert_failure 1
	assert_output "mq-pub: broker endpoint 'localhost': no port (use HOST:PORT, :PORT, tcp://HOST:PORT or ipc:///PATH)"
	run mq-sub -b localhost:http -t a
	assert_failure 1
	assert_output --partial "port 'http' is not a number from 1 to 65535"
}

@test "-w 0 follows through a broker restart that outlasts any timeout; -w 1s gives up" {
	start_broker
	run mq-pub -t r -m before
	assert_success
	mq-sub -t r -w 0 >"$BATS_TEST_TMPDIR/out0" 2>"$BATS_TEST_TMPDIR/err0" 3>&- &
	local s0=$!
	mq-sub -t r -w 1s >"$BATS_TEST_TMPDIR/out1" 2>"$BATS_TEST_TMPDIR/err1" 3>&- &
	local s1=$! st=0
	wait_lines "$BATS_TEST_TMPDIR/out0" 1
	wait_lines "$BATS_TEST_TMPDIR/out1" 1
	stop_broker
	sleep 4
	# -w counts from the lost connection, not from the long poll (30 s)
	! kill -0 "$s1" 2>/dev/null
	start_broker
	wait "$s1" || st=$?
	[ "$st" -eq 1 ]
	grep -q "mq-sub: broker $MQ_BROKER did not answer within 1s" "$BATS_TEST_TMPDIR/err1"
	run mq-pub -t r -m after
	assert_success
	wait_lines "$BATS_TEST_TMPDIR/out0" 2
	kill -TERM "$s0"
	wait "$s0"
	run cat "$BATS_TEST_TMPDIR/out0"
	assert_output $'before\nafter'
}

@test "-w inf is -w 0; a bad -w says what it takes" {
	start_broker
	run mq-pub -w inf -t w -m x
	assert_success
	run mq-admin -w 0 ping
	assert_success
	run mq-pub -w soon -t w -m x
	assert_failure 2
	assert_output --partial "-w 'soon': expected a duration such as 10s, or 0 or inf to wait forever"
}

@test "a broker restart while mq-pub sends, with the default -w, loses nothing and repeats nothing" {
	start_broker
	seq 1 3000 >"$BATS_TEST_TMPDIR/in"
	# a slow producer: the restart falls in the middle of it
	(
		head -n 1000 "$BATS_TEST_TMPDIR/in"
		sleep 1.5
		tail -n +1001 "$BATS_TEST_TMPDIR/in"
	) | mq-pub -t mid 2>"$BATS_TEST_TMPDIR/pub.err" 3>&- &
	local pub=$!
	sleep 0.5
	stop_broker
	sleep 2
	start_broker
	wait "$pub"
	run mq-sub -t mid -e
	[ "${#lines[@]}" -eq 3000 ]
	[ "$(printf '%s\n' "${lines[@]}" | sort -n | uniq | wc -l)" -eq 3000 ]
}

@test "CurveZMQ settings that cannot take effect and Kafka endpoints are refused, never ignored" {
	start_broker
	# A CURVE variable that is no key: refused before anything is sent.
	MQ_CURVE_SERVER=abc run mq-admin ping
	assert_failure 1
	assert_output --partial "MQ_CURVE_SERVER 'abc': neither a key (40 Z85 characters) nor a file"
	MQ_CURVE_SECRET=/nonexistent run mq-pub -t plain -m secret
	assert_failure 1
	assert_output --partial "MQ_CURVE_SECRET is set but not the broker's public key"
	local p
	MQ_CURVE_SERVER=abc run mq-sub -t plain -e
	assert_failure 1
	assert_output --partial "MQ_CURVE_SERVER 'abc': neither a key"
	MQ_CURVE_SERVER=abc run mq-lag -g g
	assert_failure 3
	assert_output --partial "MQ_CURVE_SERVER 'abc': neither a key"
	MQ_CURVE_SERVER=abc run bash -c 'echo x | mq-bucket --shared b -r 1/s'
	assert_failure 1
	assert_output --partial "MQ_CURVE_SERVER 'abc': neither a key"
	run mq-admin topic list
	refute_output --partial plain
	# Set but empty: not a setting.
	MQ_CURVE_SERVER= run mq-pub -t plain -m fine
	assert_success
	# Kafka endpoints, in -b and in MQ_BROKER: every client program tries,
	# and nothing listens there (mq-lag: UNKNOWN).
	local args
	for args in "mq-admin topic list" "mq-admin group describe g"; do
		run $args -b kafka://127.0.0.1:9
		assert_failure 1
		assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
		MQ_BROKER=kafka://127.0.0.1:9 run $args
		assert_failure 1
		assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
	done
	run mq-lag -b kafka://127.0.0.1:9
	assert_failure 3
	assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
	MQ_BROKER=kafka://127.0.0.1:9 run mq-lag -g g
	assert_failure 3
	assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
	# shared buckets: mq-serve's alone, never Kafka's
	run mq-bucket -r 1/s --shared b -b kafka://127.0.0.1:9
	assert_failure 2
	assert_output --partial "shared buckets are held by mq-serve, and a Kafka cluster has none"
	for args in "mq-pub -t a -m x" "mq-sub -t a -e"; do
		MQ_BROKER=kafka://127.0.0.1:9 run $args
		assert_failure 1
		assert_output --partial "cannot connect to kafka://127.0.0.1:9: connection refused"
	done
	# What will not connect does not mind MQ_BROKER.
	MQ_BROKER=kafka://127.0.0.1:9092 run bash -c 'echo a | mq-bucket -r 100/s'
	assert_success
	assert_output a
	MQ_BROKER=kafka://127.0.0.1:9092 run mq-admin keygen
	assert_success
	assert_output --partial "public: "
}

@test "mq-pub -t and mq-sub speak to mq-serve without loading libzmq; envelopes naming their topics load it" {
	start_broker
	LD_DEBUG=libs run mq-pub -t a -m one
	assert_success
	refute_output --partial libzmq
	run bash -c "echo two | LD_DEBUG=libs mq-pub -t a 2>&1"
	assert_success
	refute_output --partial libzmq
	run bash -c "echo '{\"topic\":\"a\",\"value\":\"three\"}' | LD_DEBUG=libs mq-pub -f json 2>&1"
	assert_success
	assert_output --partial "libzmq.so.5"
	run mq-sub -t a -e
	assert_success
	assert_output "one
two
three"
	run bash -c "LD_DEBUG=libs mq-sub -t a -e 2>&1 >/dev/null"
	assert_success
	refute_output --partial libzmq
}

@test "a one-shot mq-pub whose broker is killed mid-call and restarted delivers its message once" {
	start_broker
	mq-pub -t a -m zero
	# A stopped broker takes the connection (the kernel does) but answers
	# nothing: the call is under way when it is killed.
	kill -STOP "$MQ_BROKER_PID"
	mq-pub -w 30s -t a -m one 2>"$BATS_TEST_TMPDIR/pub.err" &
	local pub=$!
	sleep 0.5
	local port=$MQ_BROKER_PORT
	kill_broker
	sleep 0.5
	MQ_BROKER_PORT=$port start_broker
	[ "$MQ_BROKER_PORT" = "$port" ]
	_mq_reap "$pub"
	cat "$BATS_TEST_TMPDIR/pub.err"
	[ "$_mq_status" -eq 0 ]
	run mq-sub -t a -e
	assert_success
	assert_output "zero
one"
}

@test "mq-serve on TCP and ipc:// at once: libzmq clients and direct ones meet on one topic and group" {
	start_broker -l "ipc://$BATS_TEST_TMPDIR/s.sock"
	assert_equal "$(grep -c 'listening on' "$MQ_BROKER_LOG")" 2
	local ipc=ipc://$BATS_TEST_TMPDIR/s.sock
	# a source address: libzmq's DEALER, against the broker's own TCP listener
	local src="tcp://127.0.0.1:0;127.0.0.1:$MQ_BROKER_PORT"
	seq 1 1000 | mq-pub -b "$src" -t mix
	seq 1001 2000 | mq-pub -b "$ipc" -t mix
	seq 2001 3000 | mq-pub -t mix
	run mq-sub -b "$src" -t mix -e -g G -n 1500
	assert_success
	assert_equal "$(wc -l <<<"$output")" 1500
	run mq-sub -b "$ipc" -t mix -e -g G
	assert_success
	assert_equal "$(wc -l <<<"$output")" 1500
	run mq-sub -t mix -e
	assert_success
	assert_equal "$(sort -n <<<"$output" | uniq | wc -l)" 3000
	run mq-lag -b "$ipc" -g G
	assert_success
	assert_output --partial "3000  3000    0"
}

@test "peers that are not mq clients are dropped, silent ones hold nothing up, and mq-serve serves on" {
	command -v socat >/dev/null || skip "socat not installed (make deps)"
	start_broker
	# not ZeroMQ at all, a greeting cut short, and one that says nothing
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 socat -t 2 - "TCP:127.0.0.1:$MQ_BROKER_PORT" >/dev/null || true
	printf '\377\0\0\0' | timeout 5 socat -t 1 - "TCP:127.0.0.1:$MQ_BROKER_PORT" >/dev/null || true
	sleep 30 | socat - "TCP:127.0.0.1:$MQ_BROKER_PORT" >/dev/null 3>&- &
	local mute=$!
	seq 1 20000 | mq-pub -t t
	run mq-sub -t t -e
	assert_success
	assert_equal "$(wc -l <<<"$output")" 20000
	run mq-admin ping
	assert_success
	kill "$mute" 2>/dev/null || true
	pkill -f "socat - TCP:127.0.0.1:$MQ_BROKER_PORT" 2>/dev/null || true
	stop_broker
}
